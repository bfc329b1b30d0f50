"""Every SQLAlchemy event listener of the portal, in one table, installed by ``create_app``.

Services change rows and flush; some work must follow every such change wherever it was made
(a page, a command, the demo, a test), inside the same transaction or right after it. That work
is done by the listeners below, and only by them. Their functions live beside the data they
serve; this module only says which event each one answers and in which order. SQLAlchemy calls
the listeners of one event in the order they were installed, which is the order of
``SESSION_LISTENERS``: where it matters, the reason is given there.

Listeners on ``Session`` are process-wide (every session of every app, including the bare
sessions a command opens); ``install_session_listeners`` installs them once. Listeners on one
app's engine are installed for that app by ``install_engine_listeners``. No other module
registers a listener (``tests/test_session_events.py`` checks).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session

from . import kept, readonly
from .accounts import models as accounts_models
from .archive import storage
from .archive.models import Document, refuse_changing_sealed_content
from .audit_trail import AuditEvent, refuse_change
from .extensions import db
from .postloan import refresh_on_commit
from .search import queue as search_queue


class Listener(NamedTuple):
    target: object
    event: str
    function: Callable
    why: str


SESSION_LISTENERS: tuple[Listener, ...] = (
    # A new transaction: nothing written yet (the read-only commit, portal/readonly.py).
    Listener(Session, "after_begin", readonly.begin_reads_only,
             "note the transaction's connection; it has run only SELECTs so far"),
    # Before a flush.
    Listener(Session, "before_flush", refresh_on_commit.note_touched_loans,
             "note new loans and loans whose days past due, arrears, status or officer changed"),
    # After a flush, while the flushed objects' history is intact.
    Listener(Session, "after_flush", accounts_models.forget_tree_if_changed,
             "an institution was written: forget what this transaction learnt of the tree"),
    Listener(Session, "after_flush", search_queue.enqueue_changes,
             "queue index work for documents whose index entry this flush changed"),
    Listener(Session, "after_flush", kept.note_changes,
             "note the institutions whose data changed (kept figures become stale)"),
    # A statement run through the session (bulk writes, SQL text).
    Listener(Session, "do_orm_execute", accounts_models.forget_tree_on_write,
             "a statement that writes may change the tree"),
    Listener(Session, "do_orm_execute", kept.note_statements,
             "a bulk write or SQL text may change anything: every kept figure becomes stale"),
    # Before the commit. The post-loan refresh comes first: it changes loans and their records,
    # and those changes must be counted by kept.raise_versions, which takes the noted changes.
    Listener(Session, "before_commit", refresh_on_commit.refresh_touched_loans,
             "give the noted loans their inspections, warnings and classes in this transaction"),
    Listener(Session, "before_commit", kept.raise_versions,
             "raise the data versions of the changed institutions in this transaction"),
    # After the commit.
    Listener(Session, "after_commit", storage.settle_objects_after_commit,
             "objects written in the transaction are claimed by their rows; delete those doomed"),
    Listener(Session, "after_commit", search_queue.nudge_drainer,
             "wake this process's index drainer: work was queued"),
    Listener(Session, "after_commit", kept.forget_committed,
             "forget the noted changes and the fingerprints read in the transaction"),
    # A rollback.
    Listener(Session, "after_soft_rollback", kept.forget_rolled_back,
             "a rolled-back transaction changed nothing"),
    # The end of any transaction (commit, rollback, close; savepoints too).
    Listener(Session, "after_transaction_end", readonly.forget_connection,
             "forget the transaction's connection"),
    Listener(Session, "after_transaction_end", accounts_models.forget_tree,
             "the next transaction reads the tree again"),
    Listener(Session, "after_transaction_end", storage.remove_unclaimed_objects,
             "a transaction that did not commit leaves no object its rows would have claimed"),
    Listener(Session, "after_transaction_end", refresh_on_commit.forget_touched_loans,
             "a rollback forgets the loans it touched"),
    Listener(Session, "after_transaction_end", search_queue.forget_enqueued,
             "after any end (a savepoint too), queue again rather than miss a change"),
    # Guards on single models, whatever code changes them.
    Listener(AuditEvent, "before_update", refuse_change, "audit events are append-only"),
    Listener(AuditEvent, "before_delete", refuse_change, "audit events are append-only"),
    Listener(Document, "before_update", refuse_changing_sealed_content,
             "an archived document's content and identity stay as they were sealed"),
)


def install_session_listeners() -> None:
    """Install ``SESSION_LISTENERS`` in order, once per process."""
    for listener in SESSION_LISTENERS:
        if not event.contains(listener.target, listener.event, listener.function):
            event.listen(listener.target, listener.event, listener.function)


def sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - the DB-API connection
    """Engine listener (connect), SQLite: foreign keys, WAL, a busy wait, and LIKE with case."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=15000")
    # Scopes are path prefixes matched with LIKE, which SQLite otherwise compares without
    # case: "/P/C1/%" matched county "c1" too. PostgreSQL's LIKE has case.
    cur.execute("PRAGMA case_sensitive_like=ON")
    cur.close()


def engine_listeners(app: Flask) -> list[Listener]:
    """The listeners of ``app``'s engine."""
    with app.app_context():
        engine = db.engine
    found = []
    if engine.dialect.name == "sqlite":
        found.append(Listener(engine, "connect", sqlite_pragmas, "SQLite settings of every new connection"))
    if readonly.applies(app):
        found.append(Listener(engine, "before_cursor_execute", readonly.note_write,
                              "a statement other than a SELECT: the request's transaction wrote"))
    return found


def install_engine_listeners(app: Flask) -> None:
    for listener in engine_listeners(app):
        if not event.contains(listener.target, listener.event, listener.function):
            event.listen(listener.target, listener.event, listener.function)
