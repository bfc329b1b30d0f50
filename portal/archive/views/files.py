"""Credit files: the archive's overview, a borrower's credit file, upload, a document's page,
its content (through a time-limited link) and its lifecycle steps."""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import Response, abort, current_app, flash, jsonify, redirect, render_template, request, \
    stream_with_context, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ...accounts.scope import get_scoped_or_404, require
from ...errors import XindangError, not_found
from ...extensions import db
from ...labels import label
from ...loans.models import Borrower, Loan
from ...loans.services import borrower_loans
from ...routing import parse_id
from ...rules.lookup import rules_for
from ...rules.types import STAGES
from ...web import done, file_response, id_arg
from .. import services
from ..forms import (ArchiveForm, HoldForm, LendingRequestForm, ReasonForm, ShelfForm, SortForm,
                     UploadForm)
from ..labels import doc_type_names
from ..models import DocState, Document
from ..queries import archive_overview, credit_file_contents, document_details
from ..sniffing import sanitise_filename
from ..storage import LocalStore, ObjectMissing, current_store
from . import bp


def _page_policy(response: Response) -> Response:
    """Pages that show stored content inline may load it from the store's own address."""
    origin = current_store().content_origin()
    if origin:
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data: blob: {origin}; frame-src 'self' {origin}; object-src 'none'; "
            "frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
    return response


def _frameable(response: Response) -> None:
    # No script of any kind; object-src lets the browser's own PDF viewer show a PDF.
    response.headers["Content-Security-Policy"] = ("default-src 'none'; img-src 'self' data: blob:; "
                                                   "style-src 'unsafe-inline'; object-src 'self'; "
                                                   "frame-ancestors 'self'")
    response.headers["X-Frame-Options"] = "SAMEORIGIN"


# --- overview ------------------------------------------------------------------------------

@bp.route("/")
@require("archive.view")
def index():
    number = (request.args.get("number") or "").strip()
    if number:
        return redirect(url_for("archive.by_number", number=number))
    return render_template("archive/index.html", **vars(archive_overview(current_user)),
                           type_names=doc_type_names(current_user.institution), states=[s.value for s in DocState])


@bp.route("/number/<path:number>")
@require("archive.view")
def by_number(number: str):
    doc = services.document_by_number(current_user, number)
    if doc is None:
        raise not_found()
    return redirect(url_for("archive.document", document_id=doc.id))


# --- the credit file ---------------------------------------------------------------------

@bp.route("/borrowers/<int:borrower_id>")
@require("archive.view")
def credit_file(borrower_id: int):
    borrower, volume = services.credit_file_or_404(current_user, borrower_id)
    show_removed = request.args.get("removed") == "1"
    contents = credit_file_contents(borrower, volume, current_user, show_removed=show_removed)
    return render_template("archive/credit_file.html", borrower=borrower, volume=volume, **vars(contents),
                           stages=STAGES, show_removed=show_removed,
                           type_names=doc_type_names(borrower.institution), hold_form=HoldForm(),
                           lending_form=LendingRequestForm())


# --- upload --------------------------------------------------------------------------------

@dataclass
class UploadResult:
    name: str
    ok: bool
    message: str = ""
    status: int = 201
    document: Document | None = None
    duplicates: list[Document] = field(default_factory=list)

    @property
    def refs(self) -> str:
        return ", ".join(services.doc_ref(d) for d in self.duplicates)

    def as_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "message": self.message, "status": self.status,
                "document_id": self.document.id if self.document else None,
                "url": url_for("archive.document", document_id=self.document.id) if self.document else None,
                "duplicates": [services.doc_ref(d) for d in self.duplicates]}


def _type_choices(institution) -> list[tuple[str, str]]:
    names = doc_type_names(institution)
    rules = rules_for(institution)
    return [(d.code, f"{names[d.code]} · {label(d.stage, 'stage')}") for d in rules.document_types()]


def _loan_choices(borrower: Borrower) -> list[tuple[int, str]]:
    return [(0, _("— none —"))] + [(loan.id, loan.contract_no) for loan in borrower_loans(borrower, current_user)]


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


@bp.route("/borrowers/<int:borrower_id>/upload", methods=["GET", "POST"])
@require("archive.upload")
def upload(borrower_id: int):
    borrower, _volume = services.credit_file_or_404(current_user, borrower_id)
    form = UploadForm()
    form.doc_type.choices = _type_choices(borrower.institution)
    form.loan.choices = _loan_choices(borrower)
    if request.method == "GET":
        form.doc_type.data = request.args.get("type") or form.doc_type.data
        form.loan.data = id_arg("loan") or 0
        form.version_of.data = request.args.get("version_of", "")
    results: list[UploadResult] = []
    status = 200
    if request.method == "POST":
        if not form.validate_on_submit():
            status = 400 if "csrf_token" in form.errors else 422
        else:
            loan = get_scoped_or_404(Loan, form.loan.data, current_user) if form.loan.data else None
            version_of = None
            if (form.version_of.data or "").isdigit():  # "²" too: found by no id, 404
                version_of = get_scoped_or_404(Document, parse_id(form.version_of.data) or 0, current_user)
            for upload_file in request.files.getlist(form.files.name):
                if not upload_file or not upload_file.filename:
                    continue
                try:
                    collected = services.collect_document(
                        current_user, borrower=borrower, loan=loan, doc_type=form.doc_type.data,
                        fileobj=upload_file.stream, filename=upload_file.filename,
                        paper_original=form.paper_original.data, version_of=version_of)
                    results.append(UploadResult(collected.document.original_name, True, document=collected.document,
                                                duplicates=collected.duplicates_elsewhere))
                except XindangError as exc:
                    results.append(UploadResult(sanitise_filename(upload_file.filename), False, exc.message,
                                                exc.status))
            db.session.commit()
            failed = [r for r in results if not r.ok]
            if not results:
                status = 422
                form.files.errors = [_("Choose at least one file.")]
            else:
                status = failed[0].status if failed else 201
            if not failed and results and not _wants_json():
                stored = ", ".join(r.name for r in results)
                flash(_("Stored: %(names)s.", names=stored), "success")
                for r in results:
                    if r.duplicates:
                        flash(_("%(name)s has the same content as %(refs)s in other credit files.", name=r.name,
                                refs=", ".join(services.doc_ref(d) for d in r.duplicates)), "warning")
                return redirect(url_for("archive.credit_file", borrower_id=borrower.id), code=303)
    if _wants_json() and request.method == "POST":
        return jsonify(results=[r.as_dict() for r in results],
                       errors={k: [str(e) for e in v] for k, v in form.errors.items()},
                       next=url_for("archive.credit_file", borrower_id=borrower.id)), status
    return render_template("archive/upload.html", borrower=borrower, form=form, results=results,
                           max_mb=current_app.config["XINDANG_ARCHIVE_MAX_FILE_MB"]), status


