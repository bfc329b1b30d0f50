"""Post-loan pages: inspections (mine, branch, calendar, record, sign-off, escalation queue),
warnings, classification, collection and notices, the migration report, handovers, closing, and
a loan's post-loan page. Every page is scoped; who may sign off or approve is the rules' answer."""
from __future__ import annotations

import calendar
from datetime import date, timedelta

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ..accounts.scope import can, get_scoped_or_404, require, visible_institutions
from ..errors import InvalidInput
from ..extensions import db
from ..loans.models import OPEN_LOAN_STATUSES, Loan
from ..loans.services import loan_facts
from ..reports.pdf import render_pdf
from ..rules.lookup import rules_for
from ..timeutil import local_today
from ..web import date_arg, done, file_response, id_arg, id_list, pdf_response
from . import classification as cls
from . import closing, collection, handover as ho, inspections as insp_svc, warnings as warn_svc
from .common import officers_in, parse_date
from .files import read_file
from .forms import checkbox, inspection_form, month_arg
from .models import (MANUAL_SIGNALS, ClassificationReview, Handover, Inspection, InspectionKind, InspectionMethod,
                     LoanNotice, PostloanFile, RiskWarning, WriteOff)
from .overview import loan_overview

bp = Blueprint("postloan", __name__, url_prefix="/postloan")


@bp.app_context_processor
def _due_counts_helper():
    def postloan_due_counts() -> dict[str, int]:
        return insp_svc.due_counts(current_user, local_today())
    return {"postloan_due_counts": postloan_due_counts}


def _loan(loan_id: int) -> Loan:
    return get_scoped_or_404(Loan, loan_id, current_user)


@bp.route("/")
@require("postloan.view")
def index():
    return redirect(url_for("postloan.inspections"))


# --- inspections ----------------------------------------------------------------------------

@bp.route("/inspections")
@require("postloan.view")
def inspections():
    today = local_today()
    default_view = "mine" if current_user.has_role("loan_officer", "post_loan_officer") else "branch"
    view = request.args.get("view") if request.args.get("view") in ("mine", "branch") else default_view
    officer_id = id_arg("officer") if view == "branch" else None
    lists = insp_svc.inspection_lists(current_user, today, mine=view == "mine", officer_id=officer_id)
    return render_template("postloan/inspections.html", lists=lists, view=view, officer_id=officer_id,
                           officers=officers_in(current_user.institution.path),
                           sign_off=insp_svc.sign_off_queue(current_user),
                           escalations=insp_svc.escalation_queue(current_user), today=today)


@bp.route("/inspections/calendar")
@require("postloan.view")
def inspection_calendar():
    today = local_today()
    year, month = month_arg(request.args.get("month"), today)
    mine = request.args.get("view", "mine" if current_user.has_role("loan_officer", "post_loan_officer") else "branch") == "mine"
    days = insp_svc.calendar_month(current_user, year, month, mine=mine)
    weeks = calendar.Calendar(firstweekday=0).monthdatescalendar(year, month)
    first = date(year, month, 1)
    prev_month = (first - timedelta(days=1)).strftime("%Y-%m")
    next_month = (first + timedelta(days=32)).replace(day=1).strftime("%Y-%m")
    return render_template("postloan/calendar.html", days=days, weeks=weeks, year=year, month=month, mine=mine,
                           today=today, prev_month=prev_month, next_month=next_month)


def _inspection(inspection_id: int) -> Inspection:
    return get_scoped_or_404(Inspection, inspection_id, current_user)


def _render_inspection(insp: Inspection, status: int = 200, submitted: dict | None = None, errors: list | None = None):
    rules = rules_for(insp.loan)
    findings = insp_svc.findings_for_form(insp, rules)
    if submitted:
        for row in findings:
            result, note = submitted["results"].get(row["code"], (row["result"], row["note"]))
            row["result"], row["note"] = result, note
    return render_template(
        "postloan/inspection.html", insp=insp, loan=insp.loan, findings=findings,
        attachments=insp_svc.attachments_of(insp), submitted=submitted or {}, errors=errors or [],
        can_record=can(current_user, "postloan.work") and insp.is_todo and insp.loan.status in OPEN_LOAN_STATUSES,
        can_sign=insp_svc.can_sign_off(current_user, insp, rules),
        can_review=insp_svc.can_review_escalation(current_user, insp, rules),
        escalation=rules.inspection_escalation(loan_facts(insp.loan)), today=local_today(),
        methods=[m.value for m in InspectionMethod]), status


