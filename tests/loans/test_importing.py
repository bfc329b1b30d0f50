"""Importing loans (portal/loans/importing/): files read, rows checked, all or nothing,
re-import updates without duplicates, scope, concurrency.
"""
from __future__ import annotations

import io
import threading
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select

from portal.audit_trail import AuditEvent
from portal.extensions import db
from portal.loans.importing import apply_import, import_loans, plan_import
from portal.loans.importing.columns import COLUMNS, sample_csv
from portal.loans.models import Borrower, Loan

from .loans_helpers import PNG, ZH, csv_bytes, loan_count, loan_row, resident_id, xlsx_bytes

def run(data: bytes, actor=None, name: str = "loans.csv", **kw):
    """Import as the services are used: commit when written, roll back otherwise."""
    report = import_loans(actor, data, name, **kw)
    if report.written:
        db.session.commit()
    else:
        db.session.rollback()
    return report


def problem_at(report, row, column):
    return [p.reason for p in report.problems if p.row == row and p.column == column]


# --- reading files ----------------------------------------------------------------------------

def test_csv_with_chinese_headers_is_imported_exactly(app_ctx, org):
    rows = [loan_row(1, amount="1,234,567.89", balance="1,000,000.01", rate="4.35%"),
            loan_row(2, id_number=resident_id(1), borrower_name="借款人1", purpose="养殖"),
            loan_row(3, status="逾期", days_past_due="45", interest_arrears="120.50", risk_class="关注",
                     disbursed_on="2024/1/5", maturity_on="2025年1月5日")]
    report = run(csv_bytes(rows))
    assert report.ok, report.problems
    assert (report.rows, report.created, report.updated, report.unchanged) == (3, 3, 0, 0)
    assert report.borrowers_created == 2

    first = db.session.execute(select(Loan).filter_by(contract_no="HT-2024-0001")).scalar_one()
    assert first.amount_fen == 123456789 and first.balance_fen == 100000001
    assert first.rate_percent == Decimal("4.35")
    assert first.branch.code == "B1" and first.officer.username == "officer"
    assert first.product == "farm_credit" and first.guarantee_type == "credit" and first.payment_method == "entrusted"
    second = db.session.execute(select(Loan).filter_by(contract_no="HT-2024-0002")).scalar_one()
    assert second.borrower_id == first.borrower_id  # same ID number at the same branch: one borrower
    third = db.session.execute(select(Loan).filter_by(contract_no="HT-2024-0003")).scalar_one()
    assert (third.status, third.days_past_due, third.interest_arrears_fen, third.risk_class) == \
        ("overdue", 45, 12050, "special_mention")
    assert (third.disbursed_on, third.maturity_on) == (date(2024, 1, 5), date(2025, 1, 5))
    events = db.session.execute(select(AuditEvent).filter_by(action="loan.import")).scalars().all()
    assert len(events) == 1 and events[0].summary["created"] == 3 and events[0].object_id == report.checksum


def test_english_code_headers_tab_delimited_with_bom(app_ctx, org):
    data = b"\xef\xbb\xbf" + csv_bytes([loan_row(1), loan_row(2)], headers="en", delimiter="\t")
    report = run(data)
    assert report.ok, report.problems
    assert loan_count() == 2


