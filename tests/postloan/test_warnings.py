"""Early warnings: raised by hand or by the rules, handled, escalated and lifted with reasons."""
from __future__ import annotations

import pytest

from portal.extensions import db
from portal.postloan.models import RiskWarning, WarningAction

from .postloan_helpers import one, post, rows


@pytest.fixture()
def branch_loan(app, org, make_loan):
    """``branch_loan(branch="B1", officer="officer", **fields)``: the id of a new loan of that branch."""
    def make(branch="B1", officer="officer", **fields):
        with app.app_context():
            loan = make_loan(org.inst(branch), org.user(officer), borrower_name="李四", **fields)
            db.session.commit()
            return loan.id
    return make


def test_warning_raised_by_hand_handled_escalated_and_lifted(app, client, org, login, branch_loan):
    loan_id = branch_loan()
    login(client, "officer")
    assert post(client, f"/postloan/loans/{loan_id}/warnings", {"signal": "lost_contact", "details": ""}).status_code == 422
    assert post(client, f"/postloan/loans/{loan_id}/warnings",
                {"signal": "lost_contact", "details": "借款人外出务工,电话无人接听"}).status_code == 302
    with app.app_context():
        warning_id = one(RiskWarning, loan_id=loan_id).id
    assert post(client, f"/postloan/warnings/{warning_id}/act", {"action": "handle", "note": "联系担保人了解去向"}).status_code == 302
    assert post(client, f"/postloan/warnings/{warning_id}/act", {"action": "escalate", "note": "三次联系未果"}).status_code == 302
    with app.app_context():
        warning = db.session.get(RiskWarning, warning_id)
        assert warning.status == "escalated" and warning.escalated_to_id == org.inst("C1").id
    # A loan officer may not lift; the director may, with a reason.
    assert post(client, f"/postloan/warnings/{warning_id}/act", {"action": "lift", "note": "已联系上"}).status_code == 403
    director = app.test_client()
    login(director, "director")
    assert post(director, f"/postloan/warnings/{warning_id}/act", {"action": "lift", "note": ""}).status_code == 422
    assert post(director, f"/postloan/warnings/{warning_id}/act", {"action": "lift", "note": "借款人已返乡并联系上"}).status_code == 302
    with app.app_context():
        assert db.session.get(RiskWarning, warning_id).status == "lifted"
        assert [a.action for a in rows(WarningAction, warning_id=warning_id)] == ["raise", "handle", "escalate", "lift"]
    page = director.get(f"/postloan/warnings/{warning_id}").get_data(as_text=True)
    assert "借款人已返乡并联系上" in page
    assert post(director, f"/postloan/warnings/{warning_id}/act", {"action": "handle", "note": "x"}).status_code == 409


def test_open_warnings_per_branch_and_scope(app, client, org, login, branch_loan):
    b1 = branch_loan(days_past_due=5, status="overdue")
    b2 = branch_loan(branch="B2", officer="officer2", days_past_due=10, status="overdue")
    with app.app_context():
        b2_warning = one(RiskWarning, loan_id=b2, signal="overdue").id
    login(client, "county_director")
    page = client.get("/postloan/warnings").get_data(as_text=True)
    per_branch = page.split('id="per-branch"', 1)[1]
    assert "城关信用社" in per_branch and "河西信用社" in per_branch
    officer = app.test_client()
    login(officer, "officer")
    mine = officer.get("/postloan/warnings").get_data(as_text=True)
    assert f"/postloan/loans/{b1}" in mine and f"/postloan/loans/{b2}" not in mine
    assert officer.get(f"/postloan/warnings/{b2_warning}").status_code == 404
    assert post(officer, f"/postloan/warnings/{b2_warning}/act", {"action": "handle", "note": "x"}).status_code == 404
