"""The plugin manager: a broken plugin stops start-up with a message naming it, and settings
are parsed strictly with messages naming the setting.

Throwaway plugins are plain module objects put into ``sys.modules`` and made available (as an
entry point would) for one test.
"""
from __future__ import annotations

import sys
import types
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, insert

from portal import create_app
from portal.errors import InvalidInput, RulesConfigError
from portal.rules import SettingSpec, hookimpl
from portal.rules import manager
from portal.rules.manager import (RulesRegistry, build_manager, effective_settings, parse_setting,
                                  setting_specs)


def fake_plugin(monkeypatch, name: str, *functions) -> str:
    """Register a module holding ``functions`` as the available plugin ``name``."""
    module = types.ModuleType(f"xd_test_plugin_{name}")
    for fn in functions:
        setattr(module, fn.__name__, fn)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    make_available(monkeypatch, name, module.__name__)
    return name


def make_available(monkeypatch, name: str, module_path: str) -> None:
    """As if a package had declared ``name`` in the entry-point group of rules plugins."""
    known = manager.available_plugins()
    monkeypatch.setattr(manager, "available_plugins", lambda: {**known, name: module_path})


def new_app(tmp_path, db_url: str | None = None):
    return create_app("testing", XINDANG_DATABASE_URL=db_url or f"sqlite:///{tmp_path / 'start.db'}",
                      XINDANG_INSTANCE_DIR=str(tmp_path))


# --- plugins that must stop start-up -----------------------------------------------------

def test_unknown_plugin_is_refused_with_the_available_names():
    with pytest.raises(RulesConfigError) as err:
        build_manager("atlantis")
    message = str(err.value)
    assert "'atlantis'" in message and "hunan" in message and "xindang.rules" in message


def test_a_union_on_an_unknown_plugin_stops_create_app(tmp_path):
    url = f"sqlite:///{tmp_path / 'union.db'}"
    app = new_app(tmp_path, url)
    from portal.extensions import db
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    engine = create_engine(url)
    with engine.begin() as conn:   # as if the province's plugin package had been uninstalled
        conn.execute(insert(db.metadata.tables["institution"]).values(
            code="ZZ", name="某省联社", level="province", path="/ZZ/", rules_plugin="atlantis", rules_settings={}))
    engine.dispose()
    with pytest.raises(RulesConfigError, match="'atlantis'"):
        new_app(tmp_path, url)


def test_misspelt_hookimpl_stops_create_app(monkeypatch, tmp_path):
    @hookimpl
    def xindang_first_inspection_dew(loan, settings):
        return loan.disbursed_on

    fake_plugin(monkeypatch, "misspelt", xindang_first_inspection_dew)
    with pytest.raises(RulesConfigError) as err:
        new_app(tmp_path)
    assert "'misspelt'" in str(err.value) and "xindang_first_inspection_dew" in str(err.value)


def test_wrong_shape_stops_create_app(monkeypatch, tmp_path):
    @hookimpl
    def xindang_routine_inspection_interval(loan, settings):
        return "monthly"

    fake_plugin(monkeypatch, "wrongshape", xindang_routine_inspection_interval)
    with pytest.raises(RulesConfigError) as err:
        new_app(tmp_path)
    message = str(err.value)
    assert "'wrongshape'" in message and "xindang_routine_inspection_interval" in message
    assert "'monthly'" in message and "positive int" in message


def test_a_working_app_starts_with_every_shipped_plugin(tmp_path):
    app = new_app(tmp_path)
    assert app.extensions["xindang_rules"].check_all_plugins() == ["baseline", "hunan", "shandong", "template"]


@pytest.mark.parametrize("hook, answer", [
    ("xindang_first_inspection_due", "2024-03-08"),
    ("xindang_classify_risk", "normal"),
    ("xindang_overdue_bucket_edges", [60, 30]),
    ("xindang_archive_number", "X" * 65),
    ("xindang_inspection_checklist", []),
    ("xindang_notice_lead_days", -1),
])
def test_wrong_shapes_are_named(monkeypatch, hook, answer):
    def impl(settings):
        return answer
    impl.__name__ = hook
    fake_plugin(monkeypatch, "shapes", hookimpl(impl))
    with pytest.raises(RulesConfigError) as err:
        RulesRegistry().check_all_plugins(["shapes"])
    assert "'shapes'" in str(err.value) and hook in str(err.value)