@bp.route("/inspections/<int:inspection_id>")
@require("postloan.view")
def inspection_detail(inspection_id: int):
    return _render_inspection(_inspection(inspection_id))


@bp.route("/inspections/<int:inspection_id>/record", methods=["POST"])
@require("postloan.work")
def record_inspection(inspection_id: int):
    insp = _inspection(inspection_id)
    codes = [row["code"] for row in insp_svc.findings_for_form(insp, rules_for(insp.loan))]
    try:
        data = inspection_form(request.form, codes)
        insp_svc.save_inspection(current_user, insp, **data)
    except InvalidInput as exc:
        db.session.rollback()
        insp = _inspection(inspection_id)
        submitted = {"method": request.form.get("method"), "inspected_on": request.form.get("inspected_on"),
                     "conclusion": request.form.get("conclusion", ""),
                     "results": {c: (request.form.get(f"result-{c}", ""), request.form.get(f"note-{c}", "")) for c in codes}}
        return _render_inspection(insp, 422, submitted, exc.details or [exc.message])
    return done(_("Inspection submitted for sign-off.") if data["submit"] else _("Inspection saved."),
                url_for("postloan.inspection_detail", inspection_id=insp.id))


@bp.route("/inspections/<int:inspection_id>/attachments", methods=["POST"])
@require("postloan.work")
def attach_to_inspection(inspection_id: int):
    insp = _inspection(inspection_id)
    files = [f for f in request.files.getlist("files") if f and f.filename]
    if not files:
        raise InvalidInput(_("Choose at least one file."))
    for storage in files:
        insp_svc.add_attachment(current_user, insp, storage)
    return done(_("%(n)d files attached.", n=len(files)), url_for("postloan.inspection_detail", inspection_id=insp.id))


@bp.route("/inspections/<int:inspection_id>/sign-off", methods=["POST"])
@require("postloan.view")
def sign_off(inspection_id: int):
    insp = _inspection(inspection_id)
    insp_svc.sign_off_inspection(current_user, insp, request.form.get("opinion", ""))
    return done(_("Inspection signed off; the report is in the credit file."),
                url_for("postloan.inspection_detail", inspection_id=insp.id))


@bp.route("/inspections/<int:inspection_id>/return", methods=["POST"])
@require("postloan.view")
def return_for_correction(inspection_id: int):
    insp = _inspection(inspection_id)
    insp_svc.return_inspection(current_user, insp, request.form.get("reason", ""))
    return done(_("Inspection returned to the officer."), url_for("postloan.inspection_detail", inspection_id=insp.id))


@bp.route("/inspections/<int:inspection_id>/escalation-review", methods=["POST"])
@require("postloan.view")
def review_escalation(inspection_id: int):
    insp = _inspection(inspection_id)
    insp_svc.review_escalation(current_user, insp, request.form.get("opinion", ""))
    return done(_("Opinion recorded."), url_for("postloan.inspection_detail", inspection_id=insp.id))


@bp.route("/inspections/<int:inspection_id>/report.pdf")
@require("postloan.view")
def inspection_report(inspection_id: int):
    insp = _inspection(inspection_id)
    if insp.report_file is not None:
        return _send(insp.report_file)
    if not insp.is_done:
        raise InvalidInput(_("The report exists once the inspection has been recorded and submitted."))
    return pdf_response(insp_svc.render_inspection_report(insp), f"inspection-{insp.id}-draft.pdf")


@bp.route("/loans/<int:loan_id>/inspections", methods=["POST"])
@require("postloan.work")
def start_inspection(loan_id: int):
    loan = _loan(loan_id)
    insp = insp_svc.create_inspection(current_user, loan, request.form.get("kind", InspectionKind.ROUTINE.value))
    db.session.commit()
    return redirect(url_for("postloan.inspection_detail", inspection_id=insp.id))


