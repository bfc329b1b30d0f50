"""Dashboards: each role's panels over an institution's subtree, every chart an SVG.

A panel is one question with its numbers and its chart: post-loan inspections overdue and due
this week, five-category risk classes, overdue buckets, bucket migration, completeness by
branch and its trend, files on loan and overdue returns, archive inspections due and overdue,
the last fixity run. ``ROLE_PANELS`` says which roles see which; a user with several roles sees
the union, in ``PANEL_ORDER``. Every number comes from the same functions the pages use:
the completeness audit, the migration report (``portal.postloan.collection.migration_report``),
the lending queries (``portal.archive.lending``), the archive inspection schedule.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import Callable

from flask_babel import get_locale
from flask_babel import gettext as _
from markupsafe import Markup
from sqlalchemy import case, func, select
from sqlalchemy.orm import selectinload

from .. import kept
from ..accounts.models import Institution, User
from ..accounts.scope import can, in_scope
from ..archive import lending as lending_svc
from ..archive.models import Lending, LendingState
from ..errors import InvalidInput
from ..extensions import db
from ..labels import label, yuan
from ..loans.models import OPEN_LOAN_STATUSES, RISK_ORDER, Loan
from ..loans.services import bucket_condition
from ..postloan.collection import migration_report
from ..postloan.common import week_end
from ..postloan.models import INSPECTION_TODO, Inspection
from ..rules.lookup import rules_for
from ..timeutil import local_today
from . import charts
from .completeness import CompletenessAudit, audit_completeness, completeness_trend, percent, subtree_ids
from .fixity import last_run_summary
from .inspections import Schedule, archive_inspection_schedule, inspections_query
from .models import ArchiveInspection, InspectionState


@dataclass
class Panel:
    key: str
    title: str
    svg: Markup | None = None
    headers: list[str] = field(default_factory=list)
    rows: list[list] = field(default_factory=list)
    note: str = ""
    link: str | None = None          # endpoint name of the page behind the panel
    figures_at: datetime | None = None   # when a panel from the cache was built (UTC); None: just now


@dataclass
class DashboardContext:
    """What every panel of one dashboard shares, computed at most once."""

    user: User
    institution: Institution
    as_of: date
    _audit: CompletenessAudit | None = None

    @property
    def audit(self) -> CompletenessAudit:
        if self._audit is None:
            self._audit = audit_completeness(self.institution, as_of=self.as_of)
        return self._audit


def _groups(institution: Institution) -> list[Institution]:
    """The rows of a per-institution chart: the children of the institution, or itself."""
    children = list(db.session.execute(select(Institution).where(Institution.parent_id == institution.id)
                                       .order_by(Institution.path)).scalars())
    return children or [institution]


def _group_of(groups: list[Institution], path: str) -> Institution | None:
    return next((g for g in groups if path.startswith(g.path)), None)


def _per_group(groups: list[Institution], rows) -> dict[int, list[int]]:
    """Sum rows of (institution path, n1, n2, …) into the groups."""
    sums: dict[int, list[int]] = {g.id: [] for g in groups}
    for path, *values in rows:
        group = _group_of(groups, path)
        if group is None:
            continue
        current = sums[group.id]
        if not current:
            current.extend([0] * len(values))
        for i, v in enumerate(values):
            current[i] += int(v or 0)
    return sums


# --- panels ----------------------------------------------------------------------------------

def postloan_inspections_panel(ctx: DashboardContext) -> Panel:
    """Post-loan inspections still to do: overdue, and due by Sunday, per branch or county."""
    today, sunday = ctx.as_of, week_end(ctx.as_of)
    groups = _groups(ctx.institution)
    rows = db.session.execute(
        select(Institution.path, func.sum(case((Inspection.due_on < today, 1), else_=0)),
               func.sum(case((Inspection.due_on.between(today, sunday), 1), else_=0)))
        .select_from(Inspection).join(Institution, Institution.id == Inspection.branch_id)
        .where(in_scope(Inspection.branch_id, ctx.user), Inspection.branch_id.in_(subtree_ids(ctx.institution)),
               Inspection.status.in_(INSPECTION_TODO))
        .group_by(Institution.path)).all()
    sums = _per_group(groups, rows)
    labels = [g.name for g in groups]
    overdue = [(sums[g.id] or [0, 0])[0] for g in groups]
    this_week = [(sums[g.id] or [0, 0])[1] for g in groups]
    title = _("Post-loan inspections to do")
    return Panel("postloan_inspections", title,
                 charts.bar(title, labels, [(_("Overdue"), overdue), (_("Due this week"), this_week)],
                            colours=("#c62828", "#f9a825")),
                 [_("Institution"), _("Overdue"), _("Due this week")],
                 [[name, o, w] for name, o, w in zip(labels, overdue, this_week)], link="postloan.inspections")


def risk_classes_panel(ctx: DashboardContext) -> Panel:
    """Open loans by five-category class: number and balance."""
    rows = dict((r, (n, b)) for r, n, b in db.session.execute(
        select(Loan.risk_class, func.count(), func.coalesce(func.sum(Loan.balance_fen), 0))
        .where(in_scope(Loan.branch_id, ctx.user), Loan.branch_id.in_(subtree_ids(ctx.institution)),
               Loan.status.in_(OPEN_LOAN_STATUSES)).group_by(Loan.risk_class)).all())
    title = _("Risk classes of open loans (balance, 10,000 yuan)")
    slices = [(label(code, "risk_class"), round(int(rows.get(code, (0, 0))[1]) / 1_000_000, 1)) for code in RISK_ORDER]
    table = [[label(code, "risk_class"), rows.get(code, (0, 0))[0], yuan(rows.get(code, (0, 0))[1])]
             for code in RISK_ORDER]
    return Panel("risk_classes", title, charts.pie(title, slices, colours=charts.RISK_COLOURS),
                 [_("Class"), _("Loans"), _("Balance (yuan)")], table, link="loans.loan_list")


def overdue_buckets_panel(ctx: DashboardContext) -> Panel:
    """Open loans by overdue bucket (the union's edges): number and balance."""
    rules = rules_for(ctx.institution)
    buckets = rules.bucket_labels()
    bucket = case(*[(bucket_condition(rules, code), code) for code, _l in buckets], else_="M0")
    rows = {b: (n, s) for b, n, s in db.session.execute(
        select(bucket, func.count(), func.coalesce(func.sum(Loan.balance_fen), 0))
        .where(in_scope(Loan.branch_id, ctx.user), Loan.branch_id.in_(subtree_ids(ctx.institution)),
               Loan.status.in_(OPEN_LOAN_STATUSES)).group_by(bucket)).all()}
    title = _("Open loans by overdue bucket (balance, 10,000 yuan)")
    labels = [f"{code} {text}" for code, text in buckets]
    values = [round(int(rows.get(code, (0, 0))[1]) / 1_000_000, 1) for code, _t in buckets]
    return Panel("overdue_buckets", title,
                 charts.bar(title, labels, [(_("Balance"), values)], colours=("#1565c0",)),
                 [_("Bucket"), _("Loans"), _("Balance (yuan)")],
                 [[lbl, rows.get(code, (0, 0))[0], yuan(rows.get(code, (0, 0))[1])]
                  for lbl, (code, _t) in zip(labels, buckets)], link="postloan.migration")


def migration_chart(report) -> Markup | None:
    """Where each bucket's starting balance went: cured (current or settled), stayed, worse."""
    codes = [code for code, _l in report.buckets]
    labels, cured, stayed, worse, written_off = [], [], [], [], []
    for i, code in enumerate(codes):
        start = report.rows.get(code, (0, 0))[1]
        if not start:
            continue
        moved = {j: report.cells.get((code, j), (0, 0))[1] for j in report.columns}
        better = sum(moved[j] for j in codes[:i]) + moved.get("settled", 0)
        if i == 0:
            better = moved.get("settled", 0)
        labels.append(code)
        cured.append(percent(better, start))
        stayed.append(percent(moved[code], start))
        worse.append(percent(sum(moved[j] for j in codes[i + 1:]), start))
        written_off.append(percent(moved.get("written_off", 0), start))
    if not labels:
        return None
    title = _("Bucket migration %(start)s – %(end)s (share of starting balance)",
              start=report.start_day, end=report.end_day)
    return charts.bar(title, labels, [(_("Better or settled"), cured), (_("Same bucket"), stayed),
                                      (_("Worse"), worse), (_("Written off"), written_off)],
                      percent=True, horizontal=True, stacked=True,
                      colours=("#2e7d32", "#90a4ae", "#c62828", "#4a0000"))


def default_migration_period(as_of: date) -> tuple[date, date]:
    """From the first day of last month to today (as the migration page does)."""
    start = (as_of.replace(day=1) - timedelta(days=1)).replace(day=1)
    return start, as_of


def migration_panel(ctx: DashboardContext) -> Panel:
    start, end = default_migration_period(ctx.as_of)
    report = migration_report(ctx.user, ctx.institution, start, end)
    title = _("Overdue migration")
    svg = migration_chart(report)
    note = "" if svg is not None else _("No bucket snapshots for this period yet; the post-loan daily run writes them.")
    rows = [[code, report.rows.get(code, (0, 0))[0], yuan(report.rows.get(code, (0, 0))[1]),
             report.rate(code, code)] for code, _l in report.buckets if report.rows.get(code)]
    return Panel("migration", title, svg, [_("Bucket"), _("Loans at start"), _("Balance at start (yuan)"),
                                           _("Stayed (%)")], rows, note=note, link="postloan.migration")


def completeness_panel(ctx: DashboardContext) -> Panel:
    audit = ctx.audit
    children = audit.children(audit.root.id) or [audit.total]
    title = _("Complete credit files by institution")
    labels = [t.institution.name for t in children]
    svg = charts.bar(title, labels, [(_("Complete (%)"), [t.rate for t in children])], percent=True,
                     horizontal=True, colours=("#2e7d32",))
    return Panel("completeness", title, svg, [_("Institution"), _("Files"), _("Complete"), _("Rate")],
                 [[t.institution.name, t.files, t.complete, t.rate] for t in children], link="auditing.completeness")


def completeness_trend_chart(institution: Institution, as_of: date, days: int = 90) -> Markup | None:
    points = completeness_trend(institution, days=days, as_of=as_of)
    if not points:
        return None
    title = _("Completeness over the last %(days)d days", days=days)
    return charts.line(title, [p.as_of.isoformat() for p in points], [(_("Complete (%)"), [p.rate for p in points])],
                       percent=True, colours=("#2e7d32",))


def completeness_trend_panel(ctx: DashboardContext) -> Panel:
    svg = completeness_trend_chart(ctx.institution, ctx.as_of)
    points = completeness_trend(ctx.institution, days=90, as_of=ctx.as_of)
    note = "" if points else _("No daily snapshots yet; “flask audit completeness” writes one each day it runs.")
    rows = [[p.as_of.isoformat(), p.files, p.complete, p.rate] for p in points[-5:]]
    return Panel("completeness_trend", _("Completeness trend"), svg,
                 [_("Date"), _("Files"), _("Complete"), _("Rate")], rows, note=note, link="auditing.completeness")


def lending_panel(ctx: DashboardContext) -> Panel:
    """Files on loan (issued lendings) and overdue returns, per institution."""
    groups = _groups(ctx.institution)
    issued = lending_svc.lendings_query(ctx.user).where(Lending.state == LendingState.ISSUED.value,
                                                        Lending.institution_id.in_(subtree_ids(ctx.institution)))
    overdue = lending_svc.overdue_query(ctx.user, ctx.as_of).where(
        Lending.institution_id.in_(subtree_ids(ctx.institution)))
    counts = {}
    for name, stmt in (("issued", issued), ("overdue", overdue)):
        sub = stmt.order_by(None).subquery()
        counts[name] = _per_group(groups, db.session.execute(
            select(Institution.path, func.count()).select_from(sub)
            .join(Institution, Institution.id == sub.c.institution_id).group_by(Institution.path)).all())
    labels = [g.name for g in groups]
    on_loan = [(counts["issued"][g.id] or [0])[0] for g in groups]
    late = [(counts["overdue"][g.id] or [0])[0] for g in groups]
    title = _("Files on loan and overdue returns")
    return Panel("lending", title,
                 charts.bar(title, labels, [(_("On loan"), on_loan), (_("Overdue returns"), late)],
                            colours=("#1565c0", "#c62828")),
                 [_("Institution"), _("On loan"), _("Overdue returns")],
                 [[n, a, b] for n, a, b in zip(labels, on_loan, late)], link="archive.lending_overdue")


def archive_inspections_chart(schedule) -> Markup:
    overdue = len(schedule.overdue)
    soon = len(schedule.due_soon)
    later = len(schedule.rows) - overdue - soon
    title = _("Archive inspections the rules require")
    return charts.pie(title, [(_("Overdue"), overdue), (_("Due within 30 days"), soon), (_("Not yet due"), later)],
                      colours=("#c62828", "#f9a825", "#2e7d32"))


def archive_inspections_panel(ctx: DashboardContext) -> Panel:
    schedule = archive_inspection_schedule(ctx.institution, ctx.as_of)
    rows = [[r.target.name, r.inspector.name, r.due_on.isoformat()] for r in schedule.overdue[:10]]
    note = "" if schedule.rows else _("The union's rules require no archive inspections here.")
    return Panel("archive_inspections", _("Archive inspections"),
                 archive_inspections_chart(schedule) if schedule.rows else None,
                 [_("Overdue: credit files of"), _("Inspected by"), _("Due since")], rows, note=note,
                 link="auditing.inspections")


def fixity_panel(ctx: DashboardContext) -> Panel:
    run = last_run_summary(ctx.institution)
    if run is None:
        return Panel("fixity", _("Fixity"), note=_("No verification has covered these files yet."),
                     link="auditing.fixity")
    rows = [[_("Last full check"), run.finished_at], [_("Objects re-hashed"), run.objects_checked],
            [_("Checksum mismatches"), run.mismatches], [_("Missing objects"), run.missing]]
    return Panel("fixity", _("Fixity"), None, [_("What"), _("Value")], rows,
                 note=_("All objects matched.") if run.ok else _("Problems were found."), link="auditing.fixity")


PANELS: dict[str, tuple[Callable[[DashboardContext], Panel], str, bool]] = {
    # key: (builder, permission, cheap enough for the home page)
    "postloan_inspections": (postloan_inspections_panel, "postloan.view", True),
    "risk_classes": (risk_classes_panel, "loan.view", True),
    "overdue_buckets": (overdue_buckets_panel, "loan.view", True),
    "migration": (migration_panel, "postloan.view", True),
    "completeness": (completeness_panel, "audit.completeness", False),
    "completeness_trend": (completeness_trend_panel, "audit.completeness", True),
    "lending": (lending_panel, "lending.register", True),
    "archive_inspections": (archive_inspections_panel, "audit.inspections", True),
    "fixity": (fixity_panel, "audit.fixity", True),
}
PANEL_ORDER = list(PANELS)
ROLE_PANELS: dict[str, tuple[str, ...]] = {
    "loan_officer": ("postloan_inspections", "risk_classes", "overdue_buckets", "completeness"),
    "post_loan_officer": ("postloan_inspections", "risk_classes", "overdue_buckets", "migration", "completeness"),
    "branch_director": ("postloan_inspections", "risk_classes", "overdue_buckets", "migration", "completeness",
                        "completeness_trend", "lending", "archive_inspections"),
    "archivist": ("completeness", "completeness_trend", "lending", "archive_inspections", "fixity"),
    "auditor": ("completeness", "completeness_trend", "archive_inspections", "fixity", "lending",
                "postloan_inspections", "risk_classes", "overdue_buckets", "migration"),
    "union_admin": tuple(PANEL_ORDER),
    "admin": ("risk_classes", "overdue_buckets"),
}
# On the home page: the first few cheap panels of the user's roles.
HOME_PANELS = 3


def panels_for(user: User, *, home: bool = False) -> list[str]:
    wanted = {key for role in user.roles for key in ROLE_PANELS.get(role, ())}
    keys = [k for k in PANEL_ORDER if k in wanted and can(user, PANELS[k][1])]
    if home:
        keys = [k for k in keys if PANELS[k][2]][:HOME_PANELS]
    return keys


def build_dashboard(user: User, institution: Institution, *, as_of: date | None = None, home: bool = False,
                    keys: list[str] | None = None, cached: bool = False) -> list[Panel]:
    """The user's panels over ``institution`` (which the caller checked the user may see).

    ``cached``: take panels still valid from those kept (``portal/kept.py``; such a panel
    carries ``figures_at``). A panel depends on the institution only, not on who asks: every
    query is limited to ``institution``'s subtree, which lies within the user's scope."""
    ctx = DashboardContext(user, institution, as_of or local_today())
    keys = keys if keys is not None else panels_for(user, home=home)
    if cached:
        return kept_panels(institution, keys, ctx.as_of, lambda key: PANELS[key][0](ctx))
    return [PANELS[key][0](ctx) for key in keys]


# --- the overview report -----------------------------------------------------------------------

@dataclass
class InspectionOverview:
    schedule: Schedule
    completed: list[ArchiveInspection]
    postloan: Panel             # the dashboard's post-loan inspections panel (same numbers)
    start: date
    end: date


def inspection_overview(user: User, institution: Institution, start: date, end: date,
                        as_of: date | None = None) -> InspectionOverview:
    """The archive inspection schedule, the archive inspections completed in the period, and the
    post-loan inspections still to do, for ``institution``'s subtree."""
    as_of = as_of or local_today()
    if end < start:
        raise InvalidInput(_("The end date must not be before the start date."))
    schedule = archive_inspection_schedule(institution, as_of)
    completed = list(db.session.execute(
        inspections_query(user).where(
            ArchiveInspection.state == InspectionState.COMPLETED.value,
            ArchiveInspection.inspected_on.between(start, end),
            ArchiveInspection.institution_id.in_(select(Institution.id).where(
                Institution.path.startswith(institution.path, autoescape=True))))
        .options(selectinload(ArchiveInspection.files), selectinload(ArchiveInspection.recorded_by))).scalars())
    postloan = postloan_inspections_panel(DashboardContext(user, institution, as_of))
    return InspectionOverview(schedule, completed, postloan, start, end)


# --- panels kept between views (portal/kept.py) -------------------------------------------------

def encode_panel(panel: Panel) -> str:
    """The panel as JSON, keeping the types of its cells (a rate stays a Decimal, a date a date)."""
    data = {f.name: getattr(panel, f.name) for f in fields(panel) if f.name != "figures_at"}
    data["svg"] = None if panel.svg is None else str(panel.svg)
    data["headers"] = [kept.encode_value(h) for h in panel.headers]
    data["rows"] = [[kept.encode_value(v) for v in row] for row in panel.rows]
    data["title"], data["note"] = str(panel.title), str(panel.note)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def decode_panel(text: str, figures_at: datetime | None = None) -> Panel:
    data = json.loads(text)
    data["svg"] = None if data["svg"] is None else Markup(data["svg"])
    data["headers"] = [kept.decode_value(h) for h in data["headers"]]
    data["rows"] = [[kept.decode_value(v) for v in row] for row in data["rows"]]
    return Panel(**data, figures_at=figures_at)


def kept_panels(institution: Institution, keys: list[str], as_of: date, build: Callable[[str], Panel]) -> list[Panel]:
    """The panels ``keys`` of ``institution`` on ``as_of``: kept ones where still valid (with
    ``figures_at`` set), otherwise built by ``build(key)`` (and kept). Only today's are kept."""
    found = kept.kept(institution, keys, str(get_locale() or ""), as_of, build, encode_panel)
    return [decode_panel(value, at) if at is not None else value for value, at in found]
