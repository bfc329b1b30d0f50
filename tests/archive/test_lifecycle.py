"""A document's life through the pages, by the people who take part, on both storage backends:
upload → sort → file (archive number) → archive (sealed); and what the upload refuses, what a
failing store or database leaves behind (nothing), and what other branches see (nothing)."""
import io
import re

import pytest
from sqlalchemy import func, select

from portal.archive.models import Document, DocumentAccess, Volume
from portal.audit_trail import AuditEvent
from portal.extensions import db
from portal.loans.models import Loan

from tests.helpers.files import pdf_bytes
from tests.helpers.stores import minio_store

from .archive_helpers import PNG_BYTES, document_ids, get_document, post, upload

ARCHIVE_NUMBER = re.compile(r"^J001-XD·\d{4}-D30-B1-\d{4}$")


def _count(app, model=Document) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def test_full_lifecycle_through_the_pages(app, client, store, setup, login):
    content = pdf_bytes("借款合同 王建国", pages=2)
    # The loan officer collects the contract.
    login(client, "officer")
    page = client.get(f"/loans/{setup.loan_id}").get_data(as_text=True)
    assert f"/archive/borrowers/{setup.borrower_id}" in page  # the loan page links to the credit file
    response = upload(client, setup.borrower_id, [(content, "借款合同.pdf")], loan_id=setup.loan_id)
    assert response.status_code == 303
    (doc_id,) = document_ids(app, setup.borrower_id)
    doc = get_document(app, doc_id)
    assert (doc.state, doc.stage, doc.page_count, doc.size_bytes) == ("collected", "disbursement", 2, len(content))
    assert doc.original_name == "借款合同.pdf" and doc.retention_code == "D30"
    assert store.hash_object(doc.object_key).sha256 == doc.sha256
    credit_file = client.get(f"/archive/borrowers/{setup.borrower_id}").get_data(as_text=True)
    assert "借款合同" in credit_file and 'data-state="collected"' in credit_file
    # An officer is no archivist.
    assert post(client, f"/archive/documents/{doc_id}/sort").status_code == 403

    # The archivist sorts, files and archives it.
    client = app.test_client()
    login(client, "archivist")
    assert post(client, f"/archive/documents/{doc_id}/file").status_code == 409  # not sorted yet
    assert post(client, f"/archive/documents/{doc_id}/sort", {"doc_type": "loan_contract",
                                                              "loan": setup.loan_id}).status_code == 303
    assert post(client, f"/archive/documents/{doc_id}/file").status_code == 303
    doc = get_document(app, doc_id)
    assert doc.state == "filed" and ARCHIVE_NUMBER.match(doc.archive_number), doc.archive_number
    assert post(client, f"/archive/documents/{doc_id}/archive", {"shelf_location": ""}).status_code == 303
    doc = get_document(app, doc_id)
    assert doc.state == "archived" and doc.archived_at is not None

    # Sealed: no discarding, no replacing; a correction is a new version, a new item.
    refused = post(client, f"/archive/documents/{doc_id}/discard", {"reason": "wrong"})
    assert refused.status_code == 409 and "sealed" in refused.get_data(as_text=True)
    assert post(client, f"/archive/documents/{doc_id}/sort", {"doc_type": "loan_receipt"}).status_code == 409
    assert upload(client, setup.borrower_id, [(pdf_bytes(), "更正.pdf")], loan_id=setup.loan_id,
                  version_of=doc_id).status_code == 303
    new_id = document_ids(app, setup.borrower_id)[-1]
    new = get_document(app, new_id)
    assert new.version_of_id == doc_id and new.state == "collected"
    assert get_document(app, doc_id).sha256 == doc.sha256

    # Every step is in the audit trail, with who did it.
    with app.app_context():
        actions = db.session.execute(select(AuditEvent.action, AuditEvent.actor_name)
                                     .where(AuditEvent.object_type == "archive_document",
                                            AuditEvent.object_id == str(doc_id)).order_by(AuditEvent.seq)).all()
    assert actions == [("archive.collect", "officer"), ("archive.sort", "archivist"),
                       ("archive.file", "archivist"), ("archive.archive", "archivist")]
    page = client.get(f"/archive/documents/{doc_id}").get_data(as_text=True)
    assert doc.archive_number in page and "archive.file" in page

    # The archivist reads it: every look is registered; the link leads to the content.
    opened = client.get(f"/archive/documents/{doc_id}/open")
    assert opened.status_code == 302
    assert _fetch(client, opened.headers["Location"]) == content
    with app.app_context():
        assert db.session.execute(select(DocumentAccess.disposition)
                                  .where(DocumentAccess.document_id == doc_id)).scalars().all() == ["inline"]


