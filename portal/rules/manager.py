"""One plugin manager per provincial union, and the checked facade the portal calls.

``RulesRegistry`` lives in ``app.extensions["xindang_rules"]``. ``rules_for(province)`` gives a
``UnionRules`` whose methods call the union's hooks with keyword arguments and check every
answer's shape; a wrong shape raises ``RulesConfigError``. At start-up every available plugin
is loaded, checked with ``check_pending`` and exercised once on sample loans, so a misspelt
hook or a broken answer stops ``create_app`` with a message naming the plugin.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Callable, Iterable, Mapping

import pluggy
from flask_babel import get_locale
from flask_babel import gettext as _

from ..errors import InvalidInput, RulesConfigError
from . import defaults, hookspecs
from .types import (LEVELS, RISK_CLASSES, STAGES, ArchiveNumberParts, ChecklistItem, DocumentType,
                    Escalation, LoanFacts, Responsibility, Retention, RiskSuggestion, SettingSpec)

ENTRY_POINT_GROUP = "xindang.rules"


def available_plugins() -> dict[str, str]:
    """Plugin name → module path: every entry point of the group ``xindang.rules``. The plugins
    shipped in this repository declare theirs in pyproject.toml; a province's own package declares
    its plugin the same way."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_module(name: str) -> ModuleType:
    plugins = available_plugins()
    if name not in plugins:
        raise RulesConfigError(
            f"Unknown rules plugin {name!r}. Available: {', '.join(sorted(plugins))}. "
            f"A province package declares its plugin in the entry-point group {ENTRY_POINT_GROUP!r}.")
    try:
        return importlib.import_module(plugins[name])
    except Exception as exc:  # an import error in a plugin must name the plugin
        raise RulesConfigError(f"Rules plugin {name!r} ({plugins[name]}) failed to import: {exc}") from exc


def _unmarked_hooks(module: ModuleType) -> list[str]:
    """Functions named like a hook but without ``@hookimpl``: pluggy would silently skip them."""
    marker = f"{hookspecs.PROJECT}_impl"
    return sorted(name for name in dir(module)
                  if name.startswith(f"{hookspecs.PROJECT}_") and callable(getattr(module, name))
                  and not hasattr(getattr(module, name), marker))


def build_manager(plugin_name: str | None) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(defaults, name="baseline")
    if plugin_name:
        module = _load_module(plugin_name)
        unmarked = _unmarked_hooks(module)
        if unmarked:
            raise RulesConfigError(
                f"Rules plugin {plugin_name!r}: {', '.join(unmarked)} is not marked @hookimpl "
                f"(from portal.rules import hookimpl), so it would never be called.")
        try:
            pm.register(module, name=plugin_name)
        except pluggy.PluginValidationError as exc:
            raise RulesConfigError(f"Rules plugin {plugin_name!r} breaks the contract: {exc}") from exc
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise RulesConfigError(
            f"Rules plugin {plugin_name!r} implements a hook that has no spec "
            f"(misspelt?): {exc}") from exc
    return pm


# --- answer shapes ----------------------------------------------------------------------

def _is_list_of(kind: type) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, list) and all(isinstance(x, kind) for x in v)


def _valid_suggestion(v: Any) -> bool:
    return (isinstance(v, RiskSuggestion) and v.floor in RISK_CLASSES and v.suggested in RISK_CLASSES
            and isinstance(v.reasons, tuple) and all(isinstance(r, str) for r in v.reasons))


def _valid_edges(v: Any) -> bool:
    return (isinstance(v, list) and len(v) > 0 and all(isinstance(x, int) and x > 0 for x in v)
            and v == sorted(set(v)))


def _valid_doc_types(v: Any) -> bool:
    return (_is_list_of(DocumentType)(v) and len(v) > 0 and all(d.stage in STAGES for d in v)
            and len({d.code for d in v}) == len(v))


SHAPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "xindang_first_inspection_due": (lambda v: isinstance(v, date), "a date"),
    "xindang_routine_inspection_interval": (lambda v: isinstance(v, int) and v > 0, "a positive int (days)"),
    "xindang_special_inspection_triggers": (_is_list_of(str), "a list of str"),
    "xindang_inspection_escalation": (lambda v: isinstance(v, Escalation) and (not v.required or v.level in LEVELS), "an Escalation"),
    "xindang_inspection_checklist": (lambda v: _is_list_of(ChecklistItem)(v) and len(v) > 0, "a non-empty list of ChecklistItem"),
    "xindang_classify_risk": (_valid_suggestion, "a RiskSuggestion with known classes"),
    "xindang_overdue_bucket_edges": (_valid_edges, "a sorted list of distinct positive ints"),
    "xindang_document_types": (_valid_doc_types, "a non-empty list of DocumentType with distinct codes"),
    "xindang_required_documents": (_is_list_of(str), "a list of document type codes"),
    "xindang_retention_period": (lambda v: isinstance(v, Retention) and (v.years is None or v.years > 0), "a Retention"),
    "xindang_archive_number": (lambda v: isinstance(v, str) and 0 < len(v) <= 64, "a str of at most 64 characters"),
    "xindang_archive_inspection_cycle": (lambda v: isinstance(v, int) and v >= 0, "an int ≥ 0 (months)"),
    "xindang_responsibility_roles": (lambda v: isinstance(v, Responsibility), "a Responsibility"),
    "xindang_notice_lead_days": (lambda v: isinstance(v, int) and v >= 0, "an int ≥ 0 (days)"),
}


# --- settings ---------------------------------------------------------------------------

def _setting_label(spec: SettingSpec) -> str:
    locale = get_locale()
    return spec.label_en if locale is not None and locale.language == "en" else spec.label_zh


def _check_bounds(spec: SettingSpec, value: int, fail: Callable[[str], InvalidInput]) -> int:
    if value < spec.minimum:
        raise fail(_("must be at least %(minimum)d, got %(value)d", minimum=spec.minimum, value=value))
    if spec.maximum is not None and value > spec.maximum:
        raise fail(_("must be at most %(maximum)d, got %(value)d", maximum=spec.maximum, value=value))
    return value


def parse_setting(spec: SettingSpec, raw: Any) -> Any:
    """Turn a submitted or stored value into the setting's type; InvalidInput names the setting."""
    def fail(why: str) -> InvalidInput:
        return InvalidInput(_("Setting “%(label)s” (%(name)s): %(why)s",
                              label=_setting_label(spec), name=spec.name, why=why))
    if spec.type == "int":
        if isinstance(raw, bool):
            raise fail(_("expected a whole number"))
        if isinstance(raw, int):
            return _check_bounds(spec, raw, fail)
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise fail(_("expected a whole number, got “%(value)s”", value=raw)) from None
        return _check_bounds(spec, value, fail)
    if spec.type == "decimal":
        try:
            value = Decimal(str(raw).strip())
        except InvalidOperation:
            raise fail(_("expected a number, got “%(value)s”", value=raw)) from None
        if not value.is_finite():
            raise fail(_("expected a number, got “%(value)s”", value=raw))
        return value
    if spec.type == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on", "是"):
            return True
        if text in ("0", "false", "no", "off", "否", ""):
            return False
        raise fail(_("expected yes or no, got “%(value)s”", value=raw))
    if spec.type == "int_list":
        items = raw if isinstance(raw, list) else [x for x in str(raw).replace(",", ",").split(",") if x.strip()]
        try:
            values = [int(str(x).strip()) for x in items if not isinstance(x, bool)]
        except ValueError:
            raise fail(_("expected whole numbers separated by commas, got “%(value)s”", value=raw)) from None
        if not values or len(values) != len(items) or values != sorted(set(values)) or values[0] <= 0:
            raise fail(_("expected increasing positive whole numbers, got “%(value)s”", value=raw))
        for value in values:
            _check_bounds(spec, value, fail)
        return values
    text = str(raw).strip()
    if not text:
        raise fail(_("must not be empty"))
    return text


