"""Loans created or changed anywhere get their post-loan records when the change is committed.

Loans arrive and change through the import, the demo seeder and other services that know
nothing of post-loan work; yet a loan that goes overdue must get its special inspection at once,
not at the next nightly run. So: ``before_flush`` notes every new loan and every loan whose days
past due, interest arrears, status or officer changed; ``before_commit`` runs ``refresh_loans``
on them inside the same transaction (one audit event for the lot). A rollback forgets them.

These are SQLAlchemy session listeners (not pluggy hooks), installed by
``portal/session_events.py``.
"""
from __future__ import annotations

from flask import has_app_context
from sqlalchemy import inspect

from ..audit_trail import record_event
from ..loans.models import Loan
from ..timeutil import local_today
from .daily import refresh_loans

WATCHED = ("days_past_due", "interest_arrears_fen", "status", "officer_id")
TOUCHED = "postloan_touched_loans"
BUSY = "postloan_refreshing"


def note_touched_loans(session, _flush_context, _instances) -> None:
    """before_flush: note new loans and loans whose watched columns changed."""
    touched = session.info.get(TOUCHED)
    for obj in session.new:
        if isinstance(obj, Loan):
            touched = session.info.setdefault(TOUCHED, {})
            touched[id(obj)] = obj
    for obj in session.dirty:
        if isinstance(obj, Loan):
            state = inspect(obj)
            if any(state.attrs[name].history.has_changes() for name in WATCHED):
                touched = session.info.setdefault(TOUCHED, {})
                touched[id(obj)] = obj


def refresh_touched_loans(session) -> None:
    """before_commit: give the noted loans their post-loan records in this transaction."""
    if session.info.get(BUSY) or not has_app_context():
        return
    if not session.info.get(TOUCHED) and not any(isinstance(o, Loan) for o in list(session.new) + list(session.dirty)):
        return
    session.info[BUSY] = True
    try:
        session.flush()
        touched = session.info.pop(TOUCHED, {})
        loans = [loan for loan in touched.values()
                 if loan in session and loan.id is not None and loan not in session.deleted]
        if not loans:
            return
        changes = refresh_loans(loans, local_today())
        if changes.changed:
            record_event(None, "postloan.refresh", "loan", loans[0].contract_no if len(loans) == 1 else f"{len(loans)} loans",
                         {k: v for k, v in changes.items() if v}, institution_id=loans[0].branch_id if len(loans) == 1 else None)
        session.flush()
    finally:
        session.info.pop(BUSY, None)
        session.info.pop(TOUCHED, None)


def forget_touched_loans(session, transaction) -> None:
    """after_transaction_end."""
    # A rollback or close ends the outer transaction without a commit: forget what it touched.
    if transaction.parent is None:
        session.info.pop(TOUCHED, None)
