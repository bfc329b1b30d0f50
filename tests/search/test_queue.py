"""The durable queue: written with the change, drained by one writer at a time, never losing an
update to a crash, a locked index or a failure; a missing or corrupt index is rebuilt."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import timedelta

from portal.archive.models import Document
from portal.extensions import db
from portal.search.models import DocumentText, SearchQueue
from portal.search.whoosh_internals import WRITER_LOCK_NAME

from tests.helpers.files import docx_bytes

from .search_helpers import add_document, drain_all, search_as


def queue_rows(app) -> list[tuple[int, str, int, str | None]]:
    with app.app_context():
        rows = db.session.execute(db.select(SearchQueue).order_by(SearchQueue.id)).scalars().all()
        return [(r.document_id, r.op, r.attempts, r.last_error) for r in rows]


def test_a_change_is_queued_in_its_own_transaction(app, world):
    doc = add_document(app, world, docx_bytes("借款合同"), "合同.docx")
    assert queue_rows(app) == [(doc, "extract", 0, None)]
    with app.app_context():
        db.session.get(Document, doc).shelf_location = "A-01"
        db.session.flush()
        db.session.rollback()                       # the change did not happen: nothing queued
    assert queue_rows(app) == [(doc, "extract", 0, None)]
    with app.app_context():
        db.session.get(Document, doc).shelf_location = "A-02"
        db.session.commit()
    assert queue_rows(app)[-1] == (doc, "index", 0, None)


def test_a_crash_between_commit_and_indexing_is_reported_and_closed(app, world, runner):
    first = add_document(app, world, docx_bytes("贷后检查报告"), "检查.docx", doc_type="inspection_report")
    drain_all(app)
    # The portal commits a new document and dies before its drainer runs.
    second = add_document(app, world, docx_bytes("结清证明"), "结清.docx", doc_type="settlement_certificate")
    result = runner.invoke(args=["search", "verify", "--json"])
    assert result.exit_code == 1
    import json
    report = json.loads(result.output)
    assert report["missing"] == [second] and report["queued"] == 1 and first not in report["missing"]
    assert runner.invoke(args=["search", "drain"]).exit_code == 0
    result = runner.invoke(args=["search", "verify"])
    assert result.exit_code == 0, result.output
    assert "Index in step with the database." in result.output
    assert search_as(app, "archivist", "结清证明")[1] == [second]


def test_a_locked_index_delays_the_update_but_does_not_lose_it(app, world, index_dir):
    doc = add_document(app, world, docx_bytes("他项权证已收回"), "权证.docx", doc_type="collateral_certificate")
    index_dir.mkdir(parents=True, exist_ok=True)
    with app.app_context():
        from portal.search.index import current_index
        current_index().open()
    # Another process holds Whoosh's writer lock.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from whoosh.filedb.filestore import FileStorage; "
         f"lock = FileStorage({str(index_dir)!r}).lock({WRITER_LOCK_NAME!r}); assert lock.acquire(); "
         "print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = drain_all(app, lock_timeout=0.2)
        assert result.busy and result.indexed == 0
        assert [r[0] for r in queue_rows(app)] and all(r[0] == doc for r in queue_rows(app))
        with app.app_context():   # the claims were released: the next drainer can take the rows
            assert db.session.execute(db.select(SearchQueue.claimed_by).where(
                SearchQueue.claimed_by.is_not(None))).first() is None
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    assert drain_all(app).indexed >= 1
    assert queue_rows(app) == []
    assert search_as(app, "archivist", "他项权证已收回")[1] == [doc]


def test_a_drainer_waits_for_a_writer_in_another_thread(app, world):
    doc = add_document(app, world, docx_bytes("五级分类认定表"), "分类.docx", doc_type="risk_classification")
    with app.app_context():
        from portal.search.index import current_index
        idx = current_index()
        idx.open()
    released = threading.Event()

    def hold():
        with idx.writer():
            time.sleep(1.0)
        released.set()

    thread = threading.Thread(target=hold)
    thread.start()
    time.sleep(0.2)
    result = drain_all(app, lock_timeout=10)
    thread.join()
    assert released.is_set() and not result.busy
    assert search_as(app, "archivist", "五级分类")[1] == [doc]


def test_a_failure_keeps_the_row_with_its_error_and_is_retried(app, world, store, monkeypatch):
    from portal.archive.storage import StoreUnavailable

    doc = add_document(app, world, docx_bytes("借款借据"), "借据.docx", doc_type="loan_receipt")

    def down(key):
        raise StoreUnavailable("store down")

    monkeypatch.setattr(store, "get_stream", down)
    result = drain_all(app)
    assert result.failed == 1
    [(document_id, op, attempts, error)] = queue_rows(app)
    assert (document_id, op, attempts) == (doc, "extract", 1) and "store down" in error
    assert drain_all(app).failed == 0          # not due yet: left alone
    monkeypatch.undo()
    with app.app_context():
        db.session.execute(db.update(SearchQueue).values(not_before=None))
        db.session.commit()
    assert drain_all(app).extracted == 1
    assert queue_rows(app) == []
    assert search_as(app, "archivist", "借款借据")[1] == [doc]


def test_transfer_rename_and_destruction_reach_the_index(app, world):
    doc = add_document(app, world, docx_bytes("借款人挪用贷款资金"), "检查.docx", doc_type="inspection_report")
    drain_all(app)
    assert search_as(app, "officer", "挪用")[1] == [doc]
    # Custody moves to B2 (a transfer): gone for B1's officer, there for B2's, even before draining.
    with app.app_context():
        document = db.session.get(Document, doc)
        document.institution_id = world.org.inst("B2").id
        db.session.commit()
    assert search_as(app, "officer", "挪用")[0] == 0
    drain_all(app)
    assert search_as(app, "officer", "挪用")[0] == 0
    assert search_as(app, "director2", "挪用")[1] == [doc]
    # The borrower is renamed: found by the new name.
    with app.app_context():
        from portal.loans.models import Borrower
        db.session.get(Borrower, world.b1_borrower).name = "王建民"
        db.session.commit()
    drain_all(app)
    assert search_as(app, "county_archivist", "王建民")[1] == [doc]
    assert search_as(app, "county_archivist", "王建国")[1] == []
    # Destroyed: gone from the index, and its text with it.
    with app.app_context():
        db.session.get(Document, doc).state = "destroyed"
        db.session.commit()
    drain_all(app)
    assert search_as(app, "county_archivist", "挪用")[0] == 0
    with app.app_context():
        assert db.session.get(DocumentText, doc) is None


def test_a_missing_index_is_rebuilt_from_the_database(app, world, index_dir):
    import shutil

    doc = add_document(app, world, docx_bytes("农户联保贷款"), "联保.docx")
    drain_all(app)
    shutil.rmtree(index_dir)
    total, found, extra = search_as(app, "archivist", "农户联保")
    assert (total, found) == (0, []) and "rebuilt" in extra["notice"]
    drain_all(app)
    assert search_as(app, "archivist", "农户联保")[1] == [doc]
    # Removed again; this time the drainer notices before any query does.
    shutil.rmtree(index_dir)
    drain_all(app)
    assert search_as(app, "archivist", "农户联保")[1] == [doc]


def test_a_corrupt_index_is_rebuilt_not_fatal(app, world, index_dir, client, login):
    doc = add_document(app, world, docx_bytes("结清证明已出具"), "结清.docx", doc_type="settlement_certificate")
    drain_all(app)
    for path in index_dir.iterdir():
        if path.suffix in (".seg", ".pst", ".trm", ".toc"):
            path.write_bytes(b"\x00garbage" * 64)
    login(client, "archivist")
    page = client.get("/search/?q=结清证明")
    assert page.status_code == 200
    assert "rebuilt" in page.get_data(as_text=True)
    drain_all(app)
    assert search_as(app, "archivist", "结清证明")[1] == [doc]


def test_retry_backoff_grows_and_is_capped(app, world, store, monkeypatch):
    from portal.archive.storage import StoreUnavailable
    from portal.timeutil import utcnow

    add_document(app, world, docx_bytes("借据"), "借据.docx", doc_type="loan_receipt")
    monkeypatch.setattr(store, "get_stream", lambda key: (_ for _ in ()).throw(StoreUnavailable("down")))
    pauses = []
    for _ in range(3):
        with app.app_context():
            db.session.execute(db.update(SearchQueue).values(not_before=None))
            db.session.commit()
        drain_all(app)
        with app.app_context():
            row = db.session.execute(db.select(SearchQueue)).scalar_one()
            pauses.append(row.not_before - utcnow())
    assert pauses[0] < pauses[1] < pauses[2] <= timedelta(hours=1)


def _drain_in_child(app, results) -> None:
    from portal.search.queue import drain

    with app.app_context():
        result = drain(lock_timeout=20)
        results.put((result.indexed, result.extracted, result.busy))
        db.session.remove()
        db.engine.dispose()


def test_two_processes_draining_at_once_index_each_document_once(app, world, runner):
    """Two portal processes (two gunicorn workers) drain the same queue at the same moment."""
    import json
    import multiprocessing

    docs = [add_document(app, world, docx_bytes(f"第{i}份五级分类认定表"), f"{i}.docx", doc_type="risk_classification")
            for i in range(6)]
    with app.app_context():            # no connection may be shared across the fork
        db.session.remove()
        db.engine.dispose()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=_drain_in_child, args=(app, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    outcomes = [results.get(timeout=5) for _ in workers]
    assert sum(o[1] for o in outcomes) == len(docs)             # each document extracted once
    drain_all(app)                      # whatever a busy worker left
    result = runner.invoke(args=["search", "verify", "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 0, report
    assert report["indexed"] == len(docs) and report["stale"] == []      # nobody indexed a document twice
