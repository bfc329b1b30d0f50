"""Collecting documents into credit files, moving them through their lifecycle, opening them.

Collection writes the object first and the row after: a store that is down refuses the upload
before any row exists, and a row that cannot be written takes its object with it (here, and in
the session hook of ``storage`` if the caller's commit fails). Sorting, filing (with the archive
number from the union's plugin) and archiving are archivists' steps; an archived document is
sealed. Lending, transfer, holds and destruction have their own modules.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from typing import BinaryIO

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import and_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..accounts.models import Institution, User
from ..accounts.scope import can, check, in_scope, institution_visible
from ..audit_trail import record_event
from ..errors import InvalidInput, NotFound, PermissionDenied, WrongState, XindangError, not_found
from ..extensions import db
from ..labels import label
from ..loans.models import Borrower, Loan
from ..rules.lookup import rules_for
from ..rules.types import ArchiveNumberParts
from ..timeutil import local_today, utcnow
from .models import (DOCUMENT_TRANSITIONS, EDITABLE_STATES, LIVE_STATES, ArchiveCounter, DocState, Document,
                     DocumentAccess, Lending, LendingState, ListFile, Volume, lending_item)
from .sniffing import ACCEPTED, claimed_kind, count_pages, sanitise_filename, sniff
from .storage import (ObjectMissing, ObjectStore, SizeLimitExceeded, current_store, delete_after_commit,
                      track_new_object, untrack_new_object)

ACCEPTED_TYPES_TEXT = "PDF, JPEG, PNG, TIFF, DOCX, XLSX"


class FileTooLarge(XindangError):
    status = 413


def doc_ref(doc: Document) -> str:
    """How a document is named in messages: its archive number once it has one."""
    return doc.archive_number or f"#{doc.id}"


def _insert_ignore(model: type, values: dict, keys: list[str]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING on SQLite and PostgreSQL alike; True if a row was added."""
    dialect = db.session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # RETURNING, not rowcount: through psycopg the rowcount of this INSERT is -1 either way.
    result = db.session.execute(insert(model).values(**values).on_conflict_do_nothing(index_elements=keys)
                                .returning(*model.__table__.primary_key.columns))
    return result.first() is not None


def lock_for_update(obj) -> None:
    """Wait until no other transaction is changing ``obj``'s row, keep it locked until this
    transaction ends, and reload ``obj`` as committed. Two people taking a step on the same
    lending or list at once are thus serialised, and the second decides on the outcome of the
    first (a refusal, not a double). PostgreSQL: SELECT … FOR UPDATE. SQLite has no row locks:
    a no-op write takes the database's write lock (reads before it took no lock, so it waits
    instead of failing on a stale snapshot)."""
    model = type(obj)
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(update(model).where(model.id == obj.id).values(id=model.id)
                           .execution_options(synchronize_session=False))
        db.session.refresh(obj)
    else:
        db.session.refresh(obj, with_for_update=True)


def max_file_bytes() -> int:
    return current_app.config["XINDANG_ARCHIVE_MAX_FILE_MB"] * 1024 * 1024


# --- volumes -----------------------------------------------------------------------------

def volume_of(borrower: Borrower) -> Volume | None:
    return db.session.execute(select(Volume).where(Volume.borrower_id == borrower.id)).scalar_one_or_none()


def volume_for(actor: User | None, borrower: Borrower) -> Volume:
    """The borrower's credit file, opened on its first document (one per borrower, race-free)."""
    volume = volume_of(borrower)
    if volume is not None:
        return volume
    created = _insert_ignore(Volume, {"borrower_id": borrower.id, "institution_id": borrower.institution_id,
                                      "title": f"{borrower.name} 信贷档案", "created_at": utcnow(),
                                      "created_by_id": getattr(actor, "id", None)}, ["borrower_id"])
    volume = volume_of(borrower)
    if created:  # not when a concurrent upload opened it first
        record_event(actor, "archive.volume_open", "archive_volume", volume.id,
                     {"borrower": borrower.name}, institution_id=volume.institution_id)
    return volume


