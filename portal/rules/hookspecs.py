"""The rules contract between the portal and a provincial union's plugin.

Every hook is called with keyword arguments only. A plugin may implement any subset and may
accept fewer arguments than the spec lists. All hooks but ``xindang_default_settings`` are
``firstresult``: the province's answer wins; return ``None`` to defer to the baseline, which
is registered ``trylast`` and answers every hook. ``settings`` is the union's effective
settings (defaults from every plugin, overridden by what the union saved).

Each docstring's first line says what the hook returns; ``tests/rules/test_hookspecs.py``
fails when a hook has no docstring or no test.
"""
from __future__ import annotations

from datetime import date

import pluggy

from .types import (ArchiveNumberParts, ChecklistItem, DocumentType, Escalation, LoanFacts,
                    Responsibility, Retention, RiskSuggestion, Settings, SettingSpec)

PROJECT = "xindang"
hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def xindang_default_settings() -> list[SettingSpec]:
    """Return the settings this plugin reads, with their defaults (a list of SettingSpec).

    Called on every plugin; a province plugin's spec replaces the baseline's spec of the same
    name, so a province can change a default or add settings of its own.
    """


@hookspec(firstresult=True)
def xindang_first_inspection_due(loan: LoanFacts, settings: Settings) -> date | None:
    """Return the date by which the first inspection (首次检查/回访) must be done."""


@hookspec(firstresult=True)
def xindang_routine_inspection_interval(loan: LoanFacts, settings: Settings) -> int | None:
    """Return the longest allowed gap in days between routine inspections of this loan."""


@hookspec(firstresult=True)
def xindang_special_inspection_triggers(loan: LoanFacts, settings: Settings) -> list[str] | None:
    """Return the reasons a special inspection (特别检查) is due now; an empty list for none."""


@hookspec(firstresult=True)
def xindang_inspection_escalation(loan: LoanFacts, settings: Settings) -> Escalation | None:
    """Return whether an inspection report on this loan goes above the branch, and to whom."""


@hookspec(firstresult=True)
def xindang_inspection_checklist(settings: Settings) -> list[ChecklistItem] | None:
    """Return the findings checklist an inspection records, in order."""


@hookspec(firstresult=True)
def xindang_classify_risk(loan: LoanFacts, as_of: date, settings: Settings) -> RiskSuggestion | None:
    """Return the five-category floor, the suggested class and the reasons, as of a date."""


@hookspec(firstresult=True)
def xindang_overdue_bucket_edges(settings: Settings) -> list[int] | None:
    """Return the upper day-edges of the overdue buckets M1, M2, …; beyond the last is one more bucket."""


@hookspec(firstresult=True)
def xindang_document_types(settings: Settings) -> list[DocumentType] | None:
    """Return every document type of a credit file, with its stage and retention."""


@hookspec(firstresult=True)
def xindang_required_documents(loan: LoanFacts, stage: str, settings: Settings) -> list[str] | None:
    """Return the document type codes a complete file holds for this loan at this stage."""


@hookspec(firstresult=True)
def xindang_retention_period(doc_type: DocumentType, settings: Settings) -> Retention | None:
    """Return how long a document of this type is kept (None years means permanently)."""


@hookspec(firstresult=True)
def xindang_archive_number(parts: ArchiveNumberParts, settings: Settings) -> str | None:
    """Return the archive number (档号) formed from its parts."""


@hookspec(firstresult=True)
def xindang_archive_inspection_cycle(level: str, settings: Settings) -> int | None:
    """Return how many months may pass between archive inspections at this level (0: none required)."""


@hookspec(firstresult=True)
def xindang_responsibility_roles(loan: LoanFacts, settings: Settings) -> Responsibility | None:
    """Return who is acting and primary responsible, who signs off inspections and approves write-offs."""


@hookspec(firstresult=True)
def xindang_notice_lead_days(kind: str, settings: Settings) -> int | None:
    """Return days before maturity ("repayment") or after a missed payment ("overdue") to send a notice."""
