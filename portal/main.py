"""The home page each user lands on, and a health check for the load balancer."""
from __future__ import annotations

from flask import Blueprint, jsonify, render_template
from flask_login import current_user
from sqlalchemy import func, select, text

from .extensions import db
from .loans.models import OPEN_LOAN_STATUSES, RISK_ORDER, Loan
from .loans.services import kept_loan_summary
from .rules.lookup import rules_for

bp = Blueprint("main", __name__)


@bp.route("/")
def index():
    summary, figures_at = kept_loan_summary(current_user)
    mine = db.session.execute(
        select(func.count()).select_from(Loan).where(Loan.officer_id == current_user.id,
                                                     Loan.status.in_(OPEN_LOAN_STATUSES))).scalar_one()
    rules = rules_for(current_user.institution)
    return render_template("main/index.html", by_status=summary["by_status"], by_risk=summary["by_risk"],
                           risk_order=RISK_ORDER, balance=summary["balance"], mine=mine, rules=rules,
                           figures_at=figures_at)


@bp.route("/healthz")
def health():
    db.session.execute(text("SELECT 1"))
    return jsonify(status="ok")
