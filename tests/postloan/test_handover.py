"""Handover: a list both sides confirm; every open item moves with the loans; the history shows
who managed each loan when; an officer with loans cannot be deactivated until handed over."""
from __future__ import annotations

from datetime import date

import pytest

from portal.errors import WrongState
from portal.extensions import db
from portal.postloan.models import (CollectionTask, Handover, HandoverItem, Inspection, LoanNotice,
                                    LoanOfficerPeriod, PostloanFile, RiskWarning)

from tests.helpers.files import pdf_text

from .postloan_helpers import one, post, rows, run_daily


@pytest.fixture()
def officer_loans(app, org, make_loan):
    """``officer_loans()``: ids of two loans of the B1 officer (one late, one fine) after the daily run."""
    def make():
        with app.app_context():
            late = make_loan(org.inst("B1"), org.user("officer"), borrower_name="欠款户", days_past_due=15,
                             interest_arrears_fen=30_000, status="overdue", disbursed_on=date(2024, 1, 10))
            fine = make_loan(org.inst("B1"), org.user("officer"), borrower_name="正常户", disbursed_on=date(2024, 5, 30))
            db.session.commit()
            run_daily()
            return late.id, fine.id
    return make


def _open_items(officer_id):
    return {
        "inspections": rows(Inspection, officer_id=officer_id, status="open"),
        "warnings": [w for w in rows(RiskWarning, officer_id=officer_id) if w.is_active],
        "tasks": rows(CollectionTask, officer_id=officer_id, status="open"),
        "notices": rows(LoanNotice, officer_id=officer_id, status="pending"),
    }


def test_handover_of_all_loans_moves_every_open_item(app, client, org, login, officer_loans):
    from portal.postloan.handover import deactivate_officer
    late, fine = officer_loans()
    with app.app_context():
        before = _open_items(org.user("officer").id)
        assert {k: len(v) for k, v in before.items()} == {"inspections": 3, "warnings": 2, "tasks": 1, "notices": 1}
        officer_id, incoming_id, b2_officer_id = org.user("officer").id, org.user("post_loan").id, org.user("officer2").id
    director = app.test_client()
    login(director, "director")
    # An officer of another branch could not see these loans.
    assert post(director, "/postloan/handovers/new", {"from": officer_id, "to": b2_officer_id, "all": "1",
                                                      "reason": "调岗"}).status_code in (404, 422)
    response = post(director, "/postloan/handovers/new", {"from": officer_id, "to": incoming_id, "all": "1",
                                                          "reason": "客户经理离职"})
    assert response.status_code == 302
    with app.app_context():
        handover = one(Handover)
        handover_id = handover.id
        assert {i.loan_id for i in handover.items} == {late, fine}
        with pytest.raises(WrongState):
            deactivate_officer(org.user("admin"), org.user("officer"))
        db.session.rollback()
    preview = director.get(f"/postloan/handovers/{handover_id}/list.pdf")
    assert "欠款户" in pdf_text(preview.data)

    incoming = app.test_client()
    login(incoming, "post_loan")
    assert post(incoming, f"/postloan/handovers/{handover_id}/confirm").status_code == 302
    with app.app_context():
        assert db.session.get(Handover, handover_id).status == "proposed"
    login(client, "officer")
    assert post(client, f"/postloan/handovers/{handover_id}/confirm").status_code == 302

    with app.app_context():
        handover = db.session.get(Handover, handover_id)
        assert handover.status == "completed" and handover.completed_on is not None
        assert {k: len(v) for k, v in _open_items(officer_id).items()} == {"inspections": 0, "warnings": 0,
                                                                         "tasks": 0, "notices": 0}
        after = _open_items(incoming_id)
        assert {k: len(v) for k, v in after.items()} == {k: len(v) for k, v in before.items()}
        from portal.loans.models import Loan
        assert {db.session.get(Loan, i).officer_id for i in (late, fine)} == {incoming_id}
        item = one(HandoverItem, loan_id=late)
        assert (item.moved_inspections, item.moved_warnings, item.moved_tasks, item.moved_notices) == (2, 2, 1, 1)
        periods = rows(LoanOfficerPeriod, loan_id=late)
        assert [(p.officer_id, p.ended_on is None, p.handover_id) for p in periods] == [
            (officer_id, False, None), (incoming_id, True, handover_id)]
        assert periods[0].started_on == date(2024, 1, 10)
        listing = db.session.get(PostloanFile, handover.file_id)
        text = pdf_text(listing.data)
        assert "贷款管理责任移交清单" in text and "欠款户" in text and "正常户" in text
        from portal.archive.models import Document
        assert {d.loan_id for d in rows(Document, doc_type="handover_list")} == {late, fine}
        # Handed over: now the officer can be deactivated.
        deactivate_officer(org.user("admin"), org.user("officer"))
        db.session.commit()
    page = incoming.get(f"/postloan/loans/{late}").get_data(as_text=True)
    assert f"/postloan/handovers/{handover_id}" in page.split('id="officers"', 1)[1]


def test_director_confirms_for_a_departed_officer_and_only_chosen_loans_move(app, client, org, login, officer_loans):
    late, fine = officer_loans()
    with app.app_context():
        officer_id, incoming_id = org.user("officer").id, org.user("post_loan").id
    login(client, "director")
    assert post(client, "/postloan/handovers/new", {"from": officer_id, "to": incoming_id, "loan": [str(fine)],
                                                    "reason": "分流管户"}).status_code == 302
    with app.app_context():
        handover_id = one(Handover).id
    # Someone else in the branch cannot confirm for anybody.
    stranger = app.test_client()
    login(stranger, "archivist")
    assert post(stranger, f"/postloan/handovers/{handover_id}/confirm").status_code == 403
    # On behalf of the outgoing officer: only with the reason.
    assert post(client, f"/postloan/handovers/{handover_id}/confirm", {"note": ""}).status_code == 422
    assert post(client, f"/postloan/handovers/{handover_id}/confirm", {"note": "原客户经理已离职,无法签字"}).status_code == 302
    incoming = app.test_client()
    login(incoming, "post_loan")
    assert post(incoming, f"/postloan/handovers/{handover_id}/confirm").status_code == 302
    with app.app_context():
        from portal.loans.models import Loan
        assert db.session.get(Loan, fine).officer_id == incoming_id
        assert db.session.get(Loan, late).officer_id == officer_id
        assert db.session.get(Handover, handover_id).outgoing_on_behalf_note == "原客户经理已离职,无法签字"
        assert rows(Inspection, loan_id=late, officer_id=incoming_id) == []


def test_handover_pages_are_scoped(app, client, org, login, make_loan):
    with app.app_context():
        make_loan(org.inst("B2"), org.user("officer2"))
        db.session.commit()
        from portal.postloan.handover import propose_handover
        from portal.accounts.services import create_user
        colleague = create_user(None, "officer2b", "correct-horse-42", "B2", ["loan_officer"])
        handover = propose_handover(org.user("director2"), org.user("officer2"), colleague, None, "调岗")
        db.session.commit()
        handover_id, officer2_id = handover.id, org.user("officer2").id
    login(client, "director")
    assert client.get(f"/postloan/handovers/{handover_id}").status_code == 404
    assert post(client, f"/postloan/handovers/{handover_id}/confirm", {"note": "x"}).status_code == 404
    assert post(client, "/postloan/handovers/new", {"from": officer2_id, "to": officer2_id, "all": "1",
                                                    "reason": "x"}).status_code == 404
    officer = app.test_client()
    login(officer, "officer")
    assert officer.get("/postloan/handovers/new").status_code == 403
