"""Reading loans for a user: the scoped, filtered list, and a loan's facts for the rules."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import joinedload

from ..accounts.models import Institution, User
from ..accounts.scope import scoped
from ..extensions import db
from ..rules.manager import UnionRules
from ..rules.types import LoanFacts
from .models import Borrower, Loan


def loan_facts(loan: Loan) -> LoanFacts:
    return LoanFacts(
        contract_no=loan.contract_no, product=loan.product, guarantee_type=loan.guarantee_type,
        amount_fen=loan.amount_fen, balance_fen=loan.balance_fen, payment_method=loan.payment_method,
        disbursed_on=loan.disbursed_on, maturity_on=loan.maturity_on, status=loan.status,
        days_past_due=loan.days_past_due, interest_arrears_fen=loan.interest_arrears_fen,
        credit_rating=loan.borrower.credit_rating, borrower_kind=loan.borrower.kind,
        restructured_on=loan.restructured_on, settled_on=loan.settled_on, risk_class=loan.risk_class,
        branch_level=loan.branch.level,
    )


def bucket_condition(rules: UnionRules, bucket: str):
    """SQL condition on days past due for one overdue bucket code (M0, M1, …)."""
    edges = rules.overdue_bucket_edges()
    if bucket == "M0":
        return Loan.days_past_due <= 0
    try:
        index = int(bucket[1:])
    except ValueError:
        return None
    if bucket[:1] != "M" or index < 1 or index > len(edges) + 1:
        return None
    low = 1 if index == 1 else edges[index - 2] + 1
    if index == len(edges) + 1:
        return Loan.days_past_due >= low
    return and_(Loan.days_past_due >= low, Loan.days_past_due <= edges[index - 1])


@dataclass
class LoanFilters:
    branch_id: int | None = None
    officer_id: int | None = None
    status: str | None = None
    risk_class: str | None = None
    bucket: str | None = None
    q: str | None = None


def loan_list_query(user: User, filters: LoanFilters, rules: UnionRules) -> Select:
    stmt = scoped(select(Loan), Loan, user).join(Borrower, Loan.borrower_id == Borrower.id)
    if filters.branch_id:
        branch = db.session.get(Institution, filters.branch_id)
        if branch is not None:
            stmt = stmt.where(Loan.branch_id.in_(
                select(Institution.id).where(Institution.path.startswith(branch.path, autoescape=True))))
    if filters.officer_id:
        stmt = stmt.where(Loan.officer_id == filters.officer_id)
    if filters.status:
        stmt = stmt.where(Loan.status == filters.status)
    if filters.risk_class:
        stmt = stmt.where(Loan.risk_class == filters.risk_class)
    if filters.bucket:
        cond = bucket_condition(rules, filters.bucket)
        if cond is not None:
            stmt = stmt.where(cond)
    if filters.q:
        like = f"%{filters.q.strip()}%"
        stmt = stmt.where(or_(Loan.contract_no.ilike(like), Borrower.name.ilike(like)))
    return stmt


def page_of(stmt: Select, page: int, per_page: int):
    total = db.session.execute(select(func.count()).select_from(stmt.order_by(None).subquery())).scalar_one()
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    rows = db.session.execute(
        stmt.options(joinedload(Loan.borrower), joinedload(Loan.branch), joinedload(Loan.officer))
        .order_by(Loan.disbursed_on.desc(), Loan.id.desc())
        .limit(per_page).offset((page - 1) * per_page)).scalars().unique().all()
    return rows, total, page, pages


def days_until(day: date, today: date) -> int:
    return (day - today).days
