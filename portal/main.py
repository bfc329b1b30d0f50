"""The home page each user lands on, and a health check for the load balancer."""
from __future__ import annotations

from flask import Blueprint, jsonify, render_template
from flask_login import current_user
from sqlalchemy import func, select, text

from .accounts.scope import in_scope, is_global
from .auditing import panel_cache
from .extensions import db
from .loans.models import RISK_ORDER, Loan, LoanStatus
from .rules.service import rules_for
from .timeutil import local_today

bp = Blueprint("main", __name__)

OPEN_STATES = (LoanStatus.ACTIVE.value, LoanStatus.OVERDUE.value)


def loan_summary(user) -> dict:
    """The user's loans by status, the open ones by risk class (number, balance) and the open
    balance, in one pass over the loans in scope."""
    by_status: dict[str, int] = {}
    by_risk: dict[str, list[int]] = {}
    balance = 0
    for status, risk, count, total in db.session.execute(
            select(Loan.status, Loan.risk_class, func.count(), func.coalesce(func.sum(Loan.balance_fen), 0))
            .where(in_scope(Loan.branch_id, user)).group_by(Loan.status, Loan.risk_class)):
        by_status[status] = by_status.get(status, 0) + count
        if status in OPEN_STATES:
            row = by_risk.setdefault(risk, [0, 0])
            row[0] += count
            row[1] += int(total)
            balance += int(total)
    return {"by_status": by_status, "by_risk": by_risk, "balance": balance}


@bp.route("/")
def index():
    # The summary of a county's or the union's loans reads every one of them (0.1–0.3 s on
    # SQLite): it is kept like a dashboard panel, and the page says as of when (bench/load.md).
    if is_global(current_user):
        summary, figures_at = loan_summary(current_user), None
    else:
        summary, figures_at = panel_cache.figures(current_user.institution, "home_loan_summary", local_today(),
                                                  lambda: loan_summary(current_user))
    mine = db.session.execute(
        select(func.count()).select_from(Loan).where(Loan.officer_id == current_user.id,
                                                     Loan.status.in_(OPEN_STATES))).scalar_one()
    rules = rules_for(current_user.institution)
    return render_template("main/index.html", by_status=summary["by_status"], by_risk=summary["by_risk"],
                           risk_order=RISK_ORDER, balance=summary["balance"], mine=mine, rules=rules,
                           figures_at=figures_at)


@bp.route("/healthz")
def health():
    db.session.execute(text("SELECT 1"))
    return jsonify(status="ok")