# --- credit files, volumes and documents the user may see ----------------------------------

def credit_file_or_404(user: User, borrower_id: int) -> tuple[Borrower, Volume | None]:
    """The borrower and their credit file (None before its first document), if the user may see
    it: a credit file is visible to the borrower's institution and to whoever holds it. Else 404."""
    borrower = db.session.get(Borrower, borrower_id)
    if borrower is None:
        raise not_found()
    volume = volume_of(borrower)
    if not (institution_visible(user, borrower.institution)
            or (volume is not None and institution_visible(user, volume.institution))):
        raise not_found()
    return borrower, volume


def volume_or_404(user: User, volume_id: int | None) -> Volume:
    """The credit file with this id, if the user may see it (``credit_file_or_404``); else 404."""
    volume = db.session.get(Volume, volume_id) if volume_id is not None else None
    if volume is None:
        raise not_found()
    credit_file_or_404(user, volume.borrower_id)
    return volume


def documents_or_404(user: User, ids: list[int]) -> list[Document]:
    """The documents with these ids, every one in the user's scope; 404 if any is not (the
    request is refused whole, and says nothing about which)."""
    wanted = set(ids)
    documents = list(db.session.execute(
        select(Document).where(Document.id.in_(wanted), in_scope(Document.institution_id, user))).scalars()) \
        if wanted else []
    if len(documents) != len(wanted):
        raise not_found()
    return documents


def document_by_number(user: User, number: str) -> Document | None:
    """The document in the user's scope with this archive number (档号), if any."""
    return db.session.execute(
        select(Document).where(Document.archive_number == number.strip(),
                               in_scope(Document.institution_id, user))).scalar_one_or_none()


# --- collection --------------------------------------------------------------------------

@dataclass
class Collected:
    document: Document
    duplicates_elsewhere: list[Document] = field(default_factory=list)


def _seekable(fileobj: BinaryIO, limit: int) -> BinaryIO:
    """Sniffing and page counting read the file more than once; a one-way stream is spooled to
    disk first (at most one byte over the limit, enough to refuse it)."""
    try:
        fileobj.seek(fileobj.tell())
        return fileobj
    except (AttributeError, OSError, io.UnsupportedOperation):
        spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
        left = limit + 1
        while left > 0 and (chunk := fileobj.read(min(1024 * 1024, left))):
            spool.write(chunk)
            left -= len(chunk)
        spool.seek(0)
        return spool


def _remaining(fileobj: BinaryIO) -> int:
    here = fileobj.tell()
    end = fileobj.seek(0, os.SEEK_END)
    fileobj.seek(here)
    return end - here