def test_gbk_encoded_csv_from_excel(app_ctx, org):
    data = csv_bytes([loan_row(1, borrower_name="欧阳娜娜", purpose="购买化肥")], encoding="gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    report = run(data)
    assert report.ok, report.problems
    loan = db.session.execute(select(Loan)).scalar_one()
    assert loan.borrower.name == "欧阳娜娜" and loan.purpose == "购买化肥"


def test_excel_unicode_text_and_accounting_zero(app_ctx, org):
    text = csv_bytes([loan_row(1, interest_arrears="-", days_past_due=" - ")], delimiter="\t").decode("utf-8")
    report = run(text.encode("utf-16"), name="loans.txt")
    assert report.ok, report.problems
    loan = db.session.execute(select(Loan)).scalar_one()
    assert (loan.interest_arrears_fen, loan.days_past_due) == (0, 0)


def test_xlsx_with_title_row_date_cells_and_percent_rate(app_ctx, org):
    header = ["合同编号", "借款人", "证件号码", "机构代码", "贷款品种", "担保方式", "合同金额（元）", "贷款余额(元)",
              "年利率(%)", "发放日期", "到期日期", "管户客户经理", "备注"]
    row = ["HT-X-1", "王五", resident_id(7), "B1", "mortgage", "抵押", 200000, 150000.5, 0.0525,
           datetime(2024, 2, 1), date(2026, 2, 1), "officer", "不导入的备注"]
    data = xlsx_bytes([header, row, [None] * 3, ["HT-X-2", "赵六", resident_id(8), "B1", "抵押贷款", "抵押",
                                               "80000", 80000, "6", 20240301, "2025-03-01", "post_loan", ""]],
                      title="城关信用社贷款台账")
    workbook = openpyxl.load_workbook(io.BytesIO(data))
    workbook.active["I3"].number_format = "0.00%"
    buffer = io.BytesIO()
    workbook.save(buffer)
    report = run(buffer.getvalue(), name="台账.xlsx")
    assert report.ok, report.problems
    assert report.ignored_columns == ["备注"]
    loan = db.session.execute(select(Loan).filter_by(contract_no="HT-X-1")).scalar_one()
    assert loan.amount_fen == 20_000_000 and loan.balance_fen == 15_000_050
    assert loan.rate_percent == Decimal("5.25") and loan.disbursed_on == date(2024, 2, 1)
    assert loan.status == "active" and loan.risk_class == "normal"  # defaults for absent columns
    other = db.session.execute(select(Loan).filter_by(contract_no="HT-X-2")).scalar_one()
    assert other.disbursed_on == date(2024, 3, 1) and other.rate_percent == Decimal("6")


def test_xlsx_problem_rows_are_spreadsheet_rows(app_ctx, org):
    header = [ZH[k] for k in ("contract_no", "borrower_name", "id_number", "branch_code", "product",
                              "guarantee_type", "amount", "balance", "rate", "disbursed_on", "maturity_on", "officer")]
    good = ["HT-1", "甲", resident_id(1), "B1", "抵押贷款", "抵押", 1000, 900, 5, date(2024, 1, 1), date(2025, 1, 1), "officer"]
    numeric_id = ["HT-2", "乙", 430101198001010015, "B1", "抵押贷款", "抵押", 1000, 900, 5, date(2024, 1, 1),
                  date(2025, 1, 1), "officer"]
    report = run(xlsx_bytes([header, good, [], numeric_id], title="台账"), name="x.xlsx")
    assert not report.ok and loan_count() == 0
    assert [(p.row, p.column) for p in report.problems] == [(5, "证件号码")]
    assert "text" in report.problems[0].reason


# --- all or nothing, and the reasons ----------------------------------------------------------

def test_one_bad_row_writes_nothing_and_names_row_and_column(app_ctx, org):
    rows = [loan_row(1), loan_row(2, balance="60,000.00"), loan_row(3)]
    report = run(csv_bytes(rows))
    assert not report.ok
    assert [(p.row, p.column) for p in report.problems] == [(3, "贷款余额(元)")]
    assert "60,000.00" in report.problems[0].reason
    assert report.created == 0
    assert loan_count() == 0
    assert db.session.execute(select(func.count()).select_from(Borrower)).scalar_one() == 0
    assert not db.session.execute(select(AuditEvent).filter_by(action="loan.import")).first()


@pytest.mark.parametrize("fields, column, words", [
    ({"maturity_on": "2024-02-01"}, "到期日期", "after the disbursement"),
    ({"amount": "-5"}, "合同金额(元)", "negative"),
    ({"amount": "100.005"}, "合同金额(元)", "two decimals"),
    ({"amount": "1e5"}, "合同金额(元)", "not an amount"),
    ({"days_past_due": "-3"}, "逾期天数", "negative"),
    ({"days_past_due": "2.5"}, "逾期天数", "whole number"),
    ({"rate": "abc"}, "年利率(%)", "rate"),
    ({"disbursed_on": "2024-02-30"}, "发放日期", "not a valid date"),
    ({"disbursed_on": "next week"}, "发放日期", "not a date"),
    ({"disbursed_on": "2099-01-01", "maturity_on": "2100-01-01"}, "发放日期", "future"),
    ({"product": "神秘贷款"}, "贷款品种", "农户小额信用贷款"),
    ({"status": "休眠"}, "状态", "结清"),
    ({"risk_class": "良好"}, "风险分类", "关注"),
    ({"branch_code": "ZZ9"}, "机构代码", "Unknown institution code ZZ9"),
    ({"branch_code": "P"}, "机构代码", "branch or a county union"),
    ({"officer": "nobody"}, "管户客户经理", "no user nobody"),
    ({"officer": "officer2"}, "管户客户经理", "does not work at"),
    ({"officer": "archivist"}, "管户客户经理", "not a loan officer"),
    ({"officer": ""}, "管户客户经理", "required"),
    ({"id_number": "430101198001010010"}, "证件号码", "check digit"),
    ({"status": "结清", "settled_on": "2024-06-01"}, "贷款余额(元)", "balance of 0"),
    ({"status": "结清", "balance": "0"}, "状态", "settlement date"),
    ({"status": "逾期"}, "逾期天数", "above 0"),
    ({"days_past_due": "12"}, "状态", "overdue, not active"),
    ({"settled_on": "2024-06-01"}, "结清日期", "Only a settled"),
])
def test_each_problem_is_named(app_ctx, org, fields, column, words):
    report = run(csv_bytes([loan_row(1), loan_row(2, **fields)]))
    assert not report.ok and loan_count() == 0
    reasons = problem_at(report, 3, column)
    assert reasons, report.problems
    assert any(words.lower() in r.lower() for r in reasons), reasons


def test_duplicate_contract_in_file_names_the_first_row(app_ctx, org):
    report = run(csv_bytes([loan_row(1), loan_row(2), loan_row(3, contract_no="HT-2024-0001")]))
    assert [(p.row, p.column) for p in report.problems] == [(4, "合同编号")]
    assert "row 2" in report.problems[0].reason
    assert loan_count() == 0


def test_same_borrower_with_different_names_in_one_file(app_ctx, org):
    report = run(csv_bytes([loan_row(1), loan_row(2, id_number=resident_id(1), borrower_name="别人")]))
    assert problem_at(report, 3, "借款人")
    assert loan_count() == 0


def test_missing_required_columns_are_named(app_ctx, org):
    rows = [{k: v for k, v in loan_row(1).items() if k not in ("balance", "officer")}]
    report = run(csv_bytes(rows))
    assert len(report.problems) == 1
    assert "贷款余额(元)" in report.problems[0].reason and "管户客户经理" in report.problems[0].reason
    assert report.problems[0].row == 1


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"\n\n", "empty"),
    (PNG, "PNG"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, ".xls"),
    (b"%PDF-1.7\n", "PDF"),
    (b"hello world\nno header here\n", "header"),
    ("<html><body><table><tr><td>合同编号</td></tr></table></body></html>".encode(), "web page"),
])
def test_files_that_are_not_loan_files_are_refused(app_ctx, org, data, words):
    report = run(data, name="loans.csv")
    assert not report.ok and report.problems[0].row is None
    assert words.lower() in report.problems[0].reason.lower()


