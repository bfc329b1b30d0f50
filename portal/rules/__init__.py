"""Province rules as pluggy plugins. Plugins import ``hookimpl`` and the types from here."""
import pluggy

from .types import (ArchiveNumberParts, ChecklistItem, DocumentType, Escalation, LoanFacts,  # noqa: F401
                    Responsibility, Retention, RiskSuggestion, RoleAt, SettingSpec)

hookimpl = pluggy.HookimplMarker("xindang")
