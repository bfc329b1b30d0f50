"""Rules plugin ``shandong``: 农户贷款管理办法实施细则 (山东省农村信用社).

What it follows, article by article:

- 第二条: the farm-household loan types by guarantee — 农户小额信用贷款, 农户联保贷款, 一户多保,
  农户抵押贷款, 农户质押贷款, 农户其他保证贷款 — mapped onto the portal's products (farm_credit,
  joint_guarantee, multi_guarantee, mortgage, pledge, guaranteed) and guarantee types; and by
  way of lending, 贷款证贷款 or not (a union setting per product) — ``xindang_required_documents``.
- 第四条: the credit rating system — the 信用等级评定表 is required for every application.
- 第五条: the responsibility matrix. Within the branch director's authority
  (``director_authority_limit_yuan``) the loan officer (信贷员) is the acting person and the
  director the primary one; above it the county approves, its risk department (风险管理部)
  reviews, and the director answers for investigation and post-loan work —
  ``xindang_responsibility_roles``, ``xindang_inspection_escalation``.
- 第六条: the credit reviewer (信贷专管员) reviews every investigation — the review opinion is required.
- 第七条: yearly written authorisation by the county director, no sub-delegation (notes).
- 第八条: the loan review group (贷审小组) — its minutes are required for natural persons.

The rest (inspection intervals, classification, buckets, retention, archive numbers, notices)
the 细则 leaves to the baseline. The rules themselves live in ``plugins/shandong/rules.py``.
"""
from __future__ import annotations

from portal.rules import hookimpl

from . import rules


@hookimpl
def xindang_default_settings():
    """第二条、第五条、第七条: the director's authority and which products go by 贷款证."""
    return list(rules.SETTINGS)


@hookimpl
def xindang_responsibility_roles(loan, settings):
    """第五条: acting and primary responsible persons, within or above the director's authority."""
    return rules.responsibility(loan, settings["director_authority_limit_yuan"])


@hookimpl
def xindang_inspection_escalation(loan, settings):
    """第五条: county-approved loans go to the county's risk department; None defers to the baseline."""
    return rules.county_escalation(loan, settings["director_authority_limit_yuan"])


@hookimpl(wrapper=True)
def xindang_document_types():
    """第二条、第八条: the baseline's document types plus 贷款证, 联保协议书 and 贷审小组审议记录."""
    baseline = yield
    return rules.with_document_types(baseline)


@hookimpl(wrapper=True)
def xindang_required_documents(loan, stage, settings):
    """第二条、第四条、第六条、第八条: what a farm-household loan's file holds at each stage."""
    baseline = yield
    return rules.merge(baseline, rules.extra_required(loan, stage, settings))
