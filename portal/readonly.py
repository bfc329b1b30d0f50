"""On PostgreSQL, a request that wrote nothing ends its transaction with COMMIT, not ROLLBACK.

psycopg prepares a statement on the server once a connection has run it five times; from then on
it sends only the parameters, and PostgreSQL neither parses nor plans it again. But psycopg
forgets every prepared statement whenever a transaction rolls back (a rolled-back ``DROP`` or
``ALTER`` may have changed what they refer to), and Flask-SQLAlchemy ends every request by rolling
back its session. So a worker's connection never kept a prepared statement: every statement of
every page was parsed and planned again. Committing a transaction that wrote nothing has the same
effect on the data as rolling it back, and keeps them. Measured on the load data set
(bench/load.md): PostgreSQL's CPU per page fell by a quarter to a half.

What counts as having written: any statement other than a ``SELECT`` run through the
transaction's connection (flushes, bulk statements, SQL text, savepoints), seen by the engine
itself, and any change still pending in the session. Such a transaction keeps the usual
rollback, and so does a request whose exception reached Flask unhandled. (The portal's error
pages roll the session back before they render, so what an error page reads afterwards is
committed, which writes nothing.) The commit is tried once; if anything fails the rollback
follows as before, and the response is not affected. SQLite is left as it was.

A prepared statement outlives the request: after ``flask db upgrade`` changes a table the
workers read, restart them, as one does after any upgrade (a statement whose result no longer
fits fails once, and the rollback that follows forgets them all). Behind PgBouncer in
transaction mode, the next transaction may run on another server connection, where the
statement does not exist: set ``XINDANG_PG_PREPARED_STATEMENTS=false`` there (nothing is
prepared then, and requests roll back as before).
"""
from __future__ import annotations

import logging

from flask import Flask

from .extensions import db

log = logging.getLogger(__name__)

_READS_ONLY = "xindang_reads_only"   # in a connection's info: its transaction has run only SELECTs
_CONNECTION = "xindang_connection"   # in a session's info: the connection of its transaction


def applies(app: Flask) -> bool:
    """Whether ``app``'s read-only requests commit: on PostgreSQL, unless
    ``XINDANG_PG_PREPARED_STATEMENTS`` is off."""
    if not app.config.get("XINDANG_PG_PREPARED_STATEMENTS", True):
        return False
    with app.app_context():
        return db.engine.dialect.name == "postgresql"


def note_write(conn, _cursor, statement, _parameters, _context, _executemany) -> None:
    """Engine listener (before_cursor_execute): a statement other than a SELECT ran."""
    if not statement.lstrip()[:6].upper() == "SELECT":
        conn.info[_READS_ONLY] = False


def keep_prepared_statements(app: Flask) -> None:
    """Install, for ``app``'s PostgreSQL engine, the commit of read-only requests (its engine
    listener, ``note_write``, is installed by ``portal/session_events.py``). Requests only:
    a request's teardown runs before its application context's, where Flask-SQLAlchemy closes
    the session (commands and other application contexts are left as they were)."""
    if not applies(app):
        return

    @app.teardown_request
    def _commit_reads(exc: BaseException | None) -> None:
        if exc is not None or not db.session.registry.has():
            return
        session = db.session()
        try:
            connection = session.info.get(_CONNECTION)
            transaction = session.get_transaction()
            if (connection is None or transaction is None or not transaction.is_active
                    or session.new or session.dirty or session.deleted
                    or connection.closed or not connection.in_transaction()
                    or not connection.info.get(_READS_ONLY, False)):
                return
            # As the session's removal would leave them: loaded, not expired (a commit expires them).
            expire, session.expire_on_commit = session.expire_on_commit, False
            try:
                session.commit()
            finally:
                session.expire_on_commit = expire
        except Exception as err:  # noqa: BLE001 - the rollback that follows ends it as it always did
            log.warning("a read-only transaction could not be committed: %s", err)


def begin_reads_only(session, transaction, connection) -> None:
    """Session listener (after_begin): a new transaction has written nothing yet."""
    if transaction.nested:   # a savepoint: what ran before it still counts
        return
    connection.info[_READS_ONLY] = True
    session.info[_CONNECTION] = connection


def forget_connection(session, transaction) -> None:
    """Session listener (after_transaction_end)."""
    if transaction.parent is None:
        session.info.pop(_CONNECTION, None)
