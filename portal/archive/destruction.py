"""Destruction of credit-file documents (销毁), and when the rules allow it.

appraisal (a draft list with the appraisal opinion, 鉴定) → proposed → approved by someone other
than the proposer → confirmed by two supervisors (监销) from two departments → executed.

A document may be listed, and is destroyed at execution, only if every check of
``destruction_blockers`` passes at that moment: it is archived; its retention is not permanent
and has run out, counted from 1 January of the year after its loan was settled or written off;
every loan it belongs to is settled or written off; no hold covers it; it is not lent out or on
an open transfer. Execution keeps the document row as a tombstone, deletes the object after the
commit, and stores the destruction list PDF for good.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from flask_babel import gettext as _
from sqlalchemy import Select, select

from ..accounts.models import Institution, User
from ..accounts.scope import can, check, get_scoped_or_404, in_scope, institution_visible
from ..audit_trail import record_event
from ..errors import InvalidInput, PermissionDenied, WrongState, not_found
from ..extensions import db
from ..labels import label
from ..loans.models import Loan
from ..reports.pdf import render_pdf
from ..timeutil import local_today, utcnow
from .holds import active_holds_for
from .labels import doc_type_names, retention_label
from .models import (DESTRUCTION_TRANSITIONS, DestructionItem, DestructionList, DestructionState, DocState,
                     Document, Lending, LendingState, Transfer, TransferItem, lending_item)
from .services import current_store, delete_after_commit, doc_ref, lock_for_update, store_list_file
from .transfer import OPEN_STATES as OPEN_TRANSFER_STATES

OPEN_LIST_STATES = (DestructionState.DRAFT.value, DestructionState.PROPOSED.value, DestructionState.APPROVED.value,
                    DestructionState.CONFIRMED.value)


@dataclass
class Eligibility:
    blockers: list[str]
    closed_on: date | None = None
    expires_on: date | None = None

    @property
    def eligible(self) -> bool:
        return not self.blockers


def retention_expires_on(closed_on: date, years: int) -> date:
    """Retention runs from 1 January of the year after settlement; destruction is allowed on
    and after the returned date."""
    return date(closed_on.year + 1 + years, 1, 1)


def destruction_blockers(doc: Document, today: date | None = None) -> Eligibility:
    """Every reason this document may not be destroyed today (an empty list: it may)."""
    today = today or local_today()
    ref = doc_ref(doc)
    blockers: list[str] = []
    if doc.state != DocState.ARCHIVED.value:
        blockers.append(_("%(ref)s is %(state)s, not archived.", ref=ref, state=label(doc.state, "doc_state")))
    if doc.retention_years is None:
        blockers.append(_("%(ref)s is kept permanently.", ref=ref))
    loans = [doc.loan] if doc.loan is not None else list(db.session.execute(
        select(Loan).where(Loan.borrower_id == doc.borrower_id)).scalars())
    closed_on = None
    if not loans:
        blockers.append(_("%(ref)s belongs to no loan, so its retention has no start.", ref=ref))
    for loan in loans:
        if not loan.is_closed:
            blockers.append(_("Loan %(no)s is %(status)s, not settled or written off; its documents are kept.",
                              no=loan.contract_no, status=label(loan.status, "loan_status")))
        elif loan.settled_on is None:
            blockers.append(_("Loan %(no)s has no settlement date, so the retention period cannot be counted.",
                              no=loan.contract_no))
        else:
            closed_on = max(closed_on or loan.settled_on, loan.settled_on)
    expires_on = None
    if closed_on is not None and doc.retention_years is not None and not any(not ln.is_closed for ln in loans):
        expires_on = retention_expires_on(closed_on, doc.retention_years)
        if today < expires_on:
            blockers.append(_("The retention period of %(ref)s (%(years)s from 1 January %(start)d) runs until "
                              "%(end)s.", ref=ref, years=retention_label(doc.retention_years),
                              start=closed_on.year + 1, end=expires_on.isoformat()))
    for hold in active_holds_for(doc):
        blockers.append(_("%(ref)s is under a %(kind)s placed on %(day)s: %(reason)s", ref=ref,
                          kind=label(hold.kind, "hold_kind").lower(), day=hold.placed_at.date().isoformat(),
                          reason=hold.reason))
    lent = db.session.execute(
        select(Lending.id).join(lending_item, lending_item.c.lending_id == Lending.id)
        .where(lending_item.c.document_id == doc.id, Lending.state == LendingState.ISSUED.value)).first()
    if lent is not None:
        blockers.append(_("%(ref)s is out on lending #%(id)d.", ref=ref, id=lent.id))
    moving = db.session.execute(
        select(Transfer.id).join(TransferItem).where(TransferItem.document_id == doc.id,
                                                     Transfer.state.in_(OPEN_TRANSFER_STATES))).first()
    if moving is not None:
        blockers.append(_("%(ref)s is on open transfer #%(id)d.", ref=ref, id=moving.id))
    return Eligibility([str(b) for b in blockers], closed_on, expires_on)


def _move(actor: User, dl: DestructionList, new_state: str, action: str, summary: dict | None = None) -> None:
    if new_state not in DESTRUCTION_TRANSITIONS[dl.state]:
        raise WrongState(_("Destruction list #%(id)d is at “%(state)s”; this step is not possible now.", id=dl.id,
                           state=label(dl.state, "destruction_state")))
    old = dl.state
    dl.state = new_state
    db.session.flush()
    record_event(actor, action, "archive_destruction_list", dl.id, {"from": old, "to": new_state, **(summary or {})},
                 institution_id=dl.institution_id)


def _in_scope(actor: User, dl: DestructionList) -> None:
    if not institution_visible(actor, dl.institution):
        raise not_found()
    # Every step on a list passes here first: wait for a concurrent step on it to end and decide
    # on its committed state (one approval, one first supervisor, one execution).
    lock_for_update(dl)


def _recheck(dl: DestructionList) -> None:
    problems = []
    for item in dl.items:
        problems += destruction_blockers(item.document).blockers
    if problems:
        raise WrongState(_("Destruction list #%(id)d holds documents that may not be destroyed now.", id=dl.id),
                         details=problems)


def lists_query(user: User) -> Select:
    return select(DestructionList).where(in_scope(DestructionList.institution_id, user))


def get_list_or_404(user: User, list_id: int) -> DestructionList:
    """The destruction list, if it lies in the user's scope; else 404."""
    return get_scoped_or_404(DestructionList, list_id, user)


