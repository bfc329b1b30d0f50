"""Figures kept between requests (dashboard panels, the home page's loan summary), and the data
versions that say when they are stale.

A county's completeness panel runs the whole completeness audit (seconds) and every chart is
rendered by pygal (tens of milliseconds); dashboards are looked at far more often than the data
under them changes. So each panel, once built, is kept in ``audit_panel_cache`` (one row per
institution, panel and language, shared by every gunicorn worker), and used again while
nothing it was built from can have changed.

How a change is seen:

- Every ORM transaction that inserts, updates or deletes a row raises the counter of that row's
  institution in ``data_version`` (the model's ``__scope_column__``; both institutions when a
  row moves), in the same transaction, just before it commits. A row without an institution
  (or an ORM bulk statement, or SQL text run through the session) raises row 0, which every
  panel depends on. Tables no panel reads (the audit trail, the search queue and its text, the
  document access log, users and their roles) raise nothing: signing in does not empty the cache.
- A panel of institution X was built from X's subtree; anything recorded at an ancestor (a
  fixity run of the county, the union's own rows) may count too. Its *fingerprint* is therefore
  the number, sum and latest time of the counters of X's subtree, X's ancestors and row 0:
  counters only grow, so any change there changes the fingerprint.
- The fingerprint is read before the panel is built, so a change committed while it is being
  built leaves the stored panel with an older fingerprint, and the next view builds it again.

A kept panel is used only for the same date (``as_of``) and language, with the same
fingerprint, and for at most ``XINDANG_DASHBOARD_CACHE_SECONDS``: that bound covers what the
counters cannot see (SQL run on a bare connection, another program writing to the database).
A panel from the cache carries the time it was built (``Panel.figures_at``) and the page says
"Figures as of HH:MM", so cached figures are never shown as if they were this second's.

The panels come from the same builders either way (``auditing/dashboards.py``, which also turns
a panel into JSON and back); the PDF of a dashboard is always built afresh.

The listeners that note changes and raise the counters are plain functions here; they are
installed with every other session listener by ``portal/session_events.py``.
"""
from __future__ import annotations

import json
import logging
import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Callable

from flask import current_app
from markupsafe import Markup
from sqlalchemy import String, Text, and_, bindparam, func, inspect, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import TextClause

from .accounts.models import Institution
from .extensions import db
from .timeutil import local_today, utcnow

log = logging.getLogger(__name__)


class DataVersion(db.Model):
    """How often the data of one institution has changed: a counter raised in the same
    transaction as the change. Row 0 stands for changes that belong to no one institution (or
    to all). Kept figures are valid only while the counters of their institution's subtree, its
    ancestors and row 0 are as they were."""

    __tablename__ = "data_version"

    institution_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(default=0)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class PanelCacheEntry(db.Model):
    """One kept panel or set of figures as last computed for an institution, a date and a
    language, with the data versions it was computed from (``fingerprint``)."""

    __tablename__ = "audit_panel_cache"

    institution_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    panel: Mapped[str] = mapped_column(String(40), primary_key=True)
    locale: Mapped[str] = mapped_column(String(16), primary_key=True)
    as_of: Mapped[date] = mapped_column()
    fingerprint: Mapped[str] = mapped_column(String(80))
    computed_at: Mapped[datetime] = mapped_column()
    content: Mapped[str] = mapped_column(Text)

# The counter of changes that belong to no one institution.
EVERYWHERE = 0
# Tables whose rows no panel reads: changing them leaves every panel valid.
UNWATCHED = frozenset({
    "audit_event", "audit_chain_head",            # the audit trail of every action (sign-ins too)
    "search_queue", "document_text",              # the search index's work list and extracted text
    "archive_access",                             # who looked at which document
    "user", "user_role",                          # accounts: sign-in times, roles, passwords
    "data_version", "audit_panel_cache",          # this module's own
})
_PENDING = "xindang_changed_institutions"
_FINGERPRINTS = "xindang_fingerprints"    # read once a transaction: home asks for two things
_DML = re.compile(r"^\s*(insert|update|delete|replace|merge)\b", re.IGNORECASE)


# --- data versions: raised by every ORM transaction that changes a watched row -----------------

def _institutions_of(obj) -> set[int] | None:
    """The institutions a changed row belongs to (before and after the change), or None when
    it names none."""
    state = inspect(obj)
    column = getattr(state.mapper.class_, "__scope_column__", None)
    if column is None:
        return None
    history = state.attrs[column].history
    values = {*history.added, *history.unchanged, *history.deleted} or {state.dict.get(column)}
    if None in values:
        return None
    return {int(v) for v in values}


