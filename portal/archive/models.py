"""The credit archive's tables: volumes, documents, their lifecycle, lending, transfer, holds,
destruction, the permanent list files and fixity runs.

Each state machine is one table of allowed transitions (``DOCUMENT_TRANSITIONS`` …); the
services in this package are the only code that moves a row along it, each move writing one
audit event. Custody is ``institution_id``: the institution that holds the document, which is
what scope checks (``__scope_column__``). Extracted text is not kept here (the search index
keeps its own table).
"""
from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (JSON, BigInteger, Boolean, Column, ForeignKey, Integer, String, Table, Text,
                        UniqueConstraint, inspect)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..accounts.models import Institution, User
from ..extensions import db
from ..loans.models import Borrower, Loan
from ..timeutil import utcnow


# --- documents ---------------------------------------------------------------------------

class DocState(str, enum.Enum):
    COLLECTED = "collected"    # 收集: entered, typed, linked to borrower and loan
    SORTED = "sorted"          # 整理: metadata checked
    FILED = "filed"            # 立卷: in the volume, archive number given
    ARCHIVED = "archived"      # 归档: sealed; content never changes again
    DISCARDED = "discarded"    # removed while sorting (duplicate, wrong file); tombstone
    DESTROYED = "destroyed"    # 销毁: after retention, by a destruction list; tombstone


DOCUMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    DocState.COLLECTED.value: frozenset({DocState.SORTED.value, DocState.DISCARDED.value}),
    DocState.SORTED.value: frozenset({DocState.FILED.value, DocState.DISCARDED.value}),
    DocState.FILED.value: frozenset({DocState.ARCHIVED.value}),
    DocState.ARCHIVED.value: frozenset({DocState.DESTROYED.value}),
    DocState.DISCARDED.value: frozenset(),
    DocState.DESTROYED.value: frozenset(),
}
# States in which the metadata (type, loan) may still be corrected.
EDITABLE_STATES = frozenset({DocState.COLLECTED.value, DocState.SORTED.value})
# States whose object must exist in the store.
LIVE_STATES = frozenset({DocState.COLLECTED.value, DocState.SORTED.value, DocState.FILED.value,
                         DocState.ARCHIVED.value})
STATE_ORDER = [s.value for s in DocState]


class Volume(db.Model):
    """A borrower's credit file (案卷); one per borrower. ``institution_id`` is where it is kept."""

    __tablename__ = "archive_volume"
    __scope_column__ = "institution_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    borrower_id: Mapped[int] = mapped_column(ForeignKey("borrower.id"), unique=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    title: Mapped[str] = mapped_column(String(255))
    shelf_location: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))

    borrower: Mapped[Borrower] = relationship()
    institution: Mapped[Institution] = relationship()
    documents: Mapped[list[Document]] = relationship(back_populates="volume", order_by="Document.id")