@dataclass
class UnionRules:
    """The rules of one union: its plugin manager and its effective settings."""

    plugin_name: str | None
    pm: pluggy.PluginManager
    settings: dict[str, Any]
    specs: dict[str, SettingSpec]

    def _call(self, hook: str, **kwargs: Any) -> Any:
        try:
            answer = getattr(self.pm.hook, hook)(settings=self.settings, **kwargs)
        except RulesConfigError:
            raise
        except Exception as exc:  # a plugin bug must name the plugin, not surface as a bare KeyError
            raise RulesConfigError(
                f"Rules plugin {self.plugin_name or 'baseline'!r}: {hook} raised {exc!r}") from exc
        check, expected = SHAPES[hook]
        if answer is None or not check(answer):
            raise RulesConfigError(
                f"Rules plugin {self.plugin_name or 'baseline'!r}: {hook} returned {answer!r}, expected {expected}")
        return answer

    def first_inspection_due(self, loan: LoanFacts) -> date:
        return self._call("xindang_first_inspection_due", loan=loan)

    def routine_inspection_interval(self, loan: LoanFacts) -> int:
        return self._call("xindang_routine_inspection_interval", loan=loan)

    def special_inspection_triggers(self, loan: LoanFacts) -> list[str]:
        return self._call("xindang_special_inspection_triggers", loan=loan)

    def inspection_escalation(self, loan: LoanFacts) -> Escalation:
        return self._call("xindang_inspection_escalation", loan=loan)

    def inspection_checklist(self) -> list[ChecklistItem]:
        return self._call("xindang_inspection_checklist")

    def classify_risk(self, loan: LoanFacts, as_of: date) -> RiskSuggestion:
        return self._call("xindang_classify_risk", loan=loan, as_of=as_of)

    def overdue_bucket_edges(self) -> list[int]:
        return self._call("xindang_overdue_bucket_edges")

    def document_types(self) -> list[DocumentType]:
        return self._call("xindang_document_types")

    def document_type(self, code: str) -> DocumentType | None:
        return next((d for d in self.document_types() if d.code == code), None)

    def required_documents(self, loan: LoanFacts, stage: str) -> list[str]:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        return self._call("xindang_required_documents", loan=loan, stage=stage)

    def retention_period(self, doc_type: DocumentType) -> Retention:
        return self._call("xindang_retention_period", doc_type=doc_type)

    def archive_number(self, parts: ArchiveNumberParts) -> str:
        return self._call("xindang_archive_number", parts=parts)

    def archive_inspection_cycle(self, level: str) -> int:
        return self._call("xindang_archive_inspection_cycle", level=level)

    def responsibility_roles(self, loan: LoanFacts) -> Responsibility:
        return self._call("xindang_responsibility_roles", loan=loan)

    def notice_lead_days(self, kind: str) -> int:
        return self._call("xindang_notice_lead_days", kind=kind)

    def bucket_of(self, days_past_due: int) -> str:
        """``M0`` for current, then ``M1`` … by the edges, and one bucket past the last edge."""
        if days_past_due <= 0:
            return "M0"
        for i, edge in enumerate(self.overdue_bucket_edges(), start=1):
            if days_past_due <= edge:
                return f"M{i}"
        return f"M{len(self.overdue_bucket_edges()) + 1}"

    def bucket_labels(self) -> list[tuple[str, str]]:
        """[(code, "1–30天"), …] for every bucket, M0 first."""
        edges = self.overdue_bucket_edges()
        labels = [("M0", "未逾期")]
        low = 1
        for i, edge in enumerate(edges, start=1):
            labels.append((f"M{i}", f"{low}–{edge}天"))
            low = edge + 1
        labels.append((f"M{len(edges) + 1}", f">{edges[-1]}天"))
        return labels


def setting_specs(pm: pluggy.PluginManager) -> dict[str, SettingSpec]:
    """Merge every plugin's settings; the province's spec wins over the baseline's."""
    merged: dict[str, SettingSpec] = {}
    plugin = ", ".join(repr(name) for name, _module in pm.list_name_plugin() if name != "baseline") or "'baseline'"
    # pluggy calls later-registered (province) first and trylast (baseline) last;
    # walking the answers backwards lets the province overwrite.
    for answer in reversed(pm.hook.xindang_default_settings()):
        if not _is_list_of(SettingSpec)(answer):
            raise RulesConfigError(
                f"Rules plugin {plugin}: xindang_default_settings returned {answer!r}, expected a list of SettingSpec")
        for spec in answer:
            merged[spec.name] = spec
    for spec in merged.values():
        try:
            parse_setting(spec, spec.default)
        except InvalidInput as exc:
            raise RulesConfigError(
                f"Rules plugin {plugin}: the default {spec.default!r} of setting {spec.name!r} "
                f"does not fit its own spec: {exc.message}") from exc
    return merged


