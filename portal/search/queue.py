"""The durable queue between the database and the index, and the drainer that empties it.

Enqueueing: a SQLAlchemy ``after_flush`` listener sees every flushed change that alters what a
document's index entry must be (a new, changed or deleted document; a borrower renamed or given
another ID number; a loan's contract number or borrower changed; an institution's path changed)
and inserts ``search_queue`` rows on the same connection, so they commit or roll back with the
change itself. The archive's services need not know the search exists.

Draining (``drain``), one batch at a time:

1. *claim* due rows with a lease (``claimed_by``/``claimed_until``), committed, so two drainers
   never work on the same rows and a dead drainer's rows come back when the lease ends;
2. *index* the claimed documents under Whoosh's writer lock (one writer across all processes;
   if another holds it, release the claims and let that one work), reading each document as the
   database has it now: live documents are (re)indexed, others removed;
3. *delete* the rows, in a transaction after the index commit; a crash in between re-indexes
   those documents later (indexing is idempotent), a crash before loses nothing.

Documents with an ``extract`` row get their text extracted first, outside the writer lock (a long
OCR never blocks other processes' indexing), and the text is committed with the row turned into
``index`` work. Failures keep the row with ``attempts`` and ``last_error``, retried after a pause
that doubles up to an hour.

In the portal a daemon thread per process runs the drainer (``start_portal_drainer``): woken at
once after a commit that enqueued, and every few seconds otherwise. Production can switch it off
(``XINDANG_SEARCH_DRAIN_IN_PORTAL=false``) and run ``flask search drain --forever`` instead.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from flask import Flask, current_app
from sqlalchemy import and_, case, delete, func, insert, inspect, literal, or_, select, update
from sqlalchemy.orm import Session

from ..accounts.models import Institution
from ..archive.models import LIVE_STATES, Document
from ..archive.storage import current_store
from ..extensions import db
from ..loans.models import Borrower, Loan
from ..timeutil import utcnow
from .analysis import get_analyzer
from .extract import extract_text
from .index import IndexBusy, current_index
from .models import DocumentText, QueueOp, SearchQueue
from .records import load_records
from .schema import document_fields

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)
MAX_BACKOFF = timedelta(hours=1)
_ENQUEUED = "xindang_search_enqueued"
_NUDGE = "xindang_search_nudge"

work_available = threading.Event()


# -- enqueueing ---------------------------------------------------------------------------------

def _changed(obj, *names: str) -> bool:
    state = inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in names)


def enqueue_changes(session: Session, _flush_context) -> None:
    work: dict[int, str] = {}
    related_borrowers: list[int] = []
    related_loans: list[int] = []
    related_institutions: list[int] = []
    for obj in session.new:
        if isinstance(obj, Document) and obj.id is not None:
            work[obj.id] = QueueOp.EXTRACT.value
    for obj in session.dirty:
        if isinstance(obj, Document):
            if session.is_modified(obj, include_collections=False):
                if _changed(obj, "object_key", "sha256"):
                    work[obj.id] = QueueOp.EXTRACT.value
                else:
                    work.setdefault(obj.id, QueueOp.INDEX.value)
        elif isinstance(obj, Borrower):
            if _changed(obj, "name", "id_number"):
                related_borrowers.append(obj.id)
        elif isinstance(obj, Loan):
            if _changed(obj, "contract_no", "borrower_id"):
                related_loans.append(obj.id)
        elif isinstance(obj, Institution):
            if _changed(obj, "path"):
                related_institutions.append(obj.id)
    for obj in session.deleted:
        if isinstance(obj, Document) and obj.id is not None:
            work[obj.id] = QueueOp.DELETE.value
    if not (work or related_borrowers or related_loans or related_institutions):
        return
    conn = session.connection()
    for column, ids in ((Document.borrower_id, related_borrowers), (Document.loan_id, related_loans),
                        (Document.institution_id, related_institutions)):
        if ids:
            for (doc_id,) in conn.execute(select(Document.id).where(column.in_(ids))):
                work.setdefault(doc_id, QueueOp.INDEX.value)
    done: set = session.info.setdefault(_ENQUEUED, set())
    now = utcnow()
    rows = [{"document_id": doc_id, "op": op, "enqueued_at": now, "attempts": 0}
            for doc_id, op in work.items() if (doc_id, op) not in done]
    if rows:
        conn.execute(insert(SearchQueue.__table__), rows)
        done.update((r["document_id"], r["op"]) for r in rows)
        session.info[_NUDGE] = True


def nudge_drainer(session: Session) -> None:
    if session.info.pop(_NUDGE, False):
        work_available.set()


def forget_enqueued(session: Session, _transaction) -> None:
    # After any end (a savepoint rolled back too), enqueue again rather than miss a change.
    session.info.pop(_ENQUEUED, None)


def enqueue(document_ids, op: str = QueueOp.INDEX.value) -> int:
    """Queue work for these documents in the current transaction (the caller commits)."""
    now = utcnow()
    rows = [{"document_id": i, "op": op, "enqueued_at": now, "attempts": 0} for i in dict.fromkeys(document_ids)]
    if rows:
        db.session.execute(insert(SearchQueue.__table__), rows)
        db.session.info[_NUDGE] = True
    return len(rows)


def enqueue_all() -> int:
    """Queue every live document: ``index`` where its text is extracted, ``extract`` where not.
    One INSERT … SELECT; the caller commits."""
    now = utcnow()
    has_text = select(DocumentText.document_id).where(DocumentText.document_id == Document.id).exists()
    op = case((has_text, literal(QueueOp.INDEX.value)), else_=literal(QueueOp.EXTRACT.value))
    stmt = insert(SearchQueue.__table__).from_select(
        ["document_id", "op", "enqueued_at", "attempts"],
        select(Document.id, op, literal(now), literal(0)).where(Document.state.in_(LIVE_STATES)))
    result = db.session.execute(stmt)
    db.session.info[_NUDGE] = True
    return result.rowcount or 0


def queue_length() -> int:
    return db.session.execute(select(func.count()).select_from(SearchQueue)).scalar_one()


def pending_document_ids(limit: int) -> list[int] | None:
    """Documents whose index entry awaits a change (``index``/``delete`` work; at most ``limit``,
    None if there are more). New documents are not in the index yet anyway."""
    ids = list(db.session.execute(
        select(SearchQueue.document_id).where(SearchQueue.op != QueueOp.EXTRACT.value).distinct()
        .limit(limit + 1)).scalars())
    return None if len(ids) > limit else ids


# -- draining -----------------------------------------------------------------------------------

@dataclass
class DrainResult:
    indexed: int = 0
    removed: int = 0
    extracted: int = 0
    failed: int = 0
    busy: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.indexed + self.removed

    def add(self, other: DrainResult) -> None:
        self.indexed += other.indexed
        self.removed += other.removed
        self.extracted += other.extracted
        self.failed += other.failed
        self.busy = self.busy or other.busy
        self.errors.extend(other.errors)


def worker_name() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _ensure_rebuild_enqueued() -> None:
    idx = current_index()
    idx.open()
    if not idx.looks_intact():
        idx.mark_for_rebuild("index folder missing or emptied")
        idx.open()
    if idx.needs_rebuild:
        count = enqueue_all()
        db.session.commit()
        idx.rebuild_enqueued()
        log.warning("search index (re)created: %d documents queued for indexing", count)


def _claim(me: str, batch: int) -> list[SearchQueue]:
    now = utcnow()
    due = and_(or_(SearchQueue.not_before.is_(None), SearchQueue.not_before <= now),
               or_(SearchQueue.claimed_until.is_(None), SearchQueue.claimed_until < now))
    ids = list(db.session.execute(select(SearchQueue.id).where(due).order_by(SearchQueue.id).limit(batch)).scalars())
    if not ids:
        db.session.commit()
        return []
    db.session.execute(update(SearchQueue).where(SearchQueue.id.in_(ids), due)
                       .values(claimed_by=me, claimed_until=now + LEASE).execution_options(synchronize_session=False))
    db.session.commit()
    return list(db.session.execute(select(SearchQueue).where(SearchQueue.id.in_(ids), SearchQueue.claimed_by == me)
                                   .order_by(SearchQueue.id)).scalars())


def _release(me: str) -> None:
    db.session.rollback()
    db.session.execute(update(SearchQueue).where(SearchQueue.claimed_by == me)
                       .values(claimed_by=None, claimed_until=None).execution_options(synchronize_session=False))
    db.session.commit()


def _fail(me: str, document_id: int, error: str) -> None:
    """Keep the document's claimed rows, counting the attempt and pausing before the next."""
    rows = db.session.execute(select(SearchQueue).where(SearchQueue.claimed_by == me,
                                                        SearchQueue.document_id == document_id)).scalars().all()
    now = utcnow()
    for row in rows:
        row.attempts += 1
        row.last_error = error[:2000]
        row.not_before = now + min(MAX_BACKOFF, timedelta(seconds=5 * 2 ** min(row.attempts, 12)))
        row.claimed_by = None
        row.claimed_until = None
    db.session.commit()


