"""Search pages: the search form and its results, and retrying a document's text extraction.

Also registers, for every template, ``search_text_status(document_id)`` (what extraction found,
for the archive's document page, which includes ``search/_document_text.html``), and starts the
portal's own queue drainer at the first request when ``XINDANG_SEARCH_DRAIN_IN_PORTAL`` is on.
"""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ..accounts.scope import get_scoped_or_404, require, visible_institutions
from ..archive.labels import doc_type_names
from ..archive.models import LIVE_STATES, STATE_ORDER, Document
from ..extensions import db
from ..labels import LABELS
from ..web import date_arg, done, id_arg, page_arg
from . import models  # noqa: F401 - the tables must be known to db.create_all
from .models import DocumentText, QueueOp
from .query import SORTS, Filters, search_documents
from .queue import enqueue, start_portal_drainer

bp = Blueprint("search", __name__, url_prefix="/search")


@bp.route("/")
@require("search.use")
def search_page():
    institutions = visible_institutions(current_user)
    by_id = {i.id: i for i in institutions}
    institution = by_id.get(id_arg("institution"))
    type_names = doc_type_names(current_user.institution)
    doctype = request.args.get("type") or None
    stage = request.args.get("stage") or None
    state = request.args.get("state") or None
    filters = Filters(
        doctype=doctype if doctype in type_names else None,
        stage=stage if stage in LABELS["stage"] else None,
        state=state if state in LIVE_STATES else None,
        institution_path=institution.path if institution is not None else None,
        date_from=date_arg("from"), date_to=date_arg("to"))
    sort = request.args.get("sort") if request.args.get("sort") in SORTS else "relevance"
    page = page_arg("page")
    results = search_documents(current_user, (request.args.get("q") or "")[:400], filters, page=page,
                               per_page=current_app.config["XINDANG_SEARCH_PAGE_SIZE"], sort=sort)
    return render_template("search/results.html", results=results, type_names=type_names,
                           institutions=institutions, institution=institution,
                           states=[s for s in STATE_ORDER if s in LIVE_STATES], sorts=SORTS)


@bp.route("/documents/<int:document_id>/extract", methods=["POST"])
@require("search.manage")
def retry_extraction(document_id: int):
    """Queue the document's text to be extracted again (after a failure, or once OCR is there)."""
    doc = get_scoped_or_404(Document, document_id, current_user)
    enqueue([doc.id], QueueOp.EXTRACT.value)
    return done(_("The text of this document will be extracted again shortly."),
                url_for("archive.document", document_id=doc.id))


@bp.app_template_global()
def search_text_status(document_id: int) -> DocumentText | None:
    return db.session.get(DocumentText, document_id)


@bp.before_app_request
def _start_drainer():
    app = current_app._get_current_object()
    if app.config["XINDANG_SEARCH_DRAIN_IN_PORTAL"] and not app.testing:
        start_portal_drainer(app)