class Document(db.Model):
    """One item (件) of a credit file: a stored object and its archival metadata."""

    __tablename__ = "archive_document"
    __scope_column__ = "institution_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    volume_id: Mapped[int] = mapped_column(ForeignKey("archive_volume.id"), index=True)
    loan_id: Mapped[int | None] = mapped_column(ForeignKey("loan.id"), index=True)
    borrower_id: Mapped[int] = mapped_column(ForeignKey("borrower.id"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    doc_type: Mapped[str] = mapped_column(String(64), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=DocState.COLLECTED.value, index=True)
    archive_number: Mapped[str | None] = mapped_column(String(64), unique=True)
    archive_year: Mapped[int | None] = mapped_column()
    item_no: Mapped[int | None] = mapped_column()
    retention_code: Mapped[str] = mapped_column(String(8))
    retention_years: Mapped[int | None] = mapped_column()   # None: permanent
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(128))
    page_count: Mapped[int | None] = mapped_column()
    original_name: Mapped[str] = mapped_column(String(255))
    object_key: Mapped[str] = mapped_column(String(128), unique=True)
    source: Mapped[str] = mapped_column(String(16), default="upload")   # upload, ingest, generated
    paper_original: Mapped[bool] = mapped_column(Boolean, default=False)
    shelf_location: Mapped[str | None] = mapped_column(String(64))
    version_of_id: Mapped[int | None] = mapped_column(ForeignKey("archive_document.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    state_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column()
    removed_at: Mapped[datetime | None] = mapped_column()          # discarded or destroyed
    removal_reason: Mapped[str | None] = mapped_column(Text)
    destruction_list_id: Mapped[int | None] = mapped_column(ForeignKey("archive_destruction_list.id"))
    last_verified_at: Mapped[datetime | None] = mapped_column()

    volume: Mapped[Volume] = relationship(back_populates="documents")
    loan: Mapped[Loan | None] = relationship()
    borrower: Mapped[Borrower] = relationship()
    institution: Mapped[Institution] = relationship()
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    version_of: Mapped[Document | None] = relationship(remote_side=[id])

    @property
    def sealed(self) -> bool:
        """Archived content is immutable: no replacement, no deletion, only new versions."""
        return self.state == DocState.ARCHIVED.value

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def is_pdf(self) -> bool:
        return self.media_type == "application/pdf"

    @property
    def is_browser_image(self) -> bool:
        return self.media_type in ("image/jpeg", "image/png")


SEALED_COLUMNS = ("sha256", "object_key", "size_bytes", "media_type", "doc_type", "loan_id", "archive_number")


def refuse_changing_sealed_content(mapper, connection, target: Document) -> None:
    """Whatever code runs, an archived document's content and identity stay as they were sealed."""
    state = inspect(target)
    history = state.attrs.state.history
    before = history.deleted[0] if history.deleted else target.state
    if before != DocState.ARCHIVED.value:
        return
    changed = [name for name in SEALED_COLUMNS if state.attrs[name].history.has_changes()]
    if changed:
        raise RuntimeError(f"document {target.id} is archived and sealed; refused to change {', '.join(changed)}")


class ArchiveCounter(db.Model):
    """The last item number given per institution, year and retention; updated before it is
    read, so two filings never get the same number (a row lock on PostgreSQL, the write lock
    on SQLite)."""

    __tablename__ = "archive_counter"
    __table_args__ = (UniqueConstraint("institution_id", "year", "retention_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"))
    year: Mapped[int] = mapped_column()
    retention_code: Mapped[str] = mapped_column(String(8))
    last_item: Mapped[int] = mapped_column(default=0)


class DocumentAccess(db.Model):
    """Every look at a document's content (调阅登记): who, when, how, under which lending."""

    __tablename__ = "archive_access"
    __scope_column__ = "institution_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("archive_document.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    lending_id: Mapped[int | None] = mapped_column(ForeignKey("archive_lending.id"), index=True)
    disposition: Mapped[str] = mapped_column(String(16))   # inline (viewed) or attachment (downloaded)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    document: Mapped[Document] = relationship()
    user: Mapped[User] = relationship()


# --- lending -----------------------------------------------------------------------------

class LendingState(str, enum.Enum):
    REQUESTED = "requested"
    APPROVED = "approved"
    ISSUED = "issued"
    RETURNED = "returned"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"


LENDING_TRANSITIONS: dict[str, frozenset[str]] = {
    "requested": frozenset({"approved", "refused", "withdrawn"}),
    "approved": frozenset({"issued", "withdrawn"}),
    "issued": frozenset({"issued", "returned"}),   # issued → issued: renewal (续借)
    "returned": frozenset(), "refused": frozenset(), "withdrawn": frozenset(),
}

lending_item = Table(
    "archive_lending_item", db.metadata,
    Column("lending_id", ForeignKey("archive_lending.id", ondelete="CASCADE"), primary_key=True),
    Column("document_id", ForeignKey("archive_document.id"), primary_key=True),
)


class Lending(db.Model):
    """A request to borrow documents of one credit file (借阅/调阅), from request to return."""

    __tablename__ = "archive_lending"
    __scope_column__ = "institution_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    volume_id: Mapped[int] = mapped_column(ForeignKey("archive_volume.id"), index=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    medium: Mapped[str] = mapped_column(String(16))        # digital or paper
    reason: Mapped[str] = mapped_column(Text)
    days: Mapped[int] = mapped_column()
    state: Mapped[str] = mapped_column(String(16), default=LendingState.REQUESTED.value, index=True)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    decided_at: Mapped[datetime | None] = mapped_column()
    decision_note: Mapped[str | None] = mapped_column(Text)
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    issued_at: Mapped[datetime | None] = mapped_column()
    due_on: Mapped[date | None] = mapped_column(index=True)
    renewals: Mapped[int] = mapped_column(default=0)
    returned_at: Mapped[datetime | None] = mapped_column()
    return_checked_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    return_note: Mapped[str | None] = mapped_column(Text)
    reminders: Mapped[int] = mapped_column(default=0)
    last_reminded_at: Mapped[datetime | None] = mapped_column()

    institution: Mapped[Institution] = relationship()
    volume: Mapped[Volume] = relationship()
    requester: Mapped[User] = relationship(foreign_keys=[requester_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
    issued_by: Mapped[User | None] = relationship(foreign_keys=[issued_by_id])
    return_checked_by: Mapped[User | None] = relationship(foreign_keys=[return_checked_by_id])
    documents: Mapped[list[Document]] = relationship(secondary=lending_item, order_by="Document.id")


# --- transfer ----------------------------------------------------------------------------

class TransferState(str, enum.Enum):
    DRAFT = "draft"            # list drawn up by the sender
    SENT = "sent"              # sender confirmed the handover list
    COMPLETED = "completed"    # receiver confirmed; custody moved
    CANCELLED = "cancelled"


TRANSFER_TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"sent", "cancelled"}),
    "sent": frozenset({"completed", "cancelled"}),
    "completed": frozenset(), "cancelled": frozenset(),
}


class Transfer(db.Model):
    """Handing archived documents to another institution (移交), with a handover list (移交清册)
    both sides confirm. Visible to both sides; ``institution_id`` is the sender."""

    __tablename__ = "archive_transfer"
    __scope_column__ = "institution_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    to_institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=TransferState.DRAFT.value, index=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    sent_at: Mapped[datetime | None] = mapped_column()
    received_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    received_at: Mapped[datetime | None] = mapped_column()
    cancelled_at: Mapped[datetime | None] = mapped_column()
    list_file_id: Mapped[int | None] = mapped_column(ForeignKey("archive_list_file.id"))

    institution: Mapped[Institution] = relationship(foreign_keys=[institution_id])
    to_institution: Mapped[Institution] = relationship(foreign_keys=[to_institution_id])
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])
    sent_by: Mapped[User | None] = relationship(foreign_keys=[sent_by_id])
    received_by: Mapped[User | None] = relationship(foreign_keys=[received_by_id])
    items: Mapped[list[TransferItem]] = relationship(back_populates="transfer", order_by="TransferItem.id",
                                                     cascade="all, delete-orphan")


