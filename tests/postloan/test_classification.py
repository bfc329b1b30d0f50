"""Five-category classification: floors by days past due, no upgrade above the floor, downgrades
with a reason, restructured loans locked, the history kept."""
from __future__ import annotations

from datetime import timedelta

import pytest

from portal.extensions import db
from portal.postloan.models import ClassificationReview
from portal.timeutil import local_today

from .postloan_helpers import AS_OF, one, post, rows, run_daily


FLOORS = {0: "normal", 1: "special_mention", 90: "special_mention", 91: "substandard", 270: "substandard",
          271: "doubtful", 360: "doubtful", 361: "loss"}


def test_daily_run_suggests_the_floor_by_days_past_due(app, org, make_loan):
    with app.app_context():
        loans = {dpd: make_loan(org.inst("B1"), org.user("officer"), days_past_due=dpd,
                                status="overdue" if dpd else "active") for dpd in FLOORS}
        db.session.commit()
        run_daily()
        for dpd, floor in FLOORS.items():
            reviews = rows(ClassificationReview, loan_id=loans[dpd].id, status="pending")
            if floor == "normal":
                assert reviews == []
            else:
                assert (reviews[0].floor, reviews[0].suggested) == (floor, floor) and reviews[0].reasons, dpd


@pytest.fixture()
def pending_review(app, org, make_loan):
    """``pending_review(**fields)``: a B1 loan with these fields after the daily run; its id and the
    id of its pending classification review."""
    def make(**fields):
        with app.app_context():
            loan = make_loan(org.inst("B1"), org.user("officer"), **fields)
            db.session.commit()
            run_daily()
            return loan.id, one(ClassificationReview, loan_id=loan.id, status="pending").id
    return make


def test_reviewer_cannot_upgrade_above_the_floor(app, client, org, login, pending_review):
    loan_id, review_id = pending_review(days_past_due=120, status="overdue")
    login(client, "director")
    refused = post(client, f"/postloan/classification/{review_id}", {"decided": "special_mention", "reason": "担保充足"})
    assert refused.status_code == 422
    assert "floor" in refused.get_data(as_text=True)
    with app.app_context():
        from portal.loans.models import Loan
        assert db.session.get(Loan, loan_id).risk_class == "normal"
        assert db.session.get(ClassificationReview, review_id).status == "pending"


def test_downgrade_needs_a_reason_and_the_history_is_kept(app, client, org, login, pending_review):
    loan_id, review_id = pending_review(days_past_due=20, status="overdue")
    login(client, "director")
    assert post(client, f"/postloan/classification/{review_id}", {"decided": "doubtful"}).status_code == 422
    assert post(client, f"/postloan/classification/{review_id}",
                {"decided": "doubtful", "reason": "借款人涉诉,抵押物被查封"}).status_code == 302
    with app.app_context():
        from portal.loans.models import Loan
        assert db.session.get(Loan, loan_id).risk_class == "doubtful"
        decided = db.session.get(ClassificationReview, review_id)
        assert (decided.status, decided.previous_class, decided.decided_class) == ("confirmed", "normal", "doubtful")
        # The reviewer's decision stands: the daily run does not ask again for the same suggestion…
        run_daily(AS_OF + timedelta(days=1))
        assert rows(ClassificationReview, loan_id=loan_id, status="pending") == []
        # …until the rules say something new.
        loan = db.session.get(Loan, loan_id)
        loan.days_past_due = 400
        db.session.commit()
        run_daily(AS_OF + timedelta(days=2))
        assert one(ClassificationReview, loan_id=loan_id, status="pending").suggested == "loss"
    page = client.get(f"/postloan/loans/{loan_id}").get_data(as_text=True)
    assert "借款人涉诉,抵押物被查封" in page.split('id="classification-history"', 1)[1]


def test_confirming_the_suggestion_needs_no_reason(app, client, org, login, pending_review):
    loan_id, review_id = pending_review(days_past_due=95, status="overdue")
    login(client, "post_loan")
    assert post(client, f"/postloan/classification/{review_id}", {"decided": "substandard"}).status_code == 302
    with app.app_context():
        from portal.loans.models import Loan
        assert db.session.get(Loan, loan_id).risk_class == "substandard"
        run_daily()  # nothing left to review
        assert rows(ClassificationReview, loan_id=loan_id, status="pending") == []


def test_loan_officer_cannot_classify(app, client, org, login, pending_review):
    _loan_id, review_id = pending_review(days_past_due=95, status="overdue")
    login(client, "officer")
    assert post(client, f"/postloan/classification/{review_id}", {"decided": "substandard"}).status_code == 403


def test_restructured_loan_is_locked_for_the_observation_period(app, client, org, make_loan):
    from portal.postloan.classification import confirm_classification, start_review
    from portal.errors import InvalidInput
    today = local_today()
    with app.app_context():
        loan = make_loan(org.inst("B1"), org.user("officer"), restructured_on=today - timedelta(days=30),
                         risk_class="substandard")
        db.session.commit()
        review = start_review(org.user("director"), loan)
        assert review.floor == "substandard" and review.locked_until is not None and review.locked_until > today
        with pytest.raises(InvalidInput):
            confirm_classification(org.user("director"), review, "normal", "已正常还款")
        db.session.rollback()
        # Past the plugin's observation period (6 months in the baseline) the lock is gone.
        loan.restructured_on = today - timedelta(days=200)
        db.session.commit()
        review = start_review(org.user("director"), loan)
        assert review.locked_until is None and review.floor == "normal"
        confirm_classification(org.user("director"), review, "normal", "")
        db.session.commit()
        assert loan.risk_class == "normal"


def test_floor_edges_follow_the_settings(app, org, make_loan):
    from portal.rules.services import update_union_settings
    with app.app_context():
        # A union may be stricter than the national floor: substandard after 60 days.
        update_union_settings(org.user("union_admin"), org.inst("P"), {"substandard_after_dpd": "60"})
        db.session.commit()
        loan = make_loan(org.inst("B1"), org.user("officer"), days_past_due=61, status="overdue")
        db.session.commit()
        run_daily()
        assert one(ClassificationReview, loan_id=loan.id).floor == "substandard"


def test_out_of_scope_review_is_404(app, client, org, login, make_loan):
    with app.app_context():
        loan = make_loan(org.inst("B2"), org.user("officer2"), days_past_due=95, status="overdue")
        db.session.commit()
        run_daily(AS_OF)
        review_id = one(ClassificationReview, loan_id=loan.id).id
    login(client, "director")
    assert client.get(f"/postloan/classification/{review_id}").status_code == 404
    assert post(client, f"/postloan/classification/{review_id}", {"decided": "loss", "reason": "x"}).status_code == 404
    assert f"/postloan/classification/{review_id}" not in client.get("/postloan/classification").get_data(as_text=True)
