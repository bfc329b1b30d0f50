"""Inspections (贷后检查): the schedule the union's rules give, recording with the plugin's
checklist, the director's sign-off, escalation to the county and the report PDF.

The schedule: a first inspection due on the plugin's ``first_inspection_due``; once any
inspection has been carried out, one routine inspection due ``routine_inspection_interval``
days after the last one carried out (re-dated whenever that changes, e.g. a new rating); a
special inspection due the day a plugin trigger (overdue, interest in arrears, …) is first seen.
Pure scheduling lives in ``ensure_schedule``/``raise_special`` and is driven by the daily run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from flask_babel import gettext as _
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import joinedload

from ..accounts.models import Institution, Level, User
from ..accounts.scope import scoped
from ..audit_trail import record_event
from ..errors import InvalidInput, PermissionDenied, WrongState
from ..extensions import db
from ..labels import label
from ..loans.models import Loan
from ..loans.services import loan_facts
from ..reports.pdf import render_pdf
from ..rules.lookup import rules_for
from ..rules.manager import UnionRules
from ..timeutil import local_today, utcnow
from .common import named_by, require_named, require_open, week_end
from .files import file_into_credit_file, keep_and_file, keep_file, read_upload, safe_filename
from .models import (INSPECTION_TODO, EscalationStatus, Inspection, InspectionKind, InspectionMethod,
                     InspectionStatus, PostloanFile)
from .state import Changes, LoanState, load_states
from .warnings import raise_warnings_from_findings

FINDING_RESULTS = ("ok", "problem", "not_applicable")
MAX_NOTE = 2000
MAX_CONCLUSION = 8000


# --- the schedule (driven by the daily run and by loan updates) ---------------------------

def _new_inspection(loan: Loan, kind: str, due_on: date, raised_on: date, reasons: list[str] | None = None) -> Inspection:
    insp = Inspection(loan=loan, branch_id=loan.branch_id, officer_id=loan.officer_id, kind=kind,
                      status=InspectionStatus.OPEN.value, due_on=due_on, raised_on=raised_on,
                      reasons=list(reasons or []), findings=[], conclusion="")
    db.session.add(insp)
    return insp


def ensure_schedule(loan: Loan, rules: UnionRules, as_of: date, st: LoanState, changes: Changes) -> None:
    """Make sure the loan has its first inspection and, once one has been done, its next routine one."""
    facts = loan_facts(loan)
    if not st.has_first:
        st.todo.append(_new_inspection(loan, InspectionKind.FIRST.value, rules.first_inspection_due(facts), as_of))
        st.has_first = True
        changes["inspections_scheduled"] += 1
    if st.last_done is None:
        return
    due = st.last_done + timedelta(days=rules.routine_inspection_interval(facts))
    routine = st.todo_of(InspectionKind.ROUTINE.value)
    if routine is None:
        st.todo.append(_new_inspection(loan, InspectionKind.ROUTINE.value, due, as_of))
        changes["inspections_scheduled"] += 1
    elif routine.due_on != due:
        routine.due_on = due
        changes["inspections_redated"] += 1


def raise_special(loan: Loan, reasons: list[str], as_of: date, st: LoanState, changes: Changes) -> Inspection:
    """A special inspection due at once; new reasons join a special inspection not yet done."""
    special = st.todo_of(InspectionKind.SPECIAL.value)
    if special is None:
        special = _new_inspection(loan, InspectionKind.SPECIAL.value, as_of, as_of, reasons)
        st.todo.append(special)
        changes["special_inspections"] += 1
    else:
        merged = list(special.reasons or []) + [r for r in reasons if r not in (special.reasons or [])]
        if merged != list(special.reasons or []):
            special.reasons = merged
            changes["special_inspections_extended"] += 1
    return special


def reschedule(loan: Loan, as_of: date | None = None) -> None:
    """Re-derive one loan's routine due date after an inspection was done or returned."""
    as_of = as_of or local_today()
    db.session.flush()
    st = load_states([loan.id], as_of)[loan.id]
    ensure_schedule(loan, rules_for(loan), as_of, st, Changes())
    db.session.flush()


# --- recording ----------------------------------------------------------------------------

