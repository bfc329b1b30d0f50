"""One contract, every plugin: the baseline alone and each available province plugin answer
every hook in the right shape for a matrix of sample loans, and never go below the national
rules (DOMAIN.md): classification floors by days past due, restructuring, retention.

The second half pins the baseline's own numbers to DOMAIN.md.
"""
from __future__ import annotations

import inspect
from datetime import date

import pytest

from portal.accounts.models import Role
from portal.rules import hookspecs
from portal.rules.manager import UnionRules, available_plugins
from portal.rules.types import (LEVELS, RISK_CLASSES, STAGES, ArchiveNumberParts, ChecklistItem, DocumentType,
                                Escalation, LoanFacts, Responsibility, Retention, RiskSuggestion)

from tests.helpers.rules import make_facts, make_rules

PLUGINS = ["baseline", *sorted(available_plugins())]
AS_OF = date(2024, 12, 31)
RATINGS = ["AAA", "AA", "A", "BBB", "BB", "B", "CCC", "CC", "C", "unrated"]
DPDS = [0, 1, 45, 91, 271, 361]
PRODUCTS = [("farm_credit", "credit"), ("joint_guarantee", "joint"), ("multi_guarantee", "guarantee"),
            ("mortgage", "mortgage"), ("pledge", "pledge"), ("guaranteed", "guarantee"),
            ("working_capital", "mortgage"), ("consumer", "credit")]
AMOUNTS_FEN = [5_000_000, 20_000_000, 49_999_999, 50_000_000, 80_000_000, 600_000_000]


def union_rules(plugin: str, saved: dict | None = None) -> UnionRules:
    return make_rules(None if plugin == "baseline" else plugin, saved)


def loan(n: int = 0, **fields) -> LoanFacts:
    return make_facts(contract_no=f"C-{n}", **fields)


def sample_loans() -> list[LoanFacts]:
    loans: list[LoanFacts] = []
    n = iter(range(10_000))
    for i, (product, guarantee) in enumerate(PRODUCTS):
        for kind in ("individual", "enterprise"):
            for dpd in DPDS:
                loans.append(loan(next(n), product=product, guarantee_type=guarantee, borrower_kind=kind,
                                  days_past_due=dpd, credit_rating=RATINGS[(i + dpd) % len(RATINGS)],
                                  amount_fen=AMOUNTS_FEN[(i + dpd) % len(AMOUNTS_FEN)],
                                  risk_class="substandard" if dpd > 90 else "normal"))
    for rating in RATINGS:
        for method in ("entrusted", "self"):
            loans.append(loan(next(n), credit_rating=rating, payment_method=method))
    for amount in AMOUNTS_FEN:
        loans.append(loan(next(n), amount_fen=amount, balance_fen=amount))
    loans += [
        loan(next(n), interest_arrears_fen=12_000),
        loan(next(n), restructured_on=date(2024, 10, 1)),                         # inside 6 months
        loan(next(n), restructured_on=date(2024, 3, 1)),                          # observation over
        loan(next(n), restructured_on=date(2024, 10, 1), days_past_due=271, risk_class="doubtful"),
        loan(next(n), status="settled", balance_fen=0, settled_on=date(2024, 11, 30)),
        loan(next(n), status="written_off", balance_fen=0, days_past_due=400, risk_class="loss"),
        loan(next(n), risk_class="loss", days_past_due=361, amount_fen=900_000_000),
        loan(next(n), borrower_kind="enterprise", product="fixed_assets", guarantee_type="mortgage",
             amount_fen=2_000_000_000, credit_rating="AAA", branch_level="county"),
    ]
    return loans


LOANS = sample_loans()

# Every hook and how the portal calls it. test_hookspecs checks that every hook is named in a test.
HOOK_CALLS = {
    "xindang_default_settings": lambda r, ln: r.specs,
    "xindang_first_inspection_due": lambda r, ln: r.first_inspection_due(ln),
    "xindang_routine_inspection_interval": lambda r, ln: r.routine_inspection_interval(ln),
    "xindang_special_inspection_triggers": lambda r, ln: r.special_inspection_triggers(ln),
    "xindang_inspection_escalation": lambda r, ln: r.inspection_escalation(ln),
    "xindang_inspection_checklist": lambda r, ln: r.inspection_checklist(),
    "xindang_classify_risk": lambda r, ln: r.classify_risk(ln, AS_OF),
    "xindang_overdue_bucket_edges": lambda r, ln: r.overdue_bucket_edges(),
    "xindang_document_types": lambda r, ln: r.document_types(),
    "xindang_required_documents": lambda r, ln: [r.required_documents(ln, s) for s in STAGES],
    "xindang_retention_period": lambda r, ln: [r.retention_period(d) for d in r.document_types()],
    "xindang_archive_number": lambda r, ln: r.archive_number(ArchiveNumberParts("J001", "XD", 2024, "D30", "B01", 1)),
    "xindang_archive_inspection_cycle": lambda r, ln: [r.archive_inspection_cycle(lv) for lv in LEVELS],
    "xindang_responsibility_roles": lambda r, ln: r.responsibility_roles(ln),
    "xindang_notice_lead_days": lambda r, ln: [r.notice_lead_days(k) for k in ("repayment", "overdue")],
}

