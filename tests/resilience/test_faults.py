"""Fault injection, each with what the user sees: the S3 server killed in the middle of an
upload, stopped during downloads, killed and restarted; the database failing after the object
was written; the search index locked by another writer.

The S3 server is each test's own ``rclone serve s3``, killed with SIGKILL (a crash, not a
shutdown) and started again on the same address over the same folder.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import urllib.request

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from portal.archive.models import Document, DocumentAccess, ListFile
from portal.archive.storage import MinioStore, StoreUnavailable
from portal.audit_trail import AuditEvent
from portal.extensions import db

from tests.archive.archive_helpers import archived_documents, upload
from tests.helpers.files import docx_bytes, pdf_bytes
from tests.helpers.stores import ACCESS_KEY, REGION, SECRET_KEY, use_store

from .resilience_helpers import proposed_destruction_list

MiB = 1024 * 1024


@pytest.fixture()
def signed_in(app, login):
    """``signed_in(username)``: a test client signed in as this user."""
    def make(username: str):
        client = app.test_client()
        assert login(client, username).status_code in (302, 303)
        return client
    return make


def counts(app) -> dict[str, int]:
    """Rows a fault must not leave behind (or take away)."""
    with app.app_context():
        return {model.__tablename__: db.session.execute(select(func.count()).select_from(model)).scalar_one()
                for model in (Document, DocumentAccess, ListFile, AuditEvent)}


def verify(app) -> tuple[int, dict]:
    result = app.test_cli_runner().invoke(args=["archive", "verify", "--json", "--quiet"])
    try:
        report = json.loads(result.output)
    except ValueError:
        report = {"output": result.output}
    return result.exit_code, report


def large_pdf(size: int) -> bytes:
    """A valid PDF of about ``size`` bytes (an incompressible attachment)."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_attachment("scan.bin", os.urandom(size))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def page_of(response) -> str:
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and 'File "' not in text
    return text


# --- the S3 server killed in the middle of an upload -----------------------------------------

