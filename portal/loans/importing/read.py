"""Reading the loan file: its type told by its content (XLSX, or CSV in UTF-8, UTF-16 or GBK
with comma, tab or semicolon), then its header row and its rows of raw cell values.

A file that cannot be read as a whole raises ``FileRejected``. What does not live here: what a
cell means (``cells``) and checking the rows (``validate``).
"""
from __future__ import annotations

import codecs
import csv
import io
import unicodedata
import zipfile
from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask_babel import gettext as _

from .cells import is_blank
from .columns import COLUMN, REQUIRED, column_key


class FileRejected(Exception):
    """The file as a whole cannot be imported (type, encoding, header, size)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Sheet:
    header_row: int
    headers: list[Any]
    rows: list[tuple[int, list[Any]]]   # (spreadsheet row number, cell values)
    percent_cells: set[tuple[int, int]]  # (row, column index) of XLSX cells formatted as percent


MAGIC = [
    (b"\x89PNG", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"%PDF", "PDF"),
    (b"\xd0\xcf\x11\xe0", "OLE"), (b"\x1f\x8b", "gzip"), (b"Rar!", "RAR"), (b"7z\xbc\xaf", "7z"),
]
HEADER_SEARCH_ROWS = 10
MAX_UNPACKED_BYTES = 2 * 1024 ** 3  # a 200,000-row ledger unpacks to a few hundred MB


def read_sheet(data: bytes, max_rows: int) -> Sheet:
    """Tell the file type from its content and return its header and data rows."""
    if not data or not data.strip():
        raise FileRejected(_("The file is empty."))
    for magic, name in MAGIC:
        if data.startswith(magic):
            if name == "OLE":
                raise FileRejected(_("This is an old Excel 97–2003 (.xls) file; save it as .xlsx or CSV and "
                                     "import that."))
            raise FileRejected(_("This is a %(kind)s file, not a CSV or XLSX file.", kind=name))
    if data.startswith(b"PK\x03\x04"):
        return _read_xlsx(data, max_rows)
    text = _decode_text(data)
    start = text.lstrip("\ufeff \t\r\n")[:1024].lower()
    if start.startswith("<") and ("<html" in start or "<table" in start):
        # Some core systems export a web page under an .xls name.
        raise FileRejected(_("This is a web page (HTML), not a CSV or XLSX file; open it in Excel and save it "
                             "as .xlsx."))
    return _read_csv(text, max_rows)


def _decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM (Excel's "Unicode text"), else GB18030/GBK."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings = ["utf-16"]
    elif data.startswith(codecs.BOM_UTF8):
        encodings = ["utf-8-sig"]
    else:
        encodings = ["utf-8", "gb18030"]
    for encoding in encodings:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _looks_binary(text):
            break
        return text.rstrip("\x1a")
    raise FileRejected(_("This file is not a CSV or XLSX file: its content is neither a spreadsheet nor "
                         "text in UTF-8 or GBK."))


def _looks_binary(text: str) -> bool:
    sample = text[:65536].rstrip("\x1a")
    if "\x00" in sample:
        return True
    controls = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in "\t\r\n")
    return controls > max(2, len(sample) // 200)


def _read_csv(text: str, max_rows: int) -> Sheet:
    first_line = text.lstrip("\ufeff").split("\n", 1)[0]
    delimiter = max([",", "\t", ";"], key=first_line.count)
    if first_line.count(delimiter) == 0:
        delimiter = ","
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=delimiter)
    rows: list[tuple[int, list[Any]]] = []
    try:
        for number, cells in enumerate(reader, start=1):
            if any(not is_blank(c) for c in cells):
                rows.append((number, cells))
                if len(rows) > max_rows + HEADER_SEARCH_ROWS:
                    break
    except csv.Error as exc:
        raise FileRejected(_("Line %(line)d cannot be read as CSV: %(error)s", line=reader.line_num,
                             error=str(exc))) from None
    return _split_header(rows, set(), max_rows)


def _read_xlsx(data: bytes, max_rows: int) -> Sheet:
    import openpyxl

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except zipfile.BadZipFile:
        raise FileRejected(_("This file is not a CSV or XLSX file: it is a damaged ZIP archive.")) from None
    if "xl/workbook.xml" not in {entry.filename for entry in entries}:
        raise FileRejected(_("This is a ZIP archive but not an Excel workbook (.xlsx)."))
    if sum(entry.file_size for entry in entries) > MAX_UNPACKED_BYTES:
        raise FileRejected(_("The workbook is too large once unpacked; split it into smaller files."))
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to parse an untrusted workbook
        current_app.logger.info("XLSX import refused: %s", exc)
        raise FileRejected(_("The Excel workbook cannot be read; open it in Excel, save it again as .xlsx "
                             "and retry.")) from None
    rows: list[tuple[int, list[Any]]] = []
    percent: set[tuple[int, int]] = set()
    try:
        if not workbook.worksheets:
            raise FileRejected(_("The workbook has no sheet."))
        sheet = workbook.worksheets[0]
        for number, cells in enumerate(sheet.iter_rows(max_col=200), start=1):
            values = []
            for index, cell in enumerate(cells):
                value = cell.value
                if isinstance(value, (int, float)) and "%" in (getattr(cell, "number_format", None) or ""):
                    percent.add((number, index))
                values.append(value)
            if any(not is_blank(c) for c in values):
                rows.append((number, values))
                if len(rows) > max_rows + HEADER_SEARCH_ROWS:
                    break
    except FileRejected:
        raise
    except Exception as exc:  # noqa: BLE001
        current_app.logger.info("XLSX import refused: %s", exc)
        raise FileRejected(_("The Excel workbook cannot be read; open it in Excel, save it again as .xlsx "
                             "and retry.")) from None
    finally:
        workbook.close()
    return _split_header(rows, percent, max_rows)


def _split_header(rows: list[tuple[int, list[Any]]], percent: set[tuple[int, int]], max_rows: int) -> Sheet:
    """The header is the first row, among the first few non-blank ones, naming at least three
    known columns; a title row above it (common in exported ledgers) is skipped. ``rows`` holds
    only non-blank rows, each with its spreadsheet row number."""
    header_at = None
    for position, (number, cells) in enumerate(rows[:HEADER_SEARCH_ROWS]):
        known = {column_key(c) for c in cells if not is_blank(c)} - {None}
        if len(known) >= 3:
            header_at = position
            break
    if header_at is None:
        if not rows:
            raise FileRejected(_("The file is empty."))
        raise FileRejected(_("No header row found: the first row must name the columns, e.g. %(names)s.",
                             names="、".join(COLUMN[k].header_zh for k in REQUIRED[:4])))
    number, headers = rows[header_at]
    data_rows = rows[header_at + 1:]
    if len(data_rows) > max_rows:
        raise FileRejected(_("The file has more than %(max)d loan rows; split it into smaller files.", max=max_rows))
    if not data_rows:
        raise FileRejected(_("The file has a header row but no loans."))
    return Sheet(number, list(headers), data_rows, percent)