def note_changes(session: Session, _flush_context) -> None:
    """Remember which institutions this flush changed rows of (history is still intact here)."""
    session.info.pop(_FINGERPRINTS, None)
    changed: set[int] = session.info.setdefault(_PENDING, set())
    dirty = (obj for obj in session.dirty if session.is_modified(obj, include_collections=False))
    for group in (session.new, session.deleted, dirty):
        for obj in group:
            if inspect(obj).mapper.local_table.name in UNWATCHED:
                continue
            owners = _institutions_of(obj)
            changed.update(owners if owners is not None else {EVERYWHERE})


def note_statements(orm_execute_state) -> None:
    """Bulk INSERT/UPDATE/DELETE through the session, and SQL text that writes: row 0."""
    statement = orm_execute_state.statement
    if orm_execute_state.is_insert or orm_execute_state.is_update or orm_execute_state.is_delete:
        mapper = orm_execute_state.bind_mapper
        if mapper is not None and mapper.local_table.name in UNWATCHED:
            return
    elif not (isinstance(statement, TextClause) and _DML.match(statement.text)):
        return
    orm_execute_state.session.info.setdefault(_PENDING, set()).add(EVERYWHERE)


def raise_versions(session: Session) -> None:
    """Raise the counters of the changed institutions in the transaction about to commit.
    Flushed first, so the last changes are counted; one statement, ids in order (concurrent
    transactions take the rows' locks in the same order)."""
    session.flush()
    changed = session.info.pop(_PENDING, None)
    if not changed:
        return
    connection = session.connection()
    table = DataVersion.__table__
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    now = utcnow()
    stmt = insert(table).values([{"institution_id": i, "version": 1, "changed_at": now} for i in sorted(changed)])
    connection.execute(stmt.on_conflict_do_update(
        index_elements=[table.c.institution_id],
        set_={"version": table.c.version + 1, "changed_at": stmt.excluded.changed_at}))


def forget_committed(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_FINGERPRINTS, None)


def forget_rolled_back(session: Session, previous_transaction) -> None:
    """A rolled-back transaction changed nothing; a rolled-back savepoint leaves the changes
    made before it standing, so they stay noted (noting too much only rebuilds a panel)."""
    session.info.pop(_FINGERPRINTS, None)
    if previous_transaction.parent is None and not previous_transaction.nested:
        session.info.pop(_PENDING, None)


# The statements are built once, with parameters: building them anew for every page cost as
# much CPU as running them (about half a millisecond).
_STATEMENTS: dict[str, object] = {}


def _statement(name: str):
    if not _STATEMENTS:
        related = select(Institution.id).where(or_(Institution.path.like(bindparam("subtree"), escape="/"),
                                                   Institution.code.in_(bindparam("ancestors", expanding=True))))
        versions = (select(func.count().label("count"), func.coalesce(func.sum(DataVersion.version), 0).label("total"),
                           func.max(DataVersion.changed_at).label("latest"))
                    .where(or_(DataVersion.institution_id == EVERYWHERE, DataVersion.institution_id.in_(related))))
        kept = and_(PanelCacheEntry.institution_id == bindparam("institution_id"),
                    PanelCacheEntry.locale == bindparam("locale"),
                    PanelCacheEntry.panel.in_(bindparam("names", expanding=True)))
        together = versions.subquery()
        _STATEMENTS.update({
            "versions": versions,
            "entries": select(PanelCacheEntry).where(kept),
            "versions_and_entries": select(together.c.count, together.c.total, together.c.latest, PanelCacheEntry)
            .select_from(together).outerjoin(PanelCacheEntry, kept),
        })
    return _STATEMENTS[name]


def _related(institution: Institution) -> dict:
    """The parameters of the counters a panel of ``institution`` depends on: its subtree (a path
    prefix, escaped for LIKE) and its ancestors' codes."""
    escaped = institution.path.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return {"subtree": escaped + "%", "ancestors": institution.path.strip("/").split("/")[:-1]}


def _remember(institution: Institution, count: int, total: int, latest: datetime | None) -> str:
    known = db.session.info.setdefault(_FINGERPRINTS, {})
    known[institution.id] = f"{count}:{total}:{latest.isoformat() if latest else '-'}"
    return known[institution.id]


def fingerprint(institution: Institution) -> str:
    """The data versions a panel of ``institution`` depends on, as one string (read once per
    transaction of the session, again after it flushes, commits or rolls back): the number,
    sum and latest time of the counters of its subtree, its ancestors and row 0."""
    known = db.session.info.get(_FINGERPRINTS, {})
    if institution.id in known:
        return known[institution.id]
    return _remember(institution, *db.session.execute(_statement("versions"), _related(institution)).one())


