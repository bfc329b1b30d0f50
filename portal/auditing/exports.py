"""The auditors' reports as PDF (``render_pdf``, templates ``reports/auditing_*.html``) and as
Excel (openpyxl): completeness, lending register, destruction lists, inspection overview,
overdue migration, and a dashboard.

Every function here takes what the page shows — a ``CompletenessAudit``, the rows of
``lending.register_query``, ``destruction.lists_query``, the archive inspection ``Schedule``, a
``MigrationReport`` — and only lays it out; no report computes its numbers a second way.
Documents are named in Chinese (the plugin's names), as in the archive's own lists.
"""
from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal
from typing import Iterable, Sequence

from flask_babel import gettext as _
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from ..labels import label
from ..reports.pdf import render_pdf
from ..timeutil import to_local
from . import charts
from .completeness import CompletenessAudit
from .dashboards import archive_inspections_chart, migration_chart

# A PDF lists at most this many incomplete files in detail (WeasyPrint lays out about 20 table
# rows a second); the Excel file has them all.
PDF_LOAN_LIMIT = 300
HEADER_FILL = PatternFill("solid", fgColor="DDEBDD")


# --- Excel helpers ---------------------------------------------------------------------------

def _cell(value):
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        local = to_local(value)
        return local.replace(tzinfo=None) if local else None
    return value


