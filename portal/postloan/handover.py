"""Handover (离职移交 / 贷款管理责任移交) and the history of who managed each loan.

A director proposes moving all or some of an officer's open loans to another officer who can
see them; the incoming officer confirms, and the outgoing officer confirms (or, for one who has
left, a director confirms on their behalf with the reason). On the second confirmation the loans,
their open inspections, warnings, collection tasks and pending notices move; the signed list is
kept and filed into each borrower's credit file, and ``loan_officer_period`` records the change.
"""
from __future__ import annotations

from datetime import date

from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.orm import joinedload

from ..accounts.models import User
from ..accounts.scope import can, get_scoped_or_404, scoped
from ..accounts.services import deactivate_user
from ..archive.services import store_generated_document
from ..audit_trail import record_event
from ..errors import InvalidInput, PermissionDenied, WrongState
from ..extensions import db
from ..loans.models import OPEN_LOAN_STATUSES, Loan
from ..reports.pdf import render_pdf
from ..rules.lookup import rules_for
from ..timeutil import local_today, utcnow
from .common import OFFICER_ROLES
from .files import keep_file, safe_filename
from .models import (INSPECTION_MOVABLE, WARNING_ACTIVE, CollectionTask, Handover, HandoverItem, HandoverStatus,
                     Inspection, LoanNotice, LoanOfficerPeriod, RiskWarning)
from .state import Changes, LoanState

MAX_TEXT = 2000


def deactivate_officer(actor: User | None, user: User) -> None:
    """Deactivate a person who left, refused while they still manage open loans: those are
    handed over first, so that no loan is left without an officer."""
    open_loans = db.session.execute(
        select(func.count()).select_from(Loan).where(Loan.officer_id == user.id,
                                                     Loan.status.in_(OPEN_LOAN_STATUSES))).scalar_one()
    if open_loans:
        raise WrongState(_("%(name)s still manages %(n)d open loans; hand them over first.",
                           name=user.display_name, n=open_loans))
    deactivate_user(actor, user)


# --- officer history ----------------------------------------------------------------------

def sync_officer_period(loan: Loan, as_of: date, st: LoanState, changes: Changes) -> None:
    """Open the loan's history at disbursement, and follow an officer change made outside a
    handover (an import that reassigns loans)."""
    if st.period is None:
        st.period = LoanOfficerPeriod(loan_id=loan.id, branch_id=loan.branch_id, officer_id=loan.officer_id,
                                      started_on=min(loan.disbursed_on, as_of))
        db.session.add(st.period)
        changes["officer_periods"] += 1
    elif st.period.officer_id != loan.officer_id:
        st.period.ended_on = as_of
        st.period = LoanOfficerPeriod(loan_id=loan.id, branch_id=loan.branch_id, officer_id=loan.officer_id,
                                      started_on=as_of)
        db.session.add(st.period)
        changes["officer_periods"] += 1


def officer_history(loan: Loan) -> list[LoanOfficerPeriod]:
    return list(db.session.execute(select(LoanOfficerPeriod).where(LoanOfficerPeriod.loan_id == loan.id)
                                   .options(joinedload(LoanOfficerPeriod.officer))
                                   .order_by(LoanOfficerPeriod.started_on, LoanOfficerPeriod.id)).scalars())


# --- handover -----------------------------------------------------------------------------

def _is_officer(user: User) -> bool:
    return user.has_role(*OFFICER_ROLES)


def open_loans_of(actor: User, officer: User) -> list[Loan]:
    return list(db.session.execute(scoped(select(Loan), Loan, actor).where(
        Loan.officer_id == officer.id, Loan.status.in_(OPEN_LOAN_STATUSES))
        .options(joinedload(Loan.borrower), joinedload(Loan.branch)).order_by(Loan.contract_no)).scalars().unique())


