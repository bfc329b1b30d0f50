"""The template plugin: xx省农村信用社贷后管理办法(模版), the skeleton a new province copies."""
from __future__ import annotations

import ast
import inspect
from datetime import date
from pathlib import Path

import pytest

import plugins.template
from plugins import template

from tests.helpers.rules import make_facts, make_rules

AS_OF = date(2024, 12, 31)


@pytest.fixture()
def rules():
    return make_rules("template")


def test_module_names_its_source_and_four_tiers():
    doc = plugins.template.__doc__
    assert "xx省农村信用社贷后管理办法" in doc
    for tier in ("省联社", "市级机构", "县级行社", "办贷机构"):
        assert tier in doc


def test_stays_a_small_skeleton():
    from portal.rules.manager import RulesRegistry
    assert RulesRegistry().implemented_hooks("template") == [
        "xindang_default_settings", "xindang_inspection_checklist", "xindang_inspection_escalation",
        "xindang_responsibility_roles"]


def own_hooks() -> list[str]:
    return [n for n in dir(template) if n.startswith("xindang_")]


def test_every_hookimpl_is_short_and_points_at_an_article():
    assert own_hooks()
    for name in own_hooks():
        fn = getattr(template, name)
        doc = inspect.getdoc(fn)
        assert doc and "条" in doc, f"{name} docstring names no article"
        body = ast.parse(inspect.getsource(fn)).body[0].body
        assert len(body) <= 3, f"{name} is not a few lines: move the rule into a pure function"


def test_checklist_follows_article_nine(rules):
    items = rules.inspection_checklist()
    assert [i.code for i in items] == ["account_activity", "business_finances", "guarantors", "collateral",
                                       "public_information", "risk_signals", "risk_classification"]
    assert all("第九条" in i.label_zh for i in items)


def test_largest_loans_go_to_the_city_tier(rules):
    answer = rules.inspection_escalation(make_facts(amount_fen=500_000_000))
    assert (answer.required, answer.level) == (True, "city")
    assert "市级机构" in answer.department


def test_other_loans_defer_to_the_baseline_county_rule(rules):
    county = rules.inspection_escalation(make_facts(amount_fen=50_000_000))
    # The baseline's rule, with the department the 模版 names (第八条) as the setting's default.
    assert (county.required, county.level, county.department) == (True, "county", "贷后管理职能部门")
    assert rules.inspection_escalation(make_facts(amount_fen=49_999_999)).required is False
    assert template.city_escalation(50_000_000, 5_000_000) is None


def test_city_amount_is_a_setting():
    lower = make_rules("template", {"city_escalation_threshold_yuan": 1_000_000})
    assert lower.inspection_escalation(make_facts(amount_fen=100_000_000)).level == "city"
    assert lower.specs["city_escalation_threshold_yuan"].source.startswith("模版 第五条")


def test_responsibility_across_the_tiers(rules):
    answer = rules.responsibility_roles(make_facts())
    assert [(r.role, r.level) for r in answer.acting] == [("loan_officer", "branch")]
    assert [(r.role, r.level) for r in answer.write_off_approval] == [("branch_director", "county")]
    assert "四级" in " ".join(answer.notes)
    assert "第七条" in answer.basis


def test_everything_else_is_the_baselines(rules):
    baseline = make_rules(None)
    for loan in (make_facts(), make_facts(payment_method="self"), make_facts(days_past_due=361),
                 make_facts(status="written_off", days_past_due=400)):
        assert rules.first_inspection_due(loan) == baseline.first_inspection_due(loan)
        assert rules.classify_risk(loan, AS_OF) == baseline.classify_risk(loan, AS_OF)
        for stage in ("application", "disbursement", "write_off"):
            assert rules.required_documents(loan, stage) == baseline.required_documents(loan, stage)
    assert rules.document_types() == baseline.document_types()


def test_plugins_import_nothing_but_the_rules_contract():
    """No Flask and no database in any shipped plugin: only portal.rules, the stdlib and itself."""
    allowed_portal = {"portal.rules", "portal.rules.types"}
    for path in Path(plugins.template.__file__).parents[1].rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != "__future__":
                root = node.module.split(".")[0]
                assert node.module in allowed_portal or root in ("dataclasses", "datetime", "typing"), (
                    f"{path}: imports {node.module}")
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] in ("dataclasses", "datetime", "typing"), (
                        f"{path}: imports {alias.name}")