def _fetch(client, url: str) -> bytes:
    if url.startswith("http"):
        import urllib.request
        with urllib.request.urlopen(url) as response:
            return response.read()
    response = client.get(url)
    assert response.status_code == 200
    return response.data


def test_archived_document_needs_a_lending_for_the_officer(app, client, store, setup, login):
    login(client, "officer")
    upload(client, setup.borrower_id, [(pdf_bytes(), "a.pdf")], loan_id=setup.loan_id)
    (doc_id,) = document_ids(app, setup.borrower_id)
    assert client.get(f"/archive/documents/{doc_id}/open").status_code == 302  # still being collected
    with app.app_context():
        from portal.archive import services
        archivist = setup.org.user("archivist")
        doc = db.session.get(Document, doc_id)
        services.sort_document(archivist, doc)
        services.file_document(archivist, doc)
        services.archive_document(archivist, doc)
        db.session.commit()
    refused = client.get(f"/archive/documents/{doc_id}/open")
    assert refused.status_code == 403 and "request a lending" in refused.get_data(as_text=True)


def test_paper_original_needs_a_shelf_location(app, client, store, setup, login):
    login(client, "archivist")
    upload(client, setup.borrower_id, [(pdf_bytes(), "抵押合同.pdf")], doc_type="mortgage_contract",
           loan_id=setup.loan_id, paper=True)
    (doc_id,) = document_ids(app, setup.borrower_id)
    post(client, f"/archive/documents/{doc_id}/sort")
    post(client, f"/archive/documents/{doc_id}/file")
    refused = post(client, f"/archive/documents/{doc_id}/archive", {"shelf_location": ""})
    assert refused.status_code == 422 and "shelf location" in refused.get_data(as_text=True)
    assert post(client, f"/archive/documents/{doc_id}/archive", {"shelf_location": "A-03-2"}).status_code == 303
    assert get_document(app, doc_id).shelf_location == "A-03-2"


def test_several_files_at_once_with_json_results(app, client, store, setup, login):
    login(client, "officer")
    response = upload(client, setup.borrower_id, [(pdf_bytes(), "一.pdf"), (PNG_BYTES, "二.png"),
                                                  (b"hello", "三.pdf")], json=True, loan_id=setup.loan_id)
    assert response.status_code == 422
    results = response.get_json()["results"]
    assert [r["ok"] for r in results] == [True, True, False]
    assert "plain text" in results[2]["message"]
    assert len(document_ids(app, setup.borrower_id)) == 2
    assert len(list(store.iter_keys())) == 2


def test_non_pdf_named_pdf_is_refused_saying_what_it_is(app, client, store, setup, login):
    login(client, "officer")
    response = upload(client, setup.borrower_id, [(b"GIF89a\x01\x00\x01\x00", "合同.pdf")])
    text = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "合同.pdf was refused" in text and "GIF image" in text
    mismatch = upload(client, setup.borrower_id, [(PNG_BYTES, "扫描件.pdf")])
    assert mismatch.status_code == 422 and "its name says a PDF document" in mismatch.get_data(as_text=True)
    assert _count(app) == 0 and list(store.iter_keys()) == []


def test_size_limit(app, client, store, setup, login):
    app.config["XINDANG_ARCHIVE_MAX_FILE_MB"] = 1
    try:
        login(client, "officer")
        big = pdf_bytes() + b"%" + b"0" * (1024 * 1024)
        response = upload(client, setup.borrower_id, [(big, "大文件.pdf")])
    finally:
        app.config["XINDANG_ARCHIVE_MAX_FILE_MB"] = 200
    assert response.status_code == 413
    assert "the archive accepts files of at most 1 MB" in response.get_data(as_text=True)
    assert _count(app) == 0 and list(store.iter_keys()) == []


