"""Loan pages: the scoped list with filters and paging, and a loan's detail."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from flask_login import current_user
from sqlalchemy.orm import joinedload

from ..accounts.models import Level, User
from ..accounts.scope import can, get_scoped_or_404, is_global, require, visible_institutions
from ..extensions import db
from ..labels import choices
from ..rules.lookup import rules_for
from ..timeutil import local_today
from ..web import id_arg, page_arg
from .forms import ImportForm
from .importing import import_loans
from .importing.columns import COLUMNS, sample_csv
from .models import RISK_ORDER, Borrower, Loan, LoanStatus
from .services import (LoanFilters, borrower_loans, kept_loan_count, loan_facts, loan_list_query, officer_choices,
                       page_of)

bp = Blueprint("loans", __name__, url_prefix="/loans")


@bp.route("/")
@require("loan.view")
def loan_list():
    # First: the subtree's institutions (the branch filter) come with the province (the rules)
    # and give the scope's ids, in one statement.
    branches = visible_institutions(current_user, levels=("branch",))
    rules = rules_for(current_user.institution)
    filters = LoanFilters(
        branch_id=id_arg("branch"), officer_id=id_arg("officer"),
        status=request.args.get("status") if request.args.get("status") in {s.value for s in LoanStatus} else None,
        risk_class=request.args.get("risk") if request.args.get("risk") in RISK_ORDER else None,
        bucket=request.args.get("bucket") or None,
        q=(request.args.get("q") or "").strip()[:64] or None,
    )
    per_page = current_app.config["XINDANG_PAGE_SIZE"]
    page = page_arg("page")
    # Unfiltered, above a branch, the total is the number of loans in scope, which the home
    # page's summary keeps, if it is kept and valid: a county's list counted its 50,000 loans
    # on every page (3 ms on SQLite, 5–7 ms of PostgreSQL's CPU). A branch's count costs less
    # than reading the kept summary; a global user's summary is not kept.
    known = (kept_loan_count(current_user)
             if not any(vars(filters).values()) and not is_global(current_user)
             and current_user.institution.level != Level.BRANCH.value else None)
    loans, total, page, pages = page_of(loan_list_query(current_user, filters, rules), page, per_page, known)
    officers = officer_choices(current_user)
    # Each kind's names translated once, not once a row (150 translations were 5 ms a page).
    names = {kind: dict(choices(kind)) for kind in ("product", "loan_status", "risk_class")}
    # The overdue bucket of each distinct number of days past due (most loans: 0), asked once.
    names["bucket"] = {days: rules.bucket_of(days) for days in {loan.days_past_due for loan in loans}}
    return render_template("loans/list.html", loans=loans, total=total, page=page, pages=pages,
                           filters=filters, branches=branches, officers=officers,
                           buckets=rules.bucket_labels(), rules=rules, names=names)


@bp.route("/<int:loan_id>")
@require("loan.view")
def loan_detail(loan_id: int):
    # The branch, borrower and officer the page shows, in the loan's own statement (one round
    # trip each otherwise, and the officer's roles, which the page does not show, another).
    loan = get_scoped_or_404(Loan, loan_id, current_user, options=(
        joinedload(Loan.branch), joinedload(Loan.borrower), joinedload(Loan.officer).lazyload(User.role_rows)))
    rules = rules_for(loan.branch)
    facts = loan_facts(loan)
    today = local_today()
    context = {
        "bucket": rules.bucket_of(loan.days_past_due),
        "first_due": rules.first_inspection_due(facts),
        "interval": rules.routine_inspection_interval(facts),
        "special": rules.special_inspection_triggers(facts),
        "escalation": rules.inspection_escalation(facts),
        "suggestion": rules.classify_risk(facts, today),
        "responsibility": rules.responsibility_roles(facts),
    }
    return render_template("loans/detail.html", loan=loan, show_id=can(current_user, "borrower.view_id_number"),
                           today=today, **context)


@bp.route("/borrowers/<int:borrower_id>")
@require("borrower.view")
def borrower_detail(borrower_id: int):
    borrower = get_scoped_or_404(Borrower, borrower_id, current_user)
    return render_template("loans/borrower.html", borrower=borrower, loans=borrower_loans(borrower, current_user),
                           show_id=can(current_user, "borrower.view_id_number"))


@bp.route("/import", methods=["GET", "POST"])
@require("loan.import")
def import_page():
    """Upload a CSV or XLSX loan file; nothing is written unless every row is valid."""
    form = ImportForm()
    report = None
    status = 200
    if form.validate_on_submit():
        upload = form.file.data  # read whole: the request's size limit applies
        report = import_loans(current_user, upload.read(), upload.filename or "", dry_run=form.dry_run.data)
        if report.written:
            db.session.commit()
        else:
            db.session.rollback()
            status = 200 if report.ok else 422
    elif request.method == "POST":
        status = 400
    return render_template("loans/import.html", form=form, report=report, columns=COLUMNS,
                           sample=sample_csv()), status
