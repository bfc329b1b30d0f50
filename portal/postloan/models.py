"""Post-loan records: inspections, conditions, warnings, classification reviews, bucket
snapshots, collection, notices, handovers, officer history, write-offs and evaluations.

Every table carries the loan's branch (``branch_id``) as its scope column, copied from the loan
when the row is made: a loan never changes branch, so scoped queries need no join. Money is
integer fen; dates the user sees are China dates.
"""
from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..accounts.models import Institution, User
from ..extensions import db
from ..loans.models import Loan
from ..timeutil import utcnow


class InspectionKind(str, enum.Enum):
    FIRST = "first"        # 首次检查
    ROUTINE = "routine"    # 日常/定期检查
    SPECIAL = "special"    # 特别检查


class InspectionStatus(str, enum.Enum):
    OPEN = "open"              # due, nothing recorded yet
    DRAFT = "draft"            # findings saved, not submitted
    SUBMITTED = "submitted"    # done, waiting for sign-off
    SIGNED_OFF = "signed_off"
    CANCELLED = "cancelled"    # the loan closed before it was done


# An inspection still to be carried out (appears in due lists and moves on handover).
INSPECTION_TODO = (InspectionStatus.OPEN.value, InspectionStatus.DRAFT.value)
# Carried out: counts for the routine clock.
INSPECTION_DONE = (InspectionStatus.SUBMITTED.value, InspectionStatus.SIGNED_OFF.value)
INSPECTION_MOVABLE = INSPECTION_TODO + (InspectionStatus.SUBMITTED.value,)


class InspectionMethod(str, enum.Enum):
    ON_SITE = "on_site"
    OFF_SITE = "off_site"
    PHONE = "phone"


class EscalationStatus(str, enum.Enum):
    NONE = "none"
    PENDING = "pending"      # in the receiving department's queue
    REVIEWED = "reviewed"


