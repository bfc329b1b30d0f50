"""The auditors' own tables: daily completeness snapshots and archive inspections with their
sample of credit files.

A snapshot row is one branch's completeness on one China date (files, complete files, missing
documents), written by ``flask audit completeness``; trends of a county or union are sums over
their branches. An archive inspection belongs to the institution whose credit files were
inspected (``institution_id``, its scope column) and to the user who records it; only that user
changes it, and only while it is a draft.
"""
from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..accounts.models import Institution, User
from ..archive.models import Document
from ..extensions import db
from ..loans.models import Borrower
from ..timeutil import utcnow


class CompletenessSnapshot(db.Model):
    """One branch's completeness on one date; a second run on the same date overwrites it."""

    __tablename__ = "audit_completeness_snapshot"
    __scope_column__ = "institution_id"
    __table_args__ = (UniqueConstraint("institution_id", "as_of"),
                      Index("ix_audit_completeness_snapshot_as_of", "as_of"))

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"))
    as_of: Mapped[date] = mapped_column()
    files: Mapped[int] = mapped_column(default=0)
    complete: Mapped[int] = mapped_column(default=0)
    missing_documents: Mapped[int] = mapped_column(default=0)
    written_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    institution: Mapped[Institution] = relationship()


class InspectionState(str, enum.Enum):
    DRAFT = "draft"            # sample drawn, being recorded
    COMPLETED = "completed"    # findings final; counts for the schedule
    CANCELLED = "cancelled"    # withdrawn by its recorder before completion


class Conclusion(str, enum.Enum):
    SATISFACTORY = "satisfactory"    # 符合要求
    DEFICIENT = "deficient"          # 存在问题,限期整改


class FileResult(str, enum.Enum):
    OK = "ok"
    PROBLEM = "problem"


class ArchiveInspection(db.Model):
    """An archive inspection (档案检查) of one institution's credit files: the county's yearly
    check of a branch, or a branch's own half-yearly check (cycle from the rules plugin)."""

    __tablename__ = "audit_archive_inspection"
    __scope_column__ = "institution_id"
    __table_args__ = (Index("ix_audit_archive_inspection_pair", "inspector_institution_id", "institution_id",
                            "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Whose files were inspected (a branch).
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    # Who carries it out (the branch itself, or its county); ``level`` is that institution's
    # level, the one whose cycle the rules give.
    inspector_institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"))
    level: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=InspectionState.DRAFT.value)
    sample_size: Mapped[int] = mapped_column()
    inspected_on: Mapped[date | None] = mapped_column()
    findings: Mapped[str] = mapped_column(Text, default="")
    conclusion: Mapped[str | None] = mapped_column(String(16))
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column()
    cancelled_at: Mapped[datetime | None] = mapped_column()

    institution: Mapped[Institution] = relationship(foreign_keys=[institution_id])
    inspector_institution: Mapped[Institution] = relationship(foreign_keys=[inspector_institution_id])
    recorded_by: Mapped[User] = relationship()
    files: Mapped[list[ArchiveInspectionFile]] = relationship(
        back_populates="inspection", order_by="ArchiveInspectionFile.id", cascade="all, delete-orphan")

    @property
    def is_draft(self) -> bool:
        return self.state == InspectionState.DRAFT.value


class ArchiveInspectionFile(db.Model):
    """One credit file of the inspection's random sample, and what was found in it.
    ``missing_documents`` is what the completeness audit reported for the borrower's loans when
    the inspection was completed."""

    __tablename__ = "audit_archive_inspection_file"
    __table_args__ = (UniqueConstraint("inspection_id", "borrower_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("audit_archive_inspection.id", ondelete="CASCADE"),
                                               index=True)
    borrower_id: Mapped[int] = mapped_column(ForeignKey("borrower.id"))
    result: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    missing_documents: Mapped[int | None] = mapped_column()

    inspection: Mapped[ArchiveInspection] = relationship(back_populates="files")
    borrower: Mapped[Borrower] = relationship()


# The completeness audit reads, per loan, the types of its documents in a live state; this
# index answers that from the index alone (tens of times faster than visiting 500,000 rows).
# It belongs to the archive's table but exists for the audit, so it is declared here.
Index("ix_audit_document_loan_state_type", Document.loan_id, Document.state, Document.doc_type)