def _kept_entries(institution: Institution, names: list[str], locale: str) -> tuple[str, dict]:
    """The fingerprint and the kept entries of ``names``; both in one statement when the
    fingerprint is not known yet (on PostgreSQL each statement is a round trip)."""
    params = {"institution_id": institution.id, "locale": locale, "names": list(names)}
    if institution.id in db.session.info.get(_FINGERPRINTS, {}):
        current = fingerprint(institution)
        return current, {e.panel: e for e in db.session.execute(_statement("entries"), params).scalars()}
    rows = db.session.execute(_statement("versions_and_entries"), {**params, **_related(institution)}).all()
    current = _remember(institution, rows[0].count, rows[0].total, rows[0].latest)
    return current, {row.PanelCacheEntry.panel: row.PanelCacheEntry for row in rows if row.PanelCacheEntry is not None}


# --- panels as JSON ------------------------------------------------------------------------------

def encode_value(value):
    """A panel cell or figure as JSON; types JSON lacks become ``{"$type": text}``."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, Markup):
        return {"$markup": str(value)}
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    raise TypeError(f"a value of type {type(value).__name__} cannot be kept")


_DECODERS = {"$markup": Markup, "$decimal": Decimal, "$datetime": datetime.fromisoformat, "$date": date.fromisoformat}


def decode_value(value):
    if isinstance(value, dict) and len(value) == 1:
        (kind, text), = value.items()
        if kind in _DECODERS:
            return _DECODERS[kind](text)
    return value


# --- the cache -----------------------------------------------------------------------------------

def max_age() -> timedelta:
    return timedelta(seconds=current_app.config["XINDANG_DASHBOARD_CACHE_SECONDS"])


def figures(institution: Institution, name: str, as_of: date, build: Callable[[], dict]) -> tuple[dict, datetime | None]:
    """Figures other than a panel (a dict of numbers, lists and dicts) of ``institution``'s
    subtree, by the same rules: ``(figures, None)`` when just built, ``(figures, built at)``
    when from the cache. Kept under ``name`` for every language (numbers only)."""
    def encode(value: dict) -> str:
        return json.dumps(value, default=encode_value, separators=(",", ":"))

    (value, at), = kept(institution, [name], "", as_of, lambda _name: build(), encode)
    return (json.loads(value, object_hook=decode_value) if at is not None else value), at


def kept_figures(institution: Institution, name: str, as_of: date) -> dict | None:
    """What ``figures`` would take from the cache, or None if nothing valid is kept (nothing is
    built): for a caller that has a cheaper way to the one number it needs."""
    (value, at), = kept(institution, [name], "", as_of, lambda _name: _NOT_BUILT, str)
    return json.loads(value, object_hook=decode_value) if at is not None else None


_NOT_BUILT = object()


def kept(institution: Institution, names: list[str], locale: str, as_of: date, build: Callable[[str], object],
            encode: Callable[[object], str]) -> list[tuple[object, datetime | None]]:
    """For each name: (kept JSON text, when it was built) if still valid, else (built value, None)."""
    age = max_age()
    if not names or age <= timedelta(0) or as_of != local_today():
        return [(build(name), None) for name in names]
    started = utcnow()                   # before anything is read: the figures are at least this new
    current, kept = _kept_entries(institution, names, locale)
    result, built = [], []
    for name in names:
        entry = kept.get(name)
        if (entry is not None and entry.as_of == as_of and entry.fingerprint == current
                and timedelta(0) <= started - entry.computed_at < age):
            result.append((entry.content, entry.computed_at))
        else:
            value = build(name)
            result.append((value, None))
            if value is not _NOT_BUILT:
                built.append((name, encode(value)))
    if built:
        _keep(institution.id, locale, as_of, current, started, built)
    return result


def _keep(institution_id: int, locale: str, as_of: date, current: str, computed_at: datetime,
          built: list[tuple[str, str]]) -> None:
    """Store freshly built panels in a transaction of their own (never the request's: a page
    view commits nothing of its own). Losing the race to another worker, or a busy database,
    only means the panel is built again next time."""
    table = PanelCacheEntry.__table__
    rows = [{"institution_id": institution_id, "panel": name, "locale": locale, "as_of": as_of,
             "fingerprint": current, "computed_at": computed_at, "content": content} for name, content in built]
    try:
        with db.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            stmt = insert(table).values(rows)
            connection.execute(stmt.on_conflict_do_update(
                index_elements=[table.c.institution_id, table.c.panel, table.c.locale],
                set_={c: stmt.excluded[c] for c in ("as_of", "fingerprint", "computed_at", "content")}))
    except SQLAlchemyError as exc:
        log.warning("dashboard figures of institution %s not kept: %s", institution_id, exc)
