"""The search's two tables: the durable queue of index work, and the text extracted from each
document. The index itself is a derived folder (``portal/search/index.py``), never a source."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..timeutil import utcnow


class QueueOp(str, enum.Enum):
    EXTRACT = "extract"   # (re)extract the text, then index
    INDEX = "index"       # index the document as the database has it now (or remove it)
    DELETE = "delete"     # the row is gone: remove it from the index


class SearchQueue(db.Model):
    """One piece of index work, written in the same transaction as the change that caused it,
    so a committed change is never lost. Rows are deleted once the index has the change; a
    failure keeps the row with ``attempts`` and ``last_error`` and it is retried after a pause.

    ``claimed_by``/``claimed_until`` are a lease: a drainer claims rows before working on them,
    so two processes never extract the same document at once; a drainer that dies loses its
    lease when ``claimed_until`` passes."""

    __tablename__ = "search_queue"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(Integer, index=True)
    op: Mapped[str] = mapped_column(String(16))
    enqueued_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    not_before: Mapped[datetime | None] = mapped_column()
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column()


class TextStatus(str, enum.Enum):
    OK = "ok"                     # text extracted (possibly empty: a blank page)
    FAILED = "failed"             # the file could not be read; ``error`` says why; retryable
    UNSUPPORTED = "unsupported"   # a kind of file without text extraction
    OCR_MISSING = "ocr-missing"   # a scan, but Tesseract (or its chi_sim model) is not installed


class DocumentText(db.Model):
    """The text of one document as extraction found it, and how. Kept while the document is
    live; removed when it is destroyed or discarded (its content must not outlive it)."""

    __tablename__ = "document_text"

    document_id: Mapped[int] = mapped_column(ForeignKey("archive_document.id", ondelete="CASCADE"),
                                             primary_key=True)
    text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    method: Mapped[str | None] = mapped_column(String(32))
    chars: Mapped[int] = mapped_column(default=0)
    extracted_at: Mapped[datetime] = mapped_column(default=utcnow)
