"""A union's rules without an app, and loan facts to ask them about (tests/rules, tests/plugins)."""
from __future__ import annotations

from datetime import date

from portal.rules.manager import UnionRules, build_manager, effective_settings, setting_specs
from portal.rules.types import LoanFacts


def make_rules(plugin: str | None, saved: dict | None = None) -> UnionRules:
    """The rules a union on ``plugin`` (None: baseline only) would get, with ``saved`` settings."""
    pm = build_manager(plugin)
    specs = setting_specs(pm)
    return UnionRules(plugin, pm, effective_settings(specs, saved or {}), specs)


def make_facts(**fields) -> LoanFacts:
    """A current 5万元 farm credit loan disbursed 2024-03-01, unless told otherwise."""
    values = dict(contract_no="HT-1", product="farm_credit", guarantee_type="credit", amount_fen=5_000_000,
                  balance_fen=5_000_000, payment_method="entrusted", disbursed_on=date(2024, 3, 1),
                  maturity_on=date(2025, 3, 1), status="active")
    values.update(fields)
    if values.get("days_past_due", 0) > 0 and "status" not in fields:
        values["status"] = "overdue"
    return LoanFacts(**values)