def test_unmarked_hook_function_is_refused(monkeypatch):
    def xindang_first_inspection_due(loan, settings):   # forgot @hookimpl: pluggy would ignore it
        return loan.disbursed_on + timedelta(days=1)

    fake_plugin(monkeypatch, "unmarked", xindang_first_inspection_due)
    with pytest.raises(RulesConfigError, match=r"'unmarked'.*xindang_first_inspection_due.*@hookimpl"):
        build_manager("unmarked")


def test_argument_not_in_the_spec_breaks_the_contract(monkeypatch):
    @hookimpl
    def xindang_first_inspection_due(loan, settings, branch):
        return loan.disbursed_on

    fake_plugin(monkeypatch, "extraarg", xindang_first_inspection_due)
    with pytest.raises(RulesConfigError, match=r"(?s)'extraarg' breaks the contract.*'branch'"):
        build_manager("extraarg")


def test_a_plugin_that_raises_is_named(monkeypatch):
    @hookimpl
    def xindang_first_inspection_due(settings):
        return settings["no_such_setting"]

    fake_plugin(monkeypatch, "raises", xindang_first_inspection_due)
    with pytest.raises(RulesConfigError, match=r"'raises': xindang_first_inspection_due raised KeyError"):
        RulesRegistry().check_all_plugins(["raises"])


def test_required_documents_must_be_defined(monkeypatch):
    @hookimpl
    def xindang_required_documents(stage):
        return ["loan_contract", "stone_tablet"] if stage == "disbursement" else None

    fake_plugin(monkeypatch, "undefined_doc", xindang_required_documents)
    with pytest.raises(RulesConfigError, match=r"'undefined_doc'.*stone_tablet"):
        RulesRegistry().check_all_plugins(["undefined_doc"])


def test_import_error_is_named(monkeypatch):
    make_available(monkeypatch, "missing", "xd_no_such_module_anywhere")
    with pytest.raises(RulesConfigError, match=r"'missing'.*failed to import"):
        build_manager("missing")


def test_settings_hook_of_the_wrong_shape_is_named(monkeypatch):
    @hookimpl
    def xindang_default_settings():
        return {"first_inspection_days": 5}

    fake_plugin(monkeypatch, "dictsettings", xindang_default_settings)
    with pytest.raises(RulesConfigError, match=r"'dictsettings': xindang_default_settings returned"):
        setting_specs(build_manager("dictsettings"))


def test_a_default_that_does_not_fit_its_spec_is_named(monkeypatch):
    @hookimpl
    def xindang_default_settings():
        return [SettingSpec("visits_per_year", "int", "many", "每年走访次数", "Visits per year", "第一条")]

    fake_plugin(monkeypatch, "baddefault", xindang_default_settings)
    with pytest.raises(RulesConfigError, match=r"'baddefault'.*'visits_per_year'"):
        setting_specs(build_manager("baddefault"))


def test_a_good_throwaway_plugin_is_accepted_and_answers(monkeypatch):
    @hookimpl
    def xindang_first_inspection_due(loan):
        return loan.disbursed_on + timedelta(days=5)

    fake_plugin(monkeypatch, "fivedays", xindang_first_inspection_due)
    reg = RulesRegistry()
    assert reg.check_all_plugins(["fivedays"]) == ["baseline", "fivedays"]
    assert reg.implemented_hooks("fivedays") == ["xindang_first_inspection_due"]
    assert reg.implemented_hooks(None) == []
    union = types.SimpleNamespace(code="ZZ", rules_plugin="fivedays", rules_settings={})
    facts = manager.SAMPLE_LOANS[0]
    assert reg.for_union(union).first_inspection_due(facts) == facts.disbursed_on + timedelta(days=5)


def test_a_province_spec_replaces_the_baselines():
    specs = setting_specs(build_manager("template"))
    assert specs["escalation_department"].default == "贷后管理职能部门"
    assert setting_specs(build_manager(None))["escalation_department"].default == "信贷科"


