"""The loan file's columns (portal/loans/importing/columns.py): COLUMNS is the one description
of each column, and docs/import-format.md describes the same columns."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from portal.labels import LABELS
from portal.loans.importing.columns import COLUMNS, FINDS, TERM, UPDATE
from portal.loans.importing.report import CHANGE_ORDER

DOC = Path(__file__).resolve().parents[2] / "docs" / "import-format.md"


def doc_column_table() -> dict[str, list[str]]:
    """The rows of the docs' column table by code name: Chinese header, required, other names, format."""
    section = DOC.read_text(encoding="utf-8").split("\n## Columns\n", 1)[1]
    lines = section.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("|"))
    rows = list(itertools.takewhile(lambda line: line.startswith("|"), lines[start:]))
    assert rows[0].startswith("| Chinese header | Code name | Required | Also accepted |"), rows[0]
    table: dict[str, list[str]] = {}
    for line in rows[2:]:
        header, code, required, aliases, format_ = (cell.strip() for cell in line.strip().strip("|").split("|"))
        assert code not in table, f"{code} is in the docs' table twice"
        table[code.strip("`")] = [header, required, aliases, format_]
    return table


def test_docs_table_has_every_column_and_no_other():
    table = doc_column_table()
    assert [key for key in table if key not in {c.key for c in COLUMNS}] == [], "documented, not in COLUMNS"
    assert [c.key for c in COLUMNS if c.key not in table] == [], "in COLUMNS, not documented"
    assert list(table) == [c.key for c in COLUMNS], "the docs list the columns in another order"


@pytest.mark.parametrize("column", COLUMNS, ids=lambda c: c.key)
def test_docs_describe_the_column_as_COLUMNS_does(column):
    header, required, aliases, format_ = doc_column_table()[column.key]
    assert header == column.header_zh
    assert required == ("yes" if column.required else "no")
    assert aliases == ("、".join(column.aliases) or "—")
    if column.kind == "text" and column.max_length:
        assert f"Up to {column.max_length} characters" in format_
    doc = DOC.read_text(encoding="utf-8")
    for code in column.names or {}:
        assert f"`{code}`" in doc, code


@pytest.mark.parametrize("column", COLUMNS, ids=lambda c: c.key)
def test_column_names_what_it_fills(column):
    """Each column fills a model attribute (a misspelt field fails here, not on the first import)."""
    assert column.model_column.name == column.attr
    assert column.reimport in (FINDS, TERM, UPDATE)
    assert not column.keep_when_blank or column.reimport == UPDATE
    if column.kind == "choice":
        assert column.names and column.labels in LABELS


def test_changes_are_listed_by_fields_of_columns():
    assert set(CHANGE_ORDER) <= {c.field for c in COLUMNS}