EXPECTED_TYPES = {
    "xindang_first_inspection_due": date, "xindang_routine_inspection_interval": int,
    "xindang_special_inspection_triggers": list, "xindang_inspection_escalation": Escalation,
    "xindang_inspection_checklist": list, "xindang_classify_risk": RiskSuggestion,
    "xindang_overdue_bucket_edges": list, "xindang_document_types": list, "xindang_required_documents": list,
    "xindang_retention_period": list, "xindang_archive_number": str, "xindang_archive_inspection_cycle": list,
    "xindang_responsibility_roles": Responsibility, "xindang_notice_lead_days": list,
    "xindang_default_settings": dict,
}

NATIONAL_FLOOR = [(360, "loss"), (270, "doubtful"), (90, "substandard"), (0, "special_mention")]


def rank(risk_class: str) -> int:
    return RISK_CLASSES.index(risk_class)


def national_floor(dpd: int) -> str:
    return next((cls for edge, cls in NATIONAL_FLOOR if dpd > edge), "normal")


@pytest.fixture(scope="module", params=PLUGINS)
def rules(request) -> UnionRules:
    return union_rules(request.param)


def test_available_plugins_include_the_shipped_provinces():
    assert {"hunan", "shandong", "template"} <= set(available_plugins())


def test_the_call_table_covers_every_hook():
    specs = {name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
             if hasattr(fn, "xindang_spec")}
    assert set(HOOK_CALLS) == specs == set(EXPECTED_TYPES)


def test_every_hook_answers_in_shape_for_every_sample_loan(rules):
    for ln in LOANS:
        for hook, call in HOOK_CALLS.items():
            answer = call(rules, ln)
            assert isinstance(answer, EXPECTED_TYPES[hook]), (rules.plugin_name, hook, ln.contract_no, answer)
        assert rules.first_inspection_due(ln) >= ln.disbursed_on
        assert rules.routine_inspection_interval(ln) > 0
        assert all(isinstance(t, str) and t for t in rules.special_inspection_triggers(ln))


def test_settings_have_defaults_that_fit_and_a_source(rules):
    assert rules.specs, "no settings at all"
    for name, spec in rules.specs.items():
        assert spec.name == name
        assert spec.source, f"{name} does not say where it comes from"
        assert spec.label_zh and spec.label_en
        assert rules.settings[name] == spec.default


def test_required_documents_are_all_defined_document_types(rules):
    defined = {d.code for d in rules.document_types()}
    for ln in LOANS:
        for stage in STAGES:
            required = rules.required_documents(ln, stage)
            assert len(required) == len(set(required)), (rules.plugin_name, ln.contract_no, stage, required)
            assert set(required) <= defined, (rules.plugin_name, ln.contract_no, stage, set(required) - defined)


def test_closed_loans_need_their_closing_papers(rules):
    settled = loan(status="settled", balance_fen=0, settled_on=date(2024, 11, 30))
    written_off = loan(status="written_off", balance_fen=0, days_past_due=400)
    assert rules.required_documents(settled, "settlement")
    assert rules.required_documents(written_off, "write_off")
    assert rules.required_documents(loan(), "write_off") == []


def test_document_types_have_known_stages_and_retention(rules):
    types = rules.document_types()
    assert len({d.code for d in types}) == len(types)
    for doc in types:
        assert isinstance(doc, DocumentType)
        assert doc.stage in STAGES
        assert doc.retention in ("permanent", "D30", "D10")
        assert doc.name_zh and doc.name_en


def test_retention_periods_are_valid_and_never_shorten_permanent(rules):
    valid = {"Y": None, "D30": 30, "D10": 10}
    for doc in rules.document_types():
        kept = rules.retention_period(doc)
        assert isinstance(kept, Retention)
        assert kept.code in valid and kept.years == valid[kept.code], (doc.code, kept)
        if doc.retention == "permanent":
            assert kept.years is None, f"{doc.code} is permanent but kept {kept.years} years"


def test_archive_numbers_fit_and_are_unique_per_item(rules):
    seen: set[str] = set()
    for fonds, inst in (("J001", "B01"), ("J012", "HN0101"), ("J999", "SD37010203")):
        for year in (2023, 2024):
            for item in range(1, 1201):
                number = rules.archive_number(ArchiveNumberParts(fonds, "XD", year, "D30", inst, item))
                assert 0 < len(number) <= 64
                assert number not in seen, f"{rules.plugin_name}: {number} given twice"
                seen.add(number)
    assert len(seen) == 3 * 2 * 1200


