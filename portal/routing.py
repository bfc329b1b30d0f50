"""Ids in URLs and forms: the largest id a record can have, the ``<int:…>`` converter that keeps
larger numbers from reaching the database, and the parsing of an id from a query parameter or
form field."""
from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter

# The largest id a record can have: primary keys are INTEGER columns, 32-bit on PostgreSQL.
MAX_ID = 2**31 - 1


def _digits_at_most(limit: int) -> str:
    """A regular expression matching the decimal numbers from 0 to ``limit`` in ASCII digits
    (``\\d`` would take other scripts' digits too; leading zeros within ``limit``'s length
    allowed): shorter numbers, then each digit of ``limit`` lowered once with any digits after
    it, then ``limit`` itself."""
    top = str(limit)
    choices = [f"[0-9]{{1,{len(top) - 1}}}"] if len(top) > 1 else []
    for i, digit in enumerate(top):
        if digit != "0":
            rest = len(top) - i - 1
            choices.append(f"{top[:i]}[0-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    choices.append(top)
    return "(?:" + "|".join(choices) + ")"


class BoundedIntConverter(IntegerConverter):
    """``<int:…>`` that matches only ids a primary key column can hold (up to ``MAX_ID``): any
    other number names no record (404), instead of reaching the database, which refuses it
    ("integer out of range", a 500 on PostgreSQL). The bound is in the pattern, not only in
    ``max``: werkzeug checks ``max`` after the method, so a POST to ``/x/<huge>`` where the
    same path also has a GET rule would be answered 405 instead of 404."""

    def __init__(self, map, *args: Any, **kwargs: Any) -> None:  # noqa: A002 - werkzeug's name
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)
        if not self.signed and self.max == MAX_ID:
            self.regex = _digits_at_most(MAX_ID)


def parse_id(raw: Any) -> int | None:
    """The id a query parameter or form field names, or None if no record can have it: not
    plain ASCII digits ("²" passes ``str.isdigit`` but not ``int``), 0, or beyond ``MAX_ID``
    (PostgreSQL refuses such a number next to an INTEGER column: a 500 instead of "no such")."""
    text = str(raw if raw is not None else "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_ID)):
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None
