"""Early warnings (风险预警): raised by the rules (a trigger's episode, a rating downgrade), by an
inspection's findings, or by hand; handled, escalated to the county, or lifted with a reason."""
from __future__ import annotations

from datetime import date

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from ..accounts.models import Institution, User
from ..accounts.scope import can, scoped
from ..audit_trail import record_event
from ..errors import InvalidInput, PermissionDenied, WrongState
from ..extensions import db
from ..loans.models import CREDIT_RATINGS, Loan
from ..timeutil import local_today, utcnow
from .common import require_open
from .models import (MANUAL_SIGNALS, WARNING_ACTIVE, Inspection, LoanCondition, RiskWarning, WarningAction,
                     WarningStatus)
from .state import Changes, LoanState

# Which warning a problem found under a checklist item raises. Checklist codes of other
# plugins raise the general "inspection finding" signal.
FINDING_SIGNALS = {
    "use_of_funds": "misuse_of_funds", "collateral": "collateral_problem", "lawsuits": "lawsuit",
    "contact": "lost_contact", "guarantors": "guarantor_problem", "finances": "finances_problem",
    "business": "business_trouble",
}
MAX_TEXT = 2000


def _new_warning(loan: Loan, signal: str, source: str, details: str, raised_on: date, actor: User | None = None,
                 condition: LoanCondition | None = None, inspection: Inspection | None = None) -> RiskWarning:
    warning = RiskWarning(loan=loan, branch_id=loan.branch_id, officer_id=loan.officer_id, signal=signal,
                          source=source, status=WarningStatus.OPEN.value, details=details[:MAX_TEXT],
                          raised_on=raised_on, raised_by_id=getattr(actor, "id", None),
                          condition_id=condition.id if condition is not None else None,
                          inspection_id=inspection.id if inspection is not None else None)
    db.session.add(warning)
    db.session.add(WarningAction(warning=warning, action="raise", note=details[:MAX_TEXT],
                                 actor_id=getattr(actor, "id", None)))
    return warning


# --- raised by the rules (daily run, loan updates) ----------------------------------------

def raise_rule_warning(loan: Loan, condition: LoanCondition, as_of: date, st: LoanState, changes: Changes) -> None:
    warning = _new_warning(loan, condition.code, "rule", "", as_of, condition=condition)
    st.rule_warnings.setdefault(condition.id, []).append(warning)
    changes["warnings_raised"] += 1


def lift_for_cleared_condition(condition: LoanCondition, as_of: date, st: LoanState, changes: Changes) -> None:
    """The trigger is no longer true: its warnings are lifted by the system, saying why."""
    for warning in st.rule_warnings.pop(condition.id, []):
        _close(warning, None, "lift", _("Lifted by the daily run: the condition cleared on %(d)s.", d=as_of))
        changes["warnings_lifted"] += 1


def check_rating_downgrade(loan: Loan, as_of: date, st: LoanState, changes: Changes) -> None:
    """A rating worse than at the last snapshot raises a rating-downgrade warning (once that day)."""
    previous = st.prev_snapshot.credit_rating if st.prev_snapshot else None
    current = loan.borrower.credit_rating
    if (previous in CREDIT_RATINGS and current in CREDIT_RATINGS
            and CREDIT_RATINGS.index(current) > CREDIT_RATINGS.index(previous) and not st.downgrade_warned_on_day):
        _new_warning(loan, "rating_downgrade", "rule", f"{previous} → {current}", as_of)
        st.downgrade_warned_on_day = True
        changes["warnings_raised"] += 1


def raise_warnings_from_findings(actor: User, insp: Inspection) -> list[RiskWarning]:
    """Each problem an inspection found raises a warning, unless the same signal is already open."""
    loan = insp.loan
    active = set(db.session.execute(select(RiskWarning.signal).where(
        RiskWarning.loan_id == loan.id, RiskWarning.status.in_(WARNING_ACTIVE))).scalars())
    raised = []
    for finding in insp.findings or []:
        if finding.get("result") != "problem":
            continue
        signal = FINDING_SIGNALS.get(finding["code"], "inspection_finding")
        if signal in active and signal != "inspection_finding":
            continue
        details = f"{finding.get('label_zh', finding['code'])}:{finding.get('note', '')}"
        raised.append(_new_warning(loan, signal, "inspection", details, insp.inspected_on or local_today(),
                                   actor=actor, inspection=insp))
        active.add(signal)
    if raised:
        db.session.flush()
        record_event(actor, "warning.raise_from_inspection", "inspection", insp.id,
                     {"loan": loan.contract_no, "signals": [w.signal for w in raised]}, institution_id=loan.branch_id)
    return raised