def test_bucket_edges_sorted_and_buckets_monotone(rules):
    edges = rules.overdue_bucket_edges()
    assert edges == sorted(set(edges)) and edges[0] > 0
    assert rules.bucket_of(0) == "M0"
    previous = 0
    for dpd in range(0, 500):
        index = int(rules.bucket_of(dpd)[1:])
        assert index >= previous, (dpd, index)
        previous = index
    labels = rules.bucket_labels()
    assert [code for code, _ in labels] == [f"M{i}" for i in range(len(edges) + 2)]


def test_classification_floor_monotone_in_dpd_and_never_below_national(rules):
    previous = 0
    for dpd in range(0, 420):
        answer = rules.classify_risk(loan(days_past_due=dpd), AS_OF)
        assert rank(answer.floor) >= previous, f"{rules.plugin_name}: floor improves at {dpd} days"
        assert rank(answer.floor) >= rank(national_floor(dpd)), (rules.plugin_name, dpd, answer)
        assert rank(answer.suggested) >= rank(answer.floor)
        previous = rank(answer.floor)
    assert rules.classify_risk(loan(days_past_due=361), AS_OF).floor == "loss"


def test_every_sample_loan_respects_national_floors(rules):
    for ln in LOANS:
        answer = rules.classify_risk(ln, AS_OF)
        assert rank(answer.floor) >= rank(national_floor(ln.days_past_due)), (rules.plugin_name, ln.contract_no)
        assert all(isinstance(r, str) for r in answer.reasons)


def test_restructured_loans_at_least_substandard_during_observation(rules):
    inside = rules.classify_risk(loan(restructured_on=date(2024, 10, 1)), AS_OF)
    assert rank(inside.floor) >= rank("substandard")
    assert inside.locked_until is not None and inside.locked_until > AS_OF
    worse = rules.classify_risk(loan(restructured_on=date(2024, 10, 1), days_past_due=271), AS_OF)
    assert worse.floor == "doubtful"


def test_overdue_or_arrears_triggers_a_special_inspection(rules):
    for dpd in DPDS[1:]:
        assert rules.special_inspection_triggers(loan(days_past_due=dpd)), dpd
    assert rules.special_inspection_triggers(loan(interest_arrears_fen=100))
    assert rules.special_inspection_triggers(loan()) == []
    assert rules.special_inspection_triggers(loan(status="settled", balance_fen=0)) == []


def test_worse_ratings_are_inspected_at_least_as_often(rules):
    intervals = [rules.routine_inspection_interval(loan(credit_rating=r)) for r in RATINGS[:-1]]
    assert intervals == sorted(intervals, reverse=True), intervals
    assert rules.routine_inspection_interval(loan(credit_rating="unrated")) <= intervals[0]


def test_self_paid_loans_are_visited_no_later(rules):
    assert (rules.first_inspection_due(loan(payment_method="self"))
            <= rules.first_inspection_due(loan(payment_method="entrusted")))


def test_escalations_name_a_level_above_the_branch(rules):
    for ln in LOANS:
        answer = rules.inspection_escalation(ln)
        if answer.required:
            assert answer.level in ("county", "city", "province"), (ln.contract_no, answer)
            assert answer.department and answer.reason


def test_responsibility_names_portal_roles_at_known_levels(rules):
    roles = {r.value for r in Role}
    for ln in LOANS:
        answer = rules.responsibility_roles(ln)
        for group in (answer.acting, answer.primary, answer.inspection_sign_off, answer.write_off_approval):
            assert group, (rules.plugin_name, ln.contract_no, answer)
            for role_at in group:
                assert role_at.role in roles and role_at.level in LEVELS, role_at
        assert answer.basis
        assert all(isinstance(note, str) and note for note in answer.notes)


def test_checklist_codes_are_unique_and_labelled(rules):
    items = rules.inspection_checklist()
    assert all(isinstance(i, ChecklistItem) and i.label_zh and i.label_en for i in items)
    assert len({i.code for i in items}) == len(items)


def test_archive_inspection_cycles_and_notice_days(rules):
    assert rules.archive_inspection_cycle("branch") > 0
    assert rules.archive_inspection_cycle("county") > 0
    for level in LEVELS:
        assert rules.archive_inspection_cycle(level) >= 0
    assert rules.notice_lead_days("repayment") > 0
    assert rules.notice_lead_days("overdue") >= 0


# --- the baseline's numbers, from DOMAIN.md -----------------------------------------------