class TransferItem(db.Model):
    __tablename__ = "archive_transfer_item"
    __table_args__ = (UniqueConstraint("transfer_id", "document_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("archive_transfer.id", ondelete="CASCADE"), index=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("archive_document.id"), index=True)

    transfer: Mapped[Transfer] = relationship(back_populates="items")
    document: Mapped[Document] = relationship()


# --- holds -------------------------------------------------------------------------------

class Hold(db.Model):
    """A legal or audit hold (冻结) on a loan or a credit file: nothing under it is destroyed."""

    __tablename__ = "archive_hold"
    __scope_column__ = "institution_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))          # legal or audit
    loan_id: Mapped[int | None] = mapped_column(ForeignKey("loan.id"), index=True)
    volume_id: Mapped[int | None] = mapped_column(ForeignKey("archive_volume.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    placed_by_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    placed_at: Mapped[datetime] = mapped_column(default=utcnow)
    lifted_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    lifted_at: Mapped[datetime | None] = mapped_column()
    lift_reason: Mapped[str | None] = mapped_column(Text)

    institution: Mapped[Institution] = relationship()
    loan: Mapped[Loan | None] = relationship()
    volume: Mapped[Volume | None] = relationship()
    placed_by: Mapped[User] = relationship(foreign_keys=[placed_by_id])
    lifted_by: Mapped[User | None] = relationship(foreign_keys=[lifted_by_id])

    @property
    def active(self) -> bool:
        return self.lifted_at is None


# --- destruction -------------------------------------------------------------------------

class DestructionState(str, enum.Enum):
    DRAFT = "draft"              # appraisal (鉴定) in progress, items being listed
    PROPOSED = "proposed"        # submitted for approval
    APPROVED = "approved"        # approved by someone other than the proposer
    CONFIRMED = "confirmed"      # two supervisors (监销) of two departments confirmed
    EXECUTED = "executed"        # objects deleted, tombstones kept, list PDF stored for good
    REJECTED = "rejected"
    CANCELLED = "cancelled"


DESTRUCTION_TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"proposed", "cancelled"}),
    "proposed": frozenset({"approved", "rejected", "cancelled"}),
    "approved": frozenset({"confirmed", "cancelled"}),
    "confirmed": frozenset({"executed", "cancelled"}),
    "executed": frozenset(), "rejected": frozenset(), "cancelled": frozenset(),
}


class DestructionList(db.Model):
    """A destruction list (销毁清册): appraisal, approval, supervision, execution."""

    __tablename__ = "archive_destruction_list"
    __scope_column__ = "institution_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=DestructionState.DRAFT.value, index=True)
    appraisal: Mapped[str] = mapped_column(Text)                 # 鉴定意见
    proposer_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    proposed_at: Mapped[datetime | None] = mapped_column()
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    decided_at: Mapped[datetime | None] = mapped_column()
    decision_note: Mapped[str | None] = mapped_column(Text)
    supervisor1_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    supervisor1_department: Mapped[str | None] = mapped_column(String(64))
    supervisor1_at: Mapped[datetime | None] = mapped_column()
    supervisor2_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    supervisor2_department: Mapped[str | None] = mapped_column(String(64))
    supervisor2_at: Mapped[datetime | None] = mapped_column()
    executed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    executed_at: Mapped[datetime | None] = mapped_column()
    list_file_id: Mapped[int | None] = mapped_column(ForeignKey("archive_list_file.id"))

    institution: Mapped[Institution] = relationship()
    proposer: Mapped[User] = relationship(foreign_keys=[proposer_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
    supervisor1: Mapped[User | None] = relationship(foreign_keys=[supervisor1_id])
    supervisor2: Mapped[User | None] = relationship(foreign_keys=[supervisor2_id])
    executed_by: Mapped[User | None] = relationship(foreign_keys=[executed_by_id])
    items: Mapped[list[DestructionItem]] = relationship(back_populates="destruction_list",
                                                        order_by="DestructionItem.id",
                                                        cascade="all, delete-orphan")


class DestructionItem(db.Model):
    """One document on a destruction list, with what the list shows about it kept as it was
    when listed (the document row becomes a tombstone)."""

    __tablename__ = "archive_destruction_item"
    __table_args__ = (UniqueConstraint("list_id", "document_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("archive_destruction_list.id", ondelete="CASCADE"), index=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("archive_document.id"), index=True)
    archive_number: Mapped[str | None] = mapped_column(String(64))
    doc_type_name: Mapped[str] = mapped_column(String(128))
    borrower_name: Mapped[str] = mapped_column(String(128))
    contract_no: Mapped[str | None] = mapped_column(String(64))
    retention_code: Mapped[str] = mapped_column(String(8))
    closed_on: Mapped[date | None] = mapped_column()
    expired_on: Mapped[date | None] = mapped_column()

    destruction_list: Mapped[DestructionList] = relationship(back_populates="items")
    document: Mapped[Document] = relationship()


# --- permanent list files and fixity runs -----------------------------------------------

class ListFile(db.Model):
    """A PDF the archive keeps for good: handover lists (移交清册) and destruction lists (销毁清册)."""

    __tablename__ = "archive_list_file"
    __scope_column__ = "institution_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))      # handover_list, destruction_list
    title: Mapped[str] = mapped_column(String(255))
    object_key: Mapped[str] = mapped_column(String(128), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    last_verified_at: Mapped[datetime | None] = mapped_column()


class FixityRun(db.Model):
    """One run of `flask archive verify`: what was checked and what was wrong."""

    __tablename__ = "archive_fixity_run"
    __scope_column__ = "institution_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institution.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    objects_checked: Mapped[int] = mapped_column(Integer, default=0)
    bytes_checked: Mapped[int] = mapped_column(BigInteger, default=0)
    mismatches: Mapped[int] = mapped_column(default=0)
    missing: Mapped[int] = mapped_column(default=0)
    orphans: Mapped[int] = mapped_column(default=0)
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    problems: Mapped[list] = mapped_column(JSON, default=list)