# --- by hand ------------------------------------------------------------------------------

def raise_warning(actor: User, loan: Loan, signal: str, details: str) -> RiskWarning:
    require_open(loan)
    if signal not in MANUAL_SIGNALS:
        raise InvalidInput(_("Unknown warning signal %(s)s.", s=signal))
    details = (details or "").strip()
    if not details:
        raise InvalidInput(_("Describe what was noticed."))
    warning = _new_warning(loan, signal, "manual", details, local_today(), actor=actor)
    db.session.flush()
    record_event(actor, "warning.raise", "risk_warning", warning.id, {"loan": loan.contract_no, "signal": signal},
                 institution_id=loan.branch_id)
    return warning


def _close(warning: RiskWarning, actor: User | None, action: str, note: str) -> None:
    warning.status = WarningStatus.LIFTED.value
    warning.closed_at = utcnow()
    db.session.add(WarningAction(warning=warning, action=action, note=note[:MAX_TEXT], actor_id=getattr(actor, "id", None)))


def _reason(text: str, message: str) -> str:
    text = (text or "").strip()
    if not text:
        raise InvalidInput(message)
    return text[:MAX_TEXT]


def act_on_warning(actor: User, warning: RiskWarning, action: str, note: str) -> RiskWarning:
    """handle (note what is being done), escalate (to the branch's county) or lift (with the reason)."""
    if not warning.is_active:
        raise WrongState(_("This warning has been lifted."))
    if action == "handle":
        note = _reason(note, _("Say what is being done."))
        warning.status = WarningStatus.HANDLING.value
    elif action == "escalate":
        note = _reason(note, _("Say why the warning is escalated."))
        branch = warning.loan.branch
        warning.status = WarningStatus.ESCALATED.value
        warning.escalated_to_id = (branch.parent or branch).id
    elif action == "lift":
        if not can(actor, "postloan.decide_warning"):
            raise PermissionDenied(_("Your role does not allow this action."))
        note = _reason(note, _("Say why the warning is lifted."))
        _close(warning, actor, "lift", note)
    else:
        raise InvalidInput(_("Unknown action %(a)s.", a=action))
    if action != "lift":
        db.session.add(WarningAction(warning=warning, action=action, note=note, actor_id=actor.id))
    db.session.flush()
    record_event(actor, f"warning.{action}", "risk_warning", warning.id,
                 {"loan": warning.loan.contract_no, "signal": warning.signal, "note": note},
                 institution_id=warning.branch_id)
    return warning


def active_warnings_per_branch(user: User) -> list[tuple[str, int]]:
    """(branch name, active warnings) of each branch in the user's scope that has any, by name."""
    return list(db.session.execute(
        scoped(select(Institution.name, func.count()).select_from(RiskWarning)
               .join(Institution, Institution.id == RiskWarning.branch_id), RiskWarning, user)
        .where(RiskWarning.status.in_(WARNING_ACTIVE)).group_by(Institution.name).order_by(Institution.name)).all())


def warnings_in_scope(user: User, *, status: str | None = "active", signal: str | None = None,
                      branch_path: str | None = None, loan_id: int | None = None, limit: int = 500) -> list[RiskWarning]:
    stmt = scoped(select(RiskWarning), RiskWarning, user).options(
        joinedload(RiskWarning.loan).joinedload(Loan.borrower), joinedload(RiskWarning.officer))
    if status == "active":
        stmt = stmt.where(RiskWarning.status.in_(WARNING_ACTIVE))
    elif status:
        stmt = stmt.where(RiskWarning.status == status)
    if signal:
        stmt = stmt.where(RiskWarning.signal == signal)
    if loan_id:
        stmt = stmt.where(RiskWarning.loan_id == loan_id)
    if branch_path:
        stmt = stmt.where(RiskWarning.branch_id.in_(
            select(Institution.id).where(Institution.path.startswith(branch_path, autoescape=True))))
    return list(db.session.execute(stmt.order_by(RiskWarning.raised_on.desc(), RiskWarning.id.desc())
                                   .limit(limit)).scalars().unique())