def create_inspection(actor: User, loan: Loan, kind: str) -> Inspection:
    """Start an inspection now (a visit outside the schedule); reuses one of that kind not yet done."""
    require_open(loan)
    if kind not in {k.value for k in InspectionKind}:
        raise InvalidInput(_("Unknown inspection kind %(kind)s.", kind=kind))
    existing = db.session.execute(select(Inspection).where(
        Inspection.loan_id == loan.id, Inspection.kind == kind, Inspection.status.in_(INSPECTION_TODO))
        .order_by(Inspection.id)).scalars().first()
    if existing is not None:
        return existing
    if kind == InspectionKind.FIRST.value and db.session.execute(select(Inspection.id).where(
            Inspection.loan_id == loan.id, Inspection.kind == kind)).first():
        raise WrongState(_("This loan already has its first inspection."))
    today = local_today()
    insp = _new_inspection(loan, kind, today, today)
    db.session.flush()
    record_event(actor, "inspection.create", "inspection", insp.id,
                 {"loan": loan.contract_no, "kind": kind}, institution_id=loan.branch_id)
    return insp


def blank_findings(rules: UnionRules) -> list[dict]:
    return [{"code": c.code, "label_zh": c.label_zh, "label_en": c.label_en, "result": "", "note": ""}
            for c in rules.inspection_checklist()]


def findings_for_form(insp: Inspection, rules: UnionRules) -> list[dict]:
    """The plugin's checklist, filled in with what was recorded (recorded labels win)."""
    saved = {f["code"]: f for f in (insp.findings or [])}
    rows = []
    for row in blank_findings(rules):
        rows.append({**row, **saved.pop(row["code"], {})})
    rows.extend(saved.values())  # items the plugin no longer lists stay visible
    return rows


def save_inspection(actor: User, insp: Inspection, *, method: str | None, inspected_on: date | None,
                    results: dict[str, tuple[str, str]], conclusion: str, submit: bool) -> Inspection:
    """Record what was found; with ``submit`` the inspection counts as done and waits for sign-off."""
    if not insp.is_todo:
        raise WrongState(_("This inspection is %(status)s and can no longer be changed.",
                           status=_status_label(insp.status)))
    loan = insp.loan
    require_open(loan)
    rules = rules_for(loan)
    today = local_today()
    errors: list[str] = []
    if method and method not in {m.value for m in InspectionMethod}:
        errors.append(_("Unknown inspection method %(m)s.", m=method))
    if inspected_on is not None:
        if inspected_on > today:
            errors.append(_("The inspection date cannot be in the future."))
        if inspected_on < loan.disbursed_on:
            errors.append(_("The inspection date is before the loan was disbursed (%(d)s).", d=loan.disbursed_on))
    conclusion = (conclusion or "").strip()
    if len(conclusion) > MAX_CONCLUSION:
        errors.append(_("The conclusion is longer than %(n)d characters.", n=MAX_CONCLUSION))
    findings = []
    for row in findings_for_form(insp, rules):
        result, note = results.get(row["code"], (row.get("result", ""), row.get("note", "")))
        result, note = (result or "").strip(), (note or "").strip()
        if result and result not in FINDING_RESULTS:
            errors.append(_("%(item)s: unknown result %(r)s.", item=row["label_zh"], r=result))
        if len(note) > MAX_NOTE:
            errors.append(_("%(item)s: the note is longer than %(n)d characters.", item=row["label_zh"], n=MAX_NOTE))
        if submit and not result:
            errors.append(_("%(item)s: say what was found.", item=row["label_zh"]))
        if submit and result == "problem" and not note:
            errors.append(_("%(item)s: describe the problem found.", item=row["label_zh"]))
        findings.append({**row, "result": result, "note": note})
    if submit:
        if not method:
            errors.append(_("Choose how the inspection was done."))
        if inspected_on is None:
            errors.append(_("Give the date of the inspection."))
        if not conclusion:
            errors.append(_("Write the conclusion."))
    if errors:
        raise InvalidInput(errors[0], details=errors)

    insp.method = method or None
    insp.inspected_on = inspected_on
    insp.findings = findings
    insp.conclusion = conclusion
    insp.recorded_by_id = actor.id
    if submit:
        insp.status = InspectionStatus.SUBMITTED.value
        insp.submitted_at = utcnow()
        insp.returned_reason = None
    else:
        insp.status = InspectionStatus.DRAFT.value
    db.session.flush()
    problems = [f["code"] for f in findings if f["result"] == "problem"]
    record_event(actor, "inspection.submit" if submit else "inspection.save", "inspection", insp.id,
                 {"loan": loan.contract_no, "kind": insp.kind, "method": method,
                  "inspected_on": inspected_on, "problems": problems}, institution_id=loan.branch_id)
    if submit:
        raise_warnings_from_findings(actor, insp)
        reschedule(loan, today)
    return insp