def test_duplicate_by_checksum(app, client, store, setup, login, make_loan):
    content = pdf_bytes()
    login(client, "officer")
    assert upload(client, setup.borrower_id, [(content, "a.pdf")]).status_code == 303
    again = upload(client, setup.borrower_id, [(content, "b.pdf")])
    assert again.status_code == 422
    assert "same content" in again.get_data(as_text=True) and "already in this credit file" in again.get_data(as_text=True)
    assert _count(app) == 1 and len(list(store.iter_keys())) == 1
    # The same bytes in another borrower's file (e.g. a joint guarantee) are stored and reported.
    with app.app_context():
        other = make_loan(setup.org.inst("B1"), setup.org.user("officer"), borrower_name="张三")
        db.session.commit()
        other_borrower = other.borrower_id
    response = upload(client, other_borrower, [(content, "c.pdf")])
    assert response.status_code == 303
    assert "same content as" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_file_names_are_sanitised_on_upload(app, client, store, setup, login):
    login(client, "officer")
    upload(client, setup.borrower_id, [(pdf_bytes(), "../../../贷款<审批>书.pdf")])
    (doc_id,) = document_ids(app, setup.borrower_id)
    doc = get_document(app, doc_id)
    assert doc.original_name == "贷款_审批_书.pdf"
    assert "审批" not in doc.object_key and "/" in doc.object_key


def test_store_down_during_upload_leaves_no_row(app, client, store, setup, tmp_path, login):
    if store.backend == "minio":
        from tests.helpers.stores import start_s3_server
        server = start_s3_server(tmp_path / "short-lived")
        down = minio_store(server.endpoint)
        down.check()
        server.stop()  # the object store is stopped
    else:
        blocker = tmp_path / "unmounted"
        blocker.write_text("")
        from portal.archive.storage import LocalStore
        down = LocalStore(blocker / "objects")
    app.extensions["xindang_storage"] = down
    login(client, "officer")
    response = upload(client, setup.borrower_id, [(pdf_bytes(), "a.pdf")])
    assert response.status_code == 503
    assert "cannot be reached" in response.get_data(as_text=True)
    assert _count(app) == 0 and _count(app, Volume) == 0


def test_store_stopped_in_the_middle_of_a_stream(app, store, setup, tmp_path):
    """The store dies after the first part was read: nothing is stored, no row is written."""
    from portal.archive import services
    from portal.archive.storage import StoreUnavailable

    class DyingStream(io.BytesIO):
        def __init__(self, data, on_first_read):
            super().__init__(data)
            self.on_first_read = on_first_read
            self.reads = 0

        def read(self, n=-1):
            self.reads += 1
            if self.reads == 3:  # sniffing and page counting read first; then the upload
                self.on_first_read()
            return super().read(n)

    data = pdf_bytes() + b"%" + b"1" * (20 * 1024 * 1024)
    if store.backend == "minio":
        from tests.helpers.stores import start_s3_server
        server = start_s3_server(tmp_path / "dying")
        target = minio_store(server.endpoint)
        target.check()
        kill = server.stop
    else:
        from portal.archive.storage import LocalStore
        target = LocalStore(tmp_path / "dying")

        def kill():
            raise OSError(5, "Input/output error")
    with app.app_context():
        loan = db.session.get(Loan, setup.loan_id)
        stream = DyingStream(data, kill)
        with pytest.raises(StoreUnavailable):
            services.collect_document(setup.org.user("officer"), borrower=loan.borrower, loan=loan,
                                      doc_type="loan_contract", fileobj=stream, filename="a.pdf", store=target)
        db.session.rollback()
    assert _count(app) == 0
    if store.backend == "local":
        assert list(target.iter_keys()) == [] and not any((tmp_path / "dying").rglob("*.part"))


def test_database_failure_after_the_object_was_written_removes_it(app, client, store, setup, monkeypatch, login):
    from portal.archive import services

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")
    monkeypatch.setattr(services, "record_event", broken)
    login(client, "officer")
    response = upload(client, setup.borrower_id, [(pdf_bytes(), "a.pdf")])
    assert response.status_code == 500
    assert _count(app) == 0 and list(store.iter_keys()) == []


def test_commit_failure_removes_the_object(app, store, setup):
    """The row was flushed but the transaction did not commit: the object goes with it."""
    from portal.archive.services import store_generated_document

    with app.app_context():
        loan = db.session.get(Loan, setup.loan_id)
        doc = store_generated_document(setup.org.user("officer"), loan, "inspection_report", "贷后检查报告.pdf",
                                       pdf_bytes("检查"))
        key = doc.object_key
        assert doc.state == "collected" and doc.stage == "post_loan" and doc.source == "generated"
        assert store.exists(key)
        db.session.rollback()
    assert not store.exists(key) and _count(app) == 0


