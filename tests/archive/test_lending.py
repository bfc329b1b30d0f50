"""Lending of archived documents through the pages: request → approval by someone else → issue
(an expiring link, every open registered) → renewal → return; paper originals; overdue lending
listed and reminded; the lending register and its PDF."""
import io
from datetime import timedelta

from sqlalchemy import select

from portal.archive import services
from portal.archive.models import Document, DocumentAccess, Lending
from portal.extensions import db
from portal.timeutil import local_today

from tests.helpers.files import pdf_bytes, pdf_text_without_spaces

from .archive_helpers import archived_documents, post


def request_lending(client, volume_id, ids, medium="digital", days=7, reason="贷后检查需要查阅借款合同"):
    return post(client, "/archive/lending/new", {"volume_id": volume_id, "document_ids": ids, "medium": medium,
                                                 "days": days, "reason": reason})


def lending_of(app, lending_id):
    with app.app_context():
        lending = db.session.get(Lending, lending_id)
        db.session.expunge(lending)
        return lending


def test_digital_lending_from_request_to_return(app, client, store, setup, login):
    volume_id, ids = archived_documents(app, setup, 2)
    officer = client
    login(officer, "officer")
    assert officer.get(f"/archive/documents/{ids[0]}/open").status_code == 403
    # The credit file's checkboxes lead to the request form.
    form = post(officer, "/archive/lending/new", {"volume_id": volume_id, "document_ids": ids})
    assert form.status_code == 200 and "Send the request" in form.get_data(as_text=True)
    assert request_lending(officer, volume_id, ids, reason="").status_code == 422
    response = request_lending(officer, volume_id, ids)
    assert response.status_code == 303
    lending_id = int(response.headers["Location"].rsplit("/", 1)[1])

    director = app.test_client()
    login(director, "director")
    assert post(director, f"/archive/lending/{lending_id}/approve").status_code == 303
    assert lending_of(app, lending_id).state == "approved"
    assert officer.get(f"/archive/documents/{ids[0]}/open").status_code == 403  # not issued yet

    archivist = app.test_client()
    login(archivist, "archivist")
    assert post(archivist, f"/archive/lending/{lending_id}/issue").status_code == 303
    lending = lending_of(app, lending_id)
    assert lending.state == "issued" and lending.due_on == local_today() + timedelta(days=7)

    # The officer opens through the lending until the due date; every open is registered.
    page = officer.get(f"/archive/lending/{lending_id}").get_data(as_text=True)
    assert f"/archive/documents/{ids[0]}/open" in page
    for _ in range(2):
        opened = officer.get(f"/archive/documents/{ids[0]}/open")
        assert opened.status_code == 302
    assert officer.get(f"/archive/documents/{ids[1]}/open?download=1").status_code == 302
    with app.app_context():
        rows = db.session.execute(select(DocumentAccess.document_id, DocumentAccess.lending_id,
                                         DocumentAccess.disposition).order_by(DocumentAccess.id)).all()
    assert rows == [(ids[0], lending_id, "inline"), (ids[0], lending_id, "inline"), (ids[1], lending_id, "attachment")]
    assert "lending-accesses" in archivist.get(f"/archive/lending/{lending_id}").get_data(as_text=True)

    # Renewal: not by the borrower; by the director.
    assert post(officer, f"/archive/lending/{lending_id}/renew", {"days": 5}).status_code == 403
    assert post(director, f"/archive/lending/{lending_id}/renew", {"days": 5}).status_code == 303
    renewed = lending_of(app, lending_id)
    assert renewed.due_on == lending.due_on + timedelta(days=5) and renewed.renewals == 1

    # The officer ends it; the link stops working.
    assert post(officer, f"/archive/lending/{lending_id}/return").status_code == 303
    assert lending_of(app, lending_id).state == "returned"
    assert officer.get(f"/archive/documents/{ids[0]}/open").status_code == 403


def test_requester_cannot_approve_own_request(app, client, store, setup, login):
    volume_id, ids = archived_documents(app, setup)
    login(client, "director")
    response = request_lending(client, volume_id, ids, medium="digital")
    lending_id = int(response.headers["Location"].rsplit("/", 1)[1])
    refused = post(client, f"/archive/lending/{lending_id}/approve")
    assert refused.status_code == 403 and "someone else" in refused.get_data(as_text=True)
    assert lending_of(app, lending_id).state == "requested"
    other = app.test_client()
    login(other, "archivist")
    assert post(other, f"/archive/lending/{lending_id}/refuse", {"note": ""}).status_code == 422
    assert post(other, f"/archive/lending/{lending_id}/refuse", {"note": "理由不充分"}).status_code == 303
    assert lending_of(app, lending_id).state == "refused"


def test_digital_link_expires_at_the_due_date(app, client, store, setup, login):
    volume_id, ids = archived_documents(app, setup)
    login(client, "officer")
    lending_id = int(request_lending(client, volume_id, ids).headers["Location"].rsplit("/", 1)[1])
    with app.app_context():
        from portal.archive import lending as svc
        lending = db.session.get(Lending, lending_id)
        svc.approve_lending(setup.org.user("director"), lending)
        svc.issue_lending(setup.org.user("archivist"), lending)
        lending.due_on = local_today() - timedelta(days=1)  # time passes
        db.session.commit()
    assert client.get(f"/archive/documents/{ids[0]}/open").status_code == 403


