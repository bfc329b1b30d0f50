"""Lending of archived documents (借阅/调阅): request → approval by a director or archivist other
than the requester → issue (digital: an expiring link, every open registered; paper: handed
out) → renewal (续借) → return (paper: checked back in, 当面点清). Overdue lendings are listed
and reminded (催还). The lending register (借阅登记簿) is ``register_query``.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from flask_babel import gettext as _
from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

from ..accounts.models import User
from ..accounts.scope import can, check, in_scope, institution_visible
from ..audit_trail import record_event
from ..errors import InvalidInput, PermissionDenied, WrongState, not_found
from ..extensions import db
from ..labels import label
from ..rules.lookup import rules_for
from ..timeutil import CST, local_today, utcnow
from .models import LENDING_TRANSITIONS, DocState, Document, DocumentAccess, Lending, LendingState, Volume, lending_item
from .services import doc_ref, lock_for_update

MEDIA = ("digital", "paper")


def _limits(institution) -> tuple[int, int]:
    """The union's longest lending or renewal in days and the renewals allowed (union settings
    ``lending_max_days`` and ``lending_max_renewals``; the approver may grant less)."""
    settings = rules_for(institution).settings
    return int(settings["lending_max_days"]), int(settings["lending_max_renewals"])


def _move(actor: User | None, lending: Lending, new_state: str, action: str, summary: dict | None = None) -> None:
    if new_state not in LENDING_TRANSITIONS[lending.state]:
        raise WrongState(_("Lending #%(id)d is %(state)s; this step is not possible now.", id=lending.id,
                           state=label(lending.state, "lending_state")))
    old = lending.state
    lending.state = new_state
    db.session.flush()
    record_event(actor, action, "archive_lending", lending.id, {"from": old, "to": new_state, **(summary or {})},
                 institution_id=lending.institution_id)


def _in_scope(actor: User, lending: Lending) -> None:
    if not institution_visible(actor, lending.institution):
        raise not_found()
    # Every step on a lending passes here first: wait for a concurrent step on it to end and
    # decide on its committed state, so two people approving at once give one approval.
    lock_for_update(lending)


def _days(raw, institution) -> int:
    try:
        days = int(raw)
    except (TypeError, ValueError):
        raise InvalidInput(_("Give the number of days as a whole number.")) from None
    max_days, _renewals = _limits(institution)
    if not 1 <= days <= max_days:
        raise InvalidInput(_("A lending lasts from 1 to %(max)d days.", max=max_days))
    return days


def request_lending(actor: User, volume: Volume, documents: list[Document], *, medium: str, reason: str,
                    days) -> Lending:
    """Ask to borrow archived documents of one credit file, with the reason and duration."""
    check(actor, "lending.request")
    if medium not in MEDIA:
        raise InvalidInput(_("Choose a digital copy or the paper original."))
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("Give the reason for the lending."))
    if not documents:
        raise InvalidInput(_("Choose at least one document."))
    custodians = {d.institution_id for d in documents}
    for doc in documents:
        if doc.volume_id != volume.id or not institution_visible(actor, doc.institution):
            raise not_found()
        if doc.state != DocState.ARCHIVED.value:
            raise WrongState(_("Document %(ref)s is %(state)s; only archived documents are lent.",
                               ref=doc_ref(doc), state=label(doc.state, "doc_state")))
        if medium == "paper" and not doc.paper_original:
            raise InvalidInput(_("Document %(ref)s has no paper original; ask for a digital copy.", ref=doc_ref(doc)))
    if len(custodians) != 1:
        raise InvalidInput(_("The documents are held by different institutions; request them separately."))
    days = _days(days, documents[0].institution)
    lending = Lending(institution_id=custodians.pop(), volume_id=volume.id, requester_id=actor.id, medium=medium,
                      reason=reason[:2000], days=days, state=LendingState.REQUESTED.value)
    lending.documents = list(documents)
    db.session.add(lending)
    db.session.flush()
    record_event(actor, "archive.lending_request", "archive_lending", lending.id,
                 {"medium": medium, "days": days, "reason": lending.reason,
                  "documents": [doc_ref(d) for d in documents]}, institution_id=lending.institution_id)
    return lending


def _approver(actor: User, lending: Lending) -> None:
    check(actor, "lending.approve")
    _in_scope(actor, lending)
    if actor.id == lending.requester_id:
        raise PermissionDenied(_("You asked for this lending, so someone else must decide on it."))


def approve_lending(actor: User, lending: Lending, note: str = "") -> Lending:
    _approver(actor, lending)
    lending.decided_by_id, lending.decided_at = actor.id, utcnow()
    lending.decision_note = (note or "").strip()[:2000] or None
    _move(actor, lending, LendingState.APPROVED.value, "archive.lending_approve", {"note": lending.decision_note})
    return lending


def refuse_lending(actor: User, lending: Lending, note: str) -> Lending:
    _approver(actor, lending)
    note = (note or "").strip()
    if not note:
        raise InvalidInput(_("Give the reason for refusing."))
    lending.decided_by_id, lending.decided_at, lending.decision_note = actor.id, utcnow(), note[:2000]
    _move(actor, lending, LendingState.REFUSED.value, "archive.lending_refuse", {"note": note})
    return lending


def withdraw_lending(actor: User, lending: Lending) -> Lending:
    lock_for_update(lending)
    if actor.id != lending.requester_id:
        raise PermissionDenied(_("Only the person who asked can withdraw a request."))
    _move(actor, lending, LendingState.WITHDRAWN.value, "archive.lending_withdraw")
    return lending


def issue_lending(actor: User, lending: Lending) -> Lending:
    """Hand out: a digital lending's link works until the due date; paper leaves the shelf."""
    check(actor, "lending.issue")
    _in_scope(actor, lending)
    for doc in lending.documents:
        if doc.state != DocState.ARCHIVED.value:
            raise WrongState(_("Document %(ref)s is %(state)s and can no longer be lent.", ref=doc_ref(doc),
                               state=label(doc.state, "doc_state")))
    if lending.medium == "paper":
        out = db.session.execute(
            select(Lending.id, lending_item.c.document_id).join(lending_item, lending_item.c.lending_id == Lending.id)
            .where(Lending.state == LendingState.ISSUED.value, Lending.medium == "paper", Lending.id != lending.id,
                   lending_item.c.document_id.in_([d.id for d in lending.documents]))).first()
        if out is not None:
            raise WrongState(_("The paper original of document #%(doc)d is out on lending #%(other)d.",
                               doc=out.document_id, other=out.id))
    today = local_today()
    lending.issued_by_id, lending.issued_at = actor.id, utcnow()
    lending.due_on = today + timedelta(days=lending.days)
    _move(actor, lending, LendingState.ISSUED.value, "archive.lending_issue", {"due_on": lending.due_on.isoformat()})
    return lending


