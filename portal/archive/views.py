"""Archive pages: the credit file, documents and their content, upload, lending, transfers,
holds and destruction lists, and their PDFs. Each view parses input, calls one service, and
renders or redirects; scope and role are checked here (``require``, scoped queries) and again
in the services."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from flask import (Blueprint, Response, abort, current_app, flash, jsonify, redirect, render_template, request,
                   stream_with_context, url_for)
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ..accounts.models import Institution
from ..accounts.scope import (can, check, get_scoped_or_404, in_scope, institution_visible, require,
                              visible_institutions)
from ..audit_trail import AuditEvent
from ..errors import InvalidInput, NotFound, XindangError
from ..extensions import db
from ..labels import label
from ..loans.models import Borrower, Loan
from ..reports.pdf import render_pdf
from ..routing import parse_id
from ..rules.lookup import rules_for
from ..rules.types import STAGES
from ..timeutil import local_today
from . import destruction as destruction_svc
from . import holds as holds_svc
from . import lending as lending_svc
from . import services
from . import transfer as transfer_svc
from .forms import (ArchiveForm, DestructionItemsForm, DestructionListForm, HoldForm, LendingRequestForm, NoteForm,
                    ReasonForm, RenewForm, ShelfForm, SortForm, TransferForm, UploadForm)
from .labels import doc_type_names
from .models import (LIVE_STATES, DestructionItem, DestructionList, DocState, Document, DocumentAccess, Hold,
                     Lending, LendingState, ListFile, Transfer, Volume)
from .sniffing import sanitise_filename
from .storage import LocalStore, ObjectMissing, content_disposition, current_store

bp = Blueprint("archive", __name__, url_prefix="/archive")


def _not_found() -> NotFound:
    return services.not_found()


def _done(message: str, endpoint: str, **values):
    db.session.commit()
    flash(message, "success")
    return redirect(url_for(endpoint, **values), code=303)


def _int_list(name: str) -> list[int]:
    return [i for i in map(parse_id, request.form.getlist(name)) if i is not None]


def _form_id(raw: str | None) -> int:
    """An id from a form field; 0 (no such row) unless it is a number the database can bind."""
    return parse_id(raw) or 0


def _pdf_response(data: bytes, filename: str) -> Response:
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = content_disposition(filename, inline=True)
    return response


def _page_policy(response: Response) -> Response:
    """Pages that show stored content inline may load it from the store's own address."""
    origin = current_store().content_origin()
    if origin:
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data: blob: {origin}; frame-src 'self' {origin}; object-src 'none'; "
            "frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
    return response


# --- overview ------------------------------------------------------------------------------

@bp.route("/")
@require("archive.view")
def index():
    number = (request.args.get("number") or "").strip()
    if number:
        return redirect(url_for("archive.by_number", number=number))
    counts = dict(db.session.execute(
        select(Document.state, func.count()).where(in_scope(Document.institution_id, current_user))
        .group_by(Document.state)).all())
    mine = db.session.execute(
        select(Lending).where(Lending.requester_id == current_user.id,
                              Lending.state.in_([LendingState.REQUESTED.value, LendingState.APPROVED.value,
                                                 LendingState.ISSUED.value]))
        .order_by(Lending.requested_at.desc())).scalars().all()
    to_decide = db.session.execute(lending_svc.awaiting_decision(current_user)).scalars().all() \
        if can(current_user, "lending.approve") else []
    overdue = db.session.execute(select(func.count()).select_from(
        lending_svc.overdue_query(current_user).subquery())).scalar_one()
    recent = db.session.execute(
        select(Document).where(in_scope(Document.institution_id, current_user))
        .options(selectinload(Document.borrower)).order_by(Document.id.desc()).limit(15)).scalars().all()
    return render_template("archive/index.html", counts=counts, mine=mine, to_decide=to_decide, overdue=overdue,
                           recent=recent, type_names=doc_type_names(current_user.institution),
                           states=[s.value for s in DocState])


@bp.route("/number/<path:number>")
@require("archive.view")
def by_number(number: str):
    doc = db.session.execute(
        select(Document).where(Document.archive_number == number.strip(),
                               in_scope(Document.institution_id, current_user))).scalar_one_or_none()
    if doc is None:
        raise _not_found()
    return redirect(url_for("archive.document", document_id=doc.id))