def eligible_for_list(user: User, dl: DestructionList) -> list[tuple[Document, Eligibility]]:
    """What the user may still add to the list: while it is a draft and they may propose, the
    documents ``eligible_documents`` finds within the list's institution."""
    if dl.state != DestructionState.DRAFT.value or not can(user, "destruction.propose"):
        return []
    return [(d, e) for d, e in eligible_documents(user) if d.institution.path.startswith(dl.institution.path)]


def eligible_documents(user: User, limit: int = 200) -> list[tuple[Document, Eligibility]]:
    """Archived, non-permanent documents in scope whose retention has run out and nothing
    else blocks, not already on an open list."""
    listed = select(DestructionItem.document_id).join(DestructionList).where(
        DestructionList.state.in_(OPEN_LIST_STATES))
    candidates = db.session.execute(
        select(Document).where(in_scope(Document.institution_id, user), Document.state == DocState.ARCHIVED.value,
                               Document.retention_years.is_not(None), Document.id.not_in(listed))
        .order_by(Document.archive_number).limit(limit * 5)).scalars()
    result = []
    for doc in candidates:
        elig = destruction_blockers(doc)
        if elig.eligible:
            result.append((doc, elig))
            if len(result) >= limit:
                break
    return result


def create_destruction_list(actor: User, institution: Institution, appraisal: str) -> DestructionList:
    """Open the appraisal: a draft list with the appraisal opinion (鉴定意见)."""
    check(actor, "destruction.propose")
    if not institution_visible(actor, institution):
        raise not_found()
    appraisal = (appraisal or "").strip()
    if not appraisal:
        raise InvalidInput(_("Write the appraisal opinion: why these documents need not be kept."))
    dl = DestructionList(institution_id=institution.id, appraisal=appraisal[:5000], proposer_id=actor.id,
                         state=DestructionState.DRAFT.value)
    db.session.add(dl)
    db.session.flush()
    record_event(actor, "archive.destruction_create", "archive_destruction_list", dl.id,
                 {"appraisal": dl.appraisal}, institution_id=institution.id)
    return dl