class Inspection(db.Model):
    """One inspection of a loan, from the day it falls due to the director's sign-off."""

    __tablename__ = "inspection"
    __scope_column__ = "branch_id"
    __table_args__ = (Index("ix_inspection_loan_status", "loan_id", "status"),
                      Index("ix_inspection_officer_status_due", "officer_id", "status", "due_on"),
                      # The home page's card counts the reports waiting in the user's scope
                      # (queue_lengths): by index, not a walk over a county's inspections.
                      Index("ix_inspection_status_branch", "status", "branch_id"),
                      Index("ix_inspection_escalation", "escalation_institution_id", "escalation_status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loan.id"))
    branch_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=InspectionStatus.OPEN.value)
    due_on: Mapped[date] = mapped_column(index=True)
    raised_on: Mapped[date] = mapped_column()
    # Special inspections: the rule reasons (trigger codes) that raised it.
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    method: Mapped[str | None] = mapped_column(String(16))
    inspected_on: Mapped[date | None] = mapped_column()
    # [{"code", "label_zh", "label_en", "result": ok|problem|not_applicable, "note"}] in the
    # plugin's order, labels copied so the report reads the same if the plugin changes later.
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    conclusion: Mapped[str] = mapped_column(Text, default="")
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    submitted_at: Mapped[datetime | None] = mapped_column()
    returned_reason: Mapped[str | None] = mapped_column(Text)
    signed_off_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    signed_off_at: Mapped[datetime | None] = mapped_column()
    sign_off_opinion: Mapped[str | None] = mapped_column(Text)
    escalation_status: Mapped[str] = mapped_column(String(16), default=EscalationStatus.NONE.value)
    escalation_level: Mapped[str | None] = mapped_column(String(16))
    escalation_department: Mapped[str | None] = mapped_column(String(64))
    escalation_institution_id: Mapped[int | None] = mapped_column(ForeignKey("institution.id"))
    escalation_reason: Mapped[str | None] = mapped_column(String(255))
    escalation_reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    escalation_reviewed_at: Mapped[datetime | None] = mapped_column()
    escalation_opinion: Mapped[str | None] = mapped_column(Text)
    report_file_id: Mapped[int | None] = mapped_column(ForeignKey("postloan_file.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    loan: Mapped[Loan] = relationship()
    branch: Mapped[Institution] = relationship(foreign_keys=[branch_id])
    officer: Mapped[User | None] = relationship(foreign_keys=[officer_id])
    recorded_by: Mapped[User | None] = relationship(foreign_keys=[recorded_by_id])
    signed_off_by: Mapped[User | None] = relationship(foreign_keys=[signed_off_by_id])
    escalation_institution: Mapped[Institution | None] = relationship(foreign_keys=[escalation_institution_id])
    escalation_reviewed_by: Mapped[User | None] = relationship(foreign_keys=[escalation_reviewed_by_id])
    report_file: Mapped[PostloanFile | None] = relationship(foreign_keys=[report_file_id])

    @property
    def is_todo(self) -> bool:
        return self.status in INSPECTION_TODO

    @property
    def is_done(self) -> bool:
        return self.status in INSPECTION_DONE


class PostloanFile(db.Model):
    """A file the post-loan work produced (report, notice, list, certificate) or received
    (inspection photos, write-off evidence). The bytes are kept here until the file joins the
    credit file (``archive_document_id`` set); from then on the archive's object store holds the
    only copy, so a file destroyed with its credit file leaves no copy behind."""

    __tablename__ = "postloan_file"
    __scope_column__ = "branch_id"
    __table_args__ = (Index("ix_postloan_file_owner", "owner_kind", "owner_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    loan_id: Mapped[int | None] = mapped_column(ForeignKey("loan.id"), index=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    owner_kind: Mapped[str] = mapped_column(String(24))      # inspection, notice, handover, write_off, …
    owner_id: Mapped[int] = mapped_column()
    doc_type: Mapped[str] = mapped_column(String(48))
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # The bytes until the file is in the credit file; then the archive's object store holds them
    # (one copy, destroyed with the credit file) and this is NULL.
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    generated: Mapped[bool] = mapped_column(default=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    archive_document_id: Mapped[int | None] = mapped_column()
    filed_at: Mapped[datetime | None] = mapped_column()

    created_by: Mapped[User | None] = relationship()


class LoanCondition(db.Model):
    """An episode of a rule's trigger on a loan (overdue, interest in arrears, …): from the day it
    was first seen until the day it was seen cleared. What a rule raises, it raises once per episode."""

    __tablename__ = "loan_condition"
    __scope_column__ = "branch_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loan.id"), index=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    since: Mapped[date] = mapped_column()
    cleared_on: Mapped[date | None] = mapped_column()


class WarningStatus(str, enum.Enum):
    OPEN = "open"
    HANDLING = "handling"
    ESCALATED = "escalated"
    LIFTED = "lifted"


WARNING_ACTIVE = (WarningStatus.OPEN.value, WarningStatus.HANDLING.value, WarningStatus.ESCALATED.value)

# Signals a user may raise by hand (rules raise their trigger codes and rating downgrades too).
MANUAL_SIGNALS = ("lost_contact", "misuse_of_funds", "collateral_problem", "lawsuit", "rating_downgrade",
                  "business_trouble", "other")


class RiskWarning(db.Model):
    """An early-warning signal (风险预警) on a loan: raised, handled, escalated, lifted."""

    __tablename__ = "risk_warning"
    __scope_column__ = "branch_id"
    __table_args__ = (Index("ix_risk_warning_loan_status", "loan_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loan.id"))
    branch_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), index=True)
    signal: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))          # rule, inspection, manual
    status: Mapped[str] = mapped_column(String(16), default=WarningStatus.OPEN.value, index=True)
    details: Mapped[str] = mapped_column(Text, default="")
    raised_on: Mapped[date] = mapped_column()
    raised_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    condition_id: Mapped[int | None] = mapped_column(ForeignKey("loan_condition.id"), index=True)
    inspection_id: Mapped[int | None] = mapped_column(ForeignKey("inspection.id"))
    escalated_to_id: Mapped[int | None] = mapped_column(ForeignKey("institution.id"))
    closed_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    loan: Mapped[Loan] = relationship()
    officer: Mapped[User | None] = relationship(foreign_keys=[officer_id])
    raised_by: Mapped[User | None] = relationship(foreign_keys=[raised_by_id])
    escalated_to: Mapped[Institution | None] = relationship(foreign_keys=[escalated_to_id])
    actions: Mapped[list[WarningAction]] = relationship(order_by="WarningAction.id", back_populates="warning")

    @property
    def is_active(self) -> bool:
        return self.status in WARNING_ACTIVE


