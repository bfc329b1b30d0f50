"""Destruction (销毁): the lists, opening one for appraisal, a list's page and its steps (listing
documents, proposal, approval, supervision, execution) and its PDF (销毁清册)."""
from __future__ import annotations

from flask import abort, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ...accounts.scope import can, check, require, visible_institutions
from ...errors import InvalidInput, not_found
from ...extensions import db
from ...web import done, id_arg, id_list, pdf_response
from .. import destruction as destruction_svc
from .. import services
from ..forms import DestructionItemsForm, DestructionListForm, NoteForm
from ..labels import doc_type_names
from ..models import DestructionItem, DestructionList
from . import bp


@bp.route("/destruction", methods=["GET", "POST"])
@require("destruction.view")
def destruction_lists():
    form = DestructionListForm()
    institutions = visible_institutions(current_user)
    form.institution.choices = [(i.id, f"{i.name} ({i.code})") for i in institutions]
    if request.method == "GET":
        form.institution.data = current_user.institution_id
    if request.method == "POST":
        if not can(current_user, "destruction.propose"):
            abort(403)
        if not form.validate_on_submit():
            raise InvalidInput(_("Choose the institution and write the appraisal opinion."))
        institution = next(i for i in institutions if i.id == form.institution.data)
        dl = destruction_svc.create_destruction_list(current_user, institution, form.appraisal.data)
        return done(_("Destruction list #%(id)d opened for appraisal.", id=dl.id),
                    url_for("archive.destruction_detail", list_id=dl.id), code=303)
    rows = db.session.execute(destruction_svc.lists_query(current_user)
                              .order_by(DestructionList.created_at.desc()).limit(200)).scalars().all()
    return render_template("archive/destruction_lists.html", rows=rows, form=form)


@bp.route("/destruction/<int:list_id>")
@require("destruction.view")
def destruction_detail(list_id: int):
    dl = destruction_svc.get_list_or_404(current_user, list_id)
    return render_template("archive/destruction_detail.html", dl=dl,
                           eligible=destruction_svc.eligible_for_list(current_user, dl),
                           type_names=doc_type_names(dl.institution), items_form=DestructionItemsForm(),
                           note_form=NoteForm())


@bp.route("/destruction/<int:list_id>/<action>", methods=["POST"])
@require("destruction.view")
def destruction_action(list_id: int, action: str):
    dl = destruction_svc.get_list_or_404(current_user, list_id)
    note = request.form.get("note", "")
    detail = url_for("archive.destruction_detail", list_id=dl.id)
    if action in ("add", "remove"):  # the role first: what the lookups below find is no one else's business
        check(current_user, "destruction.propose")
    if action == "add":
        by_number = []
        for number in [n.strip() for n in request.form.get("numbers", "").splitlines() if n.strip()]:
            doc = services.document_by_number(current_user, number)
            if doc is None:
                raise InvalidInput(_("No document with archive number %(no)s in your institution.", no=number))
            by_number.append(doc)
        documents = services.documents_or_404(current_user, id_list("document_ids")) + by_number
        destruction_svc.add_to_destruction_list(current_user, dl, documents)
        return done(_("Documents listed for destruction."), detail, code=303)
    if action == "remove":
        item_id = id_arg("item_id")
        item = db.session.get(DestructionItem, item_id) if item_id is not None else None
        if item is None or item.list_id != dl.id:
            raise not_found()
        destruction_svc.remove_from_destruction_list(current_user, dl, item)
        return done(_("Document removed from the list."), detail, code=303)
    steps = {
        "propose": (lambda: destruction_svc.propose_destruction(current_user, dl), _("List proposed for approval.")),
        "approve": (lambda: destruction_svc.approve_destruction(current_user, dl, note), _("List approved.")),
        "reject": (lambda: destruction_svc.reject_destruction(current_user, dl, note), _("List rejected.")),
        "confirm": (lambda: destruction_svc.confirm_destruction(current_user, dl), _("Supervision confirmed.")),
        "execute": (lambda: destruction_svc.execute_destruction(current_user, dl),
                    _("Destruction executed; the list is kept permanently.")),
        "cancel": (lambda: destruction_svc.cancel_destruction(current_user, dl), _("List cancelled.")),
    }
    if action not in steps:
        abort(404)
    step, message = steps[action]
    step()
    return done(message, detail, code=303)


@bp.route("/destruction/<int:list_id>/list.pdf")
@require("destruction.view")
def destruction_pdf(list_id: int):
    dl = destruction_svc.get_list_or_404(current_user, list_id)
    if dl.list_file_id:
        return pdf_response(services.list_file_bytes(dl.list_file_id), f"销毁清册-{dl.id}.pdf")
    return pdf_response(destruction_svc.destruction_list_pdf(dl), f"销毁清册-{dl.id}-草稿.pdf")
