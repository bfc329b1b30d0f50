"""Every post-loan page opens for every role in scope, and shows only what is in scope."""
from __future__ import annotations

from datetime import date

import pytest

from portal.extensions import db
from portal.postloan.models import Inspection

from .postloan_helpers import complete, one, run_daily

PAGES = ["/postloan/inspections", "/postloan/inspections?view=branch", "/postloan/inspections/calendar?month=2024-06",
         "/postloan/warnings", "/postloan/warnings?status=lifted", "/postloan/classification", "/postloan/collection",
         "/postloan/notices", "/postloan/notices?status=issued", "/postloan/migration", "/postloan/handovers",
         "/postloan/write-offs", "/"]


@pytest.fixture()
def loans(app, org, make_loan):
    with app.app_context():
        mine = make_loan(org.inst("B1"), org.user("officer"), contract_no="B1-PL-1", days_past_due=100,
                         interest_arrears_fen=10_000, status="overdue", disbursed_on=date(2024, 1, 5))
        other = make_loan(org.inst("B2"), org.user("officer2"), contract_no="B2-PL-1", days_past_due=5, status="overdue")
        db.session.commit()
        run_daily()
        complete(one(Inspection, loan_id=mine.id, kind="first"), org.user("officer"), date(2024, 1, 10))
        return mine.id, other.id


ROLES = ["officer", "director", "post_loan", "auditor", "archivist", "county_director", "union_admin", "admin"]


def test_pages_open_for_every_role(app, loans, login):
    mine, _other = loans
    for username in ROLES:
        client = app.test_client()
        login(client, username)
        for path in PAGES + [f"/postloan/loans/{mine}", f"/loans/{mine}"]:
            response = client.get(path)
            assert response.status_code == 200, (username, path, response.status_code)


def test_lists_show_only_the_users_scope(app, client, loans, login):
    mine, other = loans
    login(client, "officer")
    for path in ("/postloan/inspections?view=branch", "/postloan/warnings", "/postloan/notices"):
        page = client.get(path).get_data(as_text=True)
        assert f"/postloan/loans/{mine}" in page and f"/postloan/loans/{other}" not in page, path
    assert client.get(f"/postloan/loans/{other}").status_code == 404
    assert client.get(f"/loans/{mine}").get_data(as_text=True).count(f"/postloan/loans/{mine}#") == 6
