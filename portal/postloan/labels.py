"""Display names of the post-loan codes, registered with the portal's ``label`` filter."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l


POSTLOAN_LABELS = {
    "inspection_kind": {"first": _l("First inspection"), "routine": _l("Routine inspection"),
                        "special": _l("Special inspection")},
    "inspection_status": {"open": _l("Due"), "draft": _l("Being recorded"), "submitted": _l("Awaiting sign-off"),
                          "signed_off": _l("Signed off"), "cancelled": _l("Cancelled")},
    "inspection_method": {"on_site": _l("On-site"), "off_site": _l("Off-site"), "phone": _l("By phone")},
    "finding_result": {"ok": _l("No problem"), "problem": _l("Problem found"),
                       "not_applicable": _l("Not applicable")},
    "escalation_status": {"none": _l("Not escalated"), "pending": _l("Escalated, awaiting review"),
                          "reviewed": _l("Reviewed by the receiving department")},
    # Trigger codes of the baseline rules and the signals a user can raise.
    "warning_signal": {"overdue": _l("Overdue"), "interest_arrears": _l("Interest in arrears"),
                       "rating_downgrade": _l("Credit rating downgraded"), "lost_contact": _l("Lost contact"),
                       "misuse_of_funds": _l("Misuse of funds"), "collateral_problem": _l("Collateral problem"),
                       "lawsuit": _l("Lawsuit"), "business_trouble": _l("Business in trouble"),
                       "guarantor_problem": _l("Guarantor problem"), "finances_problem": _l("Financial problem"),
                       "inspection_finding": _l("Inspection finding"), "other": _l("Other")},
    "warning_status": {"open": _l("Open"), "handling": _l("Being handled"), "escalated": _l("Escalated"),
                       "lifted": _l("Lifted")},
    "warning_source": {"rule": _l("Rules"), "inspection": _l("Inspection"), "manual": _l("Raised by hand")},
    "warning_action": {"raise": _l("Raised"), "handle": _l("Handling noted"), "escalate": _l("Escalated"),
                       "lift": _l("Lifted")},
    "review_status": {"pending": _l("To review"), "confirmed": _l("Confirmed"), "superseded": _l("Superseded")},
    "task_status": {"open": _l("Open"), "closed": _l("Closed")},
    "task_close_reason": {"cured": _l("Back to current"), "loan_closed": _l("Loan closed")},
    "contact_channel": {"call": _l("Phone call"), "visit": _l("Visit"), "letter": _l("Letter"),
                        "sms": _l("Text message")},
    "contact_result": {"promised": _l("Promised to pay"), "paid": _l("Paid"), "reached": _l("Reached, no promise"),
                       "refused": _l("Refused to pay"), "unreachable": _l("Could not be reached")},
    "notice_kind": {"repayment": _l("Repayment notice"), "overdue": _l("Overdue collection notice")},
    "notice_status": {"pending": _l("To issue"), "issued": _l("Issued"), "cancelled": _l("Cancelled")},
    "handover_status": {"proposed": _l("Proposed"), "completed": _l("Completed"), "cancelled": _l("Cancelled")},
    "write_off_status": {"requested": _l("Requested"), "approved": _l("Approved"), "rejected": _l("Rejected")},
    "evaluation_outcome": {"repaid_on_time": _l("Repaid on time"), "repaid_late": _l("Repaid after delays"),
                           "recovered_by_enforcement": _l("Recovered by enforcement"),
                           "written_off": _l("Written off")},
    "evaluation_management": {"good": _l("Good"), "adequate": _l("Adequate"), "poor": _l("Poor")},
    "migration_column": {"closed": _l("Closed")},
}