# --- files ----------------------------------------------------------------------------------

def _send(record: PostloanFile):
    return file_response(read_file(record), record.filename, record.media_type)


@bp.route("/files/<int:file_id>")
@require("postloan.view")
def download_file(file_id: int):
    return _send(get_scoped_or_404(PostloanFile, file_id, current_user))


# --- a loan's post-loan page ----------------------------------------------------------------

@bp.route("/loans/<int:loan_id>")
@require("postloan.view")
def loan_page(loan_id: int):
    loan = _loan(loan_id)
    return render_template("postloan/loan.html", loan=loan, today=local_today(), manual_signals=MANUAL_SIGNALS,
                           **vars(loan_overview(loan, current_user)))


# --- warnings -------------------------------------------------------------------------------

@bp.route("/warnings")
@require("postloan.view")
def warnings():
    status = request.args.get("status", "active")
    status = status if status in ("active", "open", "handling", "escalated", "lifted", "") else "active"
    branch = None
    branch_id = id_arg("branch")
    branches = visible_institutions(current_user, levels=("branch",))
    if branch_id:
        branch = next((b for b in branches if b.id == branch_id), None)
    rows = warn_svc.warnings_in_scope(current_user, status=status or None, signal=request.args.get("signal") or None,
                                      branch_path=branch.path if branch else None)
    return render_template("postloan/warnings.html", rows=rows, status=status, branches=branches, branch=branch,
                           signal=request.args.get("signal") or "",
                           per_branch=warn_svc.active_warnings_per_branch(current_user))


@bp.route("/warnings/<int:warning_id>")
@require("postloan.view")
def warning_detail(warning_id: int):
    warning = get_scoped_or_404(RiskWarning, warning_id, current_user)
    return render_template("postloan/warning.html", warning=warning)


@bp.route("/warnings/<int:warning_id>/act", methods=["POST"])
@require("postloan.work")
def act_on_warning(warning_id: int):
    warning = get_scoped_or_404(RiskWarning, warning_id, current_user)
    warn_svc.act_on_warning(current_user, warning, request.form.get("action", ""), request.form.get("note", ""))
    return done(_("Warning updated."), url_for("postloan.warning_detail", warning_id=warning.id))


@bp.route("/loans/<int:loan_id>/warnings", methods=["POST"])
@require("postloan.work")
def raise_warning(loan_id: int):
    loan = _loan(loan_id)
    warning = warn_svc.raise_warning(current_user, loan, request.form.get("signal", ""), request.form.get("details", ""))
    return done(_("Warning raised."), url_for("postloan.warning_detail", warning_id=warning.id))


# --- classification -------------------------------------------------------------------------

@bp.route("/classification")
@require("postloan.view")
def classification_queue():
    return render_template("postloan/classification_queue.html", reviews=cls.review_queue(current_user))


@bp.route("/classification/<int:review_id>", methods=["GET", "POST"])
@require("postloan.view")
def classification_review(review_id: int):
    review = get_scoped_or_404(ClassificationReview, review_id, current_user)
    if request.method == "POST":
        if not can(current_user, "postloan.classify"):
            abort(403)
        cls.confirm_classification(current_user, review, request.form.get("decided", ""), request.form.get("reason", ""))
        return done(_("Classification confirmed."), url_for("postloan.loan_page", loan_id=review.loan_id))
    return render_template("postloan/classification_review.html", review=review, loan=review.loan,
                           history=cls.classification_history(review.loan))


@bp.route("/loans/<int:loan_id>/classification", methods=["POST"])
@require("postloan.classify")
def start_classification_review(loan_id: int):
    review = cls.start_review(current_user, _loan(loan_id))
    db.session.commit()
    return redirect(url_for("postloan.classification_review", review_id=review.id))


# --- collection and notices -----------------------------------------------------------------

@bp.route("/collection")
@require("postloan.view")
def collection_page():
    today = local_today()
    is_officer = current_user.has_role("loan_officer", "post_loan_officer")
    officer_id = id_arg("officer") if "officer" in request.args else (current_user.id if is_officer else None)
    rows = collection.collection_list(current_user, today, officer_id=officer_id)
    notices = collection.pending_notices(current_user, today, officer_id=officer_id)
    return render_template("postloan/collection.html", rows=rows, notices=notices, today=today, officer_id=officer_id,
                           officers=officers_in(current_user.institution.path))


