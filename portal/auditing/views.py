"""Pages of the audit workspace under ``/audit``: dashboards, completeness (union → county →
branch → loan → missing document), fixity, archive inspections and the reports. Every page
takes an ``institution`` within the user's subtree (default: their own) and reads through the
same functions the reports and ``flask audit`` use. The only changes made here are an
auditor's own archive inspection records and asking for a fixity check."""
from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ..accounts.models import Institution
from ..accounts.scope import (can, check, get_scoped_or_404, institution_visible, is_global, require,
                              visible_institutions)
from ..archive import destruction as destruction_svc
from ..archive import lending as lending_svc
from ..archive.labels import doc_type_names
from ..archive.models import DestructionList, Document, Lending
from ..errors import InvalidInput, not_found
from ..extensions import db
from ..loans.models import Loan
from ..postloan.collection import migration_report
from ..reports.pdf import render_pdf
from ..timeutil import local_today
from ..web import date_arg, done, file_response, id_arg, page_arg, pdf_response
from . import exports
from . import fixity as fixity_svc
from . import inspections as insp_svc
from . import models  # noqa: F401 - the tables must be known to db.create_all
from .completeness import audit_completeness, loan_file_check, subtree_ids
from .dashboards import (build_dashboard, completeness_trend_chart, default_migration_period, inspection_overview,
                         panels_for)
from .forms import CancelInspectionForm, StartInspectionForm, VerifyForm
from .models import ArchiveInspection

bp = Blueprint("auditing", __name__, url_prefix="/audit")

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LOANS_PER_PAGE = 100


@bp.app_context_processor
def _home_panels_helper():
    def auditing_home_panels():
        """The first cheap panels of the user's dashboard, for the home page."""
        if not current_user.is_authenticated or not can(current_user, "audit.dashboard"):
            return []
        return build_dashboard(current_user, current_user.institution, home=True, cached=True)
    return {"auditing_home_panels": auditing_home_panels}


# --- helpers ---------------------------------------------------------------------------------

def _institution(param: str = "institution") -> Institution:
    """The institution a page is about: the parameter if given and within the user's subtree,
    otherwise the user's own."""
    if not (request.values.get(param) or "").strip():
        return current_user.institution
    ident = id_arg(param)
    inst = db.session.get(Institution, ident) if ident is not None else None
    if inst is None or not institution_visible(current_user, inst):
        raise not_found()
    return inst


def _xlsx(data: bytes, filename: str) -> Response:
    return file_response(data, filename, XLSX)


def _lineage(inst: Institution) -> list[Institution]:
    """Breadcrumbs: the ancestors the user may see, then the institution."""
    return [a for a in inst.ancestors() if institution_visible(current_user, a)] + [inst]


def _choices() -> list[Institution]:
    return visible_institutions(current_user)


# --- dashboard -------------------------------------------------------------------------------

@bp.route("/")
@require("audit.dashboard")
def index():
    return redirect(url_for("auditing.dashboard"))


@bp.route("/dashboard")
@require("audit.dashboard")
def dashboard():
    inst = _institution()
    if request.args.get("format") == "pdf":   # a report is built afresh, never from the panel cache
        return pdf_response(exports.dashboard_pdf(build_dashboard(current_user, inst), institution_name=inst.name),
                            f"dashboard-{inst.code}-{local_today()}.pdf")
    panels = build_dashboard(current_user, inst, cached=True)
    return render_template("auditing/dashboard.html", inst=inst, panels=panels, institutions=_choices(),
                           lineage=_lineage(inst), keys=panels_for(current_user))


# --- completeness ----------------------------------------------------------------------------

def completeness_export(inst: Institution, fmt: str):
    audit = audit_completeness(inst)
    names = doc_type_names(inst, chinese=True)
    stamp = f"{inst.code}-{audit.as_of}"
    if fmt == "pdf":
        trend = completeness_trend_chart(inst, audit.as_of)
        return pdf_response(exports.completeness_pdf(audit, type_names=names, trend_svg=trend),
                            f"完整性稽核-{stamp}.pdf")
    if fmt == "xlsx":
        return _xlsx(exports.completeness_xlsx(audit, type_names=names), f"完整性稽核-{stamp}.xlsx")
    abort(404)


