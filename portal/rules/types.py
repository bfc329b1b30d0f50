"""Plain values passed to and returned by rules plugins.

Plugins see no Flask and no database: the portal turns a loan into ``LoanFacts`` and the
union's settings into a plain mapping, and a plugin answers with one of the types below.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Mapping

STAGES = ("application", "disbursement", "post_loan", "settlement", "write_off")
RISK_CLASSES = ("normal", "special_mention", "substandard", "doubtful", "loss")
LEVELS = ("province", "city", "county", "branch")
SETTING_TYPES = ("int", "decimal", "str", "bool", "int_list")

Settings = Mapping[str, Any]


@dataclass(frozen=True)
class LoanFacts:
    """What a rule may know about a loan."""

    contract_no: str
    product: str
    guarantee_type: str
    amount_fen: int
    balance_fen: int
    payment_method: str          # "entrusted" (受托支付) or "self" (自主支付)
    disbursed_on: date
    maturity_on: date
    status: str                  # active, overdue, settled, written_off
    days_past_due: int = 0
    interest_arrears_fen: int = 0
    credit_rating: str = "unrated"
    borrower_kind: str = "individual"
    restructured_on: date | None = None
    settled_on: date | None = None
    risk_class: str = "normal"
    branch_level: str = "branch"


@dataclass(frozen=True)
class SettingSpec:
    """One union setting: a number or text the source regulation leaves to the union."""

    name: str
    type: str                    # one of SETTING_TYPES
    default: Any
    label_zh: str
    label_en: str
    source: str = ""             # article of the source text, or "baseline"
    # Bounds of an "int" setting (and of each number of an "int_list"). A value outside is
    # refused when saved: a union may be stricter than a national floor, never laxer.
    minimum: int = 0
    maximum: int | None = None

    def __post_init__(self) -> None:
        if self.type not in SETTING_TYPES:
            raise ValueError(f"setting {self.name}: unknown type {self.type!r}")


@dataclass(frozen=True)
class Escalation:
    """Whether an inspection report must also go above the branch, and to whom."""

    required: bool
    level: str | None = None         # "county", "city" or "province"
    department: str | None = None    # e.g. 信贷科
    reason: str = ""


@dataclass(frozen=True)
class RiskSuggestion:
    """A five-category suggestion: the lowest class the rules allow (``floor``), the class
    suggested, the reasons, and until when an upgrade is locked (restructuring)."""

    floor: str
    suggested: str
    reasons: tuple[str, ...] = ()
    locked_until: date | None = None


@dataclass(frozen=True)
class ChecklistItem:
    code: str
    label_zh: str
    label_en: str


@dataclass(frozen=True)
class DocumentType:
    code: str
    name_zh: str
    name_en: str
    stage: str                        # one of STAGES
    retention: str                    # "permanent", "D30" or "D10"


@dataclass(frozen=True)
class Retention:
    code: str                         # "Y" (永久), "D30", "D10"
    years: int | None                 # None means permanent


@dataclass(frozen=True)
class ArchiveNumberParts:
    """The pieces of a 档号 (DA/T 22-2015); the plugin decides how they are joined."""

    fonds: str
    category: str
    year: int
    retention_code: str
    institution_code: str
    item_no: int


@dataclass(frozen=True)
class RoleAt:
    role: str                         # a portal role code, e.g. "branch_director"
    level: str                        # where that person sits: branch, county, city, province


@dataclass(frozen=True)
class Responsibility:
    """Who answers for a loan under the union's rules."""

    acting: tuple[RoleAt, ...]                 # 经办责任人 / 直接责任人
    primary: tuple[RoleAt, ...]                # 主责任人
    inspection_sign_off: tuple[RoleAt, ...]    # who may sign off an inspection report
    write_off_approval: tuple[RoleAt, ...]     # who may approve a write-off
    basis: str = ""                            # the article this follows
    notes: tuple[str, ...] = field(default=())