def extract_document(document_id: int) -> DocumentText | None:
    """Extract and store the text of one live document (flushed, not committed). None if the
    document is not live. Reading the object may raise StoreUnavailable (retried later)."""

    doc = db.session.get(Document, document_id)
    if doc is None or doc.state not in LIVE_STATES:
        return None
    key, media_type = doc.object_key, doc.media_type
    db.session.commit()   # no transaction stays open while the file is read and OCR runs
    cfg = current_app.config
    data = b"".join(current_store().get_stream(key))
    result = extract_text(data, media_type, ocr_lang=cfg["XINDANG_OCR_LANG"], ocr_timeout=cfg["XINDANG_OCR_TIMEOUT"])
    row = db.session.get(DocumentText, document_id)
    if row is None:
        row = DocumentText(document_id=document_id)
        db.session.add(row)
    row.text = result.text
    row.status = result.status
    row.method = result.method
    row.error = result.error
    row.chars = len(result.text)
    row.extracted_at = utcnow()
    db.session.flush()
    return row


def _extract_claimed(me: str, document_ids: list[int], result: DrainResult) -> None:
    started = time.monotonic()
    for position, document_id in enumerate(document_ids):
        if time.monotonic() - started > LEASE.total_seconds() / 2:
            # Long OCR: hand the rest back before the lease runs out, so no one else takes
            # them while this drainer is still busy.
            db.session.execute(update(SearchQueue).where(SearchQueue.claimed_by == me,
                                                         SearchQueue.document_id.in_(document_ids[position:]))
                               .values(claimed_by=None, claimed_until=None).execution_options(synchronize_session=False))
            db.session.commit()
            return
        try:
            extract_document(document_id)
            db.session.execute(update(SearchQueue).where(SearchQueue.claimed_by == me,
                                                         SearchQueue.document_id == document_id,
                                                         SearchQueue.op == QueueOp.EXTRACT.value)
                               .values(op=QueueOp.INDEX.value).execution_options(synchronize_session=False))
            db.session.commit()
            result.extracted += 1
        except Exception as exc:  # noqa: BLE001 - recorded on the row, retried later
            db.session.rollback()
            log.warning("text extraction of document %s failed", document_id, exc_info=True)
            _fail(me, document_id, f"{exc.__class__.__name__}: {exc}")
            result.failed += 1
            result.errors.append(f"document {document_id}: {exc}")