def test_zip_that_is_not_a_workbook_and_header_only(app_ctx, org):
    import zipfile
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", "<w/>")
    assert "not an Excel" in run(buffer.getvalue(), name="x.xlsx").problems[0].reason
    header_only = csv_bytes([loan_row(1)]).split(b"\r\n")[0] + b"\r\n"
    assert "no loans" in run(header_only).problems[0].reason


def test_row_limit(app, org):
    app.config["XINDANG_IMPORT_MAX_ROWS"] = 2
    try:
        with app.app_context():
            report = run(csv_bytes([loan_row(n) for n in range(1, 4)]))
            assert "more than 2" in report.problems[0].reason and loan_count() == 0
            assert run(csv_bytes([loan_row(n) for n in range(1, 3)])).ok
    finally:
        app.config["XINDANG_IMPORT_MAX_ROWS"] = 200_000


def test_dry_run_writes_nothing(app_ctx, org):
    report = run(csv_bytes([loan_row(1)]), dry_run=True)
    assert report.ok and report.created == 1 and not report.written
    assert loan_count() == 0


# --- re-import --------------------------------------------------------------------------------

def test_reimport_updates_balance_dpd_status_without_duplicates(app_ctx, org):
    assert run(csv_bytes([loan_row(1), loan_row(2)])).ok
    ids = dict(db.session.execute(select(Loan.contract_no, Loan.id)).all())
    rows = [loan_row(1, balance="30,000.00", status="逾期", days_past_due="35", interest_arrears="88.00",
                     risk_class="关注", officer="post_loan", credit_rating="BBB"),
            loan_row(2), loan_row(3)]
    report = run(csv_bytes(rows))
    assert report.ok, report.problems
    assert (report.created, report.updated, report.unchanged) == (1, 1, 1)
    assert loan_count() == 3
    loan = db.session.get(Loan, ids["HT-2024-0001"])
    assert (loan.balance_fen, loan.days_past_due, loan.status, loan.interest_arrears_fen, loan.risk_class) == \
        (3_000_000, 35, "overdue", 8800, "special_mention")
    assert loan.officer.username == "post_loan" and loan.borrower.credit_rating == "BBB"
    change = report.changes[0]
    assert change.contract_no == "HT-2024-0001"
    assert change.changes["balance_fen"] == [4_800_000, 3_000_000]
    assert change.changes["officer"] == ["officer", "post_loan"]
    events = db.session.execute(select(AuditEvent).filter_by(action="loan.import_update")).scalars().all()
    assert [e.object_id for e in events] == [str(loan.id)]

    # Settling it later: balance 0, status settled with its date.
    settle = [loan_row(1, balance="0", status="结清", days_past_due="0", interest_arrears="0", risk_class="正常",
                       officer="post_loan", settled_on="2024-09-30", credit_rating="BBB")]
    assert run(csv_bytes(settle)).ok
    db.session.expire_all()
    loan = db.session.get(Loan, ids["HT-2024-0001"])
    assert loan.status == "settled" and loan.settled_on == date(2024, 9, 30)
    assert loan_count() == 3

    # The same file again changes nothing.
    again = run(csv_bytes(settle))
    assert again.ok and (again.updated, again.unchanged) == (0, 1)