def _too_large(name: str, size: int | None, limit: int) -> FileTooLarge:
    if size is None:
        return FileTooLarge(_("%(name)s is larger than %(limit)d MB, the largest file the archive accepts.",
                              name=name, limit=limit // (1024 * 1024)))
    return FileTooLarge(_("%(name)s is %(size).1f MB; the archive accepts files of at most %(limit)d MB.",
                          name=name, size=size / (1024 * 1024), limit=limit // (1024 * 1024)))


def resolve_doc_type(institution: Institution, code: str):
    doc_type = rules_for(institution).document_type(code or "")
    if doc_type is None:
        raise InvalidInput(_("Unknown document type %(code)s.", code=code or "—"))
    return doc_type


def collect_document(actor: User | None, *, borrower: Borrower, loan: Loan | None, doc_type: str,
                     fileobj: BinaryIO, filename: str, paper_original: bool = False, source: str = "upload",
                     version_of: Document | None = None, check_role: bool = True,
                     store: ObjectStore | None = None) -> Collected:
    """Store one file in the borrower's credit file, state "collected".

    Refused before anything is written: unknown type, a loan of another borrower, a file over
    the size limit, content that is not an accepted kind (or not the kind its name claims).
    Refused after the object is written, which is then deleted: the same content already in
    this credit file. The same content in other credit files is stored and reported.
    """
    if actor is not None:
        if check_role:
            check(actor, "archive.upload")
        if not institution_visible(actor, borrower.institution) and not (
                loan is not None and institution_visible(actor, loan.branch)):
            raise not_found()
    if loan is not None and loan.borrower_id != borrower.id:
        raise InvalidInput(_("Loan %(no)s belongs to another borrower.", no=loan.contract_no))
    dtype = resolve_doc_type(borrower.institution, doc_type)
    shown_name = sanitise_filename(filename)
    if version_of is not None and (version_of.borrower_id != borrower.id or not version_of.sealed):
        raise InvalidInput(_("A new version can only be added for an archived document of the same credit file."))

    limit = max_file_bytes()
    fileobj = _seekable(fileobj, limit)
    length = _remaining(fileobj)
    if length > limit:
        raise _too_large(shown_name, length, limit)
    sniffed = sniff(fileobj)
    if not sniffed.accepted:
        raise InvalidInput(_("%(name)s was refused: it is %(received)s. The archive accepts %(kinds)s files.",
                             name=shown_name, received=sniffed.received, kinds=ACCEPTED_TYPES_TEXT))
    claimed = claimed_kind(filename)
    if claimed is not None and claimed != sniffed.kind.code:
        raise InvalidInput(_("%(name)s was refused: its name says %(claimed)s, but its content is %(received)s.",
                             name=shown_name, claimed=str(ACCEPTED[claimed].description), received=sniffed.received))
    name = sanitise_filename(filename, sniffed.kind)
    retention = rules_for(borrower.institution).retention_period(dtype)

    store = store or current_store()
    start = fileobj.tell()
    try:
        stored = store.put_stream(fileobj, length=length, media_type=sniffed.kind.media_type, max_size=limit)
    except SizeLimitExceeded:
        raise _too_large(name, None, limit) from None
    session = db.session()
    track_new_object(session, store, stored.key)
    try:
        fileobj.seek(start)
        pages = count_pages(fileobj, sniffed.kind)
        volume = volume_for(actor, borrower)
        same = db.session.execute(
            select(Document).where(Document.volume_id == volume.id, Document.sha256 == stored.sha256,
                                   Document.state.in_(LIVE_STATES)).limit(1)).scalar_one_or_none()
        if same is not None:
            raise InvalidInput(_("%(name)s was not stored: the same content (SHA-256 %(sha)s…) is already in this "
                                 "credit file as document %(ref)s.", name=name, sha=stored.sha256[:12],
                                 ref=doc_ref(same)))
        elsewhere_stmt = select(Document).where(Document.sha256 == stored.sha256, Document.state.in_(LIVE_STATES))
        if actor is not None:
            elsewhere_stmt = elsewhere_stmt.where(in_scope(Document.institution_id, actor))
        elsewhere = list(db.session.execute(elsewhere_stmt.limit(5)).scalars())
        doc = Document(
            volume_id=volume.id, loan_id=loan.id if loan else None, borrower_id=borrower.id,
            institution_id=loan.branch_id if loan is not None else borrower.institution_id,
            doc_type=dtype.code, stage=dtype.stage, state=DocState.COLLECTED.value,
            retention_code=retention.code, retention_years=retention.years,
            sha256=stored.sha256, size_bytes=stored.size, media_type=sniffed.kind.media_type,
            page_count=pages, original_name=name, object_key=stored.key, source=source,
            paper_original=bool(paper_original), version_of_id=version_of.id if version_of else None,
            created_by_id=getattr(actor, "id", None))
        db.session.add(doc)
        db.session.flush()
        record_event(actor, "archive.collect", "archive_document", doc.id,
                     {"borrower": borrower.name, "loan": loan.contract_no if loan else None, "type": dtype.code,
                      "name": name, "sha256": stored.sha256, "size": stored.size, "source": source,
                      "version_of": version_of.id if version_of else None},
                     institution_id=doc.institution_id)
    except BaseException:
        untrack_new_object(session, stored.key)
        try:
            store.delete(stored.key)
        except Exception:  # noqa: BLE001 - verify lists what could not be removed
            current_app.logger.exception("could not remove object %s after a failed insert", stored.key)
        raise
    return Collected(doc, elsewhere)


def store_generated_document(actor: User | None, loan: Loan, doc_type: str, filename: str, data: bytes,
                             media_type: str = "application/pdf") -> Document:
    """File bytes the portal produced (an inspection report, a notice, a handover list) into the
    borrower's credit file as "collected". Same checks and no-orphan rules as an upload; the
    calling service has checked its own permission. Storing the very same bytes again returns
    the document already stored, so a retried job does not file a copy. Flushed, not committed."""
    received = sniff(io.BytesIO(data))
    if received.kind is None or received.kind.media_type != media_type:
        raise InvalidInput(_("%(name)s was refused: it is %(received)s, not %(want)s.", name=filename,
                             received=received.received, want=media_type))
    volume = volume_of(loan.borrower)
    if volume is not None:
        digest = hashlib.sha256(data).hexdigest()
        same = db.session.execute(
            select(Document).where(Document.volume_id == volume.id, Document.sha256 == digest,
                                   Document.state.in_(LIVE_STATES)).limit(1)).scalar_one_or_none()
        if same is not None:
            return same
    collected = collect_document(actor, borrower=loan.borrower, loan=loan, doc_type=doc_type,
                                 fileobj=io.BytesIO(data), filename=filename, source="generated", check_role=False)
    return collected.document


# --- the lifecycle -----------------------------------------------------------------------

def _transition(actor: User | None, doc: Document, new_state: str, action: str, summary: dict | None = None) -> None:
    if new_state not in DOCUMENT_TRANSITIONS[doc.state]:
        raise WrongState(_("Document %(ref)s is %(state)s; it cannot become %(new)s.", ref=doc_ref(doc),
                           state=label(doc.state, "doc_state"), new=label(new_state, "doc_state")))
    old = doc.state
    doc.state = new_state
    doc.state_changed_at = utcnow()
    db.session.flush()
    record_event(actor, action, "archive_document", doc.id, {"from": old, "to": new_state, **(summary or {})},
                 institution_id=doc.institution_id)


def _managed(actor: User, doc: Document) -> None:
    check(actor, "archive.manage")
    if not institution_visible(actor, doc.institution):
        raise not_found()


def sort_document(actor: User, doc: Document, *, doc_type: str | None = None, loan: Loan | None = None,
                  clear_loan: bool = False) -> Document:
    """整理: the archivist checks (and may correct) type and loan; collected → sorted."""
    _managed(actor, doc)
    if doc.state != DocState.COLLECTED.value:
        raise WrongState(_("Document %(ref)s is %(state)s; only collected documents are sorted.",
                           ref=doc_ref(doc), state=label(doc.state, "doc_state")))
    changes = {}
    if doc_type and doc_type != doc.doc_type:
        dtype = resolve_doc_type(doc.borrower.institution, doc_type)
        retention = rules_for(doc.borrower.institution).retention_period(dtype)
        changes["type"] = [doc.doc_type, dtype.code]
        doc.doc_type, doc.stage = dtype.code, dtype.stage
        doc.retention_code, doc.retention_years = retention.code, retention.years
    if loan is not None and loan.id != doc.loan_id:
        if loan.borrower_id != doc.borrower_id:
            raise InvalidInput(_("Loan %(no)s belongs to another borrower.", no=loan.contract_no))
        changes["loan"] = [doc.loan.contract_no if doc.loan else None, loan.contract_no]
        doc.loan_id = loan.id
    elif clear_loan and doc.loan_id is not None:
        changes["loan"] = [doc.loan.contract_no, None]
        doc.loan_id = None
    _transition(actor, doc, DocState.SORTED.value, "archive.sort", changes)
    return doc


def allocate_item_no(institution_id: int, year: int, retention_code: str) -> int:
    """The next item number of this institution, year and retention. The UPDATE comes first, so
    a concurrent filing waits for this transaction (row lock / SQLite write lock)."""
    where = and_(ArchiveCounter.institution_id == institution_id, ArchiveCounter.year == year,
                 ArchiveCounter.retention_code == retention_code)
    _insert_ignore(ArchiveCounter, {"institution_id": institution_id, "year": year,
                                    "retention_code": retention_code, "last_item": 0},
                   ["institution_id", "year", "retention_code"])
    db.session.execute(update(ArchiveCounter).where(where).values(last_item=ArchiveCounter.last_item + 1)
                       .execution_options(synchronize_session=False))
    return db.session.execute(select(ArchiveCounter.last_item).where(where)).scalar_one()


def file_document(actor: User, doc: Document) -> Document:
    """立卷: sorted → filed, with its archive number (档号) in the union plugin's format."""
    _managed(actor, doc)
    if doc.state != DocState.SORTED.value:
        raise WrongState(_("Document %(ref)s is %(state)s; only sorted documents are filed.",
                           ref=doc_ref(doc), state=label(doc.state, "doc_state")))
    custodian = doc.institution
    rules = rules_for(custodian)
    year = local_today().year
    item_no = allocate_item_no(custodian.id, year, doc.retention_code)
    number = rules.archive_number(ArchiveNumberParts(
        fonds=str(rules.settings["archive_fonds"]), category=str(rules.settings["archive_category"]),
        year=year, retention_code=doc.retention_code, institution_code=custodian.code, item_no=item_no))
    taken = db.session.execute(select(Document.id).where(Document.archive_number == number)).first()
    if taken is not None:
        raise WrongState(_("Archive number %(no)s is already taken; check the union's archive number settings.",
                           no=number))
    doc.archive_number, doc.archive_year, doc.item_no = number, year, item_no
    _transition(actor, doc, DocState.FILED.value, "archive.file", {"archive_number": number})
    return doc


def archive_document(actor: User, doc: Document, *, shelf_location: str | None = None) -> Document:
    """归档: filed → archived. From now on the content is sealed by its checksum."""
    _managed(actor, doc)
    location = (shelf_location or "").strip()[:64] or doc.shelf_location
    if doc.state == DocState.FILED.value and doc.paper_original and not location:
        raise InvalidInput(_("Document %(ref)s has a paper original: give its shelf location to archive it.",
                             ref=doc_ref(doc)))
    doc.shelf_location = location
    doc.archived_at = utcnow()
    _transition(actor, doc, DocState.ARCHIVED.value, "archive.archive",
                {"sha256": doc.sha256, "shelf_location": location})
    return doc


def discard_document(actor: User, doc: Document, reason: str) -> Document:
    """While sorting: remove a duplicate or wrong file. The row stays as a tombstone; the
    object is deleted once this is committed. Archived documents are sealed and refused."""
    _managed(actor, doc)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("Give the reason for discarding the document."))
    if doc.state not in EDITABLE_STATES:
        raise WrongState(_("Document %(ref)s is %(state)s and sealed: it cannot be discarded or replaced, "
                           "only followed by a new version.", ref=doc_ref(doc), state=label(doc.state, "doc_state")))
    if doc.source == "generated":
        raise WrongState(_("Document %(ref)s was produced by the post-loan work and is its record; it cannot be "
                           "discarded.", ref=doc_ref(doc)))
    doc.removed_at = utcnow()
    doc.removal_reason = reason[:1000]
    _transition(actor, doc, DocState.DISCARDED.value, "archive.discard", {"reason": doc.removal_reason})
    delete_after_commit(db.session(), current_store(), doc.object_key)
    return doc


def set_shelf_location(actor: User, doc: Document, location: str) -> Document:
    """保管: where the paper original sits. Custody metadata, allowed on sealed documents too."""
    _managed(actor, doc)
    if not doc.live:
        raise WrongState(_("Document %(ref)s is %(state)s.", ref=doc_ref(doc), state=label(doc.state, "doc_state")))
    location = (location or "").strip()[:64]
    if not location:
        raise InvalidInput(_("Give the shelf location."))
    old, doc.shelf_location = doc.shelf_location, location
    db.session.flush()
    record_event(actor, "archive.shelve", "archive_document", doc.id, {"from": old, "to": location},
                 institution_id=doc.institution_id)
    return doc


# --- opening content ---------------------------------------------------------------------

def active_lending_for(user: User, doc: Document) -> Lending | None:
    """The user's issued, not yet due, digital lending that covers this document."""
    return db.session.execute(
        select(Lending).join(lending_item, lending_item.c.lending_id == Lending.id)
        .where(lending_item.c.document_id == doc.id, Lending.requester_id == user.id,
               Lending.state == LendingState.ISSUED.value, Lending.medium == "digital",
               Lending.due_on >= local_today())
        .order_by(Lending.due_on.desc()).limit(1)).scalar_one_or_none()


def reads_directly(user: User, doc: Document) -> bool:
    """Archivists, directors and auditors read any live document in scope; whoever collects
    documents reads them until they are archived. Everyone else borrows (lending)."""
    if can(user, "archive.read"):
        return True
    return doc.state in (DocState.COLLECTED.value, DocState.SORTED.value, DocState.FILED.value) and can(
        user, "archive.upload")


def content_access(user: User, doc: Document) -> tuple[bool, Lending | None]:
    """(may open, under which lending). Raises nothing; the caller decides what to say."""
    if not doc.live:
        return False, None
    if reads_directly(user, doc):
        return True, None
    lending = active_lending_for(user, doc)
    return lending is not None, lending


def open_document(actor: User, doc: Document, *, inline: bool = True) -> str:
    """Register the look and return a time-limited URL of the content."""
    if not institution_visible(actor, doc.institution):
        raise not_found()
    if not doc.live:
        raise WrongState(_("Document %(ref)s was %(state)s; its content is no longer kept.",
                           ref=doc_ref(doc), state=label(doc.state, "doc_state")))
    allowed, lending = content_access(actor, doc)
    if not allowed:
        raise PermissionDenied(_("Document %(ref)s is archived. To read it, request a lending; once it is "
                                 "approved and issued, the link works until the due date.", ref=doc_ref(doc)))
    # Ask the store first (one HEAD request): when it is down or the object is gone the user
    # gets a clear message instead of a dead link, and no look is registered that never happened.
    if not current_store().exists(doc.object_key):
        raise NotFound(_("The file of document %(ref)s is missing from the archive's store, so it cannot be "
                         "opened. Please tell your administrator (`flask archive verify` lists missing files).",
                         ref=doc_ref(doc)))
    db.session.add(DocumentAccess(document_id=doc.id, user_id=actor.id, institution_id=doc.institution_id,
                                  lending_id=lending.id if lending else None,
                                  disposition="inline" if inline else "attachment"))
    db.session.flush()
    minutes = current_app.config["XINDANG_DOWNLOAD_LINK_MINUTES"]
    return current_store().url_for_download(doc.object_key, filename=doc.original_name, media_type=doc.media_type,
                                            inline=inline, expires=timedelta(minutes=minutes), user_id=actor.id)


# --- permanent list files ----------------------------------------------------------------

def store_list_file(actor: User | None, institution_id: int, kind: str, title: str, pdf: bytes) -> ListFile:
    """Keep a handover or destruction list PDF for good (object first, row after)."""
    store = current_store()
    stored = store.put_stream(io.BytesIO(pdf), length=len(pdf), media_type="application/pdf")
    session = db.session()
    track_new_object(session, store, stored.key)
    row = ListFile(institution_id=institution_id, kind=kind, title=title[:255], object_key=stored.key,
                   sha256=stored.sha256, size_bytes=stored.size, created_by_id=getattr(actor, "id", None))
    db.session.add(row)
    db.session.flush()
    return row


def list_file_bytes(list_file_id: int) -> bytes:
    """The kept PDF of a handover or destruction list; refused with a message when the store
    has lost it."""
    row = db.session.get(ListFile, list_file_id)
    try:
        return current_store().read_bytes(row.object_key)
    except ObjectMissing:
        raise InvalidInput(_("The stored list file is missing from the store; run `flask archive verify`.")) from None