# --- settings parsing --------------------------------------------------------------------

INT = SettingSpec("routine_interval_days_low", "int", 60, "BB级以下检查间隔(天)", "Interval (days)", "x", minimum=1)
LIST = SettingSpec("overdue_bucket_edges", "int_list", [30, 60], "逾期分档上限(天)", "Edges (days)", "x", minimum=1)
BOOL = SettingSpec("report_major_risk_to_county", "bool", True, "重大风险报送", "Report major risk", "x")
DEC = SettingSpec("spot_check_ratio", "decimal", Decimal("0.1"), "抽查比例", "Spot-check ratio", "x")
TEXT = SettingSpec("escalation_department", "str", "信贷科", "报送部门", "Department", "x")
FLOOR = SettingSpec("substandard_after_dpd", "int", 90, "逾期超过(天)至少次级", "Substandard after", "x", maximum=90)


@pytest.mark.parametrize("spec, raw, expected", [
    (INT, "45", 45), (INT, 45, 45), (INT, " 7 ", 7),
    (LIST, "30,60,90", [30, 60, 90]), (LIST, "30,60", [30, 60]), (LIST, [15, 30], [15, 30]),
    (BOOL, "on", True), (BOOL, "false", False), (BOOL, "", False), (BOOL, True, True),
    (DEC, "0.25", Decimal("0.25")),
    (TEXT, " 风险管理部 ", "风险管理部"),
    (FLOOR, "60", 60),
])
def test_parse_setting_accepts(spec, raw, expected):
    assert parse_setting(spec, raw) == expected


@pytest.mark.parametrize("spec, raw", [
    (INT, "sixty"), (INT, "4.5"), (INT, True), (INT, "0"), (INT, "-3"),
    (LIST, "30,x"), (LIST, "60,30"), (LIST, "30,30"), (LIST, ""), (LIST, "0,30"), (LIST, [30, True]),
    (BOOL, "maybe"),
    (DEC, "abc"), (DEC, "NaN"),
    (TEXT, "   "),
    (FLOOR, "120"),           # laxer than the national floor
])
def test_parse_setting_refuses_with_the_settings_name(spec, raw):
    with pytest.raises(InvalidInput) as err:
        parse_setting(spec, raw)
    assert spec.name in err.value.message
    assert spec.label_zh in err.value.message


def test_bound_messages_say_the_bound():
    with pytest.raises(InvalidInput, match="90"):
        parse_setting(FLOOR, 91)
    with pytest.raises(InvalidInput, match="at least 1"):
        parse_setting(INT, 0)


def test_stored_settings_are_parsed_and_unknown_ones_ignored():
    specs = setting_specs(build_manager(None))
    values = effective_settings(specs, {"routine_interval_days_low": "30", "gone_setting": 1})
    assert values["routine_interval_days_low"] == 30
    assert "gone_setting" not in values
    with pytest.raises(InvalidInput, match="routine_interval_days_low"):
        effective_settings(specs, {"routine_interval_days_low": "soon"})


def test_national_floors_cannot_be_relaxed_by_a_union():
    specs = setting_specs(build_manager(None))
    for name, laxer in (("special_mention_after_dpd", 1), ("substandard_after_dpd", 91),
                        ("doubtful_after_dpd", 271), ("loss_after_dpd", 361), ("restructured_observation_months", 5)):
        with pytest.raises(InvalidInput, match=name):
            effective_settings(specs, {name: laxer})
    stricter = effective_settings(specs, {"substandard_after_dpd": 60, "restructured_observation_months": 12})
    assert stricter["substandard_after_dpd"] == 60


def test_unionrules_uses_the_stricter_setting():
    pm = build_manager(None)
    specs = setting_specs(pm)
    rules = manager.UnionRules(None, pm, effective_settings(specs, {"substandard_after_dpd": 60}), specs)
    facts = manager.SAMPLE_LOANS[0]
    assert rules.classify_risk(replace(facts, days_past_due=61), date(2024, 12, 31)).floor == "substandard"