def _sheet(wb: Workbook, title: str, headers: Sequence[str], rows: Iterable[Sequence], *,
           widths: Sequence[int] | None = None, first: bool = False, heading: str | None = None):
    ws = wb.active if first else wb.create_sheet()
    ws.title = title[:31]
    offset = 0
    if heading:
        ws.append([heading])
        ws.cell(row=1, column=1).font = Font(bold=True, size=12)
        offset = 1
    ws.append([str(h) for h in headers])
    for col in range(1, len(headers) + 1):
        cell = ws.cell(row=offset + 1, column=col)
        cell.font = Font(bold=True)
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(vertical="center", wrap_text=True)
    for row in rows:
        ws.append([_cell(v) for v in row])
    ws.freeze_panes = ws.cell(row=offset + 2, column=1)
    for i, width in enumerate(widths or [16] * len(headers), start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    for column_cells in ws.iter_cols(min_row=offset + 2):
        for cell in column_cells:
            if isinstance(cell.value, datetime):
                cell.number_format = "yyyy-mm-dd hh:mm"
            elif isinstance(cell.value, date):
                cell.number_format = "yyyy-mm-dd"
    return ws


def _save(wb: Workbook) -> bytes:
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _rate(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


# --- completeness ----------------------------------------------------------------------------

def completeness_rows(audit: CompletenessAudit) -> list:
    """Every institution of the audited subtree in tree order (county, then its branches)."""
    return sorted(audit.totals.values(), key=lambda t: t.institution.path)


def completeness_charts(audit: CompletenessAudit, trend_svg=None) -> dict:
    children = audit.children(audit.root.id) or [audit.total]
    chart = charts.bar(_("Complete credit files by institution"), [t.institution.name for t in children],
                       [(_("Complete (%)"), [t.rate for t in children])], percent=True, horizontal=True,
                       colours=("#2e7d32",))
    return {"by_institution": chart, "trend": trend_svg}


def completeness_pdf(audit: CompletenessAudit, *, type_names: dict[str, str], trend_svg=None) -> bytes:
    loans = audit.loans_under(audit.root.id)
    svg = completeness_charts(audit, trend_svg)
    return render_pdf("reports/auditing_completeness.html", title=_("Credit file completeness audit"),
                      institution_name=audit.root.name, audit=audit, rows=completeness_rows(audit),
                      loans=loans[:PDF_LOAN_LIMIT], more_loans=max(0, len(loans) - PDF_LOAN_LIMIT),
                      type_names=type_names, chart=charts.pdf_image(svg["by_institution"], max_height_mm=120),
                      trend=charts.pdf_image(trend_svg, max_height_mm=90),
                      branch_names={i: row.name for i, row in audit.institutions.items()})


def completeness_xlsx(audit: CompletenessAudit, *, type_names: dict[str, str]) -> bytes:
    wb = Workbook()
    names = {i: row.name for i, row in audit.institutions.items()}
    codes = {i: row.code for i, row in audit.institutions.items()}
    heading = _("%(name)s · completeness on %(day)s", name=audit.root.name, day=audit.as_of.isoformat())
    _sheet(wb, _("Institutions"), [_("Code"), _("Institution"), _("Level"), _("Files"), _("Complete"),
                                    _("Incomplete"), _("Rate (%)"), _("Missing documents")],
           ([t.institution.code, t.institution.name, label(t.institution.level, "level"), t.files, t.complete,
             t.incomplete, _rate(t.rate), t.missing_documents] for t in completeness_rows(audit)),
           widths=[14, 28, 12, 10, 10, 10, 10, 12], first=True, heading=heading)
    _sheet(wb, _("Missing documents"), [_("Branch code"), _("Branch"), _("Contract"), _("Borrower"),
                                         _("Loan status"), _("Stage"), _("Document type"), _("Document"),
                                         _("Due since")],
           ([codes[r.branch_id], names[r.branch_id], r.contract_no, r.borrower_name, label(r.status, "loan_status"),
             label(g.stage, "stage"), g.doc_type, type_names.get(g.doc_type, g.doc_type), g.due_since]
            for r, g in audit.gaps()),
           widths=[12, 22, 22, 16, 12, 12, 24, 22, 12])
    _sheet(wb, _("By document type"), [_("Document type"), _("Document"), _("Files missing it")],
           ([code, type_names.get(code, code), n] for code, n in audit.missing_by_type.most_common()),
           widths=[26, 26, 16])
    return _save(wb)


def completeness_json(audit: CompletenessAudit, *, type_names: dict[str, str]) -> dict:
    def rate(value):
        return None if value is None else float(value)
    return {
        "institution": audit.root.code, "name": audit.root.name, "as_of": audit.as_of.isoformat(),
        "rules": audit.rules.plugin_name or "baseline",
        "files": audit.total.files, "complete": audit.total.complete, "rate": rate(audit.total.rate),
        "missing_documents": audit.total.missing_documents,
        "institutions": [{"code": t.institution.code, "name": t.institution.name, "level": t.institution.level,
                          "files": t.files, "complete": t.complete, "rate": rate(t.rate),
                          "missing_documents": t.missing_documents} for t in completeness_rows(audit)],
        "incomplete_loans": [{"contract_no": r.contract_no, "borrower": r.borrower_name,
                              "branch": audit.institutions[r.branch_id].code, "status": r.status,
                              "due_since": r.due_since.isoformat() if r.due_since else None,
                              "missing": [{"type": g.doc_type, "name": type_names.get(g.doc_type, g.doc_type),
                                           "stage": g.stage,
                                           "due_since": g.due_since.isoformat() if g.due_since else None}
                                          for g in r.missing]}
                             for r in audit.loans_under(audit.root.id)],
    }


# --- lending register ------------------------------------------------------------------------

def lending_register_xlsx(rows, *, institution_name: str, type_names: dict[str, str], start: date | None,
                          end: date | None) -> bytes:
    wb = Workbook()
    heading = _("%(name)s · lending register %(start)s – %(end)s", name=institution_name, start=start or "—",
                end=end or "—")
    _sheet(wb, _("Lending register"),
           ["#", _("Requested"), _("Borrowed by"), _("Credit file"), _("Documents"), _("Medium"), _("Reason"),
            _("Approved by"), _("Lent on"), _("Due"), _("Returned"), _("State"), _("Reminders")],
           ([lend.id, lend.requested_at, lend.requester.display_name, lend.volume.title,
             "; ".join(f"{d.archive_number or '#' + str(d.id)} {type_names.get(d.doc_type, d.doc_type)}"
                       for d in lend.documents),
             label(lend.medium, "lending_medium"), lend.reason, lend.decided_by.display_name if lend.decided_by else "",
             lend.issued_at, lend.due_on, lend.returned_at, label(lend.state, "lending_state"), lend.reminders] for lend in rows),
           widths=[6, 17, 12, 24, 40, 10, 30, 12, 17, 12, 17, 12, 9], first=True, heading=heading)
    return _save(wb)


# --- destruction lists -----------------------------------------------------------------------

def destruction_lists_pdf(lists, *, institution_name: str) -> bytes:
    return render_pdf("reports/auditing_destruction.html", title=_("Destruction lists"),
                      institution_name=institution_name, lists=lists)


def destruction_lists_xlsx(lists, *, institution_name: str) -> bytes:
    wb = Workbook()
    _sheet(wb, _("Destruction lists"),
           ["#", _("Institution"), _("State"), _("Appraisal"), _("Proposed by"), _("Proposed"), _("Approved by"),
            _("Supervisors"), _("Executed"), _("Documents")],
           ([dl.id, dl.institution.name, label(dl.state, "destruction_state"), dl.appraisal,
             dl.proposer.display_name, dl.proposed_at, dl.decided_by.display_name if dl.decided_by else "",
             "、".join(u.display_name for u in (dl.supervisor1, dl.supervisor2) if u), dl.executed_at,
             len(dl.items)] for dl in lists),
           widths=[6, 20, 16, 40, 12, 17, 12, 20, 17, 10], first=True, heading=institution_name)
    _sheet(wb, _("Listed documents"),
           [_("List"), _("Archive number"), _("Document"), _("Borrower"), _("Contract"), _("Retention"),
            _("Closed on"), _("Retention ended")],
           ([dl.id, item.archive_number, item.doc_type_name, item.borrower_name, item.contract_no,
             label(item.retention_code, "retention"), item.closed_on, item.expired_on]
            for dl in lists for item in dl.items),
           widths=[6, 30, 22, 14, 22, 10, 12, 14])
    return _save(wb)


# --- inspection overview ---------------------------------------------------------------------

def inspection_overview_pdf(overview, *, institution_name: str) -> bytes:
    chart = archive_inspections_chart(overview.schedule) if overview.schedule.rows else None
    postloan_chart = overview.postloan.svg
    return render_pdf("reports/auditing_inspections.html", title=_("Inspection overview"),
                      institution_name=institution_name, overview=overview,
                      chart=charts.pdf_image(chart, max_width_mm=160, max_height_mm=80),
                      postloan_chart=charts.pdf_image(postloan_chart, max_width_mm=220, max_height_mm=90))


def inspection_overview_xlsx(overview, *, institution_name: str) -> bytes:
    wb = Workbook()
    as_of = overview.schedule.as_of
    _sheet(wb, _("Archive inspection schedule"),
           [_("Credit files of"), _("Inspected by"), _("Cycle (months)"), _("Last completed"), _("Due"),
            _("Overdue"), _("Being recorded by")],
           ([r.target.name, r.inspector.name, r.cycle_months,
             r.last_completed.inspected_on if r.last_completed else None, r.due_on,
             _("yes") if r.overdue(as_of) else "", r.draft.recorded_by.display_name if r.draft else ""]
            for r in overview.schedule.rows),
           widths=[22, 22, 12, 14, 12, 9, 16], first=True, heading=institution_name)
    _sheet(wb, _("Archive inspections done"),
           ["#", _("Credit files of"), _("Inspected by"), _("Date"), _("Conclusion"), _("Files sampled"),
            _("Files with problems"), _("Recorded by"), _("Findings")],
           ([i.id, i.institution.name, i.inspector_institution.name, i.inspected_on,
             label(i.conclusion, "archive_inspection_conclusion"), len(i.files),
             sum(1 for f in i.files if f.result == "problem"), i.recorded_by.display_name, i.findings]
            for i in overview.completed),
           widths=[6, 22, 22, 12, 22, 10, 12, 12, 50])
    _sheet(wb, _("Post-loan inspections"), overview.postloan.headers, overview.postloan.rows, widths=[24, 12, 14])
    return _save(wb)


# --- overdue migration -----------------------------------------------------------------------

def migration_pdf(report) -> bytes:
    chart = migration_chart(report)
    return render_pdf("reports/auditing_migration.html", title=_("Overdue migration report"),
                      institution_name=report.institution.name, report=report,
                      chart=charts.pdf_image(chart, max_height_mm=100))


def migration_xlsx(report) -> bytes:
    wb = Workbook()
    heading = _("%(name)s · migration %(start)s – %(end)s (snapshots %(s)s – %(e)s)",
                name=report.institution.name, start=report.start, end=report.end,
                s=report.start_day or "—", e=report.end_day or "—")
    columns = report.columns
    rows = []
    for code, text in report.buckets:
        count, balance = report.rows.get(code, (0, 0))
        rows.append([f"{code} {text}", count, balance / 100]
                    + [report.cells.get((code, j), (0, 0))[1] / 100 for j in columns]
                    + [_rate(report.rate(code, j)) for j in columns])
    headers = ([_("From bucket"), _("Loans at start"), _("Balance at start (yuan)")]
               + [_("to %(col)s (yuan)", col=j) for j in columns] + [_("to %(col)s (%%)", col=j) for j in columns])
    _sheet(wb, _("Migration"), headers, rows, widths=[16, 10, 16] + [12] * (2 * len(columns)), first=True,
           heading=heading)
    return _save(wb)


# --- dashboard -------------------------------------------------------------------------------

def dashboard_pdf(panels, *, institution_name: str) -> bytes:
    return render_pdf("reports/auditing_dashboard.html", title=_("Dashboard"), institution_name=institution_name,
                      panels=[(p, charts.pdf_image(p.svg, max_width_mm=180, max_height_mm=110)) for p in panels])