def _status_label(code: str) -> str:
    return label(code, "inspection_status")


def sign_off_roles(insp: Inspection, rules: UnionRules | None = None):
    rules = rules or rules_for(insp.loan)
    return rules.responsibility_roles(loan_facts(insp.loan)).inspection_sign_off


def can_sign_off(user: User, insp: Inspection, rules: UnionRules | None = None) -> bool:
    return (insp.status == InspectionStatus.SUBMITTED.value and insp.recorded_by_id != user.id
            and named_by(sign_off_roles(insp, rules), user))


def _check_signer(actor: User, insp: Inspection, rules: UnionRules) -> None:
    require_named(sign_off_roles(insp, rules), actor, _("signing off inspection reports"))
    if insp.recorded_by_id == actor.id:
        raise PermissionDenied(_("You recorded this inspection; someone else signs it off."))


def return_inspection(actor: User, insp: Inspection, reason: str) -> Inspection:
    """Send a submitted inspection back to the officer for correction."""
    if insp.status != InspectionStatus.SUBMITTED.value:
        raise WrongState(_("Only an inspection awaiting sign-off can be returned."))
    rules = rules_for(insp.loan)
    _check_signer(actor, insp, rules)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("Say what must be corrected."))
    insp.status = InspectionStatus.DRAFT.value
    insp.returned_reason = reason[:MAX_NOTE]
    insp.submitted_at = None
    db.session.flush()
    record_event(actor, "inspection.return", "inspection", insp.id, {"loan": insp.loan.contract_no, "reason": reason},
                 institution_id=insp.branch_id)
    reschedule(insp.loan)
    return insp


def _escalation_target(branch: Institution, level: str) -> Institution:
    try:
        target = branch.ancestor_at(Level(level))
    except ValueError:
        target = None
    return target or branch.parent or branch


def report_doc_type(rules: UnionRules, kind: str) -> str:
    """First inspections file as the plugin's first-visit record when it has one (the post-loan
    stage's completeness checklist asks for it); every other report as an inspection report."""
    if kind == InspectionKind.FIRST.value and rules.document_type("first_visit") is not None:
        return "first_visit"
    return "inspection_report"


def sign_off_inspection(actor: User, insp: Inspection, opinion: str) -> Inspection:
    """The director's sign-off: the report PDF is made and filed into the credit file, together
    with the attachments; a loan the rules escalate goes to the receiving department's queue."""
    if insp.status != InspectionStatus.SUBMITTED.value:
        raise WrongState(_("Only an inspection awaiting sign-off can be signed off."))
    loan = insp.loan
    rules = rules_for(loan)
    _check_signer(actor, insp, rules)
    insp.status = InspectionStatus.SIGNED_OFF.value
    insp.signed_off_by_id = actor.id
    insp.signed_off_at = utcnow()
    insp.sign_off_opinion = (opinion or "").strip()[:MAX_NOTE] or None
    escalation = rules.inspection_escalation(loan_facts(loan))
    if escalation.required:
        target = _escalation_target(loan.branch, escalation.level or Level.COUNTY.value)
        insp.escalation_status = EscalationStatus.PENDING.value
        insp.escalation_level = target.level
        insp.escalation_department = escalation.department
        insp.escalation_institution_id = target.id
        insp.escalation_reason = (escalation.reason or "")[:255]
    db.session.flush()
    doc_type = report_doc_type(rules, insp.kind)
    data = render_inspection_report(insp, rules)
    report = keep_and_file(actor, loan, owner_kind="inspection", owner_id=insp.id, doc_type=doc_type,
                           filename=safe_filename(f"{doc_type}-{loan.contract_no}-{insp.inspected_on}.pdf"),
                           data=data)
    insp.report_file_id = report.id
    for attachment in attachments_of(insp):
        if attachment.archive_document_id is None:
            file_into_credit_file(actor, loan, attachment)
    db.session.flush()
    record_event(actor, "inspection.sign_off", "inspection", insp.id,
                 {"loan": loan.contract_no, "escalated_to": insp.escalation_institution_id,
                  "report_file": report.id, "archive_document": report.archive_document_id},
                 institution_id=loan.branch_id)
    return insp