def renew_lending(actor: User, lending: Lending, days) -> Lending:
    """续借: a director or archivist other than the borrower extends the due date."""
    _approver(actor, lending)
    days = _days(days, lending.institution)
    if lending.state != LendingState.ISSUED.value:
        raise WrongState(_("Only an issued lending can be renewed."))
    allowed = _limits(lending.institution)[1]
    if lending.renewals >= allowed:
        raise WrongState(_("Lending #%(id)d cannot be renewed again (renewals allowed: %(n)d); return it and "
                           "ask again.", id=lending.id, n=allowed))
    old_due = lending.due_on
    lending.due_on = max(lending.due_on, local_today()) + timedelta(days=days)
    lending.renewals += 1
    _move(actor, lending, LendingState.ISSUED.value, "archive.lending_renew",
          {"due_from": old_due.isoformat(), "due_to": lending.due_on.isoformat(), "days": days})
    return lending


def return_lending(actor: User, lending: Lending, note: str = "") -> Lending:
    """Paper comes back and the archivist checks it in; a digital lending may also be ended by
    its borrower."""
    _in_scope(actor, lending)
    if lending.medium == "paper" or actor.id != lending.requester_id:
        check(actor, "lending.issue")
    if lending.state != LendingState.ISSUED.value:  # before due_on is read: only an issued lending has one
        raise WrongState(_("Lending #%(id)d is %(state)s; this step is not possible now.", id=lending.id,
                           state=label(lending.state, "lending_state")))
    note = (note or "").strip()
    if lending.medium == "paper" and not note:
        raise InvalidInput(_("Record what was checked when the paper came back (e.g. all pages present)."))
    lending.returned_at = utcnow()
    lending.return_checked_by_id = actor.id
    lending.return_note = note[:2000] or None
    _move(actor, lending, LendingState.RETURNED.value, "archive.lending_return",
          {"note": lending.return_note, "overdue_days": max(0, (local_today() - lending.due_on).days)})
    return lending


