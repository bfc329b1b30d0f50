"""The daily run and what each user has due.

``run_daily(as_of)`` walks every open loan in chunks and, with the rules of the loan's union:
keeps the officer history, schedules the first and routine inspections, opens and closes
trigger episodes (raising special inspections and warnings, lifting them when cleared), opens
and closes collection tasks, checks rating downgrades, keeps the classification suggestion,
creates due notices and writes the day's bucket snapshot. Then it closes what is still open on
loans that were closed. Every step compares before it writes, so a second run on the same date
changes nothing (and writes no audit event).

``refresh_loans`` is the same work without the daily-only steps, for loans just created or
updated (imports, edits): a loan that goes overdue gets its special inspection at once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from ..accounts.models import User
from ..accounts.scope import can
from ..audit_trail import record_event
from ..extensions import db
from ..loans.models import CLOSED_LOAN_STATUSES, OPEN_LOAN_STATUSES, Loan
from ..loans.services import loan_facts
from ..rules.lookup import rules_for
from .classification import refresh_suggestion, review_queue
from .closing import close_open_items
from .collection import collection_list, ensure_notices, pending_notices, sync_collection_task, write_snapshot
from .common import week_end
from .handover import handovers_to_confirm, sync_officer_period
from .inspections import ensure_schedule, escalation_queue, inspection_lists, raise_special, sign_off_queue
from .models import (INSPECTION_TODO, ClassificationReview, CollectionTask, Inspection, LoanCondition, LoanNotice,
                     ReviewStatus, RiskWarning, WARNING_ACTIVE)
from .state import Changes, LoanState, load_states
from .warnings import check_rating_downgrade, lift_for_cleared_condition, raise_rule_warning

CHUNK = 500


def sync_conditions(loan: Loan, triggers: list[str], as_of: date, st: LoanState, changes: Changes) -> None:
    """Open an episode per new trigger (special inspection, warning), close cleared ones."""
    triggers = list(dict.fromkeys(t[:32] for t in triggers))  # as stored; a long code must still match
    new = []
    for code in triggers:
        if code not in st.conditions:
            condition = LoanCondition(loan_id=loan.id, branch_id=loan.branch_id, code=code, since=as_of)
            db.session.add(condition)
            db.session.flush()
            st.conditions[code] = condition
            new.append(condition)
            changes["conditions_opened"] += 1
    if new:
        raise_special(loan, [c.code for c in new], as_of, st, changes)
        for condition in new:
            raise_rule_warning(loan, condition, as_of, st, changes)
    for code in [c for c in st.conditions if c not in triggers]:
        condition = st.conditions.pop(code)
        condition.cleared_on = as_of
        changes["conditions_cleared"] += 1
        lift_for_cleared_condition(condition, as_of, st, changes)


def refresh_loan(loan: Loan, rules, as_of: date, st: LoanState, changes: Changes, *, daily: bool) -> None:
    sync_officer_period(loan, as_of, st, changes)
    ensure_schedule(loan, rules, as_of, st, changes)
    sync_conditions(loan, rules.special_inspection_triggers(loan_facts(loan)), as_of, st, changes)
    sync_collection_task(loan, as_of, st, changes)
    if daily:
        check_rating_downgrade(loan, as_of, st, changes)
        refresh_suggestion(loan, rules, as_of, st, changes)
        ensure_notices(loan, rules, as_of, st, changes)
        write_snapshot(loan, rules, as_of, st, changes)


def refresh_loans(loans: Iterable[Loan], as_of: date, *, daily: bool = False) -> Changes:
    """Bring the post-loan records of these loans up to date with their facts and rules."""
    changes = Changes()
    loans = list(loans)
    open_loans = [loan for loan in loans if loan.status in OPEN_LOAN_STATUSES]
    for start in range(0, len(open_loans), CHUNK):
        chunk = open_loans[start:start + CHUNK]
        states = load_states([loan.id for loan in chunk], as_of)
        for loan in chunk:
            refresh_loan(loan, rules_for(loan), as_of, states[loan.id], changes, daily=daily)
        db.session.flush()
    close_open_items([loan for loan in loans if loan.status in CLOSED_LOAN_STATUSES], as_of, changes)
    return changes


def _closed_loans_with_open_items() -> list[Loan]:
    ids: set[int] = set()
    for stmt in (
        select(Inspection.loan_id).where(Inspection.status.in_(INSPECTION_TODO)),
        select(LoanCondition.loan_id).where(LoanCondition.cleared_on.is_(None)),
        select(RiskWarning.loan_id).where(RiskWarning.status.in_(WARNING_ACTIVE)),
        select(CollectionTask.loan_id).where(CollectionTask.status == "open"),
        select(LoanNotice.loan_id).where(LoanNotice.status == "pending"),
        select(ClassificationReview.loan_id).where(ClassificationReview.status == ReviewStatus.PENDING.value),
    ):
        ids.update(db.session.execute(select(Loan.id).where(
            Loan.id.in_(stmt), Loan.status.in_(CLOSED_LOAN_STATUSES))).scalars())
    if not ids:
        return []
    return list(db.session.execute(select(Loan).where(Loan.id.in_(ids))).scalars())


def run_daily(as_of: date) -> Changes:
    """The nightly run for every union; the caller commits. Idempotent for a date."""
    changes = Changes()
    last_id = 0
    while True:
        chunk = db.session.execute(
            select(Loan).where(Loan.status.in_(OPEN_LOAN_STATUSES), Loan.id > last_id)
            .options(joinedload(Loan.borrower), joinedload(Loan.branch))
            .order_by(Loan.id).limit(CHUNK)).scalars().unique().all()
        if not chunk:
            break
        changes.update(refresh_loans(chunk, as_of, daily=True))
        last_id = chunk[-1].id
    close_open_items(_closed_loans_with_open_items(), as_of, changes)
    changes = Changes({k: v for k, v in changes.items() if v})
    if changes:
        record_event(None, "postloan.run_daily", "daily_run", as_of.isoformat(), dict(changes))
    return changes


# --- what a user has due ------------------------------------------------------------------

@dataclass
class DueSummary:
    user: User
    as_of: date
    week_end: date
    overdue: list[Inspection] = field(default_factory=list)
    due_this_week: list[Inspection] = field(default_factory=list)
    sign_off: list[Inspection] = field(default_factory=list)
    escalations: list[Inspection] = field(default_factory=list)
    collection: list = field(default_factory=list)
    notices: list[LoanNotice] = field(default_factory=list)
    reviews: list[ClassificationReview] = field(default_factory=list)
    handovers: list = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(len(x) for x in (self.overdue, self.due_this_week, self.sign_off, self.escalations,
                                    self.collection, self.notices, self.reviews, self.handovers))


def due_for_user(user: User, as_of: date) -> DueSummary:
    """What this user has to do: their inspections overdue and due this week, reports to sign off
    or review, today's collection list, notices to issue, classifications to confirm, handovers
    to confirm."""
    lists = inspection_lists(user, as_of, mine=True)
    summary = DueSummary(user, as_of, week_end(as_of), overdue=lists.overdue, due_this_week=lists.this_week)
    summary.sign_off = sign_off_queue(user)
    summary.escalations = escalation_queue(user)
    summary.collection = collection_list(user, as_of, officer_id=user.id)
    summary.notices = pending_notices(user, as_of, officer_id=user.id)
    if can(user, "postloan.classify"):
        summary.reviews = review_queue(user)
    summary.handovers = handovers_to_confirm(user)
    return summary


def due_as_dict(summary: DueSummary) -> dict:
    def insp(i: Inspection) -> dict:
        return {"id": i.id, "kind": i.kind, "status": i.status, "due_on": i.due_on.isoformat(),
                "loan": i.loan.contract_no, "borrower": i.loan.borrower.name, "reasons": list(i.reasons or [])}
    return {
        "user": summary.user.username, "as_of": summary.as_of.isoformat(), "week_ends": summary.week_end.isoformat(),
        "inspections": {"overdue": [insp(i) for i in summary.overdue],
                        "due_this_week": [insp(i) for i in summary.due_this_week]},
        "sign_off": [insp(i) for i in summary.sign_off],
        "escalations": [insp(i) for i in summary.escalations],
        "collection": [{"loan": r.loan.contract_no, "borrower": r.loan.borrower.name, "bucket": r.bucket,
                        "days_past_due": r.loan.days_past_due, "balance_fen": r.loan.balance_fen,
                        "next_action_on": r.task.next_action_on.isoformat()} for r in summary.collection],
        "notices": [{"id": n.id, "kind": n.kind, "loan": n.loan.contract_no, "due_on": n.due_on.isoformat()}
                    for n in summary.notices],
        "classification": [{"id": r.id, "loan": r.loan.contract_no, "current": r.loan.risk_class,
                            "suggested": r.suggested, "floor": r.floor} for r in summary.reviews],
        "handovers": [{"id": h.id, "from": h.from_officer.username, "to": h.to_officer.username}
                      for h in summary.handovers],
    }