def add_to_destruction_list(actor: User, dl: DestructionList, documents: list[Document]) -> DestructionList:
    """List documents for destruction; any that may not be destroyed refuses the whole step,
    with every reason shown."""
    check(actor, "destruction.propose")
    _in_scope(actor, dl)
    if dl.state != DestructionState.DRAFT.value:
        raise WrongState(_("Documents are added only while the list is in appraisal."))
    if not documents:
        raise InvalidInput(_("Choose at least one document."))
    present = {item.document_id for item in dl.items}
    problems: list[str] = []
    names = doc_type_names(dl.institution, chinese=True)  # the list is a record, kept as written
    for doc in documents:
        if not institution_visible(actor, doc.institution) or not doc.institution.path.startswith(dl.institution.path):
            raise not_found()
        if doc.id in present:
            continue
        other = db.session.execute(
            select(DestructionList.id).join(DestructionItem)
            .where(DestructionItem.document_id == doc.id, DestructionList.state.in_(OPEN_LIST_STATES))).first()
        if other is not None:
            problems.append(_("%(ref)s is already on destruction list #%(id)d.", ref=doc_ref(doc), id=other.id))
            continue
        elig = destruction_blockers(doc)
        if not elig.eligible:
            problems += elig.blockers
            continue
        dl.items.append(DestructionItem(
            document_id=doc.id, archive_number=doc.archive_number, doc_type_name=names.get(doc.doc_type, doc.doc_type),
            borrower_name=doc.borrower.name, contract_no=doc.loan.contract_no if doc.loan else None,
            retention_code=doc.retention_code, closed_on=elig.closed_on, expired_on=elig.expires_on))
    if problems:
        raise InvalidInput(_("Destruction refused: the documents below may not be destroyed."), details=problems)
    db.session.flush()
    record_event(actor, "archive.destruction_list_items", "archive_destruction_list", dl.id,
                 {"documents": [doc_ref(d) for d in documents]}, institution_id=dl.institution_id)
    return dl


def remove_from_destruction_list(actor: User, dl: DestructionList, item: DestructionItem) -> DestructionList:
    check(actor, "destruction.propose")
    _in_scope(actor, dl)
    if dl.state != DestructionState.DRAFT.value or item.list_id != dl.id:
        raise WrongState(_("Documents are removed only while the list is in appraisal."))
    ref = item.archive_number or f"#{item.document_id}"
    dl.items.remove(item)
    db.session.flush()
    record_event(actor, "archive.destruction_unlist", "archive_destruction_list", dl.id, {"document": ref},
                 institution_id=dl.institution_id)
    return dl


def propose_destruction(actor: User, dl: DestructionList) -> DestructionList:
    check(actor, "destruction.propose")
    _in_scope(actor, dl)
    if not dl.items:
        raise InvalidInput(_("The list is empty."))
    _recheck(dl)
    dl.proposed_at = utcnow()
    _move(actor, dl, DestructionState.PROPOSED.value, "archive.destruction_propose", {"documents": len(dl.items)})
    return dl


def _decider(actor: User, dl: DestructionList) -> None:
    check(actor, "destruction.approve")
    _in_scope(actor, dl)
    if actor.id == dl.proposer_id:
        raise PermissionDenied(_("You proposed this list, so someone else must approve it."))


def approve_destruction(actor: User, dl: DestructionList, note: str = "") -> DestructionList:
    _decider(actor, dl)
    _recheck(dl)
    dl.decided_by_id, dl.decided_at, dl.decision_note = actor.id, utcnow(), (note or "").strip()[:2000] or None
    _move(actor, dl, DestructionState.APPROVED.value, "archive.destruction_approve", {"note": dl.decision_note})
    return dl