# --- documents ---------------------------------------------------------------------------

def _document_or_404(document_id: int) -> Document:
    return get_scoped_or_404(Document, document_id, current_user)


@bp.route("/documents/<int:document_id>")
@require("archive.view")
def document(document_id: int):
    doc = _document_or_404(document_id)
    sort_form = SortForm(doc_type=doc.doc_type, loan=doc.loan_id or 0)
    sort_form.doc_type.choices = _type_choices(doc.borrower.institution)
    sort_form.loan.choices = _loan_choices(doc.borrower)
    response = Response(render_template(
        "archive/document.html", doc=doc, **vars(document_details(doc, current_user)),
        type_names=doc_type_names(doc.borrower.institution), sort_form=sort_form, archive_form=ArchiveForm(),
        shelf_form=ShelfForm(shelf_location=doc.shelf_location), reason_form=ReasonForm(),
        lending_form=LendingRequestForm()))
    return _page_policy(response)


@bp.route("/documents/<int:document_id>/open")
@require("archive.view")
def document_open(document_id: int):
    """Register the look, then send the browser to a time-limited link of the content."""
    doc = _document_or_404(document_id)
    url = services.open_document(current_user, doc, inline=request.args.get("download") != "1")
    db.session.commit()
    response = redirect(url, code=302)
    _frameable(response)  # the document page shows the content in a frame
    return response


@bp.route("/objects/<token>")
@require("archive.view")
def object_download(token: str):
    """The local store's signed, expiring download link, valid only for the user it was made for."""
    store = current_store()
    if not isinstance(store, LocalStore):
        abort(404)
    data = store.read_token(token, current_user.id)
    if data is None:
        abort(404)
    try:
        chunks = store.get_stream(data["k"])
    except ObjectMissing:
        abort(404)
    response = file_response(stream_with_context(chunks), data["n"], data["t"], inline=data["i"])
    _frameable(response)  # shown inside the document page
    return response


@bp.route("/documents/<int:document_id>/sort", methods=["POST"])
@require("archive.manage")
def document_sort(document_id: int):
    doc = _document_or_404(document_id)
    # "0" (or nothing) is "tied to no loan"; anything else must name a loan of the user's scope.
    chosen = (request.form.get("loan") or "").strip()
    loan_id = id_arg("loan")
    if chosen not in ("", "0") and loan_id is None:
        raise not_found()
    loan = get_scoped_or_404(Loan, loan_id, current_user) if loan_id else None
    services.sort_document(current_user, doc, doc_type=request.form.get("doc_type") or None, loan=loan,
                           clear_loan=loan is None and "loan" in request.form)
    return done(_("Document %(ref)s sorted.", ref=services.doc_ref(doc)),
                url_for("archive.document", document_id=doc.id), code=303)


@bp.route("/documents/<int:document_id>/file", methods=["POST"])
@require("archive.manage")
def document_file(document_id: int):
    doc = _document_or_404(document_id)
    services.file_document(current_user, doc)
    return done(_("Document filed with archive number %(no)s.", no=doc.archive_number),
                url_for("archive.document", document_id=doc.id), code=303)


@bp.route("/documents/<int:document_id>/archive", methods=["POST"])
@require("archive.manage")
def document_archive(document_id: int):
    doc = _document_or_404(document_id)
    services.archive_document(current_user, doc, shelf_location=request.form.get("shelf_location"))
    return done(_("Document %(ref)s archived and sealed.", ref=services.doc_ref(doc)),
                url_for("archive.document", document_id=doc.id), code=303)


@bp.route("/documents/<int:document_id>/discard", methods=["POST"])
@require("archive.manage")
def document_discard(document_id: int):
    doc = _document_or_404(document_id)
    services.discard_document(current_user, doc, request.form.get("reason", ""))
    return done(_("Document %(ref)s discarded.", ref=services.doc_ref(doc)),
                url_for("archive.credit_file", borrower_id=doc.borrower_id), code=303)


@bp.route("/documents/<int:document_id>/shelf", methods=["POST"])
@require("archive.manage")
def document_shelf(document_id: int):
    doc = _document_or_404(document_id)
    services.set_shelf_location(current_user, doc, request.form.get("shelf_location", ""))
    return done(_("Shelf location saved."), url_for("archive.document", document_id=doc.id), code=303)
