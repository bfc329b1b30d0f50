"""Audit pages: completeness drilled down from the union to the missing document, the same
numbers in the PDF and the Excel file, scope, and the workspace's other pages."""
from __future__ import annotations

import io
import re

from openpyxl import load_workbook

from portal.extensions import db

from tests.helpers.files import pdf_text_without_spaces

from .auditing_helpers import add_doc


def inline_scripts(html: str) -> list[str]:
    """Script elements without a ``src`` (the CSP refuses them; charts must have none)."""
    return re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html, re.I)


def ids(app, world, *codes):
    with app.app_context():
        return [world.org.inst(c).id for c in codes]


def page_rates(html: str) -> dict[str, str]:
    return dict(re.findall(r'<tr data-code="(\w+)">.*?<td class="xd-money" data-rate>([^<]+)</td>', html, re.S))


def test_drill_down_from_union_to_missing_document(app, client, known_gaps, login):
    p, c1, b1 = ids(app, known_gaps, "P", "C1", "B1")
    login(client, "union_admin")
    union = client.get(f"/audit/completeness?institution={p}")
    assert union.status_code == 200
    html = union.get_data(as_text=True)
    assert 'id="total-files">7<' in html and 'id="total-complete">3<' in html and "42.9%" in html
    assert f"/audit/completeness?institution={c1}" in html
    assert "<svg" in html and inline_scripts(html) == []
    county = client.get(f"/audit/completeness?institution={c1}").get_data(as_text=True)
    assert page_rates(county) == {"B1": "33.3%", "B2": "50.0%"}
    branch = client.get(f"/audit/completeness?institution={b1}").get_data(as_text=True)
    c = known_gaps.contracts
    for name in ("L2", "L3"):
        assert f'data-contract="{c[name]}"' in branch
    assert f'data-contract="{c["L1"]}"' not in branch                     # complete files are not listed
    assert 'data-missing="collateral_certificate"' in branch and 'data-missing="settlement_certificate"' in branch
    loan = client.get(f"/audit/completeness/loans/{known_gaps.loans['L2']}").get_data(as_text=True)
    assert re.search(r'<tr data-type="collateral_certificate" class="table-danger">', loan)
    assert re.search(r'<tr data-type="loan_contract" class="">', loan)
    assert "2 of 8 documents required today are missing" in loan
    assert "Discarded" in loan                                              # the row that does not count


def test_branch_users_see_their_branch_only(app, client, known_gaps, login):
    p, b2 = ids(app, known_gaps, "P", "B2")
    login(client, "auditor")                                                # auditor of B1
    assert client.get(f"/audit/completeness?institution={p}").status_code == 404
    assert client.get(f"/audit/completeness?institution={b2}").status_code == 404
    assert client.get(f"/audit/completeness/loans/{known_gaps.loans['L5']}").status_code == 404
    own = client.get("/audit/completeness").get_data(as_text=True)
    assert 'id="total-files">3<' in own
    other = app.test_client()
    login(other, "officer_q")
    assert other.get(f"/audit/completeness/loans/{known_gaps.loans['L1']}").status_code == 404


def test_pdf_has_chinese_text_and_the_numbers_of_the_page(app, client, known_gaps, login):
    c1, = ids(app, known_gaps, "C1")
    login(client, "county_auditor")
    page = client.get(f"/audit/completeness?institution={c1}").get_data(as_text=True)
    rates = page_rates(page)
    response = client.get(f"/audit/completeness?institution={c1}&format=pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = pdf_text_without_spaces(response.data)
    assert "测试县联社" in text and "城关信用社" in text and "河西信用社" in text   # Chinese, header and rows
    assert "抵押合同" in text and "他项权证" in text and "结清证明" in text           # missing documents by name
    for code, rate in rates.items():
        assert rate in text
    assert "42.9%" in text and re.search(r"页/共\d+页", text)                      # total, page numbers
    for contract in (known_gaps.contracts[n] for n in ("L2", "L3", "L4", "L5")):
        assert contract in text
    for contract in (known_gaps.contracts[n] for n in ("L1", "L6", "L7")):
        assert contract not in text


def test_excel_has_the_numbers_of_the_page(app, client, known_gaps, login):
    c1, = ids(app, known_gaps, "C1")
    login(client, "county_auditor")
    response = client.get(f"/audit/completeness?institution={c1}&format=xlsx")
    assert response.status_code == 200
    wb = load_workbook(io.BytesIO(response.data))
    institutions = list(wb.worksheets[0].iter_rows(min_row=3, values_only=True))
    by_code = {row[0]: row for row in institutions}
    assert by_code["B1"][3:7] == (3, 1, 2, 33.3) and by_code["B2"][3:7] == (4, 2, 2, 50.0)
    assert by_code["C1"][3:8] == (7, 3, 4, 42.9, 6)
    gaps = list(wb.worksheets[1].iter_rows(min_row=2, values_only=True))
    assert {(row[2], row[6]) for row in gaps} == {(contract, code) for contract, code, _s, _d in known_gaps.gaps}


def test_workspace_pages_render_for_an_auditor(app, client, known_gaps, login):
    c1, = ids(app, known_gaps, "C1")
    login(client, "county_auditor")
    for path in ("/audit/", "/audit/dashboard", f"/audit/dashboard?institution={c1}", "/audit/fixity",
                 "/audit/fixity/objects", "/audit/inspections", "/audit/reports"):
        response = client.get(path, follow_redirects=True)
        assert response.status_code == 200, path
        body = response.get_data(as_text=True)
        assert inline_scripts(body) == [], path
    assert client.get("/audit/completeness?institution=abc").status_code == 404
    assert client.get("/audit/reports/unknown.pdf").status_code == 404


def test_officers_see_completeness_but_not_the_auditors_tools(app, client, known_gaps, login):
    login(client, "officer")
    assert client.get("/audit/completeness").status_code == 200
    assert client.get("/audit/dashboard").status_code == 200
    for path in ("/audit/fixity", "/audit/inspections", "/audit/reports"):
        assert client.get(path).status_code == 403, path


def test_a_document_added_shows_at_once(app, client, known_gaps, login):
    b2, = ids(app, known_gaps, "B2")
    with app.app_context():
        from portal.loans.models import Loan
        add_doc(db.session.get(Loan, known_gaps.loans["L5"]), "first_visit", "collected")
        db.session.commit()
    login(client, "county_auditor")
    html = client.get(f"/audit/completeness?institution={b2}").get_data(as_text=True)
    assert f'data-contract="{known_gaps.contracts["L5"]}"' not in html
    assert 'id="total-complete">3<' in html
