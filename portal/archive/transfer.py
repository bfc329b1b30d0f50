"""Transfer of archived credit files to another institution (移交).

The sender draws up the handover list (移交清册) of the credit files' archived documents, confirms
it (sent), and the receiver confirms receipt (completed): custody of every listed document and
of the credit files moves to the receiver, and the handover list PDF is kept for good. Both sides
see the transfer; nothing else of the other side becomes visible.
"""
from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import Select, or_, select

from ..accounts.models import Institution, User
from ..accounts.scope import check, in_scope, institution_visible
from ..audit_trail import record_event
from ..errors import InvalidInput, PermissionDenied, WrongState, not_found
from ..extensions import db
from ..labels import label
from ..loans.models import Borrower
from ..reports.pdf import render_pdf
from ..timeutil import utcnow
from .labels import doc_type_names
from .models import (LIVE_STATES, TRANSFER_TRANSITIONS, DocState, Document, Lending, LendingState, Transfer,
                     TransferItem, TransferState, Volume, lending_item)
from .services import doc_ref, store_list_file

OPEN_STATES = (TransferState.DRAFT.value, TransferState.SENT.value)


def transfers_query(user: User) -> Select:
    """Transfers the user's institution sends or receives."""
    return select(Transfer).where(or_(in_scope(Transfer.institution_id, user),
                                      in_scope(Transfer.to_institution_id, user)))


def get_transfer_or_404(user: User, transfer_id: int) -> Transfer:
    transfer = db.session.execute(transfers_query(user).where(Transfer.id == transfer_id)).scalar_one_or_none()
    if transfer is None:
        raise not_found()
    return transfer


def transferable_volumes(sender: Institution, name: str = "", *, limit: int = 500) -> list[Volume]:
    """The credit files with archived documents kept by ``sender``, those whose borrower's name
    contains ``name`` if given, by id."""
    stmt = (select(Volume).join(Document, Document.volume_id == Volume.id)
            .where(Document.institution_id == sender.id, Document.state == DocState.ARCHIVED.value)
            .join(Borrower, Borrower.id == Volume.borrower_id).group_by(Volume.id).order_by(Volume.id).limit(limit))
    if name:
        stmt = stmt.where(Borrower.name.ilike(f"%{name}%"))
    return list(db.session.execute(stmt).scalars())


def _move(actor: User, transfer: Transfer, new_state: str, action: str, summary: dict | None = None) -> None:
    if new_state not in TRANSFER_TRANSITIONS[transfer.state]:
        raise WrongState(_("Transfer #%(id)d is %(state)s; this step is not possible now.", id=transfer.id,
                           state=label(transfer.state, "transfer_state")))
    old = transfer.state
    transfer.state = new_state
    db.session.flush()
    record_event(actor, action, "archive_transfer", transfer.id, {"from": old, "to": new_state, **(summary or {})},
                 institution_id=transfer.institution_id)


def transfer_targets(sender: Institution) -> list[Institution]:
    """Institutions of the same union a file may go to."""
    return list(db.session.execute(
        select(Institution).where(Institution.path.startswith(f"/{sender.province_code}/", autoescape=True),
                                  Institution.id != sender.id).order_by(Institution.path)).scalars())