# --- the credit file ---------------------------------------------------------------------

def _file_of(borrower_id: int) -> tuple[Borrower, Volume | None]:
    """A credit file is visible to the borrower's institution and to whoever holds it."""
    borrower = db.session.get(Borrower, borrower_id)
    if borrower is None:
        raise _not_found()
    volume = services.volume_of(borrower)
    if not (institution_visible(current_user, borrower.institution)
            or (volume is not None and institution_visible(current_user, volume.institution))):
        raise _not_found()
    return borrower, volume


@bp.route("/borrowers/<int:borrower_id>")
@require("archive.view")
def credit_file(borrower_id: int):
    borrower, volume = _file_of(borrower_id)
    show_removed = request.args.get("removed") == "1"
    documents: list[Document] = []
    holds: list[Hold] = []
    if volume is not None:
        stmt = select(Document).where(Document.volume_id == volume.id,
                                      in_scope(Document.institution_id, current_user))
        if not show_removed:
            stmt = stmt.where(Document.state.in_(LIVE_STATES))
        documents = list(db.session.execute(stmt.options(selectinload(Document.loan))
                                            .order_by(Document.stage, Document.id)).scalars())
        holds = list(db.session.execute(
            select(Hold).where(Hold.lifted_at.is_(None),
                               (Hold.volume_id == volume.id) | Hold.loan_id.in_(
                                   select(Loan.id).where(Loan.borrower_id == borrower.id)))).scalars())
    by_stage = {stage: [d for d in documents if d.stage == stage] for stage in STAGES}
    loans = db.session.execute(select(Loan).where(Loan.borrower_id == borrower.id,
                                                  in_scope(Loan.branch_id, current_user))
                               .order_by(Loan.disbursed_on.desc())).scalars().all()
    return render_template("archive/credit_file.html", borrower=borrower, volume=volume, by_stage=by_stage,
                           stages=STAGES, loans=loans, holds=holds, show_removed=show_removed,
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
    loans = db.session.execute(select(Loan).where(Loan.borrower_id == borrower.id,
                                                  in_scope(Loan.branch_id, current_user))
                               .order_by(Loan.disbursed_on.desc())).scalars()
    return [(0, _("— none —"))] + [(loan.id, loan.contract_no) for loan in loans]


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


@bp.route("/borrowers/<int:borrower_id>/upload", methods=["GET", "POST"])
@require("archive.upload")
def upload(borrower_id: int):
    borrower, _volume = _file_of(borrower_id)
    form = UploadForm()
    form.doc_type.choices = _type_choices(borrower.institution)
    form.loan.choices = _loan_choices(borrower)
    if request.method == "GET":
        form.doc_type.data = request.args.get("type") or form.doc_type.data
        form.loan.data = request.args.get("loan", type=int) or 0
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
                version_of = get_scoped_or_404(Document, _form_id(form.version_of.data), current_user)
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
    may_open, lending = services.content_access(current_user, doc)
    history = db.session.execute(
        select(AuditEvent).where(AuditEvent.object_type == "archive_document", AuditEvent.object_id == str(doc.id))
        .order_by(AuditEvent.seq)).scalars().all()
    accesses = []
    if can(current_user, "archive.read") or can(current_user, "lending.register"):
        accesses = db.session.execute(
            select(DocumentAccess).where(DocumentAccess.document_id == doc.id)
            .options(selectinload(DocumentAccess.user)).order_by(DocumentAccess.at.desc()).limit(100)).scalars().all()
    sort_form = SortForm(doc_type=doc.doc_type, loan=doc.loan_id or 0)
    sort_form.doc_type.choices = _type_choices(doc.borrower.institution)
    sort_form.loan.choices = _loan_choices(doc.borrower)
    versions = db.session.execute(select(Document).where(Document.version_of_id == doc.id,
                                                         in_scope(Document.institution_id, current_user))).scalars().all()
    response = Response(render_template(
        "archive/document.html", doc=doc, may_open=may_open, lending=lending, history=history, accesses=accesses,
        type_names=doc_type_names(doc.borrower.institution), sort_form=sort_form, archive_form=ArchiveForm(),
        shelf_form=ShelfForm(shelf_location=doc.shelf_location), reason_form=ReasonForm(),
        lending_form=LendingRequestForm(), versions=versions,
        eligibility=destruction_svc.destruction_blockers(doc) if doc.state == DocState.ARCHIVED.value else None))
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


def _frameable(response: Response) -> None:
    # No script of any kind; object-src lets the browser's own PDF viewer show a PDF.
    response.headers["Content-Security-Policy"] = ("default-src 'none'; img-src 'self' data: blob:; "
                                                   "style-src 'unsafe-inline'; object-src 'self'; "
                                                   "frame-ancestors 'self'")
    response.headers["X-Frame-Options"] = "SAMEORIGIN"


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
    response = Response(stream_with_context(chunks), mimetype=data["t"])
    response.headers["Content-Disposition"] = content_disposition(data["n"], inline=data["i"])
    _frameable(response)  # shown inside the document page
    return response


@bp.route("/documents/<int:document_id>/sort", methods=["POST"])
@require("archive.manage")
def document_sort(document_id: int):
    doc = _document_or_404(document_id)
    loan_id = request.form.get("loan", type=int) or 0
    loan = get_scoped_or_404(Loan, loan_id, current_user) if loan_id else None
    services.sort_document(current_user, doc, doc_type=request.form.get("doc_type") or None, loan=loan,
                           clear_loan=loan_id == 0 and "loan" in request.form)
    return _done(_("Document %(ref)s sorted.", ref=services.doc_ref(doc)), "archive.document", document_id=doc.id)


@bp.route("/documents/<int:document_id>/file", methods=["POST"])
@require("archive.manage")
def document_file(document_id: int):
    doc = _document_or_404(document_id)
    services.file_document(current_user, doc)
    return _done(_("Document filed with archive number %(no)s.", no=doc.archive_number),
                 "archive.document", document_id=doc.id)


@bp.route("/documents/<int:document_id>/archive", methods=["POST"])
@require("archive.manage")
def document_archive(document_id: int):
    doc = _document_or_404(document_id)
    services.archive_document(current_user, doc, shelf_location=request.form.get("shelf_location"))
    return _done(_("Document %(ref)s archived and sealed.", ref=services.doc_ref(doc)),
                 "archive.document", document_id=doc.id)


@bp.route("/documents/<int:document_id>/discard", methods=["POST"])
@require("archive.manage")
def document_discard(document_id: int):
    doc = _document_or_404(document_id)
    services.discard_document(current_user, doc, request.form.get("reason", ""))
    return _done(_("Document %(ref)s discarded.", ref=services.doc_ref(doc)),
                 "archive.credit_file", borrower_id=doc.borrower_id)


@bp.route("/documents/<int:document_id>/shelf", methods=["POST"])
@require("archive.manage")
def document_shelf(document_id: int):
    doc = _document_or_404(document_id)
    services.set_shelf_location(current_user, doc, request.form.get("shelf_location", ""))
    return _done(_("Shelf location saved."), "archive.document", document_id=doc.id)


# --- lending -------------------------------------------------------------------------------

@bp.route("/lending")
@require("archive.view")
def lending_list():
    base = lending_svc.lendings_query(current_user).options(selectinload(Lending.requester),
                                                            selectinload(Lending.volume))
    mine = db.session.execute(base.where(Lending.requester_id == current_user.id)
                              .order_by(Lending.requested_at.desc()).limit(100)).scalars().all()
    to_decide = db.session.execute(lending_svc.awaiting_decision(current_user)).scalars().all() \
        if can(current_user, "lending.approve") else []
    to_issue = db.session.execute(base.where(Lending.state == LendingState.APPROVED.value,
                                             in_scope(Lending.institution_id, current_user))).scalars().all() \
        if can(current_user, "lending.issue") else []
    out = db.session.execute(base.where(Lending.state == LendingState.ISSUED.value,
                                        in_scope(Lending.institution_id, current_user))
                             .order_by(Lending.due_on)).scalars().all() \
        if can(current_user, "lending.register") or can(current_user, "lending.issue") else []
    return render_template("archive/lending_list.html", mine=mine, to_decide=to_decide, to_issue=to_issue, out=out,
                           today=local_today())


@bp.route("/lending/new", methods=["POST"])
@require("lending.request")
def lending_new():
    volume = _volume_for_request()
    ids = _int_list("document_ids")
    documents = list(db.session.execute(
        select(Document).where(Document.id.in_(ids), in_scope(Document.institution_id, current_user))).scalars())
    if len(documents) != len(set(ids)):
        raise _not_found()
    form = LendingRequestForm()
    if "reason" not in request.form:  # coming from the credit file: show the request form
        return render_template("archive/lending_new.html", volume=volume, documents=documents, form=form,
                               type_names=doc_type_names(volume.borrower.institution))
    lending = lending_svc.request_lending(current_user, volume, documents, medium=request.form.get("medium", ""),
                                         reason=request.form.get("reason", ""), days=request.form.get("days"))
    return _done(_("Lending #%(id)d requested; a director or archivist will decide.", id=lending.id),
                 "archive.lending_detail", lending_id=lending.id)


def _volume_for_request() -> Volume:
    volume = db.session.get(Volume, _form_id(request.form.get("volume_id")))
    if volume is None:
        raise _not_found()
    _file_of(volume.borrower_id)
    return volume


def _lending_or_404(lending_id: int) -> Lending:
    lending = db.session.execute(lending_svc.lendings_query(current_user).where(Lending.id == lending_id)) \
        .scalar_one_or_none()
    if lending is None:
        raise _not_found()
    return lending


@bp.route("/lending/<int:lending_id>")
@require("archive.view")
def lending_detail(lending_id: int):
    lending = _lending_or_404(lending_id)
    accesses = db.session.execute(select(DocumentAccess).where(DocumentAccess.lending_id == lending.id)
                                  .order_by(DocumentAccess.at.desc())).scalars().all()
    return render_template("archive/lending_detail.html", lending=lending, accesses=accesses, today=local_today(),
                           can_open=lending_svc.can_open_through(current_user, lending),
                           may_decide=lending_svc.may_decide(current_user, lending),
                           type_names=doc_type_names(lending.volume.borrower.institution),
                           note_form=NoteForm(), renew_form=RenewForm())


@bp.route("/lending/<int:lending_id>/<action>", methods=["POST"])
@require("archive.view")
def lending_action(lending_id: int, action: str):
    lending = _lending_or_404(lending_id)
    note = request.form.get("note", "")
    steps = {
        "approve": (lambda: lending_svc.approve_lending(current_user, lending, note), _("Lending approved.")),
        "refuse": (lambda: lending_svc.refuse_lending(current_user, lending, note), _("Lending refused.")),
        "withdraw": (lambda: lending_svc.withdraw_lending(current_user, lending), _("Request withdrawn.")),
        "issue": (lambda: lending_svc.issue_lending(current_user, lending), _("Lending issued.")),
        "renew": (lambda: lending_svc.renew_lending(current_user, lending, request.form.get("days")),
                  _("Lending renewed.")),
        "return": (lambda: lending_svc.return_lending(current_user, lending, note), _("Lending returned.")),
        "remind": (lambda: lending_svc.remind_lending(current_user, lending), _("Reminder recorded.")),
    }
    if action not in steps:
        abort(404)
    step, message = steps[action]
    step()
    return _done(message, "archive.lending_detail", lending_id=lending.id)


def _date_arg(name: str) -> date | None:
    try:
        day = date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None
    # Like a malformed date, one no register can span (0001-01-01, 9999-12-31) is ignored: the
    # query's day arithmetic and time-zone shift would overflow on it.
    return day if date(1900, 1, 1) <= day <= date(2999, 12, 31) else None


@bp.route("/lending/register")
@require("lending.register")
def lending_register():
    start, end = _date_arg("start"), _date_arg("end")
    rows = db.session.execute(lending_svc.register_query(current_user, start, end)
                              .options(selectinload(Lending.documents), selectinload(Lending.requester))
                              .limit(5000)).scalars().all()
    if request.args.get("format") == "pdf":
        pdf = render_pdf("reports/archive_lending_register.html", title=_("Lending register"),
                         institution_name=current_user.institution.name, rows=rows, start=start, end=end,
                         type_names=doc_type_names(current_user.institution, chinese=True))
        return _pdf_response(pdf, f"借阅登记簿-{local_today().isoformat()}.pdf")
    return render_template("archive/lending_register.html", rows=rows, start=start, end=end, today=local_today())


@bp.route("/lending/overdue")
@require("lending.register")
def lending_overdue():
    rows = db.session.execute(lending_svc.overdue_query(current_user)
                              .options(selectinload(Lending.requester))).scalars().all()
    return render_template("archive/lending_overdue.html", rows=rows, today=local_today())


# --- transfers -----------------------------------------------------------------------------

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
    sender_id = request.values.get("sender", type=int) or current_user.institution_id
    sender = next((i for i in senders if i.id == sender_id), None)
    if sender is None:
        raise _not_found()
    form = TransferForm()
    form.receiver.choices = [(i.id, f"{i.name} ({i.code})") for i in transfer_svc.transfer_targets(sender)]
    q = (request.values.get("q") or "").strip()[:64]
    stmt = (select(Volume).join(Document, Document.volume_id == Volume.id)
            .where(Document.institution_id == sender.id, Document.state == DocState.ARCHIVED.value)
            .join(Borrower, Borrower.id == Volume.borrower_id).group_by(Volume.id).order_by(Volume.id).limit(500))
    if q:
        stmt = stmt.where(Borrower.name.ilike(f"%{q}%"))
    volumes = db.session.execute(stmt).scalars().all()
    if request.method == "POST" and form.validate_on_submit():
        receiver = db.session.get(Institution, form.receiver.data)
        chosen_ids = set(_int_list("volume_ids"))
        chosen = [v for v in db.session.execute(select(Volume).where(Volume.id.in_(chosen_ids))).scalars()]
        if len(chosen) != len(chosen_ids):
            raise _not_found()
        for volume in chosen:  # a credit file outside the subtree is not found (its name is never shown)
            _file_of(volume.borrower_id)
        transfer = transfer_svc.create_transfer(current_user, sender=sender, receiver=receiver, volumes=chosen,
                                                note=form.note.data or "")
        return _done(_("Handover list #%(id)d drawn up.", id=transfer.id), "archive.transfer_detail",
                     transfer_id=transfer.id)
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
    return _done(message, "archive.transfer_detail", transfer_id=transfer.id)


@bp.route("/transfers/<int:transfer_id>/handover.pdf")
@require("transfer.view")
def transfer_pdf(transfer_id: int):
    transfer = transfer_svc.get_transfer_or_404(current_user, transfer_id)
    if transfer.list_file_id:
        return _pdf_response(_list_file_bytes(transfer.list_file_id), f"移交清册-{transfer.id}.pdf")
    return _pdf_response(transfer_svc.handover_list_pdf(transfer), f"移交清册-{transfer.id}-草稿.pdf")


def _list_file_bytes(list_file_id: int) -> bytes:
    row = db.session.get(ListFile, list_file_id)
    try:
        return current_store().read_bytes(row.object_key)
    except ObjectMissing:
        raise InvalidInput(_("The stored list file is missing from the store; run `flask archive verify`.")) from None


# --- holds ---------------------------------------------------------------------------------

@bp.route("/holds", methods=["GET", "POST"])
@require("hold.view")
def hold_list():
    form = HoldForm()
    if request.method == "POST":
        if not can(current_user, "hold.manage"):
            abort(403)
        if not form.validate_on_submit():
            raise InvalidInput(_("Give the kind, the loan or credit file, and the reason of the hold."))
        loan = volume = None
        if (form.volume_id.data or "").isdigit():
            volume = db.session.get(Volume, _form_id(form.volume_id.data))
            if volume is None:
                raise _not_found()
            _file_of(volume.borrower_id)
        elif form.contract_no.data:
            loan = db.session.execute(select(Loan).where(Loan.contract_no == form.contract_no.data.strip(),
                                                         in_scope(Loan.branch_id, current_user))).scalar_one_or_none()
            if loan is None:
                raise InvalidInput(_("No loan %(no)s in your institution.", no=form.contract_no.data.strip()))
        hold = holds_svc.place_hold(current_user, kind=form.kind.data, reason=form.reason.data, loan=loan,
                                    volume=volume)
        return _done(_("Hold #%(id)d placed.", id=hold.id), "archive.hold_list")
    show = request.args.get("show", "active")
    stmt = select(Hold).where(in_scope(Hold.institution_id, current_user)).options(
        selectinload(Hold.loan), selectinload(Hold.volume).selectinload(Volume.borrower))
    if show != "all":
        stmt = stmt.where(Hold.lifted_at.is_(None))
    rows = db.session.execute(stmt.order_by(Hold.placed_at.desc()).limit(500)).scalars().all()
    return render_template("archive/holds.html", rows=rows, form=form, show=show, reason_form=ReasonForm())


@bp.route("/holds/<int:hold_id>/lift", methods=["POST"])
@require("hold.manage")
def hold_lift(hold_id: int):
    hold = get_scoped_or_404(Hold, hold_id, current_user)
    holds_svc.lift_hold(current_user, hold, request.form.get("reason", ""))
    return _done(_("Hold #%(id)d lifted.", id=hold.id), "archive.hold_list")


# --- destruction -----------------------------------------------------------------------------

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
        return _done(_("Destruction list #%(id)d opened for appraisal.", id=dl.id), "archive.destruction_detail",
                     list_id=dl.id)
    rows = db.session.execute(destruction_svc.lists_query(current_user)
                              .order_by(DestructionList.created_at.desc()).limit(200)).scalars().all()
    return render_template("archive/destruction_lists.html", rows=rows, form=form)


def _list_or_404(list_id: int) -> DestructionList:
    return get_scoped_or_404(DestructionList, list_id, current_user)


@bp.route("/destruction/<int:list_id>")
@require("destruction.view")
def destruction_detail(list_id: int):
    dl = _list_or_404(list_id)
    eligible = destruction_svc.eligible_documents(current_user) \
        if dl.state == "draft" and can(current_user, "destruction.propose") else []
    eligible = [(d, e) for d, e in eligible if d.institution.path.startswith(dl.institution.path)]
    return render_template("archive/destruction_detail.html", dl=dl, eligible=eligible,
                           type_names=doc_type_names(dl.institution), items_form=DestructionItemsForm(),
                           note_form=NoteForm())


@bp.route("/destruction/<int:list_id>/<action>", methods=["POST"])
@require("destruction.view")
def destruction_action(list_id: int, action: str):
    dl = _list_or_404(list_id)
    note = request.form.get("note", "")
    if action in ("add", "remove"):  # the role first: what the lookups below find is no one else's business
        check(current_user, "destruction.propose")
    if action == "add":
        ids = set(_int_list("document_ids"))
        numbers = [n.strip() for n in request.form.get("numbers", "").splitlines() if n.strip()]
        stmt = select(Document).where(in_scope(Document.institution_id, current_user))
        found = list(db.session.execute(stmt.where(Document.id.in_(ids)))) if ids else []
        documents = [row[0] for row in found]
        for number in numbers:
            doc = db.session.execute(stmt.where(Document.archive_number == number)).scalar_one_or_none()
            if doc is None:
                raise InvalidInput(_("No document with archive number %(no)s in your institution.", no=number))
            documents.append(doc)
        if len(found) != len(ids):
            raise _not_found()
        destruction_svc.add_to_destruction_list(current_user, dl, documents)
        return _done(_("Documents listed for destruction."), "archive.destruction_detail", list_id=dl.id)
    if action == "remove":
        item = db.session.get(DestructionItem, _form_id(request.form.get("item_id")))
        if item is None or item.list_id != dl.id:
            raise _not_found()
        destruction_svc.remove_from_destruction_list(current_user, dl, item)
        return _done(_("Document removed from the list."), "archive.destruction_detail", list_id=dl.id)
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
    return _done(message, "archive.destruction_detail", list_id=dl.id)


@bp.route("/destruction/<int:list_id>/list.pdf")
@require("destruction.view")
def destruction_pdf(list_id: int):
    dl = _list_or_404(list_id)
    if dl.list_file_id:
        return _pdf_response(_list_file_bytes(dl.list_file_id), f"销毁清册-{dl.id}.pdf")
    return _pdf_response(destruction_svc.destruction_list_pdf(dl), f"销毁清册-{dl.id}-草稿.pdf")
