"""What the daily run needs to know about each loan's post-loan records, loaded for a whole
chunk of loans in a few queries (never one query per loan per table)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Iterable

from sqlalchemy import and_, func, select

from ..extensions import db
from .models import (INSPECTION_DONE, INSPECTION_TODO, WARNING_ACTIVE, BucketSnapshot, ClassificationReview,
                     CollectionTask, Inspection, InspectionKind, LoanCondition, LoanNotice, LoanOfficerPeriod,
                     ReviewStatus, RiskWarning)


@dataclass
class LoanState:
    has_first: bool = False
    first_done: bool = False
    last_done: date | None = None
    todo: list[Inspection] = field(default_factory=list)
    conditions: dict[str, LoanCondition] = field(default_factory=dict)     # open episodes by code
    rule_warnings: dict[int, list[RiskWarning]] = field(default_factory=dict)  # active, by condition id
    downgrade_warned_on_day: bool = False
    task: CollectionTask | None = None
    pending_review: ClassificationReview | None = None
    # (suggested, floor) the rules gave when a reviewer last decided this loan's class.
    last_decision: tuple[str, str] | None = None
    notice_keys: set[tuple[str, date]] = field(default_factory=set)
    prev_snapshot: BucketSnapshot | None = None
    snapshot: BucketSnapshot | None = None
    period: LoanOfficerPeriod | None = None

    def todo_of(self, kind: str) -> Inspection | None:
        return next((i for i in self.todo if i.kind == kind), None)


class Changes(Counter):
    """How many records each step created or changed; empty means nothing changed."""

    @property
    def changed(self) -> int:
        return sum(self.values())


def load_states(loan_ids: Iterable[int], as_of: date) -> dict[int, LoanState]:
    ids = list(loan_ids)
    states = {i: LoanState() for i in ids}
    if not ids:
        return states
    session = db.session

    for loan_id in session.execute(select(Inspection.loan_id).where(
            Inspection.loan_id.in_(ids), Inspection.kind == InspectionKind.FIRST.value).distinct()).scalars():
        states[loan_id].has_first = True
    for loan_id, kind, last in session.execute(
            select(Inspection.loan_id, Inspection.kind, func.max(Inspection.inspected_on))
            .where(Inspection.loan_id.in_(ids), Inspection.status.in_(INSPECTION_DONE))
            .group_by(Inspection.loan_id, Inspection.kind)):
        st = states[loan_id]
        if kind == InspectionKind.FIRST.value:
            st.first_done = True
        if last is not None and (st.last_done is None or last > st.last_done):
            st.last_done = last
    for insp in session.execute(select(Inspection).where(
            Inspection.loan_id.in_(ids), Inspection.status.in_(INSPECTION_TODO)).order_by(Inspection.id)).scalars():
        states[insp.loan_id].todo.append(insp)

    for cond in session.execute(select(LoanCondition).where(
            LoanCondition.loan_id.in_(ids), LoanCondition.cleared_on.is_(None))).scalars():
        states[cond.loan_id].conditions[cond.code] = cond
    for warning in session.execute(select(RiskWarning).where(
            RiskWarning.loan_id.in_(ids), RiskWarning.status.in_(WARNING_ACTIVE),
            RiskWarning.condition_id.is_not(None))).scalars():
        states[warning.loan_id].rule_warnings.setdefault(warning.condition_id, []).append(warning)
    for loan_id in session.execute(select(RiskWarning.loan_id).where(
            RiskWarning.loan_id.in_(ids), RiskWarning.signal == "rating_downgrade",
            RiskWarning.source == "rule", RiskWarning.raised_on == as_of)).scalars():
        states[loan_id].downgrade_warned_on_day = True

    for task in session.execute(select(CollectionTask).where(
            CollectionTask.loan_id.in_(ids), CollectionTask.status == "open")).scalars():
        states[task.loan_id].task = task
    for review in session.execute(select(ClassificationReview).where(
            ClassificationReview.loan_id.in_(ids), ClassificationReview.status == ReviewStatus.PENDING.value)).scalars():
        states[review.loan_id].pending_review = review
    for loan_id, suggested, floor in session.execute(
            select(ClassificationReview.loan_id, ClassificationReview.suggested, ClassificationReview.floor)
            .where(ClassificationReview.loan_id.in_(ids), ClassificationReview.status == ReviewStatus.CONFIRMED.value)
            .order_by(ClassificationReview.decided_at, ClassificationReview.id)):
        states[loan_id].last_decision = (suggested, floor)
    for loan_id, kind, ref in session.execute(select(LoanNotice.loan_id, LoanNotice.kind, LoanNotice.reference_on)
                                              .where(LoanNotice.loan_id.in_(ids))):
        states[loan_id].notice_keys.add((kind, ref))

    latest_before = (select(BucketSnapshot.loan_id, func.max(BucketSnapshot.as_of).label("day"))
                     .where(BucketSnapshot.loan_id.in_(ids), BucketSnapshot.as_of < as_of)
                     .group_by(BucketSnapshot.loan_id).subquery())
    for snap in session.execute(select(BucketSnapshot).join(latest_before, and_(
            BucketSnapshot.loan_id == latest_before.c.loan_id, BucketSnapshot.as_of == latest_before.c.day))).scalars():
        states[snap.loan_id].prev_snapshot = snap
    for snap in session.execute(select(BucketSnapshot).where(
            BucketSnapshot.loan_id.in_(ids), BucketSnapshot.as_of == as_of)).scalars():
        states[snap.loan_id].snapshot = snap

    for period in session.execute(select(LoanOfficerPeriod).where(
            LoanOfficerPeriod.loan_id.in_(ids), LoanOfficerPeriod.ended_on.is_(None))).scalars():
        states[period.loan_id].period = period
    return states
