"""The reports as PDF and Excel: lending register, destruction lists, inspection overview and
overdue migration, each with the numbers of the page it mirrors; and who may download which."""
from __future__ import annotations

import io
import re
from datetime import timedelta
from decimal import Decimal

from openpyxl import load_workbook

from portal.extensions import db
from portal.timeutil import local_today, utcnow

from tests.helpers.files import pdf_text_without_spaces


def rows(data: bytes, sheet: int = 0, min_row: int = 3) -> list[tuple]:
    return list(load_workbook(io.BytesIO(data)).worksheets[sheet].iter_rows(min_row=min_row, values_only=True))


def test_lending_register_and_destruction_lists(app, client, known_gaps, login):
    from portal.archive.models import DestructionItem, DestructionList, Document, Lending
    from portal.loans.models import Loan
    with app.app_context():
        org = known_gaps.org
        loan = db.session.get(Loan, known_gaps.loans["L1"])
        doc = db.session.execute(db.select(Document).where(Document.loan_id == loan.id)).scalars().first()
        lending = Lending(institution_id=loan.branch_id, volume_id=doc.volume_id, requester_id=org.user("officer").id,
                          medium="paper", reason="贷后检查调阅", days=7, state="issued", issued_at=utcnow(),
                          due_on=local_today() + timedelta(days=7))
        lending.documents = [doc]
        dl = DestructionList(institution_id=loan.branch_id, state="draft", appraisal="保管期满,经鉴定可以销毁",
                             proposer_id=org.user("archivist").id)
        db.session.add_all([lending, dl])
        db.session.flush()
        db.session.add(DestructionItem(list_id=dl.id, document_id=doc.id, archive_number="J001-XD·2010-D10-B1-0001",
                                       doc_type_name="借款合同", borrower_name="借款人L1", retention_code="D10"))
        db.session.commit()
        c1 = org.inst("C1").id
    login(client, "county_auditor")
    register = client.get(f"/audit/reports/lending-register.pdf?institution={c1}")
    assert register.status_code == 200 and "贷后检查调阅" in pdf_text_without_spaces(register.data)
    sheet = rows(client.get(f"/audit/reports/lending-register.xlsx?institution={c1}").data)
    assert len(sheet) == 1 and sheet[0][6] == "贷后检查调阅" and sheet[0][2] == "officer"
    lists = client.get(f"/audit/reports/destruction-lists.pdf?institution={c1}")
    text = pdf_text_without_spaces(lists.data)
    assert "保管期满,经鉴定可以销毁" in text and "J001-XD·2010-D10-B1-0001" in text
    items = rows(client.get(f"/audit/reports/destruction-lists.xlsx?institution={c1}").data, sheet=1, min_row=2)
    assert items == [(items[0][0], "J001-XD·2010-D10-B1-0001", "借款合同", "借款人L1", None, "10 years", None, None)]
    # Officers have no reports; an auditor of B1 cannot ask for the county.
    officer = app.test_client()
    login(officer, "officer")
    assert officer.get(f"/audit/reports/lending-register.pdf?institution={c1}").status_code == 403
    branch = app.test_client()
    login(branch, "auditor")
    assert branch.get(f"/audit/reports/destruction-lists.xlsx?institution={c1}").status_code == 404


def test_inspection_overview(app, client, known_gaps, login):
    login(client, "county_auditor")
    with app.app_context():
        c1 = known_gaps.org.inst("C1").id
    pdf = client.get(f"/audit/reports/inspections.pdf?institution={c1}")
    assert pdf.status_code == 200
    text = pdf_text_without_spaces(pdf.data)
    assert "城关信用社" in text and "河西信用社" in text and "测试县联社" in text
    book = load_workbook(io.BytesIO(client.get(f"/audit/reports/inspections.xlsx?institution={c1}").data))
    schedule = list(book.worksheets[0].iter_rows(min_row=3, values_only=True))
    assert {(r[0], r[1]) for r in schedule} == {("城关信用社", "测试县联社"), ("河西信用社", "测试县联社"),
                                                ("城关信用社", "城关信用社"), ("河西信用社", "河西信用社")}
    postloan = list(book.worksheets[2].iter_rows(min_row=2, values_only=True))
    assert [r[0] for r in postloan] == ["城关信用社", "河西信用社"]
    assert client.get(f"/audit/reports/inspections.pdf?institution={c1}&start=2024-02-01&end=2024-01-01").status_code == 422


def test_migration_report_has_the_numbers_of_the_migration_page(app, client, known_gaps, login):
    from portal.loans.models import Loan
    from portal.postloan.models import BucketSnapshot
    today = local_today()
    start, end = today - timedelta(days=10), today - timedelta(days=1)
    with app.app_context():
        for name, before, after in (("L1", "M0", "M0"), ("L5", "M0", "M1"), ("L6", "M1", "M0"), ("L7", "M1", "M2")):
            loan = db.session.get(Loan, known_gaps.loans[name])
            for day, bucket in ((start, before), (end, after)):
                db.session.add(BucketSnapshot(loan_id=loan.id, branch_id=loan.branch_id, as_of=day, bucket=bucket,
                                              days_past_due=0 if bucket == "M0" else 20, balance_fen=1_000_000,
                                              credit_rating="A", risk_class="normal", status="active"))
        db.session.commit()
        c1 = known_gaps.org.inst("C1").id
    login(client, "county_auditor")
    page = client.get(f"/postloan/migration?institution={c1}&start={start}&end={end}").get_data(as_text=True)
    cell = re.search(r'data-from="M1" data-to="M2">10,000.00<br><small>([\d.]+)%', page).group(1)
    assert cell == "50.00"
    book = rows(client.get(f"/audit/reports/migration.xlsx?institution={c1}&start={start}&end={end}").data)
    by_bucket = {r[0].split()[0]: r for r in book}
    columns = len(by_bucket["M1"]) - 3
    rates = by_bucket["M1"][3 + columns // 2:]
    assert by_bucket["M1"][1:3] == (2, 20_000.0)
    assert Decimal(str(rates[2])) == Decimal(cell) and Decimal(str(rates[0])) == Decimal("50.00")
    pdf = client.get(f"/audit/reports/migration.pdf?institution={c1}&start={start}&end={end}")
    assert pdf.status_code == 200 and "50.00%" in pdf_text_without_spaces(pdf.data)
