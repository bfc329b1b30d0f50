"""Closing a loan: settlement (结清), write-off (核销) with its approval and papers, and the final
evaluation (总结评价). Closing a loan also closes what was still open on it."""
from __future__ import annotations

from datetime import date

from flask_babel import gettext as _
from sqlalchemy import select, update

from ..accounts.models import User
from ..accounts.scope import scoped
from ..audit_trail import record_event
from ..errors import InvalidInput, PermissionDenied, WrongState
from ..extensions import db
from ..loans.models import CLOSED_LOAN_STATUSES, Loan, LoanStatus
from ..loans.services import loan_facts
from ..reports.pdf import render_pdf
from ..rules.lookup import rules_for
from ..timeutil import local_today, utcnow
from .common import describe_roles, named_by, require_named, require_open
from .files import file_into_credit_file, keep_and_file, keep_file, read_upload, safe_filename
from .handover import officer_history
from .models import (INSPECTION_TODO, WARNING_ACTIVE, ClassificationReview, CollectionTask, Inspection,
                     InspectionStatus, LoanCondition, LoanEvaluation, LoanNotice, PostloanFile, ReviewStatus,
                     RiskWarning, WarningAction, WarningStatus, WriteOff, WriteOffStatus)
from .state import Changes

MAX_TEXT = 4000
OUTCOMES = ("repaid_on_time", "repaid_late", "recovered_by_enforcement", "written_off")
MANAGEMENT = ("good", "adequate", "poor")


def close_open_items(loans: list[Loan], as_of: date, changes: Changes) -> None:
    """A closed loan has nothing left to do: inspections not done are cancelled, episodes end,
    warnings are lifted, collection tasks close, notices and rule-opened reviews are dropped."""
    ids = [loan.id for loan in loans if loan.status in CLOSED_LOAN_STATUSES]
    if not ids:
        return
    session = db.session
    result = session.execute(update(Inspection).where(Inspection.loan_id.in_(ids), Inspection.status.in_(INSPECTION_TODO))
                             .values(status=InspectionStatus.CANCELLED.value).execution_options(synchronize_session="fetch"))
    changes["inspections_cancelled"] += result.rowcount or 0
    result = session.execute(update(LoanCondition).where(LoanCondition.loan_id.in_(ids), LoanCondition.cleared_on.is_(None))
                             .values(cleared_on=as_of).execution_options(synchronize_session="fetch"))
    changes["conditions_cleared"] += result.rowcount or 0
    now = utcnow()
    for warning in session.execute(select(RiskWarning).where(RiskWarning.loan_id.in_(ids),
                                                             RiskWarning.status.in_(WARNING_ACTIVE))).scalars():
        warning.status = WarningStatus.LIFTED.value
        warning.closed_at = now
        session.add(WarningAction(warning=warning, action="lift", note=_("Lifted: the loan was closed.")))
        changes["warnings_lifted"] += 1
    result = session.execute(update(CollectionTask).where(CollectionTask.loan_id.in_(ids), CollectionTask.status == "open")
                             .values(status="closed", closed_on=as_of, close_reason="loan_closed")
                             .execution_options(synchronize_session="fetch"))
    changes["collection_tasks_closed"] += result.rowcount or 0
    result = session.execute(update(LoanNotice).where(LoanNotice.loan_id.in_(ids), LoanNotice.status == "pending")
                             .values(status="cancelled").execution_options(synchronize_session="fetch"))
    changes["notices_cancelled"] += result.rowcount or 0
    result = session.execute(update(ClassificationReview).where(
        ClassificationReview.loan_id.in_(ids), ClassificationReview.status == ReviewStatus.PENDING.value)
        .values(status=ReviewStatus.SUPERSEDED.value).execution_options(synchronize_session="fetch"))
    changes["reviews_superseded"] += result.rowcount or 0
    session.flush()


# --- settlement ---------------------------------------------------------------------------

