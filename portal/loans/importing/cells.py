"""Reading one cell of the loan file into the value a column means: amounts to integer fen,
rates to Decimal percent, dates, codes of coded columns, ID numbers (and their check digits).

A cell that cannot be read raises ``CellError`` with the reason the report shows. What does not
live here: which column is which (``columns``) and whether values agree with each other or with
the database (``validate``).
"""
from __future__ import annotations

import math
import re
import unicodedata
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _

from ..models import BorrowerKind
from .columns import COLUMN, COLUMNS, ImportColumn


class CellError(ValueError):
    pass


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def cell_text(value: Any) -> str:
    """A cell as the text it shows: 12.0 is "12", a date-time cell its date."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, datetime):
        value = value.date()
    return str(value).strip()


MONEY_RE = re.compile(r"^(\d{1,3}(,\d{3})+|\d+)(\.\d{1,2})?$")
DECIMAL_RE = re.compile(r"^\d+(\.\d+)?$")
DATE_RES = [
    re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?$"),
    re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
]
MAX_YUAN = Decimal("99999999999.99")
EXCEL_EPOCH = date(1899, 12, 30)


def _exact_decimal(value: Any) -> Decimal:
    """A number cell as the decimal the user typed: Excel keeps doubles, and the shortest repr
    of a double is the decimal that was entered (never a binary artefact like 0.1000000001)."""
    if isinstance(value, bool):
        raise CellError(_("Expected a number."))
    if isinstance(value, int):
        return Decimal(value)
    if not math.isfinite(value):
        raise CellError(_("Expected a number."))
    return Decimal(repr(value))


def parse_money(value: Any) -> int:
    """Yuan to integer fen, exactly."""
    if isinstance(value, (int, float)):
        amount = _exact_decimal(value)
        if amount < 0:
            raise CellError(_("Must not be negative."))
    else:
        text = re.sub(r"\s", "", unicodedata.normalize("NFKC", str(value)))
        text = text.removeprefix("¥").removesuffix("元")
        if text == "-":  # how Excel's accounting format shows zero, kept when saved as CSV
            return 0
        if text.startswith("-") and MONEY_RE.match(text[1:]):
            raise CellError(_("Must not be negative."))
        if not MONEY_RE.match(text):
            raise CellError(_("%(value)s is not an amount in yuan (digits, at most two decimals, e.g. "
                              "50000.00 or 50,000.00).", value=str(value)[:40]))
        amount = Decimal(text.replace(",", ""))
    fen = amount * 100
    if fen != fen.to_integral_value():
        raise CellError(_("%(value)s has more than two decimals.", value=str(value)[:40]))
    if amount > MAX_YUAN:
        raise CellError(_("%(value)s is too large for a loan amount.", value=str(value)[:40]))
    return int(fen)


def parse_rate(value: Any, percent_cell: bool) -> Decimal:
    if isinstance(value, (int, float)):
        rate = _exact_decimal(value)
        if percent_cell:
            rate *= 100
    else:
        text = re.sub(r"\s", "", unicodedata.normalize("NFKC", str(value))).removesuffix("%")
        if not DECIMAL_RE.match(text):
            raise CellError(_("%(value)s is not a rate in percent (e.g. 5.25).", value=str(value)[:40]))
        rate = Decimal(text)
    if rate < 0:
        raise CellError(_("Must not be negative."))
    if rate > 100:
        raise CellError(_("%(value)s%% a year is not a plausible rate; give the rate in percent.",
                          value=str(rate.normalize())))
    if rate != rate.quantize(Decimal("0.0001")):
        raise CellError(_("A rate has at most four decimals."))
    return rate.quantize(Decimal("0.0001"))


def parse_int(value: Any) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = _exact_decimal(value)
    else:
        text = re.sub(r"[\s,]", "", unicodedata.normalize("NFKC", str(value)))
        if text == "-":  # Excel's accounting format for zero
            return 0
        if text.startswith("-") and text[1:].isdigit():
            raise CellError(_("Must not be negative."))
        if not text.isdigit():
            raise CellError(_("%(value)s is not a whole number.", value=str(value)[:40]))
        number = Decimal(text)
    if number < 0:
        raise CellError(_("Must not be negative."))
    if number != number.to_integral_value():
        raise CellError(_("%(value)s is not a whole number.", value=str(value)[:40]))
    if number > 100_000:
        raise CellError(_("%(value)s is too large.", value=str(value)[:40]))
    return int(number)


def parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        day = value.date()
    elif isinstance(value, date):
        day = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        # A number in a date column: 20240301 typed as a number, or an unformatted Excel serial.
        if float(value).is_integer() and 19000101 <= value <= 22001231:
            return parse_date(str(int(value)))
        if float(value).is_integer() and 18000 <= value <= 110000:
            day = EXCEL_EPOCH + timedelta(days=int(value))
        else:
            raise CellError(_("%(value)s is not a date (use YYYY-MM-DD).", value=str(value)[:40]))
    else:
        text = unicodedata.normalize("NFKC", str(value)).strip()
        for pattern in DATE_RES:
            match = pattern.match(text)
            if match:
                try:
                    day = date(*(int(g) for g in match.groups()))
                except ValueError:
                    raise CellError(_("%(value)s is not a valid date.", value=text[:40])) from None
                break
        else:
            raise CellError(_("%(value)s is not a date (use YYYY-MM-DD).", value=text[:40]))
    if not 1950 <= day.year <= 2200:
        raise CellError(_("%(value)s is not a plausible date.", value=day.isoformat()))
    return day


def _norm_choice(text: str) -> str:
    return re.sub(r"\s", "", unicodedata.normalize("NFKC", text)).lower()


CHOICE_MAPS: dict[str, dict[str, str]] = {
    c.key: {_norm_choice(n): code for code, names in c.names.items() for n in (code, *names)}
    for c in COLUMNS if c.names
}


def parse_choice(key: str, value: Any) -> str:
    text = cell_text(value)
    code = CHOICE_MAPS[key].get(_norm_choice(text))
    if code is None:
        shown = "、".join(name for name, _code in COLUMN[key].shown_values)
        raise CellError(_("Unknown value %(value)s; use one of: %(names)s.", value=text[:40], names=shown))
    return code


RESIDENT_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def resident_id_valid(text: str) -> bool:
    """GB 11643-1999: 17 digits, a valid birth date, and the ISO 7064 MOD 11-2 check character."""
    if not re.fullmatch(r"\d{17}[\dX]", text):
        return False
    try:
        date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return False
    total = sum(int(d) * w for d, w in zip(text[:17], RESIDENT_WEIGHTS))
    return "10X98765432"[total % 11] == text[17]


def uscc_valid(text: str) -> bool:
    """GB 32100-2015 unified social credit code: 18 characters with a MOD 31 check character."""
    if len(text) != 18 or any(ch not in USCC_CHARS for ch in text):
        return False
    total = sum(USCC_CHARS.index(ch) * w for ch, w in zip(text[:17], USCC_WEIGHTS))
    return USCC_CHARS[(31 - total % 31) % 31] == text[17]


def kind_of_id_number(id_number: str) -> str:
    """Borrower kind when the file gives none: a credit code that is not a resident ID is an enterprise."""
    if uscc_valid(id_number) and not resident_id_valid(id_number):
        return BorrowerKind.ENTERPRISE.value
    return BorrowerKind.INDIVIDUAL.value


def parse_id_number(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise CellError(_("The ID number is stored as a number, which loses digits in Excel; format the "
                          "column as text and type it again."))
    text = re.sub(r"\s", "", unicodedata.normalize("NFKC", str(value))).upper()
    if re.fullmatch(r"\d(\.\d+)?E\+\d+", text):
        raise CellError(_("The ID number was turned into a number (%(value)s) by Excel and lost digits; "
                          "format the column as text and type it again.", value=text))
    return text


def parse_cell(column: ImportColumn, value: Any, percent_cell: bool) -> Any:
    """A non-blank cell as the value its column means; ``percent_cell``: an XLSX cell formatted as percent."""
    kind = column.kind
    if kind == "money":
        return parse_money(value)
    if kind == "rate":
        return parse_rate(value, percent_cell)
    if kind == "int":
        return parse_int(value)
    if kind == "date":
        return parse_date(value)
    if kind == "choice":
        return parse_choice(column.key, value)
    if kind == "id_number":
        return parse_id_number(value)
    if kind in ("institution", "user"):
        return unicodedata.normalize("NFKC", cell_text(value))
    text = cell_text(value) if column.keep_spaces else re.sub(r"\s+", " ", cell_text(value))
    if column.max_length and len(text) > column.max_length:
        raise CellError(_("Longer than %(n)d characters.", n=column.max_length))
    return text
