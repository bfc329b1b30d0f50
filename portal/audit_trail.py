"""The audit trail: append-only events, each hashed over the one before it.

``record_event`` is called by every service that changes state, inside the caller's
transaction; ``verify_log`` recomputes the chain and names the first event that does not fit.
(Not the auditors' workspace, which is ``portal/auditing``.)
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import db
from .timeutil import utcnow


class AuditEvent(db.Model):
    __tablename__ = "audit_event"
    __scope_column__ = "institution_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(unique=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), index=True)
    actor_name: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institution.id"), index=True)
    summary: Mapped[dict] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(db.Model):
    """One row. Updating it first serialises writers of the chain on SQLite and PostgreSQL
    alike (a row lock there, the write lock here), so two requests never fork the chain."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


def refuse_change(mapper, connection, target):  # pragma: no cover - guarded behaviour
    """Mapper listener (``portal/session_events.py``): audit events are never updated or deleted."""
    raise RuntimeError("audit events are append-only")


GENESIS = "0" * 64


def _canonical(ev: AuditEvent) -> bytes:
    body = {
        "seq": ev.seq,
        "at": ev.at.isoformat(timespec="microseconds"),
        "actor_id": ev.actor_id,
        "actor_name": ev.actor_name,
        "action": ev.action,
        "object_type": ev.object_type,
        "object_id": ev.object_id,
        "institution_id": ev.institution_id,
        "summary": ev.summary,
        "prev_hash": ev.prev_hash,
    }
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def event_hash(ev: AuditEvent) -> str:
    return hashlib.sha256(_canonical(ev)).hexdigest()


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def record_event(actor, action: str, obj_type: str, obj_id: Any, summary: dict | None = None,
                 *, institution_id: int | None = None) -> AuditEvent:
    """Append one event. ``actor`` is a User or None for the system (commands, daily run)."""
    session = db.session
    # Take the chain's lock first: the UPDATE blocks a concurrent writer until we commit.
    result = session.execute(update(AuditChainHead).where(AuditChainHead.id == 1)
                             .values(seq=AuditChainHead.seq + 1)
                             .execution_options(synchronize_session=False))
    if result.rowcount == 0:
        session.add(AuditChainHead(id=1, seq=1, last_hash=GENESIS))
        session.flush()
    head = session.execute(select(AuditChainHead).where(AuditChainHead.id == 1)
                           .execution_options(populate_existing=True)).scalar_one()
    ev = AuditEvent(
        seq=head.seq,
        at=utcnow(),
        actor_id=getattr(actor, "id", None),
        actor_name=getattr(actor, "username", None) or "system",
        action=action,
        object_type=obj_type,
        object_id=str(obj_id),
        institution_id=institution_id,
        summary=_jsonable(summary or {}),
        prev_hash=head.last_hash,
    )
    ev.hash = event_hash(ev)
    head.last_hash = ev.hash
    session.add(ev)
    session.flush()
    return ev


@dataclass
class LogProblem:
    seq: int | None
    event_id: int | None
    problem: str

    def as_dict(self) -> dict:
        return {"seq": self.seq, "event_id": self.event_id, "problem": self.problem}


def verify_log(batch: int = 5000) -> tuple[int, list[LogProblem]]:
    """Walk the whole chain in order. Returns (events checked, problems)."""
    problems: list[LogProblem] = []
    prev = GENESIS
    expected_seq = 1
    count = 0
    last_id = 0
    while True:
        rows = db.session.execute(
            select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch)
        ).scalars().all()
        if not rows:
            break
        for ev in rows:
            count += 1
            last_id = ev.id
            if ev.seq != expected_seq:
                problems.append(LogProblem(ev.seq, ev.id, f"sequence gap: expected {expected_seq}, found {ev.seq} (an event was deleted)"))
            if ev.prev_hash != prev:
                problems.append(LogProblem(ev.seq, ev.id, "previous-hash link broken (an event before it was changed or removed)"))
            if event_hash(ev) != ev.hash:
                problems.append(LogProblem(ev.seq, ev.id, "content does not match its hash (the event was edited)"))
            prev = ev.hash
            expected_seq = ev.seq + 1
        db.session.expunge_all()
    head = db.session.get(AuditChainHead, 1)
    if head is not None and (head.seq != expected_seq - 1 or head.last_hash != prev):
        problems.append(LogProblem(head.seq, None, "the newest events are missing (chain head is ahead of the log)"))
    return count, problems