@bp.route("/completeness")
@require("audit.completeness")
def completeness():
    inst = _institution()
    fmt = request.args.get("format")
    if fmt:
        return completeness_export(inst, fmt)
    audit = audit_completeness(inst)
    children = audit.children(inst.id)
    loans = audit.loans_under(inst.id) if not children else []
    page = page_arg("page")
    pages = max(1, -(-len(loans) // LOANS_PER_PAGE))
    page = min(page, pages)
    charts = exports.completeness_charts(audit, completeness_trend_chart(inst, audit.as_of))
    return render_template("auditing/completeness.html", inst=inst, audit=audit, children=children,
                           loans=loans[(page - 1) * LOANS_PER_PAGE:page * LOANS_PER_PAGE], loan_count=len(loans),
                           page=page, pages=pages, lineage=_lineage(inst), institutions=_choices(),
                           type_names=doc_type_names(inst), charts=charts)


@bp.route("/completeness/loans/<int:loan_id>")
@require("audit.completeness")
def completeness_loan(loan_id: int):
    loan = get_scoped_or_404(Loan, loan_id, current_user)
    return render_template("auditing/completeness_loan.html", loan=loan, **vars(loan_file_check(loan)),
                           lineage=_lineage(loan.branch), type_names=doc_type_names(loan.branch))


# --- fixity ----------------------------------------------------------------------------------

@bp.route("/fixity")
@require("audit.fixity")
def fixity():
    inst = _institution()
    overview = fixity_svc.fixity_overview(inst, with_unclaimed=is_global(current_user) or inst.level == "province")
    form = VerifyForm(institution=str(inst.id))
    return render_template("auditing/fixity.html", inst=inst, overview=overview, form=form,
                           lineage=_lineage(inst), institutions=_choices(), run_scope=fixity_svc.run_scope_label,
                           type_names=doc_type_names(inst), age_bands=fixity_svc.AGE_BANDS)


@bp.route("/fixity/objects")
@require("audit.fixity")
def fixity_objects():
    inst = _institution()
    stmt = fixity_svc.verification_list(inst)
    total = db.session.execute(select(func.count()).select_from(stmt.order_by(None).subquery())).scalar_one()
    per_page = current_app.config["XINDANG_PAGE_SIZE"]
    pages = max(1, -(-total // per_page))
    page = min(page_arg("page"), pages)
    rows = db.session.execute(stmt.options(selectinload(Document.borrower), selectinload(Document.institution))
                              .limit(per_page).offset((page - 1) * per_page)).scalars().all()
    return render_template("auditing/fixity_objects.html", inst=inst, rows=rows, total=total, page=page, pages=pages,
                           lineage=_lineage(inst), type_names=doc_type_names(inst))


@bp.route("/fixity/verify", methods=["POST"])
@require("audit.fixity_verify")
def fixity_verify():
    form = VerifyForm()
    if not form.validate_on_submit():
        raise InvalidInput(_("Choose the institution whose files to verify."))
    inst = _institution()
    run, report = fixity_svc.verify_institution(current_user, inst)
    db.session.commit()
    if report.ok:
        flash(_("%(n)d objects of %(name)s re-hashed; all match their checksums.", n=report.objects_checked,
                name=inst.name), "success")
    else:
        flash(_("%(n)d objects of %(name)s re-hashed: %(m)d checksum mismatches, %(x)d missing.",
                n=report.objects_checked, name=inst.name, m=run.mismatches, x=run.missing), "danger")
    return redirect(url_for("auditing.fixity", institution=inst.id), code=303)


# --- archive inspections ---------------------------------------------------------------------

@bp.route("/inspections")
@require("audit.inspections")
def inspections():
    inst = _institution()
    today = local_today()
    schedule = insp_svc.archive_inspection_schedule(inst, today)
    recent = insp_svc.recent_inspections(current_user, inst)
    may_start = can(current_user, "audit.inspect")
    return render_template("auditing/inspections.html", inst=inst, schedule=schedule, recent=recent, today=today,
                           may_start=may_start, start_form=StartInspectionForm(), lineage=_lineage(inst),
                           institutions=_choices())


@bp.route("/inspections/new", methods=["POST"])
@require("audit.inspect")
def start_inspection():
    form = StartInspectionForm()
    if not form.validate_on_submit():
        raise InvalidInput(_("Choose the branch and a sample of 1 to %(max)d credit files.", max=insp_svc.SAMPLE_MAX))
    target = _institution("target")
    insp = insp_svc.start_archive_inspection(current_user, target, form.sample_size.data)
    return done(_("Inspection of %(name)s opened with a sample of %(n)d credit files.", name=target.name,
                  n=len(insp.files)), url_for("auditing.inspection_detail", inspection_id=insp.id), code=303)


def _render_inspection(insp: ArchiveInspection, status: int = 200, errors: list[str] | None = None,
                       submitted: dict | None = None):
    return render_template("auditing/inspection.html", insp=insp, sample=insp_svc.sample_completeness(insp),
                           may_change=insp_svc.may_change(current_user, insp) and can(current_user, "audit.inspect"),
                           errors=errors or [], submitted=submitted, cancel_form=CancelInspectionForm(),
                           type_names=doc_type_names(insp.institution), today=local_today()), status


@bp.route("/inspections/<int:inspection_id>")
@require("audit.inspections")
def inspection_detail(inspection_id: int):
    return _render_inspection(get_scoped_or_404(ArchiveInspection, inspection_id, current_user))


def _inspection_input(insp: ArchiveInspection) -> insp_svc.InspectionInput:
    raw_day = (request.form.get("inspected_on") or "").strip()
    try:
        day = date.fromisoformat(raw_day) if raw_day else None
    except ValueError:
        raise InvalidInput(_("%(value)s is not a date (YYYY-MM-DD).", value=raw_day[:20])) from None
    results = {f.id: (request.form.get(f"result-{f.id}", ""), request.form.get(f"note-{f.id}", ""))
               for f in insp.files}
    return insp_svc.InspectionInput(day, request.form.get("findings", ""), request.form.get("conclusion", ""),
                                    results)


@bp.route("/inspections/<int:inspection_id>", methods=["POST"])
@require("audit.inspect")
def record_inspection(inspection_id: int):
    insp = get_scoped_or_404(ArchiveInspection, inspection_id, current_user)
    complete = request.form.get("action") == "complete"
    try:
        data = _inspection_input(insp)
        insp_svc.save_archive_inspection(current_user, insp, data, complete=complete)
    except InvalidInput as exc:
        db.session.rollback()
        insp = get_scoped_or_404(ArchiveInspection, inspection_id, current_user)
        submitted = {"inspected_on": request.form.get("inspected_on", ""), "findings": request.form.get("findings", ""),
                     "conclusion": request.form.get("conclusion", ""),
                     "results": {f.id: (request.form.get(f"result-{f.id}", ""), request.form.get(f"note-{f.id}", ""))
                                 for f in insp.files}}
        return _render_inspection(insp, 422, exc.details or [exc.message], submitted)
    return done(_("Inspection completed.") if complete else _("Inspection saved."),
                url_for("auditing.inspection_detail", inspection_id=insp.id), code=303)


@bp.route("/inspections/<int:inspection_id>/cancel", methods=["POST"])
@require("audit.inspect")
def cancel_inspection(inspection_id: int):
    insp = get_scoped_or_404(ArchiveInspection, inspection_id, current_user)
    insp_svc.cancel_archive_inspection(current_user, insp, request.form.get("reason", ""))
    return done(_("Inspection cancelled."), url_for("auditing.inspections", institution=insp.institution_id), code=303)


# --- reports ---------------------------------------------------------------------------------

REPORTS = {
    # kind: (permission beyond audit.reports, formats)
    "completeness": ("audit.completeness", ("pdf", "xlsx")),
    "lending-register": ("lending.register", ("pdf", "xlsx")),
    "destruction-lists": ("destruction.view", ("pdf", "xlsx")),
    "inspections": ("audit.inspections", ("pdf", "xlsx")),
    "migration": ("postloan.view", ("pdf", "xlsx")),
}


@bp.route("/reports")
@require("audit.reports")
def reports():
    inst = _institution()
    today = local_today()
    start = date_arg("start", today.replace(month=1, day=1))
    end = date_arg("end", today)
    mig_start, mig_end = default_migration_period(today)
    available = {kind: formats for kind, (perm, formats) in REPORTS.items() if can(current_user, perm)}
    return render_template("auditing/reports.html", inst=inst, start=start, end=end, mig_start=mig_start,
                           mig_end=mig_end, available=available, institutions=_choices(), lineage=_lineage(inst))


@bp.route("/reports/<kind>.<fmt>")
@require("audit.reports")
def report(kind: str, fmt: str):
    if kind not in REPORTS or fmt not in REPORTS[kind][1]:
        abort(404)
    check(current_user, REPORTS[kind][0])
    inst = _institution()
    today = local_today()
    if kind == "completeness":
        return completeness_export(inst, fmt)
    if kind == "lending-register":
        start, end = date_arg("start", today.replace(month=1, day=1)), date_arg("end", today)
        rows = db.session.execute(
            lending_svc.register_query(current_user, start, end)
            .where(Lending.institution_id.in_(subtree_ids(inst)))
            .options(selectinload(Lending.documents), selectinload(Lending.requester)).limit(5000)).scalars().all()
        stamp = f"{inst.code}-{start}-{end}"
        if fmt == "pdf":  # the archive's own register layout
            pdf = render_pdf("reports/archive_lending_register.html", title=_("Lending register"),
                             institution_name=inst.name, rows=rows, start=start, end=end,
                             type_names=doc_type_names(inst, chinese=True))
            return pdf_response(pdf, f"借阅登记簿-{stamp}.pdf")
        return _xlsx(exports.lending_register_xlsx(rows, institution_name=inst.name, start=start, end=end,
                                                   type_names=doc_type_names(inst, chinese=True)),
                     f"借阅登记簿-{stamp}.xlsx")
    if kind == "destruction-lists":
        lists = db.session.execute(
            destruction_svc.lists_query(current_user).where(DestructionList.institution_id.in_(subtree_ids(inst)))
            .options(selectinload(DestructionList.items)).order_by(DestructionList.created_at.desc())
            .limit(500)).scalars().all()
        if fmt == "pdf":
            return pdf_response(exports.destruction_lists_pdf(lists, institution_name=inst.name),
                                f"销毁清册汇总-{inst.code}-{today}.pdf")
        return _xlsx(exports.destruction_lists_xlsx(lists, institution_name=inst.name),
                     f"销毁清册汇总-{inst.code}-{today}.xlsx")
    if kind == "inspections":
        start, end = date_arg("start", today.replace(month=1, day=1)), date_arg("end", today)
        overview = inspection_overview(current_user, inst, start, end, today)
        if fmt == "pdf":
            return pdf_response(exports.inspection_overview_pdf(overview, institution_name=inst.name),
                                f"检查情况-{inst.code}-{today}.pdf")
        return _xlsx(exports.inspection_overview_xlsx(overview, institution_name=inst.name),
                     f"检查情况-{inst.code}-{today}.xlsx")
    # migration: the post-loan migration report, as its page computes it
    default_start, default_end = default_migration_period(today)
    report_ = migration_report(current_user, inst, date_arg("start", default_start), date_arg("end", default_end))
    stamp = f"{inst.code}-{report_.start}-{report_.end}"
    if fmt == "pdf":
        return pdf_response(exports.migration_pdf(report_), f"迁徙率-{stamp}.pdf")
    return _xlsx(exports.migration_xlsx(report_), f"迁徙率-{stamp}.xlsx")