def can_review_escalation(user: User, insp: Inspection, rules: UnionRules | None = None) -> bool:
    if insp.escalation_status != EscalationStatus.PENDING.value or insp.escalation_institution is None:
        return False
    # The receiving institution's people who hold a role the rules name for sign-off; the
    # department (信贷科, 风险管理部 …) is the report's addressee, shown, not a filter: a county
    # whose staff carry other department names must still see its queue.
    if user.institution_id != insp.escalation_institution.id:
        return False
    return named_by(sign_off_roles(insp, rules), user, ignore_level=True)


def review_escalation(actor: User, insp: Inspection, opinion: str) -> Inspection:
    """The receiving department (the county's 信贷科 in the baseline) records its opinion."""
    if insp.escalation_status != EscalationStatus.PENDING.value:
        raise WrongState(_("This report is not waiting for your department's review."))
    if not can_review_escalation(actor, insp):
        raise PermissionDenied(_("This report was escalated to %(inst)s %(dept)s; only its reviewers can record an opinion.",
                                 inst=insp.escalation_institution.name if insp.escalation_institution else "",
                                 dept=insp.escalation_department or ""))
    opinion = (opinion or "").strip()
    if not opinion:
        raise InvalidInput(_("Write the department's opinion."))
    insp.escalation_status = EscalationStatus.REVIEWED.value
    insp.escalation_reviewed_by_id = actor.id
    insp.escalation_reviewed_at = utcnow()
    insp.escalation_opinion = opinion[:MAX_NOTE]
    db.session.flush()
    record_event(actor, "inspection.review_escalation", "inspection", insp.id,
                 {"loan": insp.loan.contract_no}, institution_id=insp.branch_id)
    return insp


def attachments_of(insp: Inspection) -> list[PostloanFile]:
    return list(db.session.execute(select(PostloanFile).where(
        PostloanFile.owner_kind == "inspection", PostloanFile.owner_id == insp.id,
        PostloanFile.generated.is_(False)).order_by(PostloanFile.id)).scalars())


def add_attachment(actor: User, insp: Inspection, storage) -> PostloanFile:
    """A photo or scan of the inspection; it joins the credit file when the report is signed off."""
    if insp.status == InspectionStatus.CANCELLED.value:
        raise WrongState(_("This inspection was cancelled."))
    data, media_type, name = read_upload(storage)
    rules = rules_for(insp.loan)
    record = keep_file(actor, branch_id=insp.branch_id, loan=insp.loan, owner_kind="inspection", owner_id=insp.id,
                       doc_type=report_doc_type(rules, insp.kind), filename=name, data=data,
                       media_type=media_type, generated=False)
    if insp.status == InspectionStatus.SIGNED_OFF.value:
        file_into_credit_file(actor, insp.loan, record)
    record_event(actor, "inspection.attach", "inspection", insp.id,
                 {"file": record.id, "name": name, "sha256": record.sha256}, institution_id=insp.branch_id)
    return record


def render_inspection_report(insp: Inspection, rules: UnionRules | None = None) -> bytes:
    rules = rules or rules_for(insp.loan)
    doc = rules.document_type(report_doc_type(rules, insp.kind))
    title = doc.name_zh if doc else _("Post-loan inspection report")
    return render_pdf("reports/postloan_inspection.html", title=title, institution_name=insp.loan.branch.name,
                      inspection=insp, loan=insp.loan, findings=insp.findings or [],
                      attachments=attachments_of(insp), bucket=rules.bucket_of(insp.loan.days_past_due))


# --- lists --------------------------------------------------------------------------------

@dataclass
class InspectionLists:
    as_of: date
    week_end: date
    overdue: list[Inspection] = field(default_factory=list)
    this_week: list[Inspection] = field(default_factory=list)
    later: list[Inspection] = field(default_factory=list)
    awaiting: list[Inspection] = field(default_factory=list)
    done: list[Inspection] = field(default_factory=list)


def _with_loan(stmt):
    return stmt.options(joinedload(Inspection.loan).joinedload(Loan.borrower), joinedload(Inspection.officer))


