"""Legal and audit holds (冻结) on a loan or a credit file: placed and lifted with a reason.

While a hold is on, nothing it covers can be destroyed. A hold on a loan covers the documents
of that loan and the borrower's documents tied to no loan; a hold on a credit file covers all
of its documents.
"""
from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from ..accounts.models import User
from ..accounts.scope import check, in_scope, institution_visible
from ..audit_trail import record_event
from ..errors import InvalidInput, WrongState, not_found
from ..extensions import db
from ..loans.models import Loan
from ..timeutil import utcnow
from .models import Document, Hold, Volume

HOLD_KINDS = ("legal", "audit")


def place_hold(actor: User, *, kind: str, reason: str, loan: Loan | None = None,
               volume: Volume | None = None) -> Hold:
    check(actor, "hold.manage")
    if kind not in HOLD_KINDS:
        raise InvalidInput(_("Unknown kind of hold %(kind)s.", kind=kind))
    if (loan is None) == (volume is None):
        raise InvalidInput(_("A hold is placed on one loan or on one credit file."))
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("Give the reason for the hold."))
    institution = loan.branch if loan is not None else volume.institution
    if not institution_visible(actor, institution):
        raise not_found()
    hold = Hold(kind=kind, reason=reason[:2000], loan_id=loan.id if loan else None,
                volume_id=volume.id if volume else None, institution_id=institution.id, placed_by_id=actor.id)
    db.session.add(hold)
    db.session.flush()
    record_event(actor, "archive.hold_place", "archive_hold", hold.id,
                 {"kind": kind, "loan": loan.contract_no if loan else None,
                  "volume": volume.id if volume else None, "reason": hold.reason},
                 institution_id=institution.id)
    return hold


def lift_hold(actor: User, hold: Hold, reason: str) -> Hold:
    check(actor, "hold.manage")
    if not institution_visible(actor, hold.institution):
        raise not_found()
    if not hold.active:
        raise WrongState(_("This hold was already lifted."))
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("Give the reason for lifting the hold."))
    hold.lifted_at = utcnow()
    hold.lifted_by_id = actor.id
    hold.lift_reason = reason[:2000]
    db.session.flush()
    record_event(actor, "archive.hold_lift", "archive_hold", hold.id, {"reason": hold.lift_reason},
                 institution_id=hold.institution_id)
    return hold


def holds_in_scope(user: User, *, lifted_too: bool = False, limit: int = 500) -> list[Hold]:
    """The holds of the user's scope, with their loan or credit file, latest first; those still
    on unless ``lifted_too``."""
    stmt = select(Hold).where(in_scope(Hold.institution_id, user)).options(
        selectinload(Hold.loan), selectinload(Hold.volume).selectinload(Volume.borrower))
    if not lifted_too:
        stmt = stmt.where(Hold.lifted_at.is_(None))
    return list(db.session.execute(stmt.order_by(Hold.placed_at.desc()).limit(limit)).scalars())


def active_holds_for(doc: Document) -> list[Hold]:
    """The holds that keep this document from destruction."""
    loan_cond = (Hold.loan_id == doc.loan_id) if doc.loan_id is not None else Hold.loan_id.in_(
        select(Loan.id).where(Loan.borrower_id == doc.borrower_id))
    return list(db.session.execute(
        select(Hold).where(Hold.lifted_at.is_(None), or_(Hold.volume_id == doc.volume_id, loan_cond))
        .order_by(Hold.placed_at)).scalars())