def test_balance_only_changes_are_audited_on_the_import_event(app_ctx, org):
    assert run(csv_bytes([loan_row(1)])).ok
    report = run(csv_bytes([loan_row(1, balance="40,000.00")]))
    assert report.ok and report.updated == 1
    assert not db.session.execute(select(AuditEvent).filter_by(action="loan.import_update")).first()
    last = db.session.execute(select(AuditEvent).filter_by(action="loan.import")
                              .order_by(AuditEvent.seq.desc())).scalars().first()
    assert last.summary["changed_fields"] == {"balance_fen": 1} and last.summary["updated"] == 1


def test_reimport_with_different_terms_is_a_problem(app_ctx, org):
    assert run(csv_bytes([loan_row(1)])).ok
    report = run(csv_bytes([loan_row(1, amount="60,000.00", branch_code="B2", officer="officer2",
                                    id_number=resident_id(1))]))
    assert problem_at(report, 2, "合同金额(元)") and problem_at(report, 2, "机构代码")
    other_borrower = run(csv_bytes([loan_row(1, id_number=resident_id(9))]))
    assert problem_at(other_borrower, 2, "证件号码")
    loan = db.session.execute(select(Loan)).scalar_one()
    assert loan.amount_fen == 5_000_000 and loan.branch.code == "B1"


def test_settled_loan_cannot_be_reopened(app_ctx, org):
    assert run(csv_bytes([loan_row(1, balance="0", status="结清", settled_on="2024-06-01")])).ok
    report = run(csv_bytes([loan_row(1, balance="1,000.00", status="正常")]))
    assert problem_at(report, 2, "状态")
    assert db.session.execute(select(Loan.status)).scalar_one() == "settled"


def test_absent_optional_columns_keep_stored_values(app_ctx, org):
    assert run(csv_bytes([loan_row(1, status="逾期", days_past_due="20", risk_class="次级")])).ok
    short = {k: v for k, v in loan_row(1, balance="40,000.00").items()
             if k not in ("status", "days_past_due", "risk_class", "interest_arrears")}
    report = run(csv_bytes([short]))
    assert report.ok and report.updated == 1, report.problems
    loan = db.session.execute(select(Loan)).scalar_one()
    assert (loan.balance_fen, loan.status, loan.days_past_due, loan.risk_class) == \
        (4_000_000, "overdue", 20, "substandard")