def inspection_lists(user: User, as_of: date, *, officer_id: int | None = None, mine: bool = True,
                     done_days: int = 31) -> InspectionLists:
    """An officer's own inspections (``mine``) or every inspection in the user's scope, by urgency."""
    lists = InspectionLists(as_of, week_end(as_of))
    base = scoped(select(Inspection), Inspection, user)
    if mine:
        base = base.where(Inspection.officer_id == user.id)
    elif officer_id:
        base = base.where(Inspection.officer_id == officer_id)
    todo = db.session.execute(_with_loan(base.where(Inspection.status.in_(INSPECTION_TODO)))
                              .order_by(Inspection.due_on, Inspection.id)).scalars().unique()
    for insp in todo:
        if insp.due_on < as_of:
            lists.overdue.append(insp)
        elif insp.due_on <= lists.week_end:
            lists.this_week.append(insp)
        else:
            lists.later.append(insp)
    lists.awaiting = list(db.session.execute(_with_loan(base.where(
        Inspection.status == InspectionStatus.SUBMITTED.value)).order_by(Inspection.submitted_at)).scalars().unique())
    lists.done = list(db.session.execute(_with_loan(base.where(
        Inspection.status == InspectionStatus.SIGNED_OFF.value,
        Inspection.inspected_on >= as_of - timedelta(days=done_days)))
        .order_by(Inspection.inspected_on.desc())).scalars().unique())
    return lists


def sign_off_queue(user: User) -> list[Inspection]:
    rows = db.session.execute(_with_loan(scoped(select(Inspection), Inspection, user).where(
        Inspection.status == InspectionStatus.SUBMITTED.value)).order_by(Inspection.submitted_at)).scalars().unique()
    return [i for i in rows if can_sign_off(user, i, rules_for(i.loan))]


def escalation_queue(user: User) -> list[Inspection]:
    rows = db.session.execute(_with_loan(scoped(select(Inspection), Inspection, user).where(
        Inspection.escalation_status == EscalationStatus.PENDING.value,
        Inspection.escalation_institution_id == user.institution_id)).order_by(Inspection.signed_off_at)).scalars().unique()
    return [i for i in rows if can_review_escalation(user, i, rules_for(i.loan))]


def queue_lengths(user: User) -> tuple[int, int]:
    """How many reports wait for the user's sign-off and for their department's review (the
    lengths of ``sign_off_queue`` and ``escalation_queue``). Who may sign off depends on each
    loan's facts, so a queue is read only when something in the user's scope waits at all: one
    count, which is the whole cost for most users on most days (the home page's card)."""
    submitted = Inspection.status == InspectionStatus.SUBMITTED.value
    pending = and_(Inspection.escalation_status == EscalationStatus.PENDING.value,
                   Inspection.escalation_institution_id == user.institution_id)
    waiting = db.session.execute(scoped(
        select(func.count(case((submitted, 1))), func.count(case((pending, 1)))).where(or_(submitted, pending)),
        Inspection, user)).one()
    return (len(sign_off_queue(user)) if waiting[0] else 0,
            len(escalation_queue(user)) if waiting[1] else 0)


def due_counts(user: User, as_of: date) -> dict[str, int]:
    """For the home page card: the user's own inspections overdue and due this week, and the
    reports waiting for their sign-off or review."""
    overdue = Inspection.due_on < as_of
    this_week = Inspection.due_on.between(as_of, week_end(as_of))
    mine = db.session.execute(select(func.count(case((overdue, 1))), func.count(case((this_week, 1)))).where(
        Inspection.officer_id == user.id, Inspection.status.in_(INSPECTION_TODO), or_(overdue, this_week))).one()
    sign_off, escalations = queue_lengths(user)
    return {"overdue": mine[0], "this_week": mine[1], "sign_off": sign_off, "escalations": escalations}


def calendar_month(user: User, year: int, month: int, *, mine: bool) -> dict[date, list[Inspection]]:
    """Inspections of a month by day: still to do on their due date, done on the day done."""
    first = date(year, month, 1)
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    base = scoped(select(Inspection), Inspection, user).where(Inspection.status != InspectionStatus.CANCELLED.value)
    if mine:
        base = base.where(Inspection.officer_id == user.id)
    rows = db.session.execute(_with_loan(base.where(or_(
        Inspection.status.in_(INSPECTION_TODO) & Inspection.due_on.between(first, last),
        Inspection.status.not_in(INSPECTION_TODO) & Inspection.inspected_on.between(first, last))))
        .order_by(Inspection.id)).scalars().unique()
    days: dict[date, list[Inspection]] = {}
    for insp in rows:
        day = insp.due_on if insp.is_todo else insp.inspected_on
        days.setdefault(day, []).append(insp)
    return days