class WarningAction(db.Model):
    __tablename__ = "warning_action"

    id: Mapped[int] = mapped_column(primary_key=True)
    warning_id: Mapped[int] = mapped_column(ForeignKey("risk_warning.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))          # raise, handle, escalate, lift
    note: Mapped[str] = mapped_column(Text, default="")
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)

    warning: Mapped[RiskWarning] = relationship(back_populates="actions")
    actor: Mapped[User | None] = relationship()


class ReviewStatus(str, enum.Enum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    SUPERSEDED = "superseded"


class ClassificationReview(db.Model):
    """A five-category suggestion from the rules and, once confirmed, the reviewer's decision.
    The confirmed rows of a loan are its classification history."""

    __tablename__ = "classification_review"
    __scope_column__ = "branch_id"
    __table_args__ = (Index("ix_classification_review_loan_status", "loan_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loan.id"))
    branch_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    as_of: Mapped[date] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default=ReviewStatus.PENDING.value, index=True)
    floor: Mapped[str] = mapped_column(String(16))
    suggested: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    locked_until: Mapped[date | None] = mapped_column()
    previous_class: Mapped[str] = mapped_column(String(16))
    # None when the rules opened the review; a reviewer who opens one keeps it until decided.
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    decided_class: Mapped[str | None] = mapped_column(String(16))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    decided_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    loan: Mapped[Loan] = relationship()
    reviewer: Mapped[User | None] = relationship(foreign_keys=[reviewer_id])


class BucketSnapshot(db.Model):
    """A loan's overdue bucket and balance on a date, written by the daily run; the migration
    report compares two dates' snapshots."""

    __tablename__ = "bucket_snapshot"
    __scope_column__ = "branch_id"
    __table_args__ = (UniqueConstraint("loan_id", "as_of"), Index("ix_bucket_snapshot_as_of_branch", "as_of", "branch_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loan.id"))
    branch_id: Mapped[int] = mapped_column(ForeignKey("institution.id"))
    as_of: Mapped[date] = mapped_column()
    bucket: Mapped[str] = mapped_column(String(8))
    days_past_due: Mapped[int] = mapped_column()
    balance_fen: Mapped[int] = mapped_column(BigInteger)
    credit_rating: Mapped[str] = mapped_column(String(8))
    risk_class: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))


class CollectionTask(db.Model):
    """The collection work on one overdue (or in-arrears) loan, from the day it fell behind until
    it is cured or closed. ``next_action_on`` puts it on the officer's daily list."""

    __tablename__ = "collection_task"
    __scope_column__ = "branch_id"
    __table_args__ = (Index("ix_collection_task_officer_status", "officer_id", "status"),
                      Index("ix_collection_task_loan_status", "loan_id", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loan.id"))
    branch_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_on: Mapped[date] = mapped_column()
    next_action_on: Mapped[date] = mapped_column()
    closed_on: Mapped[date | None] = mapped_column()
    close_reason: Mapped[str | None] = mapped_column(String(32))

    loan: Mapped[Loan] = relationship()
    officer: Mapped[User | None] = relationship()


class ContactLog(db.Model):
    """One collection contact: call, visit, letter or message, its result and any promise."""

    __tablename__ = "contact_log"
    __scope_column__ = "branch_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loan.id"), index=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("collection_task.id"))
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    contacted_on: Mapped[date] = mapped_column()
    channel: Mapped[str] = mapped_column(String(16))
    result: Mapped[str] = mapped_column(String(16))
    promised_on: Mapped[date | None] = mapped_column()
    promised_amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    officer: Mapped[User | None] = relationship()