class KillAfterFirstPart(MinioStore):
    """The S3 store whose server dies once the first part of an upload has gone up."""

    def __init__(self, *args, kill, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kill = kill

    def put_stream(self, fileobj, **kwargs):
        store = self

        class Tripwire:
            seen = 0

            def read(self, n=-1):
                data = fileobj.read(n)
                Tripwire.seen += len(data)
                if Tripwire.seen > store.part_size and store.kill is not None:
                    store.kill()  # the first part is uploaded; the second is being read
                    store.kill = None
                return data

        return super().put_stream(Tripwire(), **kwargs)


def test_s3_killed_mid_upload_refuses_cleanly_and_leaves_nothing(app, setup, killable_s3, signed_in):
    bucket = "xd-killed-upload"
    dying = KillAfterFirstPart(killable_s3.endpoint, ACCESS_KEY, SECRET_KEY, bucket, region=REGION,
                               connect_timeout=1.0, part_size=5 * MiB, kill=killable_s3.kill)
    reachable = killable_s3.store(bucket, part_size=5 * MiB)
    previous = use_store(app, dying)
    try:
        archivist = signed_in("archivist")
        before = counts(app)
        response = upload(archivist, setup.borrower_id, [(large_pdf(12 * MiB), "扫描件.pdf")])
        assert killable_s3.server is None, "the server was not killed during the upload"
        assert response.status_code == 503
        assert "file store cannot be reached right now" in page_of(response)
        assert counts(app) == before                       # no row, no audit event

        killable_s3.start()                                # the server comes back
        use_store(app, reachable)
        assert list(reachable.iter_keys()) == []           # no orphan, no half object
        code, report = verify(app)
        assert code == 0, report
        again = upload(archivist, setup.borrower_id, [(large_pdf(6 * MiB), "扫描件.pdf")])
        assert again.status_code == 303                    # and uploads work again
        assert len(list(reachable.iter_keys())) == 1
    finally:
        app.extensions["xindang_storage"] = previous


# --- stopped during a download ---------------------------------------------------------------

def test_s3_dying_while_an_object_is_read_raises_a_clear_error(app, killable_s3):
    """What the portal's readers (list PDFs, fixity, text extraction) get when the server dies
    mid-stream: the store's own "cannot be reached" error, not a transport exception."""
    store = killable_s3.store("xd-dying-read")
    with app.app_context():
        content = os.urandom(32 * MiB)
        stored = store.put_stream(io.BytesIO(content), length=len(content))
        chunks = store.get_stream(stored.key)
        received = len(next(chunks))
        killable_s3.kill()
        with pytest.raises(StoreUnavailable) as caught:
            for chunk in chunks:
                received += len(chunk)
    assert received < len(content)
    assert "cannot be reached right now" in caught.value.message


def test_s3_stopped_downloads_fail_with_a_message_and_change_nothing(app, setup, s3_store, killable_s3, signed_in):
    from portal.archive import destruction
    from portal.archive.models import DestructionList

    _volume, [doc_id] = archived_documents(app, setup, 1)
    list_id = proposed_destruction_list(app, setup)
    with app.app_context():
        dl = db.session.get(DestructionList, list_id)
        destruction.approve_destruction(setup.org.user("director"), dl)
        destruction.confirm_destruction(setup.org.user("officer"), dl)
        destruction.confirm_destruction(setup.org.user("post_loan"), dl)
        destruction.execute_destruction(setup.org.user("archivist"), dl)
        db.session.commit()
    archivist = signed_in("archivist")
    assert archivist.get(f"/archive/destruction/{list_id}/list.pdf").status_code == 200
    before = counts(app)

    killable_s3.kill()
    listing = archivist.get(f"/archive/destruction/{list_id}/list.pdf")
    assert listing.status_code == 503 and "cannot be reached right now" in page_of(listing)
    opened = archivist.get(f"/archive/documents/{doc_id}/open")
    assert opened.status_code == 503 and "cannot be reached right now" in page_of(opened)
    as_json = archivist.get(f"/archive/documents/{doc_id}/open", headers={"Accept": "application/json"})
    assert as_json.status_code == 503 and "cannot be reached" in as_json.get_json()["message"]
    assert archivist.get(f"/archive/documents/{doc_id}").status_code == 200   # the record still shows
    code, report = verify(app)
    assert code == 2 and "cannot be reached" in report["output"]
    assert counts(app) == before       # no look registered that did not happen, no event

    killable_s3.start()
    assert archivist.get(f"/archive/destruction/{list_id}/list.pdf").status_code == 200
    assert archivist.get(f"/archive/documents/{doc_id}/open").status_code == 302


# --- killed and restarted ----------------------------------------------------------------------

def test_s3_killed_and_restarted_keeps_every_object(app, setup, s3_store, killable_s3, signed_in):
    archivist = signed_in("archivist")
    contents = [pdf_bytes(f"合同{i}") for i in range(3)] + [large_pdf(6 * MiB)]
    for i, content in enumerate(contents):
        assert upload(archivist, setup.borrower_id, [(content, f"借款合同{i}.pdf")]).status_code == 303
    _volume, archived = archived_documents(app, setup, 1)
    with app.app_context():
        docs = {d.id: (d.object_key, d.sha256) for d in db.session.execute(select(Document)).scalars()}
    assert len(docs) == 5

    killable_s3.kill()
    page = archivist.get(f"/archive/borrowers/{setup.borrower_id}")
    assert page.status_code == 200 and "借款合同0.pdf" in page_of(page)    # the records still show
    refused = upload(archivist, setup.borrower_id, [(pdf_bytes(), "新文件.pdf")])
    assert refused.status_code == 503

    killable_s3.start()
    code, report = verify(app)
    assert code == 0 and report["objects_checked"] == 5, report
    assert sorted(s3_store.iter_keys()) == sorted(key for key, _sha in docs.values())
    for doc_id, (_key, sha) in docs.items():
        opened = archivist.get(f"/archive/documents/{doc_id}/open?download=1")
        assert opened.status_code == 302
        with urllib.request.urlopen(opened.headers["Location"], timeout=10) as response:
            assert hashlib.sha256(response.read()).hexdigest() == sha
    assert upload(archivist, setup.borrower_id, [(pdf_bytes(), "新文件.pdf")]).status_code == 303


# --- the database fails after the object was written ------------------------------------------

@pytest.fixture(params=["local", "s3"])
def any_store(request, app):
    if request.param == "local":
        return request.getfixturevalue("local_store")
    return request.getfixturevalue("s3_store")


def database_error() -> OperationalError:
    return OperationalError("INSERT INTO audit_event …", {}, Exception("server closed the connection unexpectedly"))


def test_database_error_inside_the_upload_leaves_no_object(app, setup, any_store, monkeypatch, signed_in):
    """Two files in one upload; the database fails while the second is recorded, after both
    objects were written. Neither row nor either object survives the request."""
    from portal.archive import services

    calls = {"n": 0}
    original = services.record_event

    def failing(*args, **kwargs):
        if args[1] == "archive.collect":
            calls["n"] += 1
            if calls["n"] == 2:
                raise database_error()
        return original(*args, **kwargs)

    monkeypatch.setattr(services, "record_event", failing)
    archivist = signed_in("archivist")
    before = counts(app)
    response = upload(archivist, setup.borrower_id, [(pdf_bytes(), "一.pdf"), (pdf_bytes(), "二.pdf")])
    assert calls["n"] == 2
    assert response.status_code == 500 and "Nothing was saved" in page_of(response)
    assert counts(app) == before
    assert list(any_store.iter_keys()) == []
    assert verify(app)[0] == 0


def test_database_error_at_commit_leaves_no_object(app, setup, any_store, signed_in):
    """The upload's rows are flushed; the COMMIT itself fails. The object is deleted again."""
    failures = []

    def fail_commit(session):
        if any(isinstance(o, Document) for o in session.identity_map.values()) and not failures:
            failures.append(session)
            raise database_error()

    event.listen(Session, "before_commit", fail_commit)
    try:
        archivist = signed_in("archivist")
        before = counts(app)
        response = upload(archivist, setup.borrower_id, [(pdf_bytes(), "借款借据.pdf")],
                          doc_type="loan_receipt")
    finally:
        event.remove(Session, "before_commit", fail_commit)
    assert failures, "the commit was not reached"
    assert response.status_code == 500 and "Nothing was saved" in page_of(response)
    assert counts(app) == before
    assert list(any_store.iter_keys()) == []
    assert verify(app)[0] == 0


def test_constraint_violation_after_the_object_leaves_no_object(app, setup, local_store, monkeypatch, signed_in):
    """A real constraint violation from the database (a document row whose volume does not
    exist, as if the credit file had been removed meanwhile)."""
    from portal.archive import services

    original = services.volume_for

    def vanished_volume(actor, borrower):
        volume = original(actor, borrower)
        db.session.expunge(volume)
        volume.id = 999_999
        return volume

    monkeypatch.setattr(services, "volume_for", vanished_volume)
    archivist = signed_in("archivist")
    before = counts(app)
    response = upload(archivist, setup.borrower_id, [(pdf_bytes(), "担保合同.pdf")], doc_type="guarantee_contract")
    assert response.status_code == 500 and "Nothing was saved" in page_of(response)
    assert counts(app) == before
    assert list(local_store.iter_keys()) == []


# --- the search index locked by another writer -------------------------------------------------


def test_search_index_locked_by_another_writer_loses_no_update(app, setup, local_store, tmp_path, monkeypatch,
                                                                signed_in):
    from portal.search.index import current_index

    monkeypatch.setitem(app.config, "XINDANG_SEARCH_INDEX_DIR", str(tmp_path / "search_index"))
    with app.app_context():
        idx = current_index()
        idx.open()
        idx.rebuild_enqueued()   # a running portal's index: open, nothing to rebuild
    archivist = signed_in("archivist")
    runner = app.test_cli_runner()

    holding, release = threading.Event(), threading.Event()

    def other_writer():
        with app.app_context(), current_index().writer():
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=other_writer)
    thread.start()
    try:
        assert holding.wait(10)
        response = upload(archivist, setup.borrower_id, [(docx_bytes("贷后检查发现挪用贷款资金"), "贷后检查报告.docx")],
                          doc_type="inspection_report")
        assert response.status_code == 303                     # the upload does not wait for the index
        busy = runner.invoke(args=["search", "drain", "--wait-lock", "0.2"])
        assert busy.exit_code == 1 and "index busy" in busy.output
        assert runner.invoke(args=["search", "verify"]).exit_code == 1   # not indexed yet ...
    finally:
        release.set()
        thread.join(30)
    drained = runner.invoke(args=["search", "drain"])
    assert drained.exit_code == 0, drained.output
    verified = runner.invoke(args=["search", "verify"])
    assert verified.exit_code == 0, verified.output                       # ... and not lost
    found = archivist.get("/search/?q=挪用贷款资金")
    assert found.status_code == 200 and "贷后检查报告.docx" in page_of(found)


def test_an_object_lost_from_the_store_is_reported_not_linked(app, setup, local_store, signed_in):
    """The file was removed behind the portal's back (a disk restored from an old copy): opening
    the document says so plainly and registers no look."""
    _volume, [doc_id] = archived_documents(app, setup, 1)
    with app.app_context():
        key = db.session.get(Document, doc_id).object_key
    local_store.delete(key)
    archivist = signed_in("archivist")
    before = counts(app)
    opened = archivist.get(f"/archive/documents/{doc_id}/open")
    assert opened.status_code == 404 and "is missing from the archive" in page_of(opened)
    assert counts(app) == before
    code, report = verify(app)
    assert code == 1 and [p["document_id"] for p in report["missing"]] == [doc_id]