def propose_handover(actor: User, from_officer: User, to_officer: User, loan_ids: list[int] | None,
                     reason: str) -> Handover:
    """Propose the list. ``loan_ids`` None means every open loan of the outgoing officer."""
    if from_officer.id == to_officer.id:
        raise InvalidInput(_("The outgoing and incoming officer must be different people."))
    if not to_officer.is_active_flag or not _is_officer(to_officer):
        raise InvalidInput(_("%(name)s is not an active loan officer.", name=to_officer.display_name))
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("Say why the loans are handed over."))
    loans = open_loans_of(actor, from_officer)
    if loan_ids is not None:
        if not loan_ids:
            raise InvalidInput(_("Choose the loans to hand over, or all of them."))
        wanted = set(loan_ids)
        loans = [loan for loan in loans if loan.id in wanted]
        if len(loans) != len(wanted):
            raise InvalidInput(_("Some chosen loans are not open loans of %(name)s.", name=from_officer.display_name))
    if not loans:
        raise InvalidInput(_("%(name)s has no open loans to hand over.", name=from_officer.display_name))
    unseen = [loan.contract_no for loan in loans if not loan.branch.path.startswith(to_officer.institution.path)]
    if unseen:
        raise InvalidInput(_("%(name)s works outside the branch of these loans and could not see them: %(loans)s.",
                             name=to_officer.display_name, loans=", ".join(unseen[:10])))
    busy = db.session.execute(select(Loan.contract_no).join(HandoverItem, HandoverItem.loan_id == Loan.id)
                              .join(Handover, Handover.id == HandoverItem.handover_id)
                              .where(Handover.status == HandoverStatus.PROPOSED.value,
                                     Loan.id.in_([loan.id for loan in loans]))).scalars().all()
    if busy:
        raise WrongState(_("These loans are already on a proposed handover: %(loans)s.", loans=", ".join(busy[:10])))
    handover = Handover(institution_id=from_officer.institution_id, from_officer_id=from_officer.id,
                        to_officer_id=to_officer.id, status=HandoverStatus.PROPOSED.value, reason=reason[:MAX_TEXT],
                        proposed_by_id=actor.id,
                        items=[HandoverItem(loan_id=loan.id, balance_fen=loan.balance_fen) for loan in loans])
    db.session.add(handover)
    db.session.flush()
    record_event(actor, "handover.propose", "handover", handover.id,
                 {"from": from_officer.username, "to": to_officer.username, "loans": [l.contract_no for l in loans]},
                 institution_id=handover.institution_id)
    return handover


def confirm_handover(actor: User, handover: Handover, note: str = "") -> Handover:
    """Confirm one side: the incoming officer, the outgoing officer, or a director for an outgoing
    officer who has left (with the reason). The second confirmation completes the handover."""
    if handover.status != HandoverStatus.PROPOSED.value:
        raise WrongState(_("This handover is no longer waiting for confirmation."))
    note = (note or "").strip()
    now = utcnow()
    if actor.id == handover.to_officer_id:
        if handover.incoming_confirmed_at is not None:
            raise WrongState(_("You have already confirmed this handover."))
        handover.incoming_confirmed_by_id, handover.incoming_confirmed_at, side = actor.id, now, "incoming"
    elif actor.id == handover.from_officer_id or can(actor, "postloan.handover"):
        if handover.outgoing_confirmed_at is not None:
            raise WrongState(_("The outgoing side has already confirmed this handover."))
        if actor.id != handover.from_officer_id:
            if not note:
                raise InvalidInput(_("Confirming for the outgoing officer needs the reason they cannot confirm themselves."))
            handover.outgoing_on_behalf_note = note[:MAX_TEXT]
        handover.outgoing_confirmed_by_id, handover.outgoing_confirmed_at, side = actor.id, now, "outgoing"
    else:
        raise PermissionDenied(_("Only the two officers, or a director for an officer who has left, confirm a handover."))
    db.session.flush()
    record_event(actor, "handover.confirm", "handover", handover.id, {"side": side, "note": note},
                 institution_id=handover.institution_id)
    if handover.incoming_confirmed_at and handover.outgoing_confirmed_at:
        _complete(actor, handover)
    return handover


def cancel_handover(actor: User, handover: Handover, reason: str) -> Handover:
    if handover.status != HandoverStatus.PROPOSED.value:
        raise WrongState(_("This handover is no longer waiting for confirmation."))
    if not (can(actor, "postloan.handover") or actor.id in (handover.from_officer_id, handover.to_officer_id)):
        raise PermissionDenied(_("Your role does not allow this action."))
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("Say why the handover is cancelled."))
    handover.status = HandoverStatus.CANCELLED.value
    handover.cancelled_reason = reason[:MAX_TEXT]
    db.session.flush()
    record_event(actor, "handover.cancel", "handover", handover.id, {"reason": reason},
                 institution_id=handover.institution_id)
    return handover


def _counts(model, status_column, statuses, loan_ids) -> dict[int, int]:
    return dict(db.session.execute(select(model.loan_id, func.count()).where(
        model.loan_id.in_(loan_ids), status_column.in_(statuses)).group_by(model.loan_id)).all())


