"""Reading loans for a user: the scoped, filtered list, and a loan's facts for the rules."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Select, and_, func, or_, select

from .. import kept
from ..accounts.models import Institution, Role, User, UserRole
from ..accounts.scope import in_scope, is_global, scoped
from ..extensions import db
from ..rules.manager import UnionRules
from ..rules.types import LoanFacts
from ..timeutil import local_today
from .models import OPEN_LOAN_STATUSES, Borrower, Loan

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
    """The loans the user may see that pass the filters, as ``select(Loan.id)`` (the borrower is
    joined only when a name is searched: the count and the page read the loan table alone)."""
    stmt = scoped(select(Loan.id), Loan, user)
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
        stmt = stmt.join(Borrower, Loan.borrower_id == Borrower.id).where(
            or_(Loan.contract_no.ilike(like), Borrower.name.ilike(like)))
    return stmt


# What a row of the loan list shows, read as plain rows (ORM objects with their borrower, branch
# and officer cost three times as much to load for 50 rows).
LIST_COLUMNS = (Loan.id, Loan.contract_no, Borrower.name.label("borrower_name"),
                Institution.name.label("branch_name"), Loan.product, Loan.amount_fen, Loan.balance_fen,
                Loan.disbursed_on, Loan.maturity_on, Loan.status, Loan.days_past_due, Loan.risk_class,
                User.display_name.label("officer_name"))


def loan_summary(user: User) -> dict:
    """The user's loans by status, the open ones by risk class (number, balance) and the open
    balance, in one pass over the loans in scope."""
    by_status: dict[str, int] = {}
    by_risk: dict[str, list[int]] = {}
    balance = 0
    for status, risk, count, total in db.session.execute(
            select(Loan.status, Loan.risk_class, func.count(), func.coalesce(func.sum(Loan.balance_fen), 0))
            .where(in_scope(Loan.branch_id, user)).group_by(Loan.status, Loan.risk_class)):
        by_status[status] = by_status.get(status, 0) + count
        if status in OPEN_LOAN_STATUSES:
            row = by_risk.setdefault(risk, [0, 0])
            row[0] += count
            row[1] += int(total)
            balance += int(total)
    return {"by_status": by_status, "by_risk": by_risk, "balance": balance}


def kept_loan_summary(user: User) -> tuple[dict, datetime | None]:
    """``loan_summary`` kept like a dashboard panel (``portal/kept.py``: rebuilt after any
    change in the institution's subtree, or after its age bound): ``(summary, None)`` when just
    built, ``(summary, built at)`` when kept. The summary of a county's or the union's loans
    reads every one of them (0.1–0.3 s on SQLite, bench/load.md); the home page shows it with
    its time, and the loan list takes its total from it when kept (``kept_loan_count``). A
    global user's is built each time."""
    if is_global(user):
        return loan_summary(user), None
    return kept.figures(user.institution, "home_loan_summary", local_today(), lambda: loan_summary(user))


def kept_loan_count(user: User) -> int | None:
    """The number of loans in the user's scope from the kept summary, or None when none is
    kept and valid (then a count is cheaper than building the summary)."""
    summary = kept.kept_figures(user.institution, "home_loan_summary", local_today())
    return sum(summary["by_status"].values()) if summary is not None else None


def page_of(stmt: Select, page: int, per_page: int, total: int | None = None):
    """One page of ``stmt`` (a ``select(Loan.id)``), newest disbursement first, as rows of
    ``LIST_COLUMNS``, with the total, the page number and the number of pages.

    In two statements: the count of ids; then the page's loans, whose ids a subquery reads alone
    and in order (in index order without a sort: ``ix_loan_branch_disbursed`` for one branch,
    ``ix_loan_disbursed_id_branch`` for a county or a union) before their columns are joined.
    Sorting whole joined rows to keep 50 of them cost 0.2 s for a county (bench/load.md).
    ``total``, when the caller knows it, saves the count."""
    if total is None:
        total = db.session.execute(stmt.with_only_columns(func.count(Loan.id)).order_by(None)).scalar_one()
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    newest_first = (Loan.disbursed_on.desc(), Loan.id.desc())
    page_ids = stmt.order_by(*newest_first).limit(per_page).offset((page - 1) * per_page).correlate(None)
    rows = db.session.execute(
        select(*LIST_COLUMNS).join(Borrower, Borrower.id == Loan.borrower_id)
        .join(Institution, Institution.id == Loan.branch_id).outerjoin(User, User.id == Loan.officer_id)
        .where(Loan.id.in_(page_ids)).order_by(*newest_first)).all()
    return rows, total, page, pages


def days_until(day: date, today: date) -> int:
    return (day - today).days


def borrower_loans(borrower: Borrower, user: User) -> list[Loan]:
    """The borrower's loans in the user's scope, latest disbursed first."""
    return list(db.session.execute(select(Loan).where(Loan.borrower_id == borrower.id, in_scope(Loan.branch_id, user))
                                   .order_by(Loan.disbursed_on.desc())).scalars())


def loan_by_contract_no(user: User, contract_no: str) -> Loan | None:
    """The loan in the user's scope with this contract number, if any."""
    return db.session.execute(select(Loan).where(Loan.contract_no == contract_no.strip(),
                                                 in_scope(Loan.branch_id, user))).scalar_one_or_none()


def officer_choices(user: User) -> list:
    """(id, display_name, username) of the loan and post-loan officers in the user's scope, by
    user name: the choices of the loan list's officer filter (id and names only)."""
    return list(db.session.execute(
        select(User.id, User.display_name, User.username).join(UserRole)
        .where(UserRole.role.in_([Role.LOAN_OFFICER.value, Role.POST_LOAN_OFFICER.value]),
               in_scope(User.institution_id, user))
        .distinct().order_by(User.username)).all())
