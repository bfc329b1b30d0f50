"""Display names of the codes stored in the database, and formatting filters for templates."""
from __future__ import annotations

from datetime import datetime

from flask_babel import lazy_gettext as _l

from .timeutil import to_local

LABELS: dict[str, dict[str, object]] = {
    "level": {"province": _l("Provincial union"), "city": _l("City office"), "county": _l("County union"),
              "branch": _l("Branch")},
    "role": {"admin": _l("System administrator"), "union_admin": _l("Union administrator"),
             "loan_officer": _l("Loan officer"), "post_loan_officer": _l("Post-loan officer"),
             "branch_director": _l("Branch director"), "archivist": _l("Archivist"), "auditor": _l("Auditor")},
    "borrower_kind": {"individual": _l("Individual"), "enterprise": _l("Enterprise")},
    "product": {"farm_credit": _l("Farm-household credit loan"), "joint_guarantee": _l("Joint-guarantee loan"),
                "multi_guarantee": _l("Multi-guarantor loan"), "mortgage": _l("Mortgage loan"),
                "pledge": _l("Pledge loan"), "guaranteed": _l("Guaranteed loan"),
                "working_capital": _l("Enterprise working-capital loan"), "fixed_assets": _l("Fixed-asset loan"),
                "consumer": _l("Personal consumer loan")},
    "guarantee_type": {"credit": _l("Credit"), "guarantee": _l("Guarantee"), "joint": _l("Joint guarantee"),
                       "mortgage": _l("Mortgage"), "pledge": _l("Pledge")},
    "payment_method": {"entrusted": _l("Entrusted payment"), "self": _l("Self payment")},
    "loan_status": {"active": _l("Outstanding"), "overdue": _l("Overdue"), "settled": _l("Settled"),
                    "written_off": _l("Written off")},
    "risk_class": {"normal": _l("Normal"), "special_mention": _l("Special mention"),
                   "substandard": _l("Substandard"), "doubtful": _l("Doubtful"), "loss": _l("Loss")},
    "stage": {"application": _l("Application"), "disbursement": _l("Disbursement"), "post_loan": _l("Post-loan"),
              "settlement": _l("Settlement"), "write_off": _l("Write-off")},
    "credit_rating": {"unrated": _l("Unrated")},
}


def register_labels(kinds: dict[str, dict[str, object]]) -> None:
    """Add a domain package's own codes (archive states, inspection kinds, …): kind → code →
    name. Called for each package by ``create_app``."""
    for kind, mapping in kinds.items():
        LABELS.setdefault(kind, {}).update(mapping)


def label(code: str | None, kind: str) -> str:
    if code is None:
        return ""
    return str(LABELS.get(kind, {}).get(code, code))


def choices(kind: str) -> list[tuple[str, str]]:
    return [(code, str(text)) for code, text in LABELS[kind].items()]


def yuan(fen: int | None) -> str:
    """Integer fen to a yuan amount with thousands separators: 123456 → 1,234.56."""
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def localtime(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    local = to_local(value)
    return local.strftime(fmt) if local else ""