def _index_claimed(me: str, document_ids: list[int], result: DrainResult, *, lock_timeout: float) -> bool:
    """Index the documents under the writer lock; delete their rows after the commit. False if
    the lock was busy (claims released)."""
    analyzer = get_analyzer(current_app.config.get("XINDANG_SEARCH_DICTIONARY_EXTRA"))
    records = load_records(document_ids)
    idx = current_index()
    failed: dict[int, str] = {}
    done: list[int] = []
    try:
        with idx.writer(timeout=lock_timeout) as writer:
            for document_id in document_ids:
                try:
                    record = records.get(document_id)
                    writer.delete_by_term("id", str(document_id))
                    if record is None:
                        result.removed += 1
                    else:
                        writer.add_document(**document_fields(record, analyzer))
                        result.indexed += 1
                    done.append(document_id)
                except Exception as exc:  # noqa: BLE001 - this document fails, the batch goes on
                    log.warning("indexing document %s failed", document_id, exc_info=True)
                    failed[document_id] = f"{exc.__class__.__name__}: {exc}"
    except IndexBusy:
        _release(me)
        result.busy = True
        return False
    if done:
        db.session.execute(delete(SearchQueue).where(SearchQueue.claimed_by == me, SearchQueue.document_id.in_(done))
                           .execution_options(synchronize_session=False))
        # Text of a document that left the archive must not outlive it.
        gone = [i for i in done if i not in records]
        if gone:
            db.session.execute(delete(DocumentText).where(DocumentText.document_id.in_(gone))
                               .execution_options(synchronize_session=False))
        db.session.commit()
    for document_id, error in failed.items():
        _fail(me, document_id, error)
        result.failed += 1
        result.errors.append(f"document {document_id}: {error}")
    return True


