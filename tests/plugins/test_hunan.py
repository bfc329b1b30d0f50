"""The hunan plugin: 湖南省农村信用社贷后管理办法(试行), 第四条至第七条."""
from __future__ import annotations

from datetime import date

import pytest

import plugins.hunan
from plugins.hunan import rules as hunan
from portal.errors import InvalidInput
from portal.rules.types import ArchiveNumberParts

from tests.helpers.rules import make_facts, make_rules

AS_OF = date(2024, 12, 31)


@pytest.fixture()
def rules():
    return make_rules("hunan")


def test_module_names_its_source_and_articles():
    doc = plugins.hunan.__doc__
    assert "湖南省农村信用社贷后管理办法(试行)" in doc
    for article in ("第四条", "第五条", "第六条", "第七条"):
        assert article in doc


def test_implements_what_the_text_says_and_defers_the_rest():
    from portal.rules.manager import RulesRegistry
    assert RulesRegistry().implemented_hooks("hunan") == [
        "xindang_archive_number", "xindang_default_settings", "xindang_document_types",
        "xindang_inspection_checklist", "xindang_inspection_escalation", "xindang_required_documents",
        "xindang_responsibility_roles"]


def test_the_county_amount_replaces_the_baseline_setting(rules):
    spec = rules.specs["escalation_threshold_yuan"]
    assert spec.default == 500_000
    assert "第四条" in spec.source and "审批" in spec.label_zh
    for name in ("report_major_risk_to_county", "archive_item_digits"):
        assert rules.specs[name].source.startswith("湖南办法")


def test_county_approved_loans_are_reported_to_the_county(rules):
    answer = rules.inspection_escalation(make_facts(amount_fen=50_000_000))
    assert (answer.required, answer.level, answer.department) == (True, "county", "信贷科")
    assert "第六条" in answer.reason


def test_small_current_loans_stay_at_the_branch(rules):
    assert rules.inspection_escalation(make_facts(amount_fen=20_000_000)).required is False


@pytest.mark.parametrize("fields", [dict(risk_class="substandard"), dict(risk_class="loss", days_past_due=400),
                                    dict(days_past_due=91)])
def test_major_risk_is_reported_upwards(rules, fields):
    answer = rules.inspection_escalation(make_facts(amount_fen=20_000_000, **fields))
    assert answer.required and answer.level == "county"
    assert "第五条(五)" in answer.reason


def test_major_risk_reports_follow_the_setting():
    off = make_rules("hunan", {"report_major_risk_to_county": False})
    assert off.inspection_escalation(make_facts(risk_class="substandard")).required is False
    closed = make_rules("hunan").inspection_escalation(make_facts(status="settled", risk_class="substandard"))
    assert closed.required is False


def test_the_county_amount_is_the_unions():
    lower = make_rules("hunan", {"escalation_threshold_yuan": "300000"})
    assert lower.inspection_escalation(make_facts(amount_fen=30_000_000)).required is True
    assert lower.inspection_escalation(make_facts(amount_fen=29_999_999)).required is False


def test_responsibility_branch_manages_county_shares_its_own_loans(rules):
    small = rules.responsibility_roles(make_facts(amount_fen=20_000_000))
    assert [(r.role, r.level) for r in small.acting] == [("loan_officer", "branch")]
    assert [(r.role, r.level) for r in small.primary] == [("branch_director", "branch")]
    assert [(r.role, r.level) for r in small.inspection_sign_off] == [("branch_director", "branch")]
    assert [(r.role, r.level) for r in small.write_off_approval] == [("branch_director", "county")]
    large = rules.responsibility_roles(make_facts(amount_fen=80_000_000))
    assert [(r.role, r.level) for r in large.primary] == [("branch_director", "branch"), ("branch_director", "county")]
    assert "第五条至第七条" in large.basis


def test_leadership_accounting_and_audit_are_named(rules):
    notes = " ".join(rules.responsibility_roles(make_facts()).notes)
    assert "理事长" in notes and "分管信贷业务副主任" in notes and "领导责任" in notes
    assert "账户监管" in notes and "本息扣划" in notes
    assert "稽核" in notes and "再监督" in notes


def test_checklist_follows_article_five(rules):
    codes = [item.code for item in rules.inspection_checklist()]
    assert codes[:3] == ["account_activity", "use_of_funds", "approval_conditions"]
    assert {"repayment_capacity", "major_changes", "guarantors", "collateral", "credit_rating"} <= set(codes)


def test_document_types_add_accounting_and_audit_papers(rules):
    baseline = {d.code for d in make_rules(None).document_types()}
    own = {d.code for d in rules.document_types()}
    assert baseline < own
    assert own - baseline == {"account_monitoring_record", "debit_voucher", "rating_retest",
                              "npl_disposal_plan", "audit_inspection_report"}
    assert rules.document_type("debit_voucher").name_zh == "本息扣划凭证"


def test_required_documents_add_account_monitoring_and_npl_plan(rules):
    current = rules.required_documents(make_facts(), "post_loan")
    assert current == ["first_visit", "account_monitoring_record"]
    bad = rules.required_documents(make_facts(risk_class="doubtful", days_past_due=300), "post_loan")
    assert "npl_disposal_plan" in bad
    assert "account_monitoring_record" not in rules.required_documents(
        make_facts(status="settled", balance_fen=0), "post_loan")
    assert rules.required_documents(make_facts(), "application") == [
        "loan_application", "id_documents", "credit_rating", "investigation_report", "approval"]


def test_archive_number_item_digits(rules):
    parts = ArchiveNumberParts("J012", "XD", 2024, "D30", "HN0101", 7)
    assert rules.archive_number(parts) == "J012-XD·2024-D30-HN0101-00007"
    assert make_rules("hunan", {"archive_item_digits": 6}).archive_number(parts) == "J012-XD·2024-D30-HN0101-000007"
    assert hunan.archive_number(parts, 4) == "J012-XD·2024-D30-HN0101-0007"


def test_archive_item_digits_refuses_too_few():
    with pytest.raises(InvalidInput) as err:
        make_rules("hunan", {"archive_item_digits": 3})
    assert "archive_item_digits" in err.value.message


def test_defers_inspections_and_classification_to_the_baseline(rules):
    baseline = make_rules(None)
    for loan in (make_facts(), make_facts(payment_method="self", credit_rating="AA"), make_facts(days_past_due=271),
                 make_facts(restructured_on=date(2024, 10, 1))):
        assert rules.first_inspection_due(loan) == baseline.first_inspection_due(loan)
        assert rules.routine_inspection_interval(loan) == baseline.routine_inspection_interval(loan)
        assert rules.special_inspection_triggers(loan) == baseline.special_inspection_triggers(loan)
        assert rules.classify_risk(loan, AS_OF) == baseline.classify_risk(loan, AS_OF)
    assert rules.overdue_bucket_edges() == baseline.overdue_bucket_edges()
    assert rules.archive_inspection_cycle("county") == baseline.archive_inspection_cycle("county")
    assert rules.notice_lead_days("repayment") == baseline.notice_lead_days("repayment")


def test_pure_rules_without_pluggy():
    assert hunan.approved_by_county(50_000_000, 500_000) is True
    assert hunan.approved_by_county(49_999_999, 500_000) is False
    assert hunan.county_escalation(make_facts(), 500_000, True, 90, "信贷科") is None
    assert hunan.merge(["a", "b"], ["b", "c"]) == ["a", "b", "c"]