def test_paper_lending_is_checked_back_in(app, client, store, setup, login):
    volume_id, ids = archived_documents(app, setup, paper=True)
    login(client, "post_loan")
    lending_id = int(request_lending(client, volume_id, ids, medium="paper").headers["Location"].rsplit("/", 1)[1])
    archivist = app.test_client()
    login(archivist, "archivist")
    post(archivist, f"/archive/lending/{lending_id}/approve")
    post(archivist, f"/archive/lending/{lending_id}/issue")
    # A second paper lending of the same original cannot be issued while it is out.
    second = int(request_lending(client, volume_id, ids, medium="paper").headers["Location"].rsplit("/", 1)[1])
    director = app.test_client()
    login(director, "director")
    post(director, f"/archive/lending/{second}/approve")
    out = post(archivist, f"/archive/lending/{second}/issue")
    assert out.status_code == 409 and "is out on lending" in out.get_data(as_text=True)
    # The borrower cannot check paper in; the archivist does, recording what was checked.
    assert post(client, f"/archive/lending/{lending_id}/return", {"note": "ok"}).status_code == 403
    assert post(archivist, f"/archive/lending/{lending_id}/return", {"note": ""}).status_code == 422
    assert post(archivist, f"/archive/lending/{lending_id}/return", {"note": "当面点清,共2页,无缺损"}).status_code == 303
    returned = lending_of(app, lending_id)
    assert returned.state == "returned" and returned.return_note == "当面点清,共2页,无缺损"
    # A digital copy is refused for a document without a paper original, and vice versa.
    _v, digital_only = archived_documents(app, setup)
    assert request_lending(client, volume_id, digital_only, medium="paper").status_code == 422


def test_overdue_lending_is_listed_and_reminded(app, client, store, setup, runner, login):
    volume_id, ids = archived_documents(app, setup)
    login(client, "officer")
    lending_id = int(request_lending(client, volume_id, ids).headers["Location"].rsplit("/", 1)[1])
    with app.app_context():
        from portal.archive import lending as svc
        lending = db.session.get(Lending, lending_id)
        svc.approve_lending(setup.org.user("director"), lending)
        svc.issue_lending(setup.org.user("archivist"), lending)
        lending.due_on = local_today() - timedelta(days=3)
        db.session.commit()
    archivist = app.test_client()
    login(archivist, "archivist")
    page = archivist.get("/archive/lending/overdue").get_data(as_text=True)
    assert f"/archive/lending/{lending_id}" in page and "<td>3</td>" in page
    assert post(archivist, f"/archive/lending/{lending_id}/remind").status_code == 303
    result = runner.invoke(args=["archive", "remind-overdue"])
    assert result.exit_code == 0 and "1 overdue lending(s) reminded" in result.output
    assert lending_of(app, lending_id).reminders == 2
    # Another branch's overdue list does not show it.
    other = app.test_client()
    login(other, "director2")
    assert f"/archive/lending/{lending_id}" not in other.get("/archive/lending/overdue").get_data(as_text=True)
    assert other.get(f"/archive/lending/{lending_id}").status_code == 404


def test_lending_register_page_and_pdf(app, client, store, setup, login):
    volume_id, ids = archived_documents(app, setup)
    login(client, "officer")
    request_lending(client, volume_id, ids)
    archivist = app.test_client()
    login(archivist, "archivist")
    page = archivist.get("/archive/lending/register").get_data(as_text=True)
    assert "王建国 信贷档案" in page and "贷后检查需要查阅借款合同" in page
    response = archivist.get(f"/archive/lending/register?format=pdf&start={local_today().isoformat()}")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = pdf_text_without_spaces(response.data)
    assert "王建国" in text and "贷后检查需要查阅借款合同" in text and "城关信用社" in text
    officer = app.test_client()
    login(officer, "officer")
    assert officer.get("/archive/lending/register").status_code == 403


def test_only_archived_documents_are_lent(app, client, store, setup, login):
    with app.app_context():
        from portal.loans.models import Loan
        loan = db.session.get(Loan, setup.loan_id)
        doc = services.collect_document(setup.org.user("officer"), borrower=loan.borrower, loan=loan,
                                        doc_type="loan_contract", fileobj=io.BytesIO(pdf_bytes()),
                                        filename="a.pdf").document
        db.session.commit()
        doc_id, volume_id = doc.id, doc.volume_id
    login(client, "post_loan")
    assert request_lending(client, volume_id, [doc_id]).status_code == 409
    with app.app_context():
        assert db.session.execute(select(Lending)).first() is None
        assert db.session.get(Document, doc_id).state == "collected"


def test_the_union_sets_the_longest_lending_and_the_renewals(app, client, store, setup, login):
    from portal.rules.services import update_union_settings

    with app.app_context():
        update_union_settings(setup.org.user("union_admin"), setup.org.inst("P"),
                              {"lending_max_days": "30", "lending_max_renewals": "1"})
        db.session.commit()
    volume_id, ids = archived_documents(app, setup)
    login(client, "officer")
    too_long = request_lending(client, volume_id, ids, days=31)
    assert too_long.status_code == 422 and "from 1 to 30 days" in too_long.get_data(as_text=True)
    with app.app_context():
        assert db.session.execute(select(Lending)).first() is None
    lending_id = int(request_lending(client, volume_id, ids, days=30).headers["Location"].rsplit("/", 1)[1])
    director = app.test_client()
    login(director, "director")
    archivist = app.test_client()
    login(archivist, "archivist")
    post(director, f"/archive/lending/{lending_id}/approve")
    post(archivist, f"/archive/lending/{lending_id}/issue")
    assert post(director, f"/archive/lending/{lending_id}/renew", {"days": 31}).status_code == 422
    assert post(director, f"/archive/lending/{lending_id}/renew", {"days": 30}).status_code == 303
    second = post(director, f"/archive/lending/{lending_id}/renew", {"days": 5})
    assert second.status_code == 409 and "cannot be renewed again (renewals allowed: 1)" in second.get_data(as_text=True)
    assert lending_of(app, lending_id).renewals == 1