def drain_batch(me: str, *, batch: int = 500, lock_timeout: float = 0.0) -> DrainResult:
    """Claim up to ``batch`` due rows and do their work. An empty result: nothing was due."""
    result = DrainResult()
    try:
        _ensure_rebuild_enqueued()
    except IndexBusy:
        result.busy = True
        return result
    rows = _claim(me, batch)
    if not rows:
        return result
    by_document: dict[int, set[str]] = {}
    for row in rows:
        by_document.setdefault(row.document_id, set()).add(row.op)
    to_extract = [d for d, ops in by_document.items() if QueueOp.EXTRACT.value in ops]
    to_index = [d for d, ops in by_document.items() if QueueOp.EXTRACT.value not in ops]
    # Metadata first: a long OCR in this batch never delays a transfer or a destruction.
    if to_index and not _index_claimed(me, to_index, result, lock_timeout=lock_timeout):
        return result
    if to_extract:
        _extract_claimed(me, to_extract, result)
        extracted = list(db.session.execute(
            select(SearchQueue.document_id).distinct().where(SearchQueue.claimed_by == me,
                                                             SearchQueue.document_id.in_(to_extract))).scalars())
        if extracted:
            _index_claimed(me, extracted, result, lock_timeout=lock_timeout)
    return result


def drain(*, max_seconds: float | None = None, batch: int = 500, lock_timeout: float = 0.0,
          me: str | None = None) -> DrainResult:
    """Drain until nothing is due (or ``max_seconds`` passed, or the index is busy)."""
    me = me or worker_name()
    total = DrainResult()
    started = time.monotonic()
    while True:
        result = drain_batch(me, batch=batch, lock_timeout=lock_timeout)
        total.add(result)
        if result.busy or (result.done == 0 and result.extracted == 0 and result.failed == 0):
            return total
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            return total


# -- the portal's own drainer -------------------------------------------------------------------

_started: set[int] = set()
_started_lock = threading.Lock()


def start_portal_drainer(app: Flask) -> None:
    """Start this process's drainer thread once (called at the first request)."""
    with _started_lock:
        if os.getpid() in _started:
            return
        _started.add(os.getpid())
    thread = threading.Thread(target=_drainer_loop, args=(app,), name="xindang-search-drainer", daemon=True)
    thread.start()


def _drainer_loop(app: Flask) -> None:
    interval = app.config["XINDANG_SEARCH_DRAIN_INTERVAL"]
    me = worker_name()
    while True:
        work_available.wait(timeout=interval)
        work_available.clear()
        with app.app_context():
            try:
                drain(me=me, max_seconds=30, batch=200)
            except Exception:  # noqa: BLE001 - the thread must survive; the rows stay queued
                log.exception("search queue drainer failed; will retry")
                time.sleep(interval)
            finally:
                db.session.remove()