def settle_loan(actor: User, loan: Loan, settled_on: date, note: str = "") -> PostloanFile:
    """Record full repayment; the settlement certificate (结清证明) is made and filed."""
    require_open(loan)
    today = local_today()
    if settled_on > today or settled_on < loan.disbursed_on:
        raise InvalidInput(_("The settlement date must lie between disbursement (%(d)s) and today.", d=loan.disbursed_on))
    before = {"status": loan.status, "balance_fen": loan.balance_fen, "days_past_due": loan.days_past_due,
              "interest_arrears_fen": loan.interest_arrears_fen}
    loan.status = LoanStatus.SETTLED.value
    loan.settled_on = settled_on
    loan.balance_fen = 0
    loan.days_past_due = 0
    loan.interest_arrears_fen = 0
    db.session.flush()
    changes = Changes()
    close_open_items([loan], today, changes)
    rules = rules_for(loan)
    doc = rules.document_type("settlement_certificate")
    data = render_pdf("reports/postloan_settlement.html", title=doc.name_zh if doc else _("Settlement certificate"),
                      institution_name=loan.branch.name, loan=loan, note=(note or "").strip(), before=before)
    record = keep_and_file(actor, loan, owner_kind="settlement", owner_id=loan.id, doc_type="settlement_certificate",
                           filename=safe_filename(f"settlement_certificate-{loan.contract_no}.pdf"), data=data)
    record_event(actor, "loan.settle", "loan", loan.contract_no,
                 {"settled_on": settled_on, "before": before, "closed_items": dict(changes), "file": record.id},
                 institution_id=loan.branch_id)
    return record


# --- write-off ----------------------------------------------------------------------------

def write_off_roles(loan: Loan):
    return rules_for(loan).responsibility_roles(loan_facts(loan)).write_off_approval


def request_write_off(actor: User, loan: Loan, reason: str, evidence: list) -> WriteOff:
    """Ask for a write-off with the reason and the evidence (judgments, certificates of loss …)."""
    require_open(loan)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("Give the grounds for the write-off."))
    if db.session.execute(select(WriteOff.id).where(WriteOff.loan_id == loan.id,
                                                    WriteOff.status == WriteOffStatus.REQUESTED.value)).first():
        raise WrongState(_("A write-off of this loan is already waiting for approval."))
    files = [read_upload(storage) for storage in evidence if storage and storage.filename]
    if not files:
        raise InvalidInput(_("Attach the evidence for the write-off."))
    write_off = WriteOff(loan=loan, branch_id=loan.branch_id, status=WriteOffStatus.REQUESTED.value,
                         principal_fen=loan.balance_fen, interest_fen=loan.interest_arrears_fen,
                         reason=reason[:MAX_TEXT], requested_by_id=actor.id)
    db.session.add(write_off)
    db.session.flush()
    for data, media_type, name in files:
        keep_file(actor, branch_id=loan.branch_id, loan=loan, owner_kind="write_off", owner_id=write_off.id,
                  doc_type="write_off_evidence", filename=name, data=data, media_type=media_type, generated=False)
    record_event(actor, "write_off.request", "write_off", write_off.id,
                 {"loan": loan.contract_no, "principal_fen": write_off.principal_fen, "evidence": len(files)},
                 institution_id=loan.branch_id)
    return write_off


def write_off_files(write_off: WriteOff) -> list[PostloanFile]:
    return list(db.session.execute(select(PostloanFile).where(
        PostloanFile.owner_kind == "write_off", PostloanFile.owner_id == write_off.id).order_by(PostloanFile.id)).scalars())


def can_decide_write_off(user: User, write_off: WriteOff) -> bool:
    return (write_off.status == WriteOffStatus.REQUESTED.value and write_off.requested_by_id != user.id
            and named_by(write_off_roles(write_off.loan), user))