def test_store_generated_document_is_idempotent(app, store, setup):
    from portal.archive.services import store_generated_document

    data = pdf_bytes("通知书")
    with app.app_context():
        loan = db.session.get(Loan, setup.loan_id)
        first = store_generated_document(None, loan, "repayment_notice", "还本付息通知书.pdf", data)
        db.session.commit()
        again = store_generated_document(None, loan, "repayment_notice", "还本付息通知书.pdf", data)
        assert again.id == first.id
        from portal.errors import InvalidInput
        with pytest.raises(InvalidInput):
            store_generated_document(None, loan, "repayment_notice", "x.pdf", PNG_BYTES)
    assert len(list(store.iter_keys())) == 1


def test_discarding_while_sorting_deletes_the_object_after_commit(app, client, store, setup, login):
    login(client, "archivist")
    upload(client, setup.borrower_id, [(pdf_bytes(), "dup.pdf")])
    (doc_id,) = document_ids(app, setup.borrower_id)
    key = get_document(app, doc_id).object_key
    assert post(client, f"/archive/documents/{doc_id}/discard", {"reason": ""}).status_code == 422
    assert store.exists(key)
    assert post(client, f"/archive/documents/{doc_id}/discard", {"reason": "重复件"}).status_code == 303
    doc = get_document(app, doc_id)
    assert doc.state == "discarded" and doc.removal_reason == "重复件"  # the tombstone stays
    assert not store.exists(key)


def test_other_branch_gets_404_by_id_number_and_link(app, client, store, setup, login):
    login(client, "archivist")
    upload(client, setup.borrower_id, [(pdf_bytes(), "a.pdf")], loan_id=setup.loan_id)
    (doc_id,) = document_ids(app, setup.borrower_id)
    post(client, f"/archive/documents/{doc_id}/sort")
    post(client, f"/archive/documents/{doc_id}/file")
    number = get_document(app, doc_id).archive_number
    assert client.get(f"/archive/number/{number}").status_code == 302
    link = client.get(f"/archive/documents/{doc_id}/open").headers["Location"]

    client2 = app.test_client()
    login(client2, "director2")  # director of branch B2: reads content in B2, not in B1
    assert client2.get(f"/archive/documents/{doc_id}").status_code == 404
    assert client2.get(f"/archive/documents/{doc_id}/open").status_code == 404
    assert client2.get(f"/archive/number/{number}").status_code == 404
    assert client2.get(f"/archive/?number={number}", follow_redirects=True).status_code == 404
    assert client2.get(f"/archive/borrowers/{setup.borrower_id}").status_code == 404
    assert client2.get(f"/archive/borrowers/{setup.borrower_id}/upload").status_code == 404
    assert post(client2, f"/archive/documents/{doc_id}/sort").status_code == 403  # no archivist at all
    if not link.startswith("http"):  # the local backend's signed link is bound to its user
        assert client2.get(link).status_code == 404
    # The county sees its branches.
    client3 = app.test_client()
    login(client3, "county_archivist")
    assert client3.get(f"/archive/documents/{doc_id}").status_code == 200
    assert client3.get(f"/archive/number/{number}").status_code == 302
    # And an auditor reads, but changes nothing.
    client4 = app.test_client()
    login(client4, "auditor")
    assert client4.get(f"/archive/documents/{doc_id}/open").status_code == 302
    assert post(client4, f"/archive/documents/{doc_id}/archive").status_code == 403
    assert upload(client4, setup.borrower_id, [(pdf_bytes(), "x.pdf")]).status_code == 403


def test_pages_render_for_each_role(app, client, local_store, setup, login):
    for user in ("officer", "post_loan", "director", "archivist", "auditor", "county_auditor", "union_admin"):
        c = app.test_client()
        login(c, user)
        for path in ("/archive/", f"/archive/borrowers/{setup.borrower_id}", "/archive/lending"):
            assert c.get(path).status_code == 200, (user, path)
    admin = app.test_client()
    login(admin, "admin")
    assert admin.get("/archive/").status_code == 403


def test_sealed_content_cannot_be_changed_by_any_code(app, local_store, setup):
    from .archive_helpers import archived_documents
    _volume, (doc_id,) = archived_documents(app, setup)
    with app.app_context():
        doc = db.session.get(Document, doc_id)
        doc.shelf_location = "C-9"  # custody metadata may change
        db.session.commit()
        doc.sha256 = "0" * 64
        with pytest.raises(RuntimeError, match="sealed"):
            db.session.flush()
        db.session.rollback()
        assert db.session.get(Document, doc_id).sha256 != "0" * 64
