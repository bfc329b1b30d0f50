"""Files of the post-loan work and the one way they reach the borrower's credit file.

``keep_file`` stores bytes in ``postloan_file``; ``file_into_credit_file`` hands them to the
archive's ``store_generated_document`` when the archive package is installed, after which the
object store holds the one copy and ``read_file`` reads it from there (so destroying the credit
file leaves no copy here). Uploads (inspection photos,
write-off evidence) are checked by their bytes, not by their names.
"""
from __future__ import annotations

import hashlib
import re

from flask import current_app
from flask_babel import gettext as _

from ..accounts.models import User
from ..archive.models import DocState, Document
from ..archive.services import store_generated_document
from ..archive.storage import ObjectMissing, current_store
from ..errors import InvalidInput, WrongState
from ..extensions import db
from ..loans.models import Loan
from ..timeutil import utcnow
from .models import PostloanFile

# Magic bytes of what an inspection or a write-off may carry: scans and photos.
SIGNATURES = (
    (b"%PDF-", "application/pdf", ".pdf"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"II*\x00", "image/tiff", ".tif"),
    (b"MM\x00*", "image/tiff", ".tif"),
)
_UNSAFE = re.compile(r"[^\w.\-\u4e00-\u9fff]+")


def safe_filename(name: str, default: str = "file") -> str:
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip("._") or default
    return name[:120]


def sniff(data: bytes) -> tuple[str, str] | None:
    for magic, media_type, ext in SIGNATURES:
        if data.startswith(magic):
            return media_type, ext
    return None


def keep_file(actor: User | None, *, branch_id: int, loan: Loan | None, owner_kind: str, owner_id: int,
              doc_type: str, filename: str, data: bytes, media_type: str = "application/pdf",
              generated: bool = True) -> PostloanFile:
    record = PostloanFile(
        loan_id=loan.id if loan is not None else None, branch_id=branch_id, owner_kind=owner_kind,
        owner_id=owner_id, doc_type=doc_type, filename=filename, media_type=media_type, size=len(data),
        sha256=hashlib.sha256(data).hexdigest(), data=data, generated=generated,
        created_by_id=getattr(actor, "id", None))
    db.session.add(record)
    db.session.flush()
    return record


def file_into_credit_file(actor: User | None, loan: Loan, record: PostloanFile) -> int:
    """Put a kept file into the borrower's credit file (state "collected"); returns the archive
    document id. Flushes, never commits."""
    document = store_generated_document(actor, loan, record.doc_type, record.filename, record.data,
                                        media_type=record.media_type)
    record.archive_document_id = document.id
    record.filed_at = utcnow()
    record.data = None  # the object store holds the one copy from now on
    db.session.flush()
    return document.id


def read_file(record: PostloanFile) -> bytes:
    """The file's bytes: kept here, or read from the credit file it joined. A file destroyed with
    its credit file is gone (WrongState says so); a store that does not answer raises the
    archive's StoreUnavailable (503)."""
    if record.data is not None:
        return record.data
    document = db.session.get(Document, record.archive_document_id) if record.archive_document_id else None
    if document is None or document.state in (DocState.DESTROYED.value, DocState.DISCARDED.value):
        removed = document.removed_at if document is not None else None
        raise WrongState(_("%(name)s was removed from the credit file on %(date)s; no copy is kept.",
                           name=record.filename, date=removed.date().isoformat() if removed else "?"))
    try:
        return current_store().read_bytes(document.object_key)
    except ObjectMissing:
        raise WrongState(_("%(name)s is missing from the object store; `flask archive verify` lists it.",
                           name=record.filename)) from None


def keep_and_file(actor: User | None, loan: Loan, *, owner_kind: str, owner_id: int, doc_type: str,
                  filename: str, data: bytes, media_type: str = "application/pdf",
                  generated: bool = True) -> PostloanFile:
    record = keep_file(actor, branch_id=loan.branch_id, loan=loan, owner_kind=owner_kind, owner_id=owner_id,
                       doc_type=doc_type, filename=filename, data=data, media_type=media_type, generated=generated)
    file_into_credit_file(actor, loan, record)
    return record


def read_upload(storage) -> tuple[bytes, str, str]:
    """Read an uploaded file (werkzeug FileStorage); returns (data, media type, safe name).
    Refuses empty files, files over the size limit and anything that is not PDF, JPEG, PNG or TIFF."""
    # The file joins the credit file later: the archive's own limit applies now.
    limit_mb = min(current_app.config["XINDANG_UPLOAD_MAX_MB"], current_app.config["XINDANG_ARCHIVE_MAX_FILE_MB"])
    limit = limit_mb * 1024 * 1024
    data = storage.read(limit + 1)
    name = storage.filename or ""
    if not data:
        raise InvalidInput(_("The file %(name)s is empty.", name=safe_filename(name)))
    if len(data) > limit:
        raise InvalidInput(_("The file %(name)s is larger than %(mb)d MB.", name=safe_filename(name), mb=limit_mb))
    kind = sniff(data)
    if kind is None:
        raise InvalidInput(_("The file %(name)s is not a PDF, JPEG, PNG or TIFF file (its content starts with %(head)s).",
                             name=safe_filename(name), head=data[:8].hex(" ")))
    media_type, ext = kind
    safe = safe_filename(name, default="scan")
    if not safe.lower().endswith(ext) and not (ext == ".jpg" and safe.lower().endswith(".jpeg")):
        safe = f"{safe}{ext}"
    return data, media_type, safe