@bp.route("/loans/<int:loan_id>/contacts", methods=["POST"])
@require("postloan.work")
def record_contact(loan_id: int):
    loan = _loan(loan_id)
    collection.record_contact(current_user, loan, **collection.parse_contact_form(request.form))
    return done(_("Contact recorded."), url_for("postloan.loan_page", loan_id=loan.id) + "#contacts")


@bp.route("/notices")
@require("postloan.view")
def notices():
    status = request.args.get("status", "pending")
    return render_template("postloan/notices.html", rows=collection.notices_in_scope(current_user, status),
                           status=status, today=local_today())


@bp.route("/notices/<int:notice_id>/issue", methods=["POST"])
@require("postloan.work")
def issue_notice(notice_id: int):
    notice = get_scoped_or_404(LoanNotice, notice_id, current_user)
    collection.issue_notice(current_user, notice)
    return done(_("Notice issued and filed into the credit file."), url_for("postloan.notices"))


@bp.route("/migration")
@require("postloan.view")
def migration():
    today = local_today()
    institutions = visible_institutions(current_user, levels=("province", "city", "county", "branch")) \
        or [current_user.institution]
    chosen = next((i for i in institutions if i.id == id_arg("institution")), None) or (
        current_user.institution if current_user.institution in institutions else institutions[0])
    start = date_arg("start", (today.replace(day=1) - timedelta(days=1)).replace(day=1))
    end = date_arg("end", today)
    report = collection.migration_report(current_user, chosen, start, end)
    if request.args.get("format") == "pdf":
        data = render_pdf("reports/postloan_migration.html", title=_("Overdue migration report"),
                          institution_name=chosen.name, report=report)
        return pdf_response(data, f"migration-{chosen.code}-{start}-{end}.pdf")
    return render_template("postloan/migration.html", report=report, institutions=institutions, chosen=chosen)


# --- handover -------------------------------------------------------------------------------

@bp.route("/handovers")
@require("postloan.view")
def handovers():
    return render_template("postloan/handovers.html", rows=ho.handovers_in_scope(current_user),
                           waiting=ho.handovers_to_confirm(current_user))


@bp.route("/handovers/new", methods=["GET", "POST"])
@require("postloan.handover")
def new_handover():
    officers = officers_in(current_user.institution.path)
    source = id_arg("from")
    from_officer = ho.get_user_in_scope(current_user, source) if source else None
    if request.method == "POST":
        if from_officer is None:
            raise InvalidInput(_("Choose the outgoing officer."))
        target = id_arg("to")
        if target is None:
            raise InvalidInput(_("Choose the incoming officer."))
        to_officer = ho.get_user_in_scope(current_user, target)
        # Loans ticked one by one win over "all"; nothing ticked and "all" unticked is refused.
        loan_ids = id_list("loan") or (None if checkbox(request.form, "all") else [])
        handover = ho.propose_handover(current_user, from_officer, to_officer, loan_ids, request.form.get("reason", ""))
        return done(_("Handover proposed; both officers now confirm it."),
                    url_for("postloan.handover_detail", handover_id=handover.id))
    loans = ho.open_loans_of(current_user, from_officer) if from_officer else []
    return render_template("postloan/handover_new.html", officers=officers, from_officer=from_officer, loans=loans)


@bp.route("/handovers/<int:handover_id>")
@require("postloan.view")
def handover_detail(handover_id: int):
    handover = get_scoped_or_404(Handover, handover_id, current_user)
    counts = ho.open_item_counts([i.loan_id for i in handover.items]) if handover.status == "proposed" else None
    return render_template("postloan/handover.html", handover=handover, counts=counts)


@bp.route("/handovers/<int:handover_id>/confirm", methods=["POST"])
@require("postloan.view")
def confirm_handover(handover_id: int):
    handover = get_scoped_or_404(Handover, handover_id, current_user)
    ho.confirm_handover(current_user, handover, request.form.get("note", ""))
    message = _("Handover completed: the loans and their open items have moved.") if handover.status == "completed" \
        else _("Your confirmation is recorded.")
    return done(message, url_for("postloan.handover_detail", handover_id=handover.id))


