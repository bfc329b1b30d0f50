"""Transfers (移交): the list, drawing up a handover list (移交清册), its page, its steps and its PDF."""
from __future__ import annotations

from flask import abort, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ...accounts.scope import institution_visible, require, visible_institutions
from ...errors import not_found
from ...extensions import db
from ...web import done, id_arg, id_list, pdf_response
from .. import services
from .. import transfer as transfer_svc
from ..forms import TransferForm
from ..labels import doc_type_names
from ..models import Transfer
from . import bp


@bp.route("/transfers")
@require("transfer.view")
def transfer_list():
    rows = db.session.execute(transfer_svc.transfers_query(current_user).order_by(Transfer.created_at.desc())
                              .limit(200)).scalars().all()
    return render_template("archive/transfers.html", rows=rows)


@bp.route("/transfers/new", methods=["GET", "POST"])
@require("transfer.manage")
def transfer_new():
    senders = visible_institutions(current_user)
    # The page is about its sender: one named that is none of the user's institutions is a 404.
    sender_id = id_arg("sender") if (request.values.get("sender") or "").strip() else current_user.institution_id
    sender = next((i for i in senders if i.id == sender_id), None)
    if sender is None:
        raise not_found()
    targets = transfer_svc.transfer_targets(sender)
    form = TransferForm()
    form.receiver.choices = [(i.id, f"{i.name} ({i.code})") for i in targets]
    q = (request.values.get("q") or "").strip()[:64]
    volumes = transfer_svc.transferable_volumes(sender, q)
    if request.method == "POST" and form.validate_on_submit():
        receiver = next(i for i in targets if i.id == form.receiver.data)
        # A credit file outside the subtree is not found (its name is never shown).
        chosen = [services.volume_or_404(current_user, i) for i in sorted(set(id_list("volume_ids")))]
        transfer = transfer_svc.create_transfer(current_user, sender=sender, receiver=receiver, volumes=chosen,
                                                note=form.note.data or "")
        return done(_("Handover list #%(id)d drawn up.", id=transfer.id),
                    url_for("archive.transfer_detail", transfer_id=transfer.id), code=303)
    status = 422 if request.method == "POST" else 200
    return render_template("archive/transfer_new.html", form=form, senders=senders, sender=sender, volumes=volumes,
                           q=q), status


@bp.route("/transfers/<int:transfer_id>")
@require("transfer.view")
def transfer_detail(transfer_id: int):
    transfer = transfer_svc.get_transfer_or_404(current_user, transfer_id)
    return render_template("archive/transfer_detail.html", transfer=transfer,
                           type_names=doc_type_names(transfer.institution),
                           sender_side=institution_visible(current_user, transfer.institution),
                           receiver_side=institution_visible(current_user, transfer.to_institution))


@bp.route("/transfers/<int:transfer_id>/<action>", methods=["POST"])
@require("transfer.manage")
def transfer_action(transfer_id: int, action: str):
    transfer = transfer_svc.get_transfer_or_404(current_user, transfer_id)
    steps = {
        "send": (transfer_svc.send_transfer, _("Handover list confirmed and sent.")),
        "receive": (transfer_svc.receive_transfer, _("Receipt confirmed; custody has moved.")),
        "cancel": (transfer_svc.cancel_transfer, _("Transfer cancelled.")),
    }
    if action not in steps:
        abort(404)
    step, message = steps[action]
    step(current_user, transfer)
    return done(message, url_for("archive.transfer_detail", transfer_id=transfer.id), code=303)


@bp.route("/transfers/<int:transfer_id>/handover.pdf")
@require("transfer.view")
def transfer_pdf(transfer_id: int):
    transfer = transfer_svc.get_transfer_or_404(current_user, transfer_id)
    if transfer.list_file_id:
        return pdf_response(services.list_file_bytes(transfer.list_file_id), f"移交清册-{transfer.id}.pdf")
    return pdf_response(transfer_svc.handover_list_pdf(transfer), f"移交清册-{transfer.id}-草稿.pdf")
