"""The loan list (filters, paging) and the loan page (what the rules say)."""
import re
from datetime import date

import pytest

from portal.extensions import db


def _contracts(page: str) -> set[str]:
    return set(re.findall(r">(LN-[0-9A-Z-]+)<", page))


@pytest.fixture()
def portfolio(app, org, make_loan):
    """Five loans of branch B1 (current, M1, M2, M4, settled) and one of B2 (M6)."""
    with app.app_context():
        b1, b2, officer = org.inst("B1"), org.inst("B2"), org.user("officer")
        make_loan(b1, officer, contract_no="LN-CUR", days_past_due=0)
        make_loan(b1, officer, contract_no="LN-M1", status="overdue", days_past_due=30, risk_class="special_mention")
        make_loan(b1, officer, contract_no="LN-M2", status="overdue", days_past_due=31, risk_class="special_mention")
        make_loan(b1, officer, contract_no="LN-M4", status="overdue", days_past_due=120, risk_class="substandard")
        make_loan(b1, None, contract_no="LN-SET", status="settled", balance_fen=0)
        make_loan(b2, org.user("officer2"), contract_no="LN-B2", status="overdue", days_past_due=400, risk_class="loss")
        db.session.commit()


def test_filters(app, client, org, login, portfolio):
    login(client, "county_director")
    assert _contracts(client.get("/loans/?status=overdue").get_data(as_text=True)) == {"LN-M1", "LN-M2", "LN-M4", "LN-B2"}
    assert _contracts(client.get("/loans/?risk=substandard").get_data(as_text=True)) == {"LN-M4"}
    # Buckets follow the union's edges (baseline 30, 60, 90, 180, 360): M1 is 1–30 days.
    assert _contracts(client.get("/loans/?bucket=M1").get_data(as_text=True)) == {"LN-M1"}
    assert _contracts(client.get("/loans/?bucket=M2").get_data(as_text=True)) == {"LN-M2"}
    assert _contracts(client.get("/loans/?bucket=M6").get_data(as_text=True)) == {"LN-B2"}
    assert "LN-CUR" in _contracts(client.get("/loans/?bucket=M0").get_data(as_text=True))
    with app.app_context():
        b2_id, officer_id = org.inst("B2").id, org.user("officer").id
    assert _contracts(client.get(f"/loans/?branch={b2_id}").get_data(as_text=True)) == {"LN-B2"}
    assert _contracts(client.get(f"/loans/?officer={officer_id}").get_data(as_text=True)) == {"LN-CUR", "LN-M1", "LN-M2", "LN-M4"}
    assert _contracts(client.get("/loans/?q=LN-M").get_data(as_text=True)) == {"LN-M1", "LN-M2", "LN-M4"}


def test_nonsense_filters_do_not_break_the_page(app, client, org, login, portfolio):
    login(client, "officer")
    for query in ("bucket=M99", "bucket=X", "status=nope", "risk=evil", "page=999999999999", "page=-3",
                  "branch=abc", "officer=%00", "q=" + "借" * 500):
        response = client.get(f"/loans/?{query}")
        assert response.status_code == 200, query


def test_paging(app, client, org, login, make_loan):
    app.config["XINDANG_PAGE_SIZE"] = 3
    try:
        with app.app_context():
            for i in range(7):
                make_loan(org.inst("B1"), org.user("officer"), contract_no=f"LN-P{i}",
                          disbursed_on=date(2024, 1, 1 + i))
            db.session.commit()
        login(client, "officer")
        seen = set()
        for page in (1, 2, 3):
            text = client.get(f"/loans/?page={page}").get_data(as_text=True)
            found = _contracts(text)
            assert found and not (found & seen)
            seen |= found
        assert len(seen) == 7
        assert "第 3 页" in client.get("/loans/?page=3").get_data(as_text=True) or "Page 3" in text
    finally:
        app.config["XINDANG_PAGE_SIZE"] = 50


def test_loan_page_shows_what_the_rules_say(app, client, org, login, make_loan):
    with app.app_context():
        loan = make_loan(org.inst("B1"), org.user("officer"), contract_no="LN-BIG", amount_fen=60_000_000,
                         balance_fen=60_000_000, payment_method="self", disbursed_on=date(2024, 5, 10),
                         status="overdue", days_past_due=95, credit_rating="AA")
        db.session.commit()
        loan_id = loan.id
    login(client, "officer")
    page = client.get(f"/loans/{loan_id}").get_data(as_text=True)
    assert "2024-05-13" in page          # first inspection: 3 days for self payment
    assert "180" in page                 # AA: routine every 180 days
    assert "600,000.00" in page          # amounts in yuan from integer fen
    assert "信贷科" in page               # escalated to the county's credit department (≥ 50万元)


def _total(page: str) -> int:
    return int(re.search(r'<small class="text-muted">\((\d+)\)</small>', page).group(1))


def test_unfiltered_total_comes_from_the_kept_summary_and_follows_every_change(app, client, org, login, make_loan,
                                                                              portfolio):
    """Above a branch, the list's total without filters is the kept home summary's count while
    that is valid (no count of the loans runs), and a count when it is not (the summary is not
    built for it); a new loan, a moved loan and a filter all show the true number at once."""
    from sqlalchemy import event

    from portal.loans.models import Loan

    statements: list[str] = []

    def total_of(who, path):
        statements.clear()
        page = who.get(path).get_data(as_text=True)
        return _total(page), page

    app.config["XINDANG_PAGE_SIZE"] = 2
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2].lower()))
    counted = lambda: any("count(loan.id)" in s for s in statements)      # noqa: E731
    summarised = lambda: any("group by loan.status" in s for s in statements)  # noqa: E731
    login(client, "county_director")
    assert total_of(client, "/loans/")[0] == 6 and counted() and not summarised()   # nothing kept yet
    assert client.get("/").status_code == 200                                      # the home page keeps it
    assert total_of(client, "/loans/?page=2")[0] == 6 and not counted()
    with app.app_context():
        make_loan(org.inst("B1"), org.user("officer"), contract_no="LN-NEW")
        db.session.commit()
    total, page = total_of(client, "/loans/?page=4")
    assert total == 7 and counted() and not summarised() and len(_contracts(page)) == 1  # 7 at 2 a page
    assert total_of(client, "/loans/?status=overdue")[0] == 4 and counted()
    other = app.test_client()
    login(other, "officer")                                   # a branch's list counts
    assert other.get("/").status_code == 200
    assert total_of(other, "/loans/")[0] == 6 and counted()
    with app.app_context():
        loan = db.session.execute(db.select(Loan).filter_by(contract_no="LN-CUR")).scalar_one()
        loan.branch_id = org.inst("B2").id
        db.session.commit()
    assert total_of(other, "/loans/")[0] == 5
    assert client.get("/").status_code == 200
    assert total_of(client, "/loans/")[0] == 7 and not counted()
