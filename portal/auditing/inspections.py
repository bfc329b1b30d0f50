"""Archive inspections (档案检查): the schedule the union's rules require, and recording one.

Who inspects whom: an institution whose level has a cycle (``archive_inspection_cycle(level)``,
in months; 0 means none) inspects the credit files of every branch in its subtree — a branch its
own files (baseline: every 6 months), a county each of its branches (baseline: yearly), a city or
the union likewise if its plugin gives their level a cycle.

When each is due: the cycle after the last completed inspection of the same pair (inspector,
branch); for a pair never inspected, the cycle after the branch was added to the portal. A due
date before today is overdue.

Recording: a user of the inspecting institution whose role may inspect starts one; a random
sample of the branch's credit files (borrowers with a loan there) is drawn and stored. The
recorder notes a result per sampled file, the findings and the conclusion, and completes it;
from then on it is final. Only its recorder changes or cancels a draft — auditors change nothing
else in the portal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ..accounts.models import Institution, User
from ..accounts.scope import check, in_scope, institution_visible
from ..audit_trail import record_event
from ..errors import InvalidInput, PermissionDenied, WrongState, not_found
from ..extensions import db
from ..labels import label
from ..loans.models import Borrower, Loan
from ..rules.lookup import rules_for
from ..timeutil import add_months, local_today, to_local, utcnow
from .completeness import LoanResult, audit_completeness, subtree_ids
from .models import ArchiveInspection, ArchiveInspectionFile, Conclusion, FileResult, InspectionState

SAMPLE_DEFAULT = 10
SAMPLE_MAX = 50
MAX_NOTE = 2000
MAX_FINDINGS = 8000
DUE_SOON_DAYS = 30


# --- the schedule --------------------------------------------------------------------------

@dataclass
class ScheduleRow:
    inspector: Institution
    target: Institution
    level: str
    cycle_months: int
    due_on: date
    last_completed: ArchiveInspection | None = None
    draft: ArchiveInspection | None = None

    def overdue(self, as_of: date) -> bool:
        return self.due_on < as_of

    def due_soon(self, as_of: date) -> bool:
        return as_of <= self.due_on <= date.fromordinal(as_of.toordinal() + DUE_SOON_DAYS)


@dataclass
class Schedule:
    root: Institution
    as_of: date
    rows: list[ScheduleRow] = field(default_factory=list)

    @property
    def overdue(self) -> list[ScheduleRow]:
        return [r for r in self.rows if r.overdue(self.as_of)]

    @property
    def due_soon(self) -> list[ScheduleRow]:
        return [r for r in self.rows if r.due_soon(self.as_of)]

    def for_inspector(self, institution_id: int) -> list[ScheduleRow]:
        return [r for r in self.rows if r.inspector.id == institution_id]


def _created_on(institution: Institution) -> date:
    return to_local(institution.created_at).date() if institution.created_at else local_today()


def inspection_pairs(root: Institution) -> list[tuple[Institution, Institution, str, int]]:
    """(inspector, branch, inspector's level, cycle in months) for every branch in ``root``'s
    subtree and every institution the rules make inspect it (which may sit above ``root``)."""
    rules = rules_for(root)
    cycles: dict[str, int] = {}
    branches = list(db.session.execute(
        select(Institution).where(Institution.path.startswith(root.path, autoescape=True),
                                  Institution.level == "branch").order_by(Institution.path)).scalars())
    codes = {code for b in branches for code in b.path.strip("/").split("/")}
    by_code = {i.code: i for i in db.session.execute(select(Institution).where(Institution.code.in_(codes))).scalars()}
    pairs = []
    for branch in branches:
        for code in branch.path.strip("/").split("/"):
            inspector = by_code.get(code)
            if inspector is None:
                continue
            if inspector.level not in cycles:
                cycles[inspector.level] = rules.archive_inspection_cycle(inspector.level)
            if cycles[inspector.level] > 0:
                pairs.append((inspector, branch, inspector.level, cycles[inspector.level]))
    return pairs


def archive_inspection_schedule(root: Institution, as_of: date | None = None) -> Schedule:
    """Every inspection the rules require of ``root``'s branches, with the last one completed,
    any draft, and the next due date."""
    as_of = as_of or local_today()
    schedule = Schedule(root, as_of)
    pairs = inspection_pairs(root)
    if not pairs:
        return schedule
    target_ids = {b.id for _i, b, _l, _c in pairs}
    inspections = db.session.execute(
        select(ArchiveInspection).where(ArchiveInspection.institution_id.in_(target_ids),
                                        ArchiveInspection.state != InspectionState.CANCELLED.value)
        .options(selectinload(ArchiveInspection.recorded_by))
        .order_by(ArchiveInspection.inspected_on, ArchiveInspection.id)).scalars()
    last: dict[tuple[int, int], ArchiveInspection] = {}
    drafts: dict[tuple[int, int], ArchiveInspection] = {}
    for insp in inspections:
        key = (insp.inspector_institution_id, insp.institution_id)
        if insp.state == InspectionState.COMPLETED.value:
            last[key] = insp
        else:
            drafts[key] = insp
    for inspector, branch, level, cycle in pairs:
        key = (inspector.id, branch.id)
        done = last.get(key)
        start = done.inspected_on if done is not None else _created_on(branch)
        schedule.rows.append(ScheduleRow(inspector, branch, level, cycle, add_months(start, cycle), done,
                                         drafts.get(key)))
    schedule.rows.sort(key=lambda r: (r.due_on, r.target.path, r.inspector.path))
    return schedule


# --- recording -----------------------------------------------------------------------------

def inspections_query(user: User):
    """Archive inspections of the branches in the user's subtree, newest first."""
    return (select(ArchiveInspection).where(in_scope(ArchiveInspection.institution_id, user))
            .order_by(ArchiveInspection.created_at.desc(), ArchiveInspection.id.desc()))


def recent_inspections(user: User, root: Institution, *, limit: int = 100) -> list[ArchiveInspection]:
    """The last archive inspections of branches within ``root`` the user may see, with their files."""
    return list(db.session.execute(
        inspections_query(user).where(ArchiveInspection.institution_id.in_(subtree_ids(root)))
        .options(selectinload(ArchiveInspection.files)).limit(limit)).scalars())


def sample_completeness(insp: ArchiveInspection) -> dict[int, list[LoanResult]]:
    """What the completeness audit says today about each sampled borrower's loans."""
    if not insp.files:
        return {}
    audit = audit_completeness(insp.institution, borrower_ids=[f.borrower_id for f in insp.files])
    by_borrower: dict[int, list[LoanResult]] = {}
    for result in audit.loans:
        by_borrower.setdefault(result.borrower_id, []).append(result)
    return by_borrower


def _cycle_for(inspector: Institution, target: Institution) -> int:
    if target.level != "branch" or not target.path.startswith(inspector.path):
        return 0
    return rules_for(inspector).archive_inspection_cycle(inspector.level)


def _sample_size(raw) -> int:
    try:
        size = int(raw if raw not in (None, "") else SAMPLE_DEFAULT)
    except (TypeError, ValueError):
        raise InvalidInput(_("Give the number of credit files to sample as a whole number.")) from None
    if not 1 <= size <= SAMPLE_MAX:
        raise InvalidInput(_("Sample between 1 and %(max)d credit files.", max=SAMPLE_MAX))
    return size


def start_archive_inspection(actor: User, target: Institution, sample_size=SAMPLE_DEFAULT) -> ArchiveInspection:
    """Open an inspection of ``target``'s credit files by the actor's institution, with a random
    sample of them drawn and stored. A draft of the same pair is returned to its recorder."""
    check(actor, "audit.inspect")
    if not institution_visible(actor, target):
        raise not_found()
    inspector = actor.institution
    cycle = _cycle_for(inspector, target)
    if cycle <= 0:
        raise WrongState(_("Under your union's rules, %(inspector)s does not inspect the credit files of %(target)s.",
                           inspector=inspector.name, target=target.name))
    size = _sample_size(sample_size)
    draft = db.session.execute(select(ArchiveInspection).where(
        ArchiveInspection.inspector_institution_id == inspector.id, ArchiveInspection.institution_id == target.id,
        ArchiveInspection.state == InspectionState.DRAFT.value)).scalars().first()
    if draft is not None:
        if draft.recorded_by_id == actor.id:
            return draft
        raise WrongState(_("%(user)s is already recording an inspection of %(target)s (#%(id)d).",
                           user=draft.recorded_by.display_name, target=target.name, id=draft.id))
    borrower_ids = list(db.session.execute(
        select(Borrower.id).where(Borrower.id.in_(select(Loan.borrower_id).where(Loan.branch_id == target.id)))
        .order_by(func.random()).limit(size)).scalars())
    insp = ArchiveInspection(institution_id=target.id, inspector_institution_id=inspector.id, level=inspector.level,
                             state=InspectionState.DRAFT.value, sample_size=size, recorded_by_id=actor.id)
    insp.files = [ArchiveInspectionFile(borrower_id=b) for b in sorted(borrower_ids)]
    db.session.add(insp)
    db.session.flush()
    record_event(actor, "audit.archive_inspection_start", "archive_inspection", insp.id,
                 {"institution": target.code, "inspector": inspector.code, "level": inspector.level,
                  "cycle_months": cycle, "sample": len(borrower_ids)}, institution_id=target.id)
    return insp


def _own_draft(actor: User, insp: ArchiveInspection) -> None:
    check(actor, "audit.inspect")
    if not institution_visible(actor, insp.institution):
        raise not_found()
    if insp.recorded_by_id != actor.id:
        raise PermissionDenied(_("Only %(user)s, who records this inspection, can change it.",
                                 user=insp.recorded_by.display_name))
    if not insp.is_draft:
        raise WrongState(_("This inspection is %(state)s and can no longer be changed.",
                           state=label(insp.state, "archive_inspection_state")))


@dataclass
class InspectionInput:
    inspected_on: date | None
    findings: str
    conclusion: str
    results: dict[int, tuple[str, str]]      # sampled file id → (result or "", note)


def save_archive_inspection(actor: User, insp: ArchiveInspection, data: InspectionInput, *,
                            complete: bool) -> ArchiveInspection:
    """Record what was found; ``complete`` makes it final (every sampled file needs a result)."""
    _own_draft(actor, insp)
    errors: list[str] = []
    findings = (data.findings or "").strip()
    if len(findings) > MAX_FINDINGS:
        errors.append(_("The findings are longer than %(n)d characters.", n=MAX_FINDINGS))
    conclusion = data.conclusion or None
    if conclusion is not None and conclusion not in {c.value for c in Conclusion}:
        errors.append(_("Choose a conclusion from the list."))
    if data.inspected_on is not None and data.inspected_on > local_today():
        errors.append(_("The inspection date cannot be in the future."))
    by_id = {f.id: f for f in insp.files}
    for file_id, (result, note) in data.results.items():
        if file_id not in by_id:
            raise not_found()
        if result and result not in {r.value for r in FileResult}:
            errors.append(_("Unknown result for a sampled file."))
        if len(note or "") > MAX_NOTE:
            errors.append(_("A note is longer than %(n)d characters.", n=MAX_NOTE))
    if complete:
        if data.inspected_on is None:
            errors.append(_("Give the date of the inspection."))
        if not findings:
            errors.append(_("Write the findings."))
        if conclusion is None:
            errors.append(_("Choose the conclusion."))
        unanswered = [f for f in insp.files if not (data.results.get(f.id, (f.result or "", ""))[0])]
        if unanswered:
            errors.append(_("Give a result for every sampled credit file (%(n)d without).", n=len(unanswered)))
    if errors:
        raise InvalidInput(errors[0], details=errors)
    insp.inspected_on = data.inspected_on
    insp.findings = findings
    insp.conclusion = conclusion
    for file_id, (result, note) in data.results.items():
        row = by_id[file_id]
        row.result = result or None
        row.note = (note or "").strip()
    if complete:
        audit = audit_completeness(insp.institution, borrower_ids=[f.borrower_id for f in insp.files])
        missing: dict[int, int] = {}
        for result in audit.loans:
            missing[result.borrower_id] = missing.get(result.borrower_id, 0) + len(result.missing)
        for row in insp.files:
            row.missing_documents = missing.get(row.borrower_id, 0)
        insp.state = InspectionState.COMPLETED.value
        insp.completed_at = utcnow()
    db.session.flush()
    problems = sum(1 for f in insp.files if f.result == FileResult.PROBLEM.value)
    record_event(actor, "audit.archive_inspection_complete" if complete else "audit.archive_inspection_save",
                 "archive_inspection", insp.id,
                 {"institution": insp.institution.code, "inspected_on": insp.inspected_on,
                  "conclusion": insp.conclusion, "files": len(insp.files), "problems": problems},
                 institution_id=insp.institution_id)
    return insp


def cancel_archive_inspection(actor: User, insp: ArchiveInspection, reason: str) -> ArchiveInspection:
    """Withdraw a draft (e.g. started for the wrong branch); the record stays, marked cancelled."""
    _own_draft(actor, insp)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("Give the reason for cancelling the inspection."))
    insp.state = InspectionState.CANCELLED.value
    insp.cancelled_at = utcnow()
    insp.findings = (insp.findings + "\n" if insp.findings else "") + _("Cancelled: %(reason)s", reason=reason[:MAX_NOTE])
    db.session.flush()
    record_event(actor, "audit.archive_inspection_cancel", "archive_inspection", insp.id,
                 {"institution": insp.institution.code, "reason": reason[:MAX_NOTE]}, institution_id=insp.institution_id)
    return insp


def may_change(user: User, insp: ArchiveInspection) -> bool:
    return insp.is_draft and insp.recorded_by_id == user.id