def reject_destruction(actor: User, dl: DestructionList, note: str) -> DestructionList:
    _decider(actor, dl)
    note = (note or "").strip()
    if not note:
        raise InvalidInput(_("Give the reason for rejecting the list."))
    dl.decided_by_id, dl.decided_at, dl.decision_note = actor.id, utcnow(), note[:2000]
    _move(actor, dl, DestructionState.REJECTED.value, "archive.destruction_reject", {"note": note})
    return dl


def confirm_destruction(actor: User, dl: DestructionList) -> DestructionList:
    """监销: a supervisor confirms; the second, from another department, completes the step."""
    check(actor, "destruction.confirm")
    _in_scope(actor, dl)
    if dl.state != DestructionState.APPROVED.value:
        raise WrongState(_("Supervisors confirm an approved list; this one is at “%(state)s”.",
                           state=label(dl.state, "destruction_state")))
    if actor.id == dl.proposer_id:
        raise PermissionDenied(_("The proposer cannot supervise the destruction of their own list."))
    department = (actor.department or "").strip()
    if not department:
        raise PermissionDenied(_("Your user record names no department; supervisors must come from two "
                                 "departments. Ask your administrator to set it."))
    if dl.supervisor1_id is None:
        dl.supervisor1_id, dl.supervisor1_department, dl.supervisor1_at = actor.id, department, utcnow()
        db.session.flush()
        record_event(actor, "archive.destruction_supervise", "archive_destruction_list", dl.id,
                     {"department": department, "supervisor": 1}, institution_id=dl.institution_id)
        return dl
    if actor.id == dl.supervisor1_id:
        raise PermissionDenied(_("You already confirmed; a second supervisor must confirm."))
    if department == dl.supervisor1_department:
        raise PermissionDenied(_("The second supervisor must come from another department than %(dept)s.",
                                 dept=dl.supervisor1_department))
    dl.supervisor2_id, dl.supervisor2_department, dl.supervisor2_at = actor.id, department, utcnow()
    _move(actor, dl, DestructionState.CONFIRMED.value, "archive.destruction_supervise",
          {"department": department, "supervisor": 2})
    return dl


def execute_destruction(actor: User, dl: DestructionList) -> DestructionList:
    """Destroy: every document checked once more; tombstones kept; objects deleted after the
    commit; the list itself stored as a PDF for good."""
    check(actor, "destruction.execute")
    _in_scope(actor, dl)
    if dl.state != DestructionState.CONFIRMED.value:
        raise WrongState(_("Only a list confirmed by two supervisors is executed; this one is at “%(state)s”.",
                           state=label(dl.state, "destruction_state")))
    _recheck(dl)
    now = utcnow()
    dl.executed_by_id, dl.executed_at = actor.id, now
    store = current_store()
    for item in dl.items:
        doc = item.document
        doc.state, doc.state_changed_at = DocState.DESTROYED.value, now
        doc.removed_at, doc.destruction_list_id = now, dl.id
        doc.removal_reason = f"销毁清册 #{dl.id}"
        record_event(actor, "archive.destroy", "archive_document", doc.id,
                     {"from": DocState.ARCHIVED.value, "to": DocState.DESTROYED.value, "list": dl.id,
                      "sha256": doc.sha256}, institution_id=doc.institution_id)
        delete_after_commit(db.session(), store, doc.object_key)
    db.session.flush()
    list_file = store_list_file(actor, dl.institution_id, "destruction_list",
                                f"销毁清册 #{dl.id} {dl.institution.name}", destruction_list_pdf(dl))
    dl.list_file_id = list_file.id
    _move(actor, dl, DestructionState.EXECUTED.value, "archive.destruction_execute",
          {"documents": len(dl.items), "list_sha256": list_file.sha256})
    return dl


def cancel_destruction(actor: User, dl: DestructionList) -> DestructionList:
    if actor.id != dl.proposer_id:
        check(actor, "destruction.approve")
    _in_scope(actor, dl)
    _move(actor, dl, DestructionState.CANCELLED.value, "archive.destruction_cancel")
    return dl


def destruction_list_pdf(dl: DestructionList) -> bytes:
    return render_pdf("reports/archive_destruction.html", title=_("Destruction list"),
                      institution_name=dl.institution.name, dl=dl)
