"""A loan's post-loan page, read in one place: its inspections, warnings, classification,
collection, notices, responsible officers, handovers, write-offs, evaluation and files.

Reads only; the loan is already one the user may see (``get_scoped_or_404``). Changes are made
by the sub-area modules (``inspections``, ``warnings``, …)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ..accounts.models import User
from ..extensions import db
from ..loans.models import Loan
from ..rules.lookup import rules_for
from ..rules.manager import UnionRules
from . import classification, closing, collection, handover, warnings
from .common import OPEN_LOAN_STATUSES
from .models import (ClassificationReview, CollectionTask, ContactLog, Handover, HandoverItem, Inspection,
                     LoanEvaluation, LoanNotice, LoanOfficerPeriod, PostloanFile, ReviewStatus, RiskWarning, WriteOff)


@dataclass
class LoanOverview:
    """What the loan's post-loan page shows; the names are the page template's."""

    rules: UnionRules
    bucket: str
    is_open: bool
    inspections: list[Inspection]
    warnings: list[RiskWarning]
    pending_review: ClassificationReview | None
    history: list[ClassificationReview]
    contacts: list[ContactLog]
    notices: list[LoanNotice]
    task: CollectionTask | None
    periods: list[LoanOfficerPeriod]
    handovers: list[Handover]
    write_offs: list[WriteOff]
    evaluation: LoanEvaluation | None
    files: list[PostloanFile]


def loan_overview(loan: Loan, user: User) -> LoanOverview:
    """Everything the loan's post-loan page shows, as ``user`` may see it (the warnings are
    those of the user's scope), newest first."""
    rules = rules_for(loan)
    return LoanOverview(
        rules=rules,
        bucket=rules.bucket_of(loan.days_past_due),
        is_open=loan.status in OPEN_LOAN_STATUSES,
        inspections=list(db.session.execute(
            select(Inspection).where(Inspection.loan_id == loan.id)
            .order_by(Inspection.due_on.desc(), Inspection.id.desc())).scalars()),
        warnings=warnings.warnings_in_scope(user, status=None, loan_id=loan.id),
        pending_review=db.session.execute(select(ClassificationReview).where(
            ClassificationReview.loan_id == loan.id,
            ClassificationReview.status == ReviewStatus.PENDING.value)).scalars().first(),
        history=classification.classification_history(loan),
        contacts=collection.contact_log(loan),
        notices=list(db.session.execute(select(LoanNotice).where(LoanNotice.loan_id == loan.id)
                                        .order_by(LoanNotice.due_on.desc())).scalars()),
        task=db.session.execute(select(CollectionTask).where(CollectionTask.loan_id == loan.id,
                                                             CollectionTask.status == "open")).scalars().first(),
        periods=handover.officer_history(loan),
        handovers=list(db.session.execute(select(Handover).where(Handover.items.any(HandoverItem.loan_id == loan.id))
                                          .order_by(Handover.proposed_at.desc())).scalars()),
        write_offs=list(db.session.execute(select(WriteOff).where(WriteOff.loan_id == loan.id)
                                           .order_by(WriteOff.requested_at.desc())).scalars()),
        evaluation=closing.evaluation_of(loan),
        files=list(db.session.execute(select(PostloanFile).where(PostloanFile.loan_id == loan.id)
                                      .order_by(PostloanFile.created_at.desc())).scalars()),
    )