@bp.route("/handovers/<int:handover_id>/cancel", methods=["POST"])
@require("postloan.view")
def cancel_handover(handover_id: int):
    handover = get_scoped_or_404(Handover, handover_id, current_user)
    ho.cancel_handover(current_user, handover, request.form.get("reason", ""))
    return done(_("Handover cancelled."), url_for("postloan.handover_detail", handover_id=handover.id))


@bp.route("/handovers/<int:handover_id>/list.pdf")
@require("postloan.view")
def handover_list(handover_id: int):
    handover = get_scoped_or_404(Handover, handover_id, current_user)
    if handover.file_id:
        return _send(db.session.get(PostloanFile, handover.file_id))
    return pdf_response(ho.render_handover_list(handover), f"handover-{handover.id}.pdf")


# --- closing --------------------------------------------------------------------------------

@bp.route("/loans/<int:loan_id>/settle", methods=["POST"])
@require("postloan.close")
def settle(loan_id: int):
    loan = _loan(loan_id)
    settled_on = parse_date(request.form.get("settled_on"), _("Settlement date"))
    closing.settle_loan(current_user, loan, settled_on, request.form.get("note", ""))
    return done(_("Loan settled; the settlement certificate is in the credit file."),
                url_for("postloan.loan_page", loan_id=loan.id))


@bp.route("/loans/<int:loan_id>/write-off", methods=["GET", "POST"])
@require("postloan.close")
def request_write_off(loan_id: int):
    loan = _loan(loan_id)
    if request.method == "POST":
        write_off = closing.request_write_off(current_user, loan, request.form.get("reason", ""),
                                              request.files.getlist("evidence"))
        return done(_("Write-off requested."), url_for("postloan.write_off_detail", write_off_id=write_off.id))
    return render_template("postloan/write_off_new.html", loan=loan,
                           approvers=closing.describe_roles(closing.write_off_roles(loan)))


@bp.route("/write-offs")
@require("postloan.view")
def write_offs():
    rows = closing.write_offs_in_scope(current_user)
    waiting = [w for w in rows if closing.can_decide_write_off(current_user, w)]
    return render_template("postloan/write_offs.html", rows=rows, waiting=waiting)


@bp.route("/write-offs/<int:write_off_id>")
@require("postloan.view")
def write_off_detail(write_off_id: int):
    write_off = get_scoped_or_404(WriteOff, write_off_id, current_user)
    return render_template("postloan/write_off.html", write_off=write_off, loan=write_off.loan,
                           files=closing.write_off_files(write_off),
                           can_decide=closing.can_decide_write_off(current_user, write_off),
                           approvers=closing.describe_roles(closing.write_off_roles(write_off.loan)))


@bp.route("/write-offs/<int:write_off_id>/decide", methods=["POST"])
@require("postloan.view")
def decide_write_off(write_off_id: int):
    write_off = get_scoped_or_404(WriteOff, write_off_id, current_user)
    approve = request.form.get("decision") == "approve"
    closing.decide_write_off(current_user, write_off, approve, request.form.get("note", ""))
    return done(_("Write-off approved; the loan is written off and the papers are in the credit file.") if approve
                else _("Write-off rejected."), url_for("postloan.write_off_detail", write_off_id=write_off.id))


@bp.route("/loans/<int:loan_id>/evaluation", methods=["GET", "POST"])
@require("postloan.view")
def evaluation(loan_id: int):
    loan = _loan(loan_id)
    existing = closing.evaluation_of(loan)
    if request.method == "POST":
        if not can(current_user, "postloan.close"):
            abort(403)
        closing.submit_evaluation(
            current_user, loan, outcome=request.form.get("outcome", ""), management=request.form.get("management", ""),
            responsibility_found=checkbox(request.form, "responsibility_found"),
            summary=request.form.get("summary", ""), lessons=request.form.get("lessons", ""))
        return done(_("Final evaluation saved and filed."), url_for("postloan.loan_page", loan_id=loan.id))
    return render_template("postloan/evaluation.html", loan=loan, evaluation=existing)
