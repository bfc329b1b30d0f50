"""The home page each user lands on, and a health check for the load balancer."""
from __future__ import annotations

from flask import Blueprint, jsonify, render_template
from flask_login import current_user
from sqlalchemy import func, select, text

from .accounts.scope import in_scope
from .extensions import db
from .loans.models import RISK_ORDER, Loan, LoanStatus
from .rules.service import rules_for

bp = Blueprint("main", __name__)


@bp.route("/")
def index():
    scope = in_scope(Loan.branch_id, current_user)
    open_states = [LoanStatus.ACTIVE.value, LoanStatus.OVERDUE.value]
    by_status = dict(db.session.execute(
        select(Loan.status, func.count()).where(scope).group_by(Loan.status)).all())
    by_risk_rows = db.session.execute(
        select(Loan.risk_class, func.count(), func.coalesce(func.sum(Loan.balance_fen), 0))
        .where(scope, Loan.status.in_(open_states)).group_by(Loan.risk_class)).all()
    by_risk = {r: (c, b) for r, c, b in by_risk_rows}
    balance = db.session.execute(
        select(func.coalesce(func.sum(Loan.balance_fen), 0)).where(scope, Loan.status.in_(open_states))).scalar_one()
    mine = db.session.execute(
        select(func.count()).select_from(Loan).where(Loan.officer_id == current_user.id,
                                                     Loan.status.in_(open_states))).scalar_one()
    rules = rules_for(current_user.institution)
    return render_template("main/index.html", by_status=by_status, by_risk=by_risk, risk_order=RISK_ORDER,
                           balance=balance, mine=mine, rules=rules)


@bp.route("/healthz")
def health():
    db.session.execute(text("SELECT 1"))
    return jsonify(status="ok")