def remind_lending(actor: User | None, lending: Lending) -> Lending:
    """催还: record a reminder to the borrower of an overdue lending."""
    if actor is not None:
        check(actor, "lending.issue")
        _in_scope(actor, lending)
    if lending.state != LendingState.ISSUED.value or lending.due_on >= local_today():
        raise WrongState(_("Lending #%(id)d is not overdue.", id=lending.id))
    lending.reminders += 1
    lending.last_reminded_at = utcnow()
    db.session.flush()
    record_event(actor, "archive.lending_remind", "archive_lending", lending.id,
                 {"due_on": lending.due_on.isoformat(), "reminders": lending.reminders},
                 institution_id=lending.institution_id)
    return lending


# --- lists -------------------------------------------------------------------------------

def lendings_query(user: User) -> Select:
    """Lendings the user may see: in scope, or their own."""
    return select(Lending).where(in_scope(Lending.institution_id, user) | (Lending.requester_id == user.id))


def get_lending_or_404(user: User, lending_id: int) -> Lending:
    """The lending, if the user may see it (``lendings_query``); else 404."""
    lending = db.session.execute(lendings_query(user).where(Lending.id == lending_id)).scalar_one_or_none()
    if lending is None:
        raise not_found()
    return lending


def awaiting_decision(user: User) -> Select:
    return lendings_query(user).where(Lending.state == LendingState.REQUESTED.value,
                                      Lending.requester_id != user.id)


def overdue_query(user: User | None, today: date | None = None) -> Select:
    stmt = select(Lending).where(Lending.state == LendingState.ISSUED.value, Lending.due_on < (today or local_today()))
    if user is not None:
        stmt = stmt.where(in_scope(Lending.institution_id, user))
    return stmt.order_by(Lending.due_on)


def register_query(user: User, start: date | None = None, end: date | None = None) -> Select:
    """借阅登记簿: every lending issued (or asked for) in the period, oldest first."""
    stmt = select(Lending).where(in_scope(Lending.institution_id, user))
    if start is not None:
        stmt = stmt.where(Lending.requested_at >= _utc_start(start))
    if end is not None:
        stmt = stmt.where(Lending.requested_at < _utc_start(end + timedelta(days=1)))
    return stmt.order_by(Lending.requested_at, Lending.id)


def register_rows(user: User, start: date | None = None, end: date | None = None, *,
                  limit: int = 5000) -> list[Lending]:
    """The register's lendings (``register_query``), with their documents and requesters."""
    return list(db.session.execute(register_query(user, start, end)
                                   .options(selectinload(Lending.documents), selectinload(Lending.requester))
                                   .limit(limit)).scalars())


def overdue_lendings(user: User) -> list[Lending]:
    """The user's scope's lendings past their due date, with their requesters, soonest due first."""
    return list(db.session.execute(overdue_query(user).options(selectinload(Lending.requester))).scalars())


def accesses_through(lending: Lending) -> list[DocumentAccess]:
    """Every look at a document made under this lending, latest first."""
    return list(db.session.execute(select(DocumentAccess).where(DocumentAccess.lending_id == lending.id)
                                   .order_by(DocumentAccess.at.desc())).scalars())


def _utc_start(day: date) -> datetime:
    """Midnight of a China date, as the naive UTC the database keeps."""
    return datetime.combine(day, time(0), tzinfo=CST).astimezone(timezone.utc).replace(tzinfo=None)


def can_open_through(user: User, lending: Lending) -> bool:
    return (lending.requester_id == user.id and lending.medium == "digital"
            and lending.state == LendingState.ISSUED.value and lending.due_on >= local_today())


def may_decide(user: User, lending: Lending) -> bool:
    return can(user, "lending.approve") and user.id != lending.requester_id