class LoanNotice(db.Model):
    """A repayment notice before maturity or an overdue notice after a miss: pending until the
    officer issues it, which renders the PDF and files it."""

    __tablename__ = "loan_notice"
    __scope_column__ = "branch_id"
    __table_args__ = (UniqueConstraint("loan_id", "kind", "reference_on"),
                      Index("ix_loan_notice_officer_status", "officer_id", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loan.id"))
    branch_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    kind: Mapped[str] = mapped_column(String(16))            # repayment, overdue
    reference_on: Mapped[date] = mapped_column()             # maturity date, or the day it fell behind
    due_on: Mapped[date] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="pending")
    issued_on: Mapped[date | None] = mapped_column()
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    file_id: Mapped[int | None] = mapped_column(ForeignKey("postloan_file.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    loan: Mapped[Loan] = relationship()
    officer: Mapped[User | None] = relationship(foreign_keys=[officer_id])
    issued_by: Mapped[User | None] = relationship(foreign_keys=[issued_by_id])


class HandoverStatus(str, enum.Enum):
    PROPOSED = "proposed"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Handover(db.Model):
    """Handing an officer's loans (all or some) to another officer: proposed, then confirmed by
    both sides; on completion every open item moves with the loans."""

    __tablename__ = "handover"
    __scope_column__ = "institution_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    from_officer_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    to_officer_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=HandoverStatus.PROPOSED.value)
    reason: Mapped[str] = mapped_column(Text, default="")
    proposed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    proposed_at: Mapped[datetime] = mapped_column(default=utcnow)
    outgoing_confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    outgoing_confirmed_at: Mapped[datetime | None] = mapped_column()
    outgoing_on_behalf_note: Mapped[str | None] = mapped_column(Text)
    incoming_confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    incoming_confirmed_at: Mapped[datetime | None] = mapped_column()
    completed_on: Mapped[date | None] = mapped_column()
    cancelled_reason: Mapped[str | None] = mapped_column(Text)
    file_id: Mapped[int | None] = mapped_column(ForeignKey("postloan_file.id"))

    institution: Mapped[Institution] = relationship()
    from_officer: Mapped[User] = relationship(foreign_keys=[from_officer_id])
    to_officer: Mapped[User] = relationship(foreign_keys=[to_officer_id])
    proposed_by: Mapped[User | None] = relationship(foreign_keys=[proposed_by_id])
    outgoing_confirmed_by: Mapped[User | None] = relationship(foreign_keys=[outgoing_confirmed_by_id])
    incoming_confirmed_by: Mapped[User | None] = relationship(foreign_keys=[incoming_confirmed_by_id])
    items: Mapped[list[HandoverItem]] = relationship(back_populates="handover", order_by="HandoverItem.id",
                                                     cascade="all, delete-orphan")


class HandoverItem(db.Model):
    __tablename__ = "handover_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    handover_id: Mapped[int] = mapped_column(ForeignKey("handover.id"), index=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loan.id"), index=True)
    balance_fen: Mapped[int] = mapped_column(BigInteger)
    # Counted when the handover completes: what moved with the loan.
    moved_inspections: Mapped[int] = mapped_column(default=0)
    moved_warnings: Mapped[int] = mapped_column(default=0)
    moved_tasks: Mapped[int] = mapped_column(default=0)
    moved_notices: Mapped[int] = mapped_column(default=0)

    handover: Mapped[Handover] = relationship(back_populates="items")
    loan: Mapped[Loan] = relationship()


class LoanOfficerPeriod(db.Model):
    """Who managed a loan (管理责任人) from when until when."""

    __tablename__ = "loan_officer_period"
    __scope_column__ = "branch_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loan.id"), index=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), index=True)
    started_on: Mapped[date] = mapped_column()
    ended_on: Mapped[date | None] = mapped_column()
    handover_id: Mapped[int | None] = mapped_column(ForeignKey("handover.id"))

    officer: Mapped[User | None] = relationship()


class WriteOffStatus(str, enum.Enum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"


class WriteOff(db.Model):
    """A write-off (核销): requested with its reason and evidence, approved by the roles the
    union's rules name; on approval the loan is written off and the papers are filed."""

    __tablename__ = "write_off"
    __scope_column__ = "branch_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loan.id"), index=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=WriteOffStatus.REQUESTED.value)
    principal_fen: Mapped[int] = mapped_column(BigInteger)
    interest_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    reason: Mapped[str] = mapped_column(Text)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    decided_at: Mapped[datetime | None] = mapped_column()
    decision_note: Mapped[str | None] = mapped_column(Text)

    loan: Mapped[Loan] = relationship()
    requested_by: Mapped[User | None] = relationship(foreign_keys=[requested_by_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])


class LoanEvaluation(db.Model):
    """The final evaluation (总结评价) of a closed loan."""

    __tablename__ = "loan_evaluation"
    __scope_column__ = "branch_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loan.id"), unique=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    outcome: Mapped[str] = mapped_column(String(24))
    management: Mapped[str] = mapped_column(String(16))
    responsibility_found: Mapped[bool] = mapped_column(default=False)
    summary: Mapped[str] = mapped_column(Text)
    lessons: Mapped[str] = mapped_column(Text, default="")
    evaluated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    evaluated_on: Mapped[date] = mapped_column()
    file_id: Mapped[int | None] = mapped_column(ForeignKey("postloan_file.id"))

    loan: Mapped[Loan] = relationship()
    evaluated_by: Mapped[User | None] = relationship()