MOVABLE = (
    (Inspection, Inspection.status, INSPECTION_MOVABLE, "moved_inspections"),
    (RiskWarning, RiskWarning.status, WARNING_ACTIVE, "moved_warnings"),
    (CollectionTask, CollectionTask.status, ("open",), "moved_tasks"),
    (LoanNotice, LoanNotice.status, ("pending",), "moved_notices"),
)


def open_item_counts(loan_ids: list[int]) -> dict[str, dict[int, int]]:
    return {attr: _counts(model, column, statuses, loan_ids) for model, column, statuses, attr in MOVABLE}


def _complete(actor: User, handover: Handover) -> None:
    today = local_today()
    items = [i for i in handover.items if i.loan.status in OPEN_LOAN_STATUSES
             and i.loan.officer_id == handover.from_officer_id]
    loan_ids = [i.loan_id for i in items]
    if loan_ids:
        counts = open_item_counts(loan_ids)
        for item in items:
            for attr, by_loan in counts.items():
                setattr(item, attr, by_loan.get(item.loan_id, 0))
        for model, column, statuses, _attr in MOVABLE:
            db.session.execute(update(model).where(model.loan_id.in_(loan_ids), column.in_(statuses))
                               .values(officer_id=handover.to_officer_id).execution_options(synchronize_session="fetch"))
        for period in db.session.execute(select(LoanOfficerPeriod).where(
                LoanOfficerPeriod.loan_id.in_(loan_ids), LoanOfficerPeriod.ended_on.is_(None))).scalars():
            period.ended_on = today
        for item in items:
            item.loan.officer_id = handover.to_officer_id
            db.session.add(LoanOfficerPeriod(loan_id=item.loan_id, branch_id=item.loan.branch_id,
                                             officer_id=handover.to_officer_id, started_on=today,
                                             handover_id=handover.id))
    handover.status = HandoverStatus.COMPLETED.value
    handover.completed_on = today
    db.session.flush()
    data = render_handover_list(handover)
    record = keep_file(actor, branch_id=handover.institution_id, loan=None, owner_kind="handover",
                       owner_id=handover.id, doc_type="handover_list",
                       filename=safe_filename(f"handover_list-{handover.id}-{today}.pdf"), data=data)
    handover.file_id = record.id
    # Each credit file keeps the list that moved its loan (the same bytes twice in one file are
    # stored once by the archive).
    for item in items:
        document = store_generated_document(actor, item.loan, "handover_list", record.filename, data)
        if record.archive_document_id is None:
            record.archive_document_id = document.id
            record.filed_at = utcnow()
    db.session.flush()
    record_event(actor, "handover.complete", "handover", handover.id,
                 {"from": handover.from_officer.username, "to": handover.to_officer.username,
                  "loans": len(items), "file": record.id,
                  "moved": {attr: sum(getattr(i, attr) for i in items) for *_x, attr in MOVABLE}},
                 institution_id=handover.institution_id)


def render_handover_list(handover: Handover) -> bytes:
    """The handover list as it stands: a preview while proposed, the signed list once complete."""
    loan_ids = [i.loan_id for i in handover.items]
    counts = open_item_counts(loan_ids) if handover.status == HandoverStatus.PROPOSED.value else None
    rules = rules_for(handover.institution)
    doc = rules.document_type("handover_list")
    return render_pdf("reports/postloan_handover.html", title=doc.name_zh if doc else _("Loan handover list"),
                      institution_name=handover.institution.name, handover=handover, counts=counts,
                      total_fen=sum(i.balance_fen for i in handover.items))


def handovers_in_scope(user: User, *, status: str | None = None) -> list[Handover]:
    stmt = scoped(select(Handover), Handover, user).options(
        joinedload(Handover.from_officer), joinedload(Handover.to_officer))
    if status:
        stmt = stmt.where(Handover.status == status)
    return list(db.session.execute(stmt.order_by(Handover.proposed_at.desc())).scalars().unique())


def handovers_to_confirm(user: User) -> list[Handover]:
    """Proposed handovers waiting for this user's confirmation."""
    rows = handovers_in_scope(user, status=HandoverStatus.PROPOSED.value)
    waiting = []
    for h in rows:
        if h.to_officer_id == user.id and h.incoming_confirmed_at is None:
            waiting.append(h)
        elif h.from_officer_id == user.id and h.outgoing_confirmed_at is None:
            waiting.append(h)
    return waiting


def get_user_in_scope(actor: User, user_id: int) -> User:
    return get_scoped_or_404(User, user_id, actor)