@pytest.fixture(scope="module")
def baseline() -> UnionRules:
    return union_rules("baseline")


def test_baseline_first_inspection_7_days_or_3_for_self_payment(baseline):
    assert baseline.first_inspection_due(loan()) == date(2024, 3, 8)
    assert baseline.first_inspection_due(loan(payment_method="self")) == date(2024, 3, 4)


@pytest.mark.parametrize("rating, days", [("AAA", 180), ("AA", 180), ("A", 90), ("BBB", 90), ("BB", 60),
                                          ("B", 60), ("C", 60), ("unrated", 60)])
def test_baseline_routine_interval_by_rating(baseline, rating, days):
    assert baseline.routine_inspection_interval(loan(credit_rating=rating)) == days


def test_baseline_special_inspection_on_overdue_or_arrears(baseline):
    assert baseline.special_inspection_triggers(loan(days_past_due=1)) == ["overdue"]
    assert baseline.special_inspection_triggers(loan(interest_arrears_fen=1)) == ["interest_arrears"]
    assert baseline.special_inspection_triggers(loan(days_past_due=5, interest_arrears_fen=1)) == [
        "overdue", "interest_arrears"]
    assert baseline.special_inspection_triggers(loan(status="written_off", days_past_due=400)) == []


def test_baseline_escalates_from_500000_yuan_to_the_county(baseline):
    at = baseline.inspection_escalation(loan(amount_fen=50_000_000))
    assert (at.required, at.level, at.department) == (True, "county", "信贷科")
    assert baseline.inspection_escalation(loan(amount_fen=49_999_999)).required is False


def test_baseline_archive_inspection_county_12_branch_6_months(baseline):
    assert baseline.archive_inspection_cycle("county") == 12
    assert baseline.archive_inspection_cycle("branch") == 6
    assert baseline.archive_inspection_cycle("province") == 0


@pytest.mark.parametrize("dpd, bucket", [(0, "M0"), (1, "M1"), (30, "M1"), (31, "M2"), (60, "M2"), (61, "M3"),
                                         (90, "M3"), (91, "M4"), (361, "M6")])
def test_baseline_buckets(baseline, dpd, bucket):
    assert baseline.bucket_of(dpd) == bucket


def test_baseline_bucket_labels(baseline):
    assert baseline.bucket_labels()[:4] == [("M0", "未逾期"), ("M1", "1–30天"), ("M2", "31–60天"), ("M3", "61–90天")]


@pytest.mark.parametrize("dpd, floor", [(0, "normal"), (1, "special_mention"), (90, "special_mention"),
                                        (91, "substandard"), (270, "substandard"), (271, "doubtful"),
                                        (360, "doubtful"), (361, "loss")])
def test_baseline_classification_floors(baseline, dpd, floor):
    assert baseline.classify_risk(loan(days_past_due=dpd), AS_OF).floor == floor


def test_baseline_restructured_locked_for_six_months(baseline):
    inside = baseline.classify_risk(loan(restructured_on=date(2024, 8, 31)), AS_OF)
    assert inside.floor == "substandard" and inside.locked_until == date(2025, 2, 28)
    after = baseline.classify_risk(loan(restructured_on=date(2024, 6, 30)), AS_OF)
    assert after.floor == "normal" and after.locked_until is None


def test_baseline_archive_number_as_in_domain(baseline):
    parts = ArchiveNumberParts("J012", "XD", 2024, "D30", "HN0101", 1)
    assert baseline.archive_number(parts) == "J012-XD·2024-D30-HN0101-0001"


def test_baseline_retention(baseline):
    by_code = {d.code: baseline.retention_period(d) for d in baseline.document_types()}
    assert by_code["loan_contract"] == Retention("D30", 30)
    assert by_code["first_visit"] == Retention("D10", 10)
    assert by_code["handover_list"] == Retention("Y", None)
    assert by_code["write_off_approval"] == Retention("Y", None)


def test_baseline_notices_and_responsibility(baseline):
    assert baseline.notice_lead_days("repayment") == 30
    assert baseline.notice_lead_days("overdue") == 3
    answer = baseline.responsibility_roles(loan())
    assert [(r.role, r.level) for r in answer.acting] == [("loan_officer", "branch")]
    assert [(r.role, r.level) for r in answer.inspection_sign_off] == [("branch_director", "branch")]


def test_baseline_required_documents_follow_the_guarantee(baseline):
    mortgage = loan(product="mortgage", guarantee_type="mortgage")
    assert {"mortgage_contract", "collateral_certificate"} <= set(baseline.required_documents(mortgage, "disbursement"))
    assert "credit_rating" in baseline.required_documents(loan(), "application")
    assert "credit_rating" not in baseline.required_documents(loan(borrower_kind="enterprise"), "application")