def decide_write_off(actor: User, write_off: WriteOff, approve: bool, note: str) -> WriteOff:
    """Approval by the roles the union's rules name: the loan is written off, and the application,
    the approval and the evidence are filed into the credit file. Or rejection, with the reason."""
    if write_off.status != WriteOffStatus.REQUESTED.value:
        raise WrongState(_("This write-off has already been decided."))
    loan = write_off.loan
    require_named(write_off_roles(loan), actor, _("approving write-offs"))
    if write_off.requested_by_id == actor.id:
        raise PermissionDenied(_("You asked for this write-off; someone else approves it."))
    note = (note or "").strip()
    if not approve and not note:
        raise InvalidInput(_("Give the reason for rejecting the write-off."))
    write_off.decided_by_id = actor.id
    write_off.decided_at = utcnow()
    write_off.decision_note = note[:MAX_TEXT] or None
    if not approve:
        write_off.status = WriteOffStatus.REJECTED.value
        db.session.flush()
        record_event(actor, "write_off.reject", "write_off", write_off.id, {"loan": loan.contract_no, "note": note},
                     institution_id=loan.branch_id)
        return write_off
    require_open(loan)
    write_off.status = WriteOffStatus.APPROVED.value
    loan.status = LoanStatus.WRITTEN_OFF.value
    db.session.flush()
    close_open_items([loan], local_today(), Changes())
    rules = rules_for(loan)
    evidence = write_off_files(write_off)
    for doc_type in ("write_off_application", "write_off_approval"):
        doc = rules.document_type(doc_type)
        data = render_pdf("reports/postloan_write_off.html", title=doc.name_zh if doc else doc_type,
                          institution_name=loan.branch.name, write_off=write_off, loan=loan, part=doc_type,
                          evidence=evidence, approvers=describe_roles(write_off_roles(loan)))
        keep_and_file(actor, loan, owner_kind="write_off", owner_id=write_off.id, doc_type=doc_type,
                      filename=safe_filename(f"{doc_type}-{loan.contract_no}.pdf"), data=data)
    for record in evidence:
        file_into_credit_file(actor, loan, record)
    record_event(actor, "write_off.approve", "write_off", write_off.id,
                 {"loan": loan.contract_no, "principal_fen": write_off.principal_fen}, institution_id=loan.branch_id)
    return write_off


def write_offs_in_scope(user: User, status: str | None = None) -> list[WriteOff]:
    stmt = scoped(select(WriteOff), WriteOff, user)
    if status:
        stmt = stmt.where(WriteOff.status == status)
    return list(db.session.execute(stmt.order_by(WriteOff.requested_at.desc())).scalars())


# --- final evaluation ---------------------------------------------------------------------

def submit_evaluation(actor: User, loan: Loan, *, outcome: str, management: str, responsibility_found: bool,
                      summary: str, lessons: str) -> LoanEvaluation:
    """The final evaluation form of a closed loan; its PDF is filed into the credit file."""
    if loan.status not in CLOSED_LOAN_STATUSES:
        raise WrongState(_("The final evaluation is written after the loan is settled or written off."))
    if db.session.execute(select(LoanEvaluation.id).where(LoanEvaluation.loan_id == loan.id)).first():
        raise WrongState(_("This loan has already been evaluated."))
    errors = []
    if outcome not in OUTCOMES:
        errors.append(_("Choose the outcome."))
    if management not in MANAGEMENT:
        errors.append(_("Rate how the loan was managed."))
    summary = (summary or "").strip()
    if not summary:
        errors.append(_("Write the summary."))
    if errors:
        raise InvalidInput(errors[0], details=errors)
    evaluation = LoanEvaluation(loan=loan, branch_id=loan.branch_id, outcome=outcome, management=management,
                                responsibility_found=bool(responsibility_found), summary=summary[:MAX_TEXT],
                                lessons=(lessons or "").strip()[:MAX_TEXT], evaluated_by_id=actor.id,
                                evaluated_on=local_today())
    db.session.add(evaluation)
    db.session.flush()
    rules = rules_for(loan)
    doc = rules.document_type("evaluation")
    data = render_pdf("reports/postloan_evaluation.html", title=doc.name_zh if doc else _("Final evaluation"),
                      institution_name=loan.branch.name, evaluation=evaluation, loan=loan,
                      periods=officer_history(loan))
    record = keep_and_file(actor, loan, owner_kind="evaluation", owner_id=evaluation.id, doc_type="evaluation",
                           filename=safe_filename(f"evaluation-{loan.contract_no}.pdf"), data=data)
    evaluation.file_id = record.id
    db.session.flush()
    record_event(actor, "loan.evaluate", "loan", loan.contract_no,
                 {"outcome": outcome, "management": management, "responsibility_found": bool(responsibility_found)},
                 institution_id=loan.branch_id)
    return evaluation


def evaluation_of(loan: Loan) -> LoanEvaluation | None:
    return db.session.execute(select(LoanEvaluation).where(LoanEvaluation.loan_id == loan.id)).scalar_one_or_none()