def effective_settings(specs: Mapping[str, SettingSpec], saved: Mapping[str, Any] | None) -> dict[str, Any]:
    values = {name: spec.default for name, spec in specs.items()}
    for name, raw in (saved or {}).items():
        if name in specs:
            values[name] = parse_setting(specs[name], raw)
    return values


SAMPLE_LOANS = [
    LoanFacts("SAMPLE-1", "farm_credit", "credit", 5_000_000, 5_000_000, "self",
              date(2024, 3, 1), date(2025, 3, 1), "active", credit_rating="AA"),
    LoanFacts("SAMPLE-2", "mortgage", "mortgage", 80_000_000, 60_000_000, "entrusted",
              date(2023, 1, 10), date(2026, 1, 10), "overdue", days_past_due=120,
              interest_arrears_fen=150_000, credit_rating="BB", borrower_kind="enterprise",
              restructured_on=date(2024, 6, 1)),
    LoanFacts("SAMPLE-3", "joint_guarantee", "joint", 3_000_000, 0, "entrusted",
              date(2020, 4, 1), date(2021, 4, 1), "settled", credit_rating="unrated",
              settled_on=date(2021, 3, 30)),
]


def exercise(rules: UnionRules) -> None:
    """Call every hook once on sample values; any wrong shape raises RulesConfigError."""
    rules.inspection_checklist()
    rules.overdue_bucket_edges()
    types = rules.document_types()
    for doc_type in types:
        rules.retention_period(doc_type)
    known = {d.code for d in types}
    for loan in SAMPLE_LOANS:
        rules.first_inspection_due(loan)
        rules.routine_inspection_interval(loan)
        rules.special_inspection_triggers(loan)
        rules.inspection_escalation(loan)
        rules.classify_risk(loan, date(2024, 12, 31))
        rules.responsibility_roles(loan)
        for stage in STAGES:
            unknown = set(rules.required_documents(loan, stage)) - known
            if unknown:
                raise RulesConfigError(
                    f"Rules plugin {rules.plugin_name!r} requires document types it does not define: {sorted(unknown)}")
    rules.archive_number(ArchiveNumberParts("J001", "XD", 2024, "D30", "B01", 1))
    for level in LEVELS:
        rules.archive_inspection_cycle(level)
    for kind in ("repayment", "overdue"):
        rules.notice_lead_days(kind)


class RulesRegistry:
    """Plugin managers per union code, built at start-up and when a union changes plugin."""

    def __init__(self) -> None:
        self._managers: dict[str, tuple[str | None, pluggy.PluginManager, dict[str, SettingSpec]]] = {}

    def check_all_plugins(self, names: Iterable[str] | None = None) -> list[str]:
        """Load and exercise every available plugin (and the baseline alone)."""
        checked = []
        for name in [None, *(names if names is not None else sorted(available_plugins()))]:
            pm = build_manager(name)
            specs = setting_specs(pm)
            exercise(UnionRules(name, pm, effective_settings(specs, {}), specs))
            checked.append(name or "baseline")
        return checked

    def _entry(self, union_code: str, plugin_name: str | None):
        cached = self._managers.get(union_code)
        if cached is None or cached[0] != plugin_name:
            pm = build_manager(plugin_name)
            cached = (plugin_name, pm, setting_specs(pm))
            self._managers[union_code] = cached
        return cached

    def forget_unions(self) -> None:
        """Drop every union's manager (they are built again when asked for)."""
        self._managers.clear()

    def load_unions(self, provinces: Iterable[Any]) -> None:
        for province in provinces:
            self.for_union(province)

    def for_union(self, province: Any) -> UnionRules:
        """``province``: the union's Institution (anything with code, rules_plugin, rules_settings)."""
        plugin_name, pm, specs = self._entry(province.code, province.rules_plugin)
        return UnionRules(plugin_name, pm, effective_settings(specs, province.rules_settings), specs)

    def specs_for(self, plugin_name: str | None) -> dict[str, SettingSpec]:
        return setting_specs(build_manager(plugin_name))

    def implemented_hooks(self, plugin_name: str | None) -> list[str]:
        """The hooks the plugin itself implements (not the baseline)."""
        if not plugin_name:
            return []
        module = _load_module(plugin_name)
        return sorted(n for n in dir(module) if n.startswith("xindang_") and callable(getattr(module, n)))
