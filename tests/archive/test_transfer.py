"""Transfer of a credit file to another institution: a handover list both sides confirm, custody
moving with it, and the list kept as a PDF with its Chinese intact."""
from sqlalchemy import select

from portal.archive.models import ListFile, Transfer
from portal.extensions import db

from tests.helpers.files import pdf_text_without_spaces

from .archive_helpers import archived_documents, post


def _state(app, transfer_id):
    with app.app_context():
        return db.session.get(Transfer, transfer_id).state


def test_handover_list_confirmed_by_both_sides_moves_custody(app, client, local_store, setup, login):
    volume_id, ids = archived_documents(app, setup, 2)
    with app.app_context():
        county_id = setup.org.inst("C1").id
    sender = client
    login(sender, "archivist")
    form = sender.get("/archive/transfers/new")
    assert form.status_code == 200 and "王建国 信贷档案" in form.get_data(as_text=True)
    response = post(sender, "/archive/transfers/new", {"receiver": county_id, "volume_ids": [volume_id],
                                                       "note": "年度移交县联社档案室"}, page="/archive/transfers/new")
    assert response.status_code == 303, response.get_data(as_text=True)
    transfer_id = int(response.headers["Location"].rsplit("/", 1)[1])
    draft = sender.get(f"/archive/transfers/{transfer_id}/handover.pdf")
    assert draft.status_code == 200 and "王建国" in pdf_text_without_spaces(draft.data)

    # The receiver cannot confirm before the sender has; the sender confirms the list.
    receiver = app.test_client()
    login(receiver, "county_archivist")
    assert post(receiver, f"/archive/transfers/{transfer_id}/receive").status_code == 409
    assert post(sender, f"/archive/transfers/{transfer_id}/send").status_code == 303
    assert _state(app, transfer_id) == "sent"
    # The sender cannot confirm receipt for the other side.
    assert post(sender, f"/archive/transfers/{transfer_id}/receive").status_code == 403
    assert post(receiver, f"/archive/transfers/{transfer_id}/receive").status_code == 303
    assert _state(app, transfer_id) == "completed"

    # Custody moved: the branch no longer sees the documents; the county holds them.
    page = receiver.get(f"/archive/borrowers/{setup.borrower_id}").get_data(as_text=True)
    assert "测试县联社" in page
    assert sender.get(f"/archive/documents/{ids[0]}").status_code == 404
    assert receiver.get(f"/archive/documents/{ids[0]}").status_code == 200
    # The handover list is kept for good, in the store, with its Chinese.
    with app.app_context():
        list_file = db.session.execute(select(ListFile)).scalar_one()
        assert list_file.kind == "handover_list"
        assert local_store.exists(list_file.object_key)
    for side in (sender, receiver):
        pdf = side.get(f"/archive/transfers/{transfer_id}/handover.pdf")
        assert pdf.status_code == 200
        text = pdf_text_without_spaces(pdf.data)
        assert "城关信用社" in text and "测试县联社" in text and "王建国" in text and "借款合同" in text
    # Another branch sees nothing of it.
    other = app.test_client()
    login(other, "director2")
    assert other.get(f"/archive/transfers/{transfer_id}").status_code == 404


def test_transfer_refused_for_unarchived_documents(app, client, local_store, setup, login):
    from .archive_helpers import upload
    login(client, "archivist")
    upload(client, setup.borrower_id, [(b"%PDF-1.4\n%%EOF\n", "a.pdf")], loan_id=setup.loan_id)
    with app.app_context():
        from portal.archive.models import Volume
        volume_id = db.session.execute(select(Volume.id)).scalar_one()
        county_id = setup.org.inst("C1").id
    # The volume has no archived document, so the page does not offer it; posting it is refused.
    response = post(client, "/archive/transfers/new", {"receiver": county_id, "volume_ids": [volume_id]},
                    page="/archive/transfers/new")
    assert response.status_code == 422 and "archive it or discard it first" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.execute(select(Transfer)).first() is None


def test_officer_cannot_transfer(app, client, local_store, setup, login):
    login(client, "officer")
    assert client.get("/archive/transfers/new").status_code == 403
    assert client.get("/archive/transfers").status_code == 403
