"""Rules plugin ``hunan``: 湖南省农村信用社贷后管理办法(试行).

What it follows, article by article:

- 第四条、第六条: the branch (信用社) manages every loan of its area directly and the loan
  officer (客户经理) is the directly responsible person; the county union checks, supervises and
  appraises, and shares the post-loan duty for loans it approved or was consulted on
  (``escalation_threshold_yuan``) — ``xindang_responsibility_roles``, ``xindang_inspection_escalation``.
- 第五条: the duties of post-loan work — the inspection checklist (二)(三)(四), reporting major
  risks upwards (五), a disposal plan for non-performing loans (六) — ``xindang_inspection_checklist``,
  ``xindang_inspection_escalation``, ``xindang_required_documents``.
- 第六条第二款: leadership responsibility of the county's 理事长、主任 and 分管信贷副主任 (a note
  on the responsibility answer).
- 第七条: accounting's account monitoring and debits of principal and interest, audit's
  re-supervision — document types and notes.

Everything else (inspection intervals, classification, buckets, retention, notices) the 办法
leaves to the baseline. The rules themselves live in ``plugins/hunan/rules.py``.
"""
from __future__ import annotations

from portal.rules import hookimpl

from . import rules


@hookimpl
def xindang_default_settings():
    """第四条、第五条(五)、第六条: the county's amount, major-risk reports, archive item digits."""
    return list(rules.SETTINGS)


@hookimpl
def xindang_inspection_escalation(loan, settings):
    """第五条(五)、第六条: county-approved loans and loans at major risk go to the county; else defer."""
    return rules.county_escalation(loan, settings["escalation_threshold_yuan"],
                                   settings["report_major_risk_to_county"], settings["substandard_after_dpd"],
                                   settings["escalation_department"])


@hookimpl
def xindang_inspection_checklist():
    """第五条(二)至(四): what a Hunan inspection looks at."""
    return list(rules.CHECKLIST)


@hookimpl
def xindang_responsibility_roles(loan, settings):
    """第六条、第七条: officer acts, branch director answers, the county too for its loans."""
    return rules.responsibility(loan, settings["escalation_threshold_yuan"])


@hookimpl(wrapper=True)
def xindang_document_types():
    """第五条、第七条: the baseline's document types plus those the 办法 names."""
    baseline = yield
    return rules.with_document_types(baseline)


@hookimpl(wrapper=True)
def xindang_required_documents(loan, stage):
    """第五条(二)(六)、第七条: account monitoring, and a disposal plan once non-performing."""
    baseline = yield
    return rules.merge(baseline, rules.extra_required(loan, stage))


@hookimpl
def xindang_archive_number(parts, settings):
    """DA/T 22-2015 with the item number widened to ``archive_item_digits``."""
    return rules.archive_number(parts, settings["archive_item_digits"])
