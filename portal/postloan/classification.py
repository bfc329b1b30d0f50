"""Five-category risk classification (五级分类): the plugin suggests, a reviewer decides.

The plugin's ``classify_risk`` gives a floor (the best class the rules allow), a suggested class,
its reasons and, for restructured loans, the date until which no upgrade is allowed. A reviewer
confirms the suggestion or chooses a worse class with a reason; a class better than the floor, or
an upgrade while locked, is refused. Confirmed reviews are the loan's classification history.
"""
from __future__ import annotations

from datetime import date

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from ..accounts.models import User
from ..accounts.scope import scoped
from ..audit_trail import record_event
from ..errors import InvalidInput, WrongState
from ..extensions import db
from ..labels import label
from ..loans.models import RISK_ORDER, Loan
from ..loans.services import loan_facts
from ..rules.lookup import rules_for
from ..rules.manager import UnionRules
from ..timeutil import local_today, utcnow
from .common import require_open, risk_index
from .models import ClassificationReview, ReviewStatus
from .state import Changes, LoanState

MAX_REASON = 2000


def _fill(review: ClassificationReview, suggestion, loan: Loan, as_of: date) -> None:
    review.as_of = as_of
    review.floor = suggestion.floor
    review.suggested = suggestion.suggested
    review.reasons = list(suggestion.reasons)
    review.locked_until = suggestion.locked_until
    review.previous_class = loan.risk_class


def _same(review: ClassificationReview, suggestion, loan: Loan) -> bool:
    return (review.floor == suggestion.floor and review.suggested == suggestion.suggested
            and list(review.reasons or []) == list(suggestion.reasons)
            and review.locked_until == suggestion.locked_until and review.previous_class == loan.risk_class)


def refresh_suggestion(loan: Loan, rules: UnionRules, as_of: date, st: LoanState, changes: Changes) -> None:
    """Keep one pending review per loan that needs one: its class is better than the floor, or
    it differs from a suggestion no reviewer has decided on yet (a reviewer who kept a worse
    class with a reason is not asked again until the rules say something new)."""
    suggestion = rules.classify_risk(loan_facts(loan), as_of)
    review = st.pending_review
    below_floor = risk_index(loan.risk_class) < risk_index(suggestion.floor)
    decided = st.last_decision == (suggestion.suggested, suggestion.floor)
    differs = below_floor or (suggestion.suggested != loan.risk_class and not decided)
    if not differs:
        if review is not None and review.opened_by_id is None:
            review.status = ReviewStatus.SUPERSEDED.value
            st.pending_review = None
            changes["reviews_superseded"] += 1
        return
    if review is None:
        review = ClassificationReview(loan=loan, branch_id=loan.branch_id, status=ReviewStatus.PENDING.value)
        _fill(review, suggestion, loan, as_of)
        db.session.add(review)
        st.pending_review = review
        changes["reviews_opened"] += 1
    elif not _same(review, suggestion, loan):
        _fill(review, suggestion, loan, as_of)
        changes["reviews_updated"] += 1


def start_review(actor: User, loan: Loan) -> ClassificationReview:
    """Open (or refresh) a review now, e.g. after an inspection found a problem."""
    require_open(loan)
    today = local_today()
    suggestion = rules_for(loan).classify_risk(loan_facts(loan), today)
    review = db.session.execute(select(ClassificationReview).where(
        ClassificationReview.loan_id == loan.id,
        ClassificationReview.status == ReviewStatus.PENDING.value)).scalars().first()
    if review is None:
        review = ClassificationReview(loan=loan, branch_id=loan.branch_id, status=ReviewStatus.PENDING.value)
        db.session.add(review)
    review.opened_by_id = actor.id
    _fill(review, suggestion, loan, today)
    db.session.flush()
    record_event(actor, "classification.start_review", "classification_review", review.id,
                 {"loan": loan.contract_no, "suggested": suggestion.suggested, "floor": suggestion.floor},
                 institution_id=loan.branch_id)
    return review


def confirm_classification(actor: User, review: ClassificationReview, decided: str, reason: str) -> ClassificationReview:
    """Decide the class. Refused: better than the floor; an upgrade while restructuring locks it.
    A class worse than suggested needs a reason."""
    if review.status != ReviewStatus.PENDING.value:
        raise WrongState(_("This review has already been decided or replaced."))
    loan = review.loan
    require_open(loan)
    if decided not in RISK_ORDER:
        raise InvalidInput(_("Unknown risk class %(c)s.", c=decided))
    today = local_today()
    # Decide against today's rules, not what they said when the review was opened.
    suggestion = rules_for(loan).classify_risk(loan_facts(loan), today)
    _fill(review, suggestion, loan, today)
    reason = (reason or "").strip()[:MAX_REASON]
    if risk_index(decided) < risk_index(suggestion.floor):
        raise InvalidInput(_("%(decided)s is better than the floor the rules set (%(floor)s: %(why)s). "
                             "A loan can be classed worse than its floor, never better.",
                             decided=label(decided, "risk_class"), floor=label(suggestion.floor, "risk_class"),
                             why="; ".join(suggestion.reasons) or "—"))
    if (suggestion.locked_until and today < suggestion.locked_until
            and risk_index(decided) < risk_index(loan.risk_class)):
        raise InvalidInput(_("This restructured loan cannot be upgraded before %(d)s.", d=suggestion.locked_until))
    if risk_index(decided) > risk_index(suggestion.suggested) and not reason:
        raise InvalidInput(_("Classing the loan worse than suggested (%(s)s) needs a reason.",
                             s=label(suggestion.suggested, "risk_class")))
    before = loan.risk_class
    review.decided_class = decided
    review.decision_reason = reason or None
    review.reviewer_id = actor.id
    review.decided_at = utcnow()
    review.status = ReviewStatus.CONFIRMED.value
    loan.risk_class = decided
    db.session.flush()
    record_event(actor, "classification.confirm", "loan", loan.contract_no,
                 {"before": before, "after": decided, "suggested": suggestion.suggested, "floor": suggestion.floor,
                  "reason": reason}, institution_id=loan.branch_id)
    return review


def review_queue(user: User) -> list[ClassificationReview]:
    rows = db.session.execute(scoped(select(ClassificationReview), ClassificationReview, user)
                              .where(ClassificationReview.status == ReviewStatus.PENDING.value)
                              .options(joinedload(ClassificationReview.loan).joinedload(Loan.borrower))
                              .order_by(ClassificationReview.as_of, ClassificationReview.id)).scalars().unique()
    # Loans below their floor first: their recorded class is wrong under the rules.
    return sorted(rows, key=lambda r: (risk_index(r.loan.risk_class) >= risk_index(r.floor), r.as_of, r.id))


def classification_history(loan: Loan) -> list[ClassificationReview]:
    return list(db.session.execute(select(ClassificationReview).where(
        ClassificationReview.loan_id == loan.id, ClassificationReview.status == ReviewStatus.CONFIRMED.value)
        .order_by(ClassificationReview.decided_at.desc(), ClassificationReview.id.desc())).scalars())