def create_transfer(actor: User, *, sender: Institution, receiver: Institution, volumes: list[Volume],
                    note: str = "") -> Transfer:
    """Draw up the handover list: every archived document of these credit files held by the sender."""
    check(actor, "transfer.manage")
    if not institution_visible(actor, sender):
        raise not_found()
    if receiver.id == sender.id or receiver.province_code != sender.province_code:
        raise InvalidInput(_("Choose another institution of the same union to receive the files."))
    if not volumes:
        raise InvalidInput(_("Choose at least one credit file."))
    problems: list[str] = []
    documents: list[Document] = []
    for volume in volumes:
        held = [d for d in volume.documents if d.institution_id == sender.id and d.state in LIVE_STATES]
        if not held:
            problems.append(_("The credit file of %(name)s has no documents held by %(inst)s.",
                              name=volume.borrower.name, inst=sender.name))
        for doc in held:
            if doc.state != DocState.ARCHIVED.value:
                problems.append(_("Document %(ref)s of %(name)s is %(state)s: archive it or discard it first.",
                                  ref=doc_ref(doc), name=volume.borrower.name, state=label(doc.state, "doc_state")))
            documents.append(doc)
    ids = [d.id for d in documents]
    if ids:
        lent = db.session.execute(
            select(lending_item.c.document_id).join(Lending, Lending.id == lending_item.c.lending_id)
            .where(Lending.state == LendingState.ISSUED.value, lending_item.c.document_id.in_(ids))).scalars().all()
        problems += [_("Document #%(id)d is out on lending; it must be returned first.", id=i) for i in lent]
        pending = db.session.execute(
            select(TransferItem.document_id).join(Transfer)
            .where(Transfer.state.in_(OPEN_STATES), TransferItem.document_id.in_(ids))).scalars().all()
        problems += [_("Document #%(id)d is already on an open transfer.", id=i) for i in pending]
    if problems:
        raise InvalidInput(_("The handover list cannot be drawn up."), details=[str(p) for p in problems])
    transfer = Transfer(institution_id=sender.id, to_institution_id=receiver.id, note=(note or "").strip()[:2000],
                        created_by_id=actor.id, state=TransferState.DRAFT.value)
    transfer.items = [TransferItem(document_id=d.id) for d in documents]
    db.session.add(transfer)
    db.session.flush()
    record_event(actor, "archive.transfer_create", "archive_transfer", transfer.id,
                 {"to": receiver.code, "documents": [doc_ref(d) for d in documents]}, institution_id=sender.id)
    return transfer


def send_transfer(actor: User, transfer: Transfer) -> Transfer:
    """The sender confirms the handover list."""
    check(actor, "transfer.manage")
    if not institution_visible(actor, transfer.institution):
        raise not_found()
    transfer.sent_by_id, transfer.sent_at = actor.id, utcnow()
    _move(actor, transfer, TransferState.SENT.value, "archive.transfer_send")
    return transfer


def receive_transfer(actor: User, transfer: Transfer) -> Transfer:
    """The receiver confirms receipt: custody moves, and the handover list is kept for good."""
    check(actor, "transfer.manage")
    if not institution_visible(actor, transfer.to_institution):
        raise PermissionDenied(_("Only the receiving institution confirms receipt."))
    if actor.id == transfer.sent_by_id:
        raise PermissionDenied(_("You confirmed sending this list; someone at the receiving side must confirm receipt."))
    if transfer.state != TransferState.SENT.value:
        raise WrongState(_("Transfer #%(id)d is %(state)s; only a sent transfer can be received.", id=transfer.id,
                           state=label(transfer.state, "transfer_state")))
    transfer.received_by_id, transfer.received_at = actor.id, utcnow()
    volumes = set()
    for item in transfer.items:
        doc = item.document
        doc.institution_id = transfer.to_institution_id
        volumes.add(doc.volume)
    for volume in volumes:
        volume.institution_id = transfer.to_institution_id
    db.session.flush()
    pdf = handover_list_pdf(transfer)
    list_file = store_list_file(actor, transfer.institution_id, "handover_list",
                                f"移交清册 #{transfer.id} {transfer.institution.name} → {transfer.to_institution.name}",
                                pdf)
    transfer.list_file_id = list_file.id
    _move(actor, transfer, TransferState.COMPLETED.value, "archive.transfer_receive",
          {"documents": len(transfer.items), "list_sha256": list_file.sha256})
    return transfer


def cancel_transfer(actor: User, transfer: Transfer) -> Transfer:
    check(actor, "transfer.manage")
    if not institution_visible(actor, transfer.institution) and not institution_visible(actor, transfer.to_institution):
        raise not_found()
    transfer.cancelled_at = utcnow()
    _move(actor, transfer, TransferState.CANCELLED.value, "archive.transfer_cancel")
    return transfer


def handover_list_pdf(transfer: Transfer) -> bytes:
    return render_pdf("reports/archive_handover.html", title=_("Handover list"),
                      institution_name=transfer.institution.name, transfer=transfer,
                      type_names=doc_type_names(transfer.institution, chinese=True))