# --- scope and permission ---------------------------------------------------------------------

def test_branch_director_cannot_import_into_another_branch(app_ctx, org):
    director = org.user("director")  # at B1
    report = run(csv_bytes([loan_row(1), loan_row(2, branch_code="B2", officer="officer2")]), actor=director)
    assert [(p.row, p.column) for p in report.problems] == [(3, "机构代码")]
    assert "outside your institution" in report.problems[0].reason
    assert loan_count() == 0
    assert run(csv_bytes([loan_row(1)]), actor=director).ok
    assert db.session.execute(select(AuditEvent.actor_name).filter_by(action="loan.import")).scalar_one() == "director"


def test_contract_outside_scope_is_not_updated(app_ctx, org):
    assert run(csv_bytes([loan_row(1, branch_code="B2", officer="officer2")])).ok
    report = run(csv_bytes([loan_row(1)]), actor=org.user("director"))
    assert "outside your institution" in problem_at(report, 2, "合同编号")[0]


def test_county_director_imports_into_branches_under_the_county(app_ctx, org):
    rows = [loan_row(1), loan_row(2, branch_code="B2", officer="officer2")]
    assert run(csv_bytes(rows), actor=org.user("county_director")).ok
    assert loan_count() == 2


def test_roles_without_import_permission_are_refused(app_ctx, org):
    from portal.errors import PermissionDenied
    with pytest.raises(PermissionDenied):
        import_loans(org.user("officer"), csv_bytes([loan_row(1)]), "x.csv")


# --- concurrency ------------------------------------------------------------------------------

def test_import_that_loses_a_race_fails_cleanly(app, org):
    data = csv_bytes([loan_row(1), loan_row(2)])
    with app.app_context():
        slow = plan_import(None, data, "a.csv")  # validated: both loans are new
        assert slow.report.ok and slow.report.created == 2
        with app.app_context():  # another request imports the same file meanwhile
            assert run(data, name="b.csv").ok
        report = apply_import(None, slow)
        assert not report.ok and report.created == 0
        assert "Another import" in report.problems[0].reason
        db.session.rollback()
        assert loan_count() == 2


def test_two_imports_at_once_never_duplicate(app, org):
    data = csv_bytes([loan_row(n) for n in range(1, 30)])
    results, errors = [], []
    start = threading.Barrier(2)

    def worker():
        try:
            with app.app_context():
                start.wait()
                results.append(run(data))
        except Exception as exc:  # noqa: BLE001 - the test reports any crash
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert any(r.ok and r.created == 29 for r in results)
    for r in results:
        assert r.ok or "Another import" in r.problems[0].reason
    with app.app_context():
        assert loan_count() == 29


# --- the documented examples import ---------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "import-format.md"


def test_sample_csv_is_a_valid_file(app_ctx, org):
    report = run(sample_csv().encode("utf-8"))
    assert report.ok, report.problems


def test_format_doc_examples_import(app_ctx, org):
    blocks = DOC.read_text(encoding="utf-8").split("```csv\n")[1:]
    first, second = (block.split("```")[0].encode("utf-8") for block in blocks)
    report = run(first)
    assert report.ok and report.created == 3, report.problems
    report = run(second)
    assert report.ok and report.updated == 1, report.problems
    loan = db.session.execute(select(Loan).filter_by(contract_no="HT-2024-0001")).scalar_one()
    assert (loan.balance_fen, loan.status, loan.days_past_due) == (3_000_000, "overdue", 12)
    enterprise = db.session.execute(select(Loan).filter_by(contract_no="HT-2024-0003")).scalar_one()
    assert enterprise.borrower.kind == "enterprise"


def test_status_as_the_portal_shows_it_is_read_back(app_ctx, org):
    """在贷 is how the portal labels an active loan; a list exported and edited comes back."""
    report = run(csv_bytes([loan_row(1, status="在贷"), loan_row(2, status="已结清", settled_on="2024-05-01", balance="0")]))
    assert report.ok, report.problems
    statuses = dict(db.session.execute(select(Loan.contract_no, Loan.status)).all())
    assert sorted(statuses.values()) == ["active", "settled"]
