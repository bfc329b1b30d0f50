"""What an import tells its user: every problem by spreadsheet row and column header, the
counts, and each stored loan's changes (before → after). The page, the command (text and
``--json``) and the import's audit event read it.

What does not live here: finding the problems (``validate``) and the changes (``apply``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from .columns import COLUMN_OF_FIELD, COLUMNS


@dataclass
class ImportProblem:
    row: int | None       # spreadsheet row (header = 1); None for a problem with the whole file
    column: str | None    # the header as written in the file (or the expected header)
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "reason": self.reason}


# The order a loan's changes are listed in (the page, the command, --json, the audit event), as
# it has always been: the loan's state, its people, its purpose; a field not named here comes
# after them in column order (the borrower's phone, address and rating).
CHANGE_ORDER = ("balance_fen", "days_past_due", "interest_arrears_fen", "status", "risk_class", "settled_on",
                "restructured_on", "officer", "investigator", "reviewer", "approver", "purpose")
_CHANGE_RANK = {name: rank for rank, name in enumerate(
    [*CHANGE_ORDER, *(c.field for c in COLUMNS if c.field not in CHANGE_ORDER)])}


def in_listing_order(changes: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return dict(sorted(changes.items(), key=lambda item: _CHANGE_RANK[item[0]]))


@dataclass
class LoanChange:
    row: int
    contract_no: str
    changes: dict[str, list[Any]]  # field -> [stored, imported]

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "contract_no": self.contract_no, "changes": self.changes}


@dataclass
class ImportReport:
    filename: str
    checksum: str
    dry_run: bool = False
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    borrowers_created: int = 0
    borrowers_updated: int = 0
    problems: list[ImportProblem] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    changes: list[LoanChange] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def written(self) -> bool:
        return self.ok and not self.dry_run

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "written": self.written, "dry_run": self.dry_run, "file": self.filename,
            "sha256": self.checksum, "rows": self.rows, "created": self.created, "updated": self.updated,
            "unchanged": self.unchanged, "borrowers_created": self.borrowers_created,
            "borrowers_updated": self.borrowers_updated, "ignored_columns": self.ignored_columns,
            "problems": [p.as_dict() for p in self.problems],
            "changes": [c.as_dict() for c in self.changes],
        }

    def change_lines(self, limit: int | None = None) -> Iterator[tuple[int, str, str, str, str]]:
        """(row, contract, field label, stored, imported) for display, the first ``limit`` loans."""
        for change in self.changes[:limit]:
            for name, (old, new) in change.changes.items():
                column = COLUMN_OF_FIELD[name]
                yield change.row, change.contract_no, str(column.label), column.show(old), column.show(new)
