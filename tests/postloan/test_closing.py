"""Closing: settlement closes what was open, write-off needs the approval the rules name and files
its papers, the final evaluation follows closing."""
from __future__ import annotations

import io

import pytest
from pypdf import PdfWriter

from portal.extensions import db
from portal.postloan.files import read_file
from portal.postloan.models import (CollectionTask, Inspection, LoanEvaluation, PostloanFile, RiskWarning,
                                    WriteOff)
from portal.timeutil import local_today

from tests.helpers.files import pdf_text

from .postloan_helpers import one, post, rows


def _pdf_bytes() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


@pytest.fixture()
def late_loan(app, org, make_loan):
    """``late_loan(**fields)``: the id of a B1 loan 400 days overdue."""
    def make(**fields):
        with app.app_context():
            loan = make_loan(org.inst("B1"), org.user("officer"), borrower_name="钱七", days_past_due=400,
                             status="overdue", **fields)
            db.session.commit()
            return loan.id
    return make


def test_settlement_closes_open_items_and_files_the_certificate(app, client, org, login, late_loan):
    loan_id = late_loan()
    login(client, "officer")
    today = local_today()
    assert post(client, f"/postloan/loans/{loan_id}/settle", {"settled_on": today.isoformat()}).status_code == 302
    with app.app_context():
        from portal.loans.models import Loan
        loan = db.session.get(Loan, loan_id)
        assert (loan.status, loan.settled_on, loan.balance_fen) == ("settled", today, 0)
        assert {i.status for i in rows(Inspection, loan_id=loan_id)} == {"cancelled"}
        assert {w.status for w in rows(RiskWarning, loan_id=loan_id)} == {"lifted"}
        assert one(CollectionTask, loan_id=loan_id).close_reason == "loan_closed"
        from portal.archive.models import Document
        assert one(Document, loan_id=loan_id).doc_type == "settlement_certificate"
    assert post(client, f"/postloan/loans/{loan_id}/settle", {"settled_on": today.isoformat()}).status_code == 409
    # The final evaluation, once.
    assert post(client, f"/postloan/loans/{loan_id}/evaluation",
                {"outcome": "repaid_late", "management": "adequate", "summary": ""}).status_code == 422
    assert post(client, f"/postloan/loans/{loan_id}/evaluation",
                {"outcome": "repaid_late", "management": "adequate", "summary": "逾期后经多次催收全额收回。",
                 "lessons": "贷后检查应更及时"}).status_code == 302
    with app.app_context():
        evaluation = one(LoanEvaluation, loan_id=loan_id)
        record = db.session.get(PostloanFile, evaluation.file_id)
        assert record.data is None and record.archive_document_id  # one copy: the credit file's
        assert "逾期后经多次催收全额收回" in pdf_text(read_file(record))
        from portal.archive.models import Document
        assert {d.doc_type for d in rows(Document, loan_id=loan_id)} == {"settlement_certificate", "evaluation"}
    assert post(client, f"/postloan/loans/{loan_id}/evaluation",
                {"outcome": "repaid_late", "management": "good", "summary": "x"}).status_code == 409


def test_evaluation_waits_for_closing(app, client, org, login, late_loan):
    loan_id = late_loan()
    login(client, "officer")
    assert post(client, f"/postloan/loans/{loan_id}/evaluation",
                {"outcome": "repaid_on_time", "management": "good", "summary": "x"}).status_code == 409


def test_write_off_needs_the_roles_the_rules_name(app, client, org, login, late_loan):
    loan_id = late_loan(balance_fen=3_000_000, interest_arrears_fen=250_000)
    login(client, "officer")
    assert post(client, f"/postloan/loans/{loan_id}/write-off", {"reason": "借款人死亡,无遗产可供执行"}).status_code == 422
    response = post(client, f"/postloan/loans/{loan_id}/write-off",
                    {"reason": "借款人死亡,无遗产可供执行", "evidence": (io.BytesIO(_pdf_bytes()), "死亡证明.pdf")},
                    content_type="multipart/form-data")
    assert response.status_code == 302
    with app.app_context():
        write_off = one(WriteOff, loan_id=loan_id)
        write_off_id = write_off.id
        assert (write_off.principal_fen, write_off.interest_fen) == (3_000_000, 250_000)
    # The baseline names the county's director: the branch director may not approve.
    director = app.test_client()
    login(director, "director")
    assert post(director, f"/postloan/write-offs/{write_off_id}/decide", {"decision": "approve"}).status_code == 403
    county = app.test_client()
    login(county, "county_director")
    assert "Waiting for your approval" in county.get("/postloan/write-offs").get_data(as_text=True)
    assert post(county, f"/postloan/write-offs/{write_off_id}/decide", {"decision": "approve", "note": "同意核销"}).status_code == 302
    with app.app_context():
        from portal.loans.models import Loan
        assert db.session.get(Loan, loan_id).status == "written_off"
        assert db.session.get(WriteOff, write_off_id).status == "approved"
        from portal.archive.models import Document
        assert sorted(d.doc_type for d in rows(Document, loan_id=loan_id)) == [
            "write_off_application", "write_off_approval", "write_off_evidence"]
        assert {i.status for i in rows(Inspection, loan_id=loan_id)} == {"cancelled"}


def test_write_off_rejection_needs_a_reason(app, client, org, login, late_loan):
    loan_id = late_loan()
    with app.app_context():
        from portal.postloan.closing import request_write_off
        from portal.loans.models import Loan
        from werkzeug.datastructures import FileStorage
        write_off = request_write_off(org.user("officer"), db.session.get(Loan, loan_id), "无力偿还",
                                      [FileStorage(io.BytesIO(_pdf_bytes()), "判决书.pdf")])
        db.session.commit()
        write_off_id = write_off.id
    login(client, "county_director")
    assert post(client, f"/postloan/write-offs/{write_off_id}/decide", {"decision": "reject"}).status_code == 422
    assert post(client, f"/postloan/write-offs/{write_off_id}/decide",
                {"decision": "reject", "note": "证据不足,继续清收"}).status_code == 302
    with app.app_context():
        from portal.loans.models import Loan
        assert db.session.get(WriteOff, write_off_id).status == "rejected"
        assert db.session.get(Loan, loan_id).status == "overdue"
