"""The shandong plugin: 农户贷款管理办法实施细则 (山东), 第二条、第四条至第八条."""
from __future__ import annotations

from datetime import date

import pytest

import plugins.shandong
from plugins.shandong import rules as shandong
from portal.loans.models import GuaranteeType, Product

from tests.helpers.rules import make_facts, make_rules

AS_OF = date(2024, 12, 31)
LIMIT_FEN = 10_000_000          # the default director authority, 100,000 yuan


@pytest.fixture()
def rules():
    return make_rules("shandong")


def test_module_names_its_source_and_articles():
    doc = plugins.shandong.__doc__
    assert "农户贷款管理办法实施细则" in doc
    for article in ("第二条", "第四条", "第五条", "第六条", "第七条", "第八条"):
        assert article in doc


def test_farm_loan_types_map_onto_portal_products_and_guarantees():
    names = [t.name_zh for t in shandong.FARM_LOAN_TYPES]
    assert names == ["农户小额信用贷款", "农户联保贷款", "一户多保", "农户抵押贷款", "农户质押贷款", "农户其他保证贷款"]
    products = {p.value for p in Product}
    guarantees = {g.value for g in GuaranteeType}
    for loan_type in shandong.FARM_LOAN_TYPES:
        assert loan_type.product in products
        assert loan_type.guarantee_type in guarantees
    assert [t.product for t in shandong.FARM_LOAN_TYPES] == [
        "farm_credit", "joint_guarantee", "multi_guarantee", "mortgage", "pledge", "guaranteed"]


def test_director_authority_is_a_setting_naming_the_articles(rules):
    spec = rules.specs["director_authority_limit_yuan"]
    assert spec.type == "int" and spec.default == 100_000
    assert "第五条" in spec.source and "第七条" in spec.source


def test_within_authority_officer_acts_director_answers(rules):
    answer = rules.responsibility_roles(make_facts(amount_fen=LIMIT_FEN))
    assert [(r.role, r.level) for r in answer.acting] == [("loan_officer", "branch")]
    assert [(r.role, r.level) for r in answer.primary] == [("branch_director", "branch")]
    assert "信贷专管员为审查主责任人" in answer.notes
    assert "权限内" in answer.basis


def test_above_authority_the_county_answers_too(rules):
    answer = rules.responsibility_roles(make_facts(amount_fen=LIMIT_FEN + 1))
    assert [(r.role, r.level) for r in answer.acting] == [("loan_officer", "branch")]
    assert [(r.role, r.level) for r in answer.primary] == [("branch_director", "branch"), ("branch_director", "county")]
    notes = " ".join(answer.notes)
    assert "风险管理部经理为审查主责任人" in notes and "联社有权审批人为审批主责任人" in notes


def test_yearly_written_authorisation_without_sub_delegation(rules):
    notes = " ".join(rules.responsibility_roles(make_facts()).notes)
    assert "书面授权" in notes and "每年度" in notes
    assert "不得" in notes and "转授权" in notes
    assert "贷审小组" in notes


def test_the_authority_is_the_unions():
    wider = make_rules("shandong", {"director_authority_limit_yuan": "300000"})
    assert len(wider.responsibility_roles(make_facts(amount_fen=20_000_000)).primary) == 1
    assert len(make_rules("shandong").responsibility_roles(make_facts(amount_fen=20_000_000)).primary) == 2


def test_county_approved_loans_go_to_the_risk_department(rules):
    answer = rules.inspection_escalation(make_facts(amount_fen=LIMIT_FEN + 1))
    assert (answer.required, answer.level, answer.department) == (True, "county", "风险管理部")
    assert "第五条" in answer.reason
    assert rules.inspection_escalation(make_facts(amount_fen=LIMIT_FEN)).required is False


def test_within_a_wide_authority_the_baseline_decides():
    wide = make_rules("shandong", {"director_authority_limit_yuan": 600_000})
    answer = wide.inspection_escalation(make_facts(amount_fen=55_000_000))
    assert (answer.required, answer.department) == (True, "信贷科")        # the baseline's 50万 rule


def test_document_types_add_certificate_agreement_and_minutes(rules):
    baseline = {d.code for d in make_rules(None).document_types()}
    own = {d.code: d for d in rules.document_types()}
    assert set(own) - baseline == {"loan_certificate", "joint_guarantee_agreement", "review_group_minutes"}
    assert own["loan_certificate"].name_zh == "贷款证"
    assert own["joint_guarantee_agreement"].name_zh == "联保协议书"
    assert own["credit_rating"].name_zh == "信用等级评定表"


def test_application_papers_of_a_credit_loan_on_a_certificate(rules):
    docs = rules.required_documents(make_facts(), "application")
    assert {"credit_rating", "review_opinion", "review_group_minutes", "loan_certificate"} <= set(docs)


def test_loan_certificate_follows_product_and_setting(rules):
    assert "loan_certificate" not in rules.required_documents(
        make_facts(product="mortgage", guarantee_type="mortgage"), "application")
    assert "loan_certificate" not in rules.required_documents(
        make_facts(product="multi_guarantee", guarantee_type="guarantee"), "application")
    on = make_rules("shandong", {"loan_certificate_multi_guarantee": True})
    assert "loan_certificate" in on.required_documents(
        make_facts(product="multi_guarantee", guarantee_type="guarantee"), "application")
    off = make_rules("shandong", {"loan_certificate_farm_credit": "false"})
    assert "loan_certificate" not in off.required_documents(make_facts(), "application")


def test_enterprises_skip_the_review_group(rules):
    docs = rules.required_documents(make_facts(borrower_kind="enterprise", product="working_capital"), "application")
    assert "review_group_minutes" not in docs and "review_opinion" in docs


@pytest.mark.parametrize("product, recorded, needed", [
    ("joint_guarantee", "guarantee", {"joint_guarantee_agreement", "guarantee_contract"}),
    ("multi_guarantee", "guarantee", {"guarantee_contract"}),
    ("guaranteed", "guarantee", {"guarantee_contract"}),
    ("mortgage", "credit", {"mortgage_contract", "collateral_certificate"}),
    ("pledge", "pledge", {"pledge_contract"}),
])
def test_disbursement_papers_follow_the_farm_loan_type(rules, product, recorded, needed):
    docs = rules.required_documents(make_facts(product=product, guarantee_type=recorded), "disbursement")
    assert needed <= set(docs)
    assert {"loan_contract", "loan_receipt"} <= set(docs)


def test_defers_inspections_classification_and_archives_to_the_baseline(rules):
    baseline = make_rules(None)
    for loan in (make_facts(), make_facts(payment_method="self", credit_rating="AAA"), make_facts(days_past_due=91)):
        assert rules.first_inspection_due(loan) == baseline.first_inspection_due(loan)
        assert rules.routine_inspection_interval(loan) == baseline.routine_inspection_interval(loan)
        assert rules.classify_risk(loan, AS_OF) == baseline.classify_risk(loan, AS_OF)
    assert rules.inspection_checklist() == baseline.inspection_checklist()


def test_pure_rules_without_pluggy():
    assert shandong.guarantee_of(make_facts(product="joint_guarantee", guarantee_type="credit")) == "joint"
    assert shandong.guarantee_of(make_facts(product="working_capital", guarantee_type="pledge")) == "pledge"
    assert shandong.within_director_authority(10_000_000, 100_000) is True
    assert shandong.county_escalation(make_facts(amount_fen=5_000_000), 100_000) is None
