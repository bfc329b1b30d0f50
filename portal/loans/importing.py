"""Importing loans from CSV and XLSX files, all or nothing.

What lives here: the column definitions (the one source for the parser, the import page's
format table and ``docs/import-format.md``), reading a file whose type is told by its content,
validating every cell and every row against the database, and writing the whole file in one
transaction. A file with any problem writes nothing; the report names every problem by the
row number the user sees in the spreadsheet (the header is row 1) and the column header as
written in the file.

What does not live here: the page (``views.import_page``) and the command
(``flask loans import``), which only call ``import_loans`` and commit or roll back.

Re-importing a file updates a loan found by its contract number: balance, days past due,
interest in arrears, status, risk class, settlement and restructuring dates, the managing
officer and empty origination people; the loan's identity and terms (borrower, branch, amount,
dates, product, guarantee, rate, payment method) must agree with what is stored.
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import math
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Iterable, Iterator

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import joinedload, selectinload
from wtforms import BooleanField, SubmitField

from ..accounts.models import Institution, Level, User
from ..accounts.scope import LENDING_STAFF, check, is_global
from ..audit_trail import record_event
from ..extensions import db
from ..labels import label, yuan
from ..timeutil import local_today
from .models import (CREDIT_RATINGS, UNRATED, Borrower, BorrowerKind, GuaranteeType, Loan, LoanStatus,
                     PaymentMethod, Product, RiskClass)

# ---------------------------------------------------------------------------------------------
# Column definitions: the single source for parsing, the page's format table and the docs.
# ---------------------------------------------------------------------------------------------

# Accepted spellings of each code, Chinese names first (the first one is the one shown).
PRODUCT_NAMES: dict[str, tuple[str, ...]] = {
    Product.FARM_CREDIT.value: ("农户小额信用贷款", "小额信用贷款", "农户小额信用"),
    Product.JOINT_GUARANTEE.value: ("农户联保贷款", "联保贷款"),
    Product.MULTI_GUARANTEE.value: ("一户多保贷款", "一户多保", "农户一户多保贷款"),
    Product.MORTGAGE.value: ("抵押贷款",),
    Product.PLEDGE.value: ("质押贷款",),
    Product.GUARANTEED.value: ("保证贷款", "其他保证贷款"),
    Product.WORKING_CAPITAL.value: ("企业流动资金贷款", "流动资金贷款"),
    Product.FIXED_ASSETS.value: ("固定资产贷款",),
    Product.CONSUMER.value: ("个人消费贷款", "消费贷款"),
}
GUARANTEE_NAMES = {
    GuaranteeType.CREDIT.value: ("信用",), GuaranteeType.GUARANTEE.value: ("保证",),
    GuaranteeType.JOINT.value: ("联保",), GuaranteeType.MORTGAGE.value: ("抵押",),
    GuaranteeType.PLEDGE.value: ("质押",),
}
KIND_NAMES = {
    BorrowerKind.INDIVIDUAL.value: ("个人", "自然人", "农户"),
    BorrowerKind.ENTERPRISE.value: ("企业", "公司", "单位"),
}
PAYMENT_NAMES = {PaymentMethod.ENTRUSTED.value: ("受托支付",), PaymentMethod.SELF.value: ("自主支付",)}
STATUS_NAMES = {
    LoanStatus.ACTIVE.value: ("正常", "在贷"), LoanStatus.OVERDUE.value: ("逾期",),
    LoanStatus.SETTLED.value: ("结清", "已结清"), LoanStatus.WRITTEN_OFF.value: ("核销", "已核销"),
}
RISK_NAMES = {
    RiskClass.NORMAL.value: ("正常",), RiskClass.SPECIAL_MENTION.value: ("关注",),
    RiskClass.SUBSTANDARD.value: ("次级",), RiskClass.DOUBTFUL.value: ("可疑",),
    RiskClass.LOSS.value: ("损失",),
}
RATING_NAMES = {**{r: (r,) for r in CREDIT_RATINGS}, UNRATED: ("未评级", "无")}


@dataclass(frozen=True)
class ImportColumn:
    """One column of the loan file: its code name, its Chinese header, how its cells are read."""

    key: str
    header_zh: str
    label: Any  # lazy English label, shown translated
    kind: str   # text, id_number, choice, money, rate, int, date, institution, user
    required: bool
    help: Any   # lazy: format and what a blank cell means
    example: str
    aliases: tuple[str, ...] = ()
    names: dict[str, tuple[str, ...]] | None = None  # choice columns: code -> accepted names
    max_length: int | None = None

    @property
    def shown_values(self) -> list[tuple[str, str]]:
        """(Chinese name, code) of every accepted value of a choice column."""
        return [(names[0], code) for code, names in (self.names or {}).items()]


COLUMNS: list[ImportColumn] = [
    ImportColumn("contract_no", "合同编号", _l("Contract number"), "text", True,
                 _l("Unique across the portal; a loan already stored under this number is updated."),
                 "HT-2024-0001", ("合同号", "借款合同编号", "贷款合同号", "合同号码"), max_length=64),
    ImportColumn("borrower_name", "借款人", _l("Borrower"), "text", True,
                 _l("Name of the person or enterprise."), "张三",
                 ("借款人名称", "借款人姓名", "客户名称", "姓名"), max_length=128),
    ImportColumn("borrower_kind", "借款人类型", _l("Borrower kind"), "choice", False,
                 _l("Blank: enterprise when the ID number is a unified social credit code, otherwise "
                    "individual."), "个人", ("客户类型",), KIND_NAMES),
    ImportColumn("id_number", "证件号码", _l("ID number"), "id_number", True,
                 _l("Individuals: 18-character resident ID number; enterprises: 18-character unified "
                    "social credit code. The check digit is verified. In Excel, format the column as text."),
                 "430101198001010015", ("身份证号", "身份证号码", "证件号", "统一社会信用代码")),
    ImportColumn("phone", "联系电话", _l("Phone"), "text", False,
                 _l("Blank keeps the stored phone number."), "13800000000", ("电话", "手机号", "手机号码"),
                 max_length=32),
    ImportColumn("address", "地址", _l("Address"), "text", False,
                 _l("Blank keeps the stored address."), "城关镇东街1号", ("住址", "家庭住址", "联系地址"),
                 max_length=255),
    ImportColumn("credit_rating", "信用等级", _l("Credit rating"), "choice", False,
                 _l("AAA, AA, A, BBB, BB, B, CCC, CC, C or 未评级. Blank: unrated for a new borrower, "
                    "the stored rating otherwise."), "A", ("信用评级",), RATING_NAMES),
    ImportColumn("branch_code", "机构代码", _l("Institution code"), "institution", True,
                 _l("Code of the branch (or county union) that holds the loan; it must lie within your "
                    "institution."), "B1", ("机构号", "机构编号", "网点代码")),
    ImportColumn("product", "贷款品种", _l("Product"), "choice", True,
                 _l("Chinese name or code."), "农户小额信用贷款", ("贷款产品", "产品"), PRODUCT_NAMES),
    ImportColumn("guarantee_type", "担保方式", _l("Guarantee"), "choice", True,
                 _l("Chinese name or code."), "信用", (), GUARANTEE_NAMES),
    ImportColumn("amount", "合同金额(元)", _l("Contract amount (yuan)"), "money", True,
                 _l("Yuan with at most two decimals; thousands commas allowed."), "50,000.00",
                 ("合同金额", "贷款金额", "贷款金额(元)", "发放金额", "发放金额(元)")),
    ImportColumn("balance", "贷款余额(元)", _l("Balance (yuan)"), "money", True,
                 _l("Yuan with at most two decimals; not more than the contract amount."), "48,000.00",
                 ("贷款余额", "余额", "余额(元)")),
    ImportColumn("rate", "年利率(%)", _l("Annual rate (%)"), "rate", True,
                 _l("Percent a year, at most four decimals, e.g. 5.25 or 5.25%."), "5.25",
                 ("年利率", "执行利率", "执行年利率(%)", "利率")),
    ImportColumn("disbursed_on", "发放日期", _l("Disbursed on"), "date", True,
                 _l("YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD, YYYY年M月D日 or an Excel date cell; not in the future."),
                 "2024-03-01", ("放款日期", "借款日期", "起始日期")),
    ImportColumn("maturity_on", "到期日期", _l("Matures on"), "date", True,
                 _l("Same formats; after the disbursement date."), "2025-03-01", ("到期日",)),
    ImportColumn("payment_method", "支付方式", _l("Payment method"), "choice", False,
                 _l("Blank: entrusted payment for a new loan."), "受托支付", (), PAYMENT_NAMES),
    ImportColumn("purpose", "用途", _l("Purpose"), "text", False,
                 _l("Free text."), "购买化肥", ("贷款用途", "借款用途")),
    ImportColumn("status", "状态", _l("Status"), "choice", False,
                 _l("Blank: overdue when days past due is above 0, otherwise active. A settled or "
                    "written-off loan cannot be reopened by an import."), "正常", ("贷款状态",), STATUS_NAMES),
    ImportColumn("days_past_due", "逾期天数", _l("Days past due"), "int", False,
                 _l("Whole days, 0 or more. Blank: 0."), "0", ()),
    ImportColumn("interest_arrears", "欠息(元)", _l("Interest in arrears (yuan)"), "money", False,
                 _l("Yuan with at most two decimals. Blank: 0."), "0", ("欠息", "欠息金额", "欠息金额(元)")),
    ImportColumn("risk_class", "风险分类", _l("Risk class"), "choice", False,
                 _l("Five-category class. Blank: normal for a new loan, the stored class otherwise."),
                 "正常", ("五级分类",), RISK_NAMES),
    ImportColumn("officer", "管户客户经理", _l("Managing officer"), "user", True,
                 _l("User name of a loan officer, post-loan officer or branch director working at the "
                    "loan's institution or under it."), "officer", ("客户经理", "管户人", "信贷员")),
    ImportColumn("investigator", "调查人", _l("Investigated by"), "user", False,
                 _l("User name; someone at the loan's institution, above it or under it. Blank keeps "
                    "the stored person."), "officer", ()),
    ImportColumn("reviewer", "审查人", _l("Reviewed by"), "user", False,
                 _l("User name, as for the investigator."), "director", ()),
    ImportColumn("approver", "审批人", _l("Approved by"), "user", False,
                 _l("User name, as for the investigator."), "director", ()),
    ImportColumn("restructured_on", "重组日期", _l("Restructured on"), "date", False,
                 _l("Date formats as above. Blank keeps the stored date."), "", ()),
    ImportColumn("settled_on", "结清日期", _l("Settled on"), "date", False,
                 _l("Required when the status is settled; only for settled or written-off loans."), "", ()),
]
COLUMN = {c.key: c for c in COLUMNS}
REQUIRED = [c.key for c in COLUMNS if c.required]


def _norm_header(text: Any) -> str:
    """Header cells compare without case, spaces, underscores, '*' marks or full-width forms."""
    folded = unicodedata.normalize("NFKC", str(text)).strip().lower()
    return re.sub(r"[\s_*\-]", "", folded)


HEADER_KEYS: dict[str, str] = {}
for _col in COLUMNS:
    for _name in (_col.key, _col.header_zh, *_col.aliases):
        HEADER_KEYS[_norm_header(_name)] = _col.key


def _norm_choice(text: str) -> str:
    return re.sub(r"\s", "", unicodedata.normalize("NFKC", text)).lower()


CHOICE_MAPS: dict[str, dict[str, str]] = {
    c.key: {_norm_choice(n): code for code, names in c.names.items() for n in (code, *names)}
    for c in COLUMNS if c.names
}


def sample_csv() -> str:
    """A header row and one example row, as a loan file would start."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.header_zh for c in COLUMNS])
    writer.writerow([c.example for c in COLUMNS])
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------

@dataclass
class ImportProblem:
    row: int | None       # spreadsheet row (header = 1); None for a problem with the whole file
    column: str | None    # the header as written in the file (or the expected header)
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "reason": self.reason}


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
                yield (change.row, change.contract_no, field_label(name),
                       display_value(name, old), display_value(name, new))


FIELD_COLUMNS = {
    "balance_fen": "balance", "days_past_due": "days_past_due", "interest_arrears_fen": "interest_arrears",
    "status": "status", "risk_class": "risk_class", "settled_on": "settled_on",
    "restructured_on": "restructured_on", "officer": "officer", "investigator": "investigator",
    "reviewer": "reviewer", "approver": "approver", "purpose": "purpose",
    "borrower.phone": "phone", "borrower.address": "address", "borrower.credit_rating": "credit_rating",
}
FIELD_LABEL_KINDS = {"status": "loan_status", "risk_class": "risk_class", "borrower.credit_rating": "credit_rating"}


def field_label(name: str) -> str:
    column = COLUMN.get(FIELD_COLUMNS.get(name, name))
    return str(column.label) if column else name


def display_value(name: str, value: Any) -> str:
    if value is None or value == "":
        return "—"
    if name.endswith("_fen"):
        return yuan(value)
    if name in FIELD_LABEL_KINDS:
        return label(value, FIELD_LABEL_KINDS[name])
    return str(value)


class FileRejected(Exception):
    """The file as a whole cannot be imported (type, encoding, header, size)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Reading the file: type by content, then rows of raw cell values
# ---------------------------------------------------------------------------------------------

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
            if any(not _blank(c) for c in cells):
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
            if any(not _blank(c) for c in values):
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


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _split_header(rows: list[tuple[int, list[Any]]], percent: set[tuple[int, int]], max_rows: int) -> Sheet:
    """The header is the first row, among the first few non-blank ones, naming at least three
    known columns; a title row above it (common in exported ledgers) is skipped. ``rows`` holds
    only non-blank rows, each with its spreadsheet row number."""
    header_at = None
    for position, (number, cells) in enumerate(rows[:HEADER_SEARCH_ROWS]):
        known = {HEADER_KEYS.get(_norm_header(c)) for c in cells if not _blank(c)} - {None}
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


# ---------------------------------------------------------------------------------------------
# Reading one cell
# ---------------------------------------------------------------------------------------------

class CellError(ValueError):
    pass


def _text(value: Any) -> str:
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


def parse_choice(key: str, value: Any) -> str:
    text = _text(value)
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
        return unicodedata.normalize("NFKC", _text(value))
    text = re.sub(r"\s+", " ", _text(value)) if column.key != "address" else _text(value)
    if column.max_length and len(text) > column.max_length:
        raise CellError(_("Longer than %(n)d characters.", n=column.max_length))
    return text


# ---------------------------------------------------------------------------------------------
# Validating the whole file against the database
# ---------------------------------------------------------------------------------------------

ABSENT = object()  # the column is not in the file at all
CHUNK = 500


def _chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    items = list(values)
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def _given(value: Any) -> bool:
    return value is not None and value is not ABSENT


@dataclass
class _Row:
    number: int
    values: dict[str, Any]
    bad: set[str] = field(default_factory=set)  # columns whose cell could not be read


# Validation reads stored borrowers and loans as plain values, not ORM objects: a 10,000-row
# file then leaves the session small, and the writes and audit events that follow stay linear.

@dataclass
class _StoredBorrower:
    id: int
    id_number: str
    institution_id: int
    name: str
    kind: str
    phone: str | None
    address: str | None
    credit_rating: str


BORROWER_COLUMNS = (Borrower.id, Borrower.id_number, Borrower.institution_id, Borrower.name, Borrower.kind,
                    Borrower.phone, Borrower.address, Borrower.credit_rating)
LOAN_FIELDS = ("id", "contract_no", "branch_id", "product", "guarantee_type", "amount_fen", "balance_fen",
               "rate_percent", "disbursed_on", "maturity_on", "payment_method", "purpose", "status",
               "days_past_due", "interest_arrears_fen", "risk_class", "restructured_on", "settled_on",
               "officer_id", "investigator_id", "reviewer_id", "approver_id", "updated_at")
PEOPLE = ("officer", "investigator", "reviewer", "approver")


@dataclass
class _StoredLoan:
    values: dict[str, Any]
    borrower: _StoredBorrower
    branch_code: str
    branch_path: str

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def is_closed(self) -> bool:
        return self.status in (LoanStatus.SETTLED.value, LoanStatus.WRITTEN_OFF.value)


@dataclass
class _LoanUpdate:
    row: int
    loan_id: int
    contract_no: str
    branch_id: int
    changes: dict[str, list[Any]]   # shown and audited: field -> [stored, imported]
    updates: dict[str, Any]         # written: Loan attribute -> value
    seen_updated_at: datetime


@dataclass
class ImportPlan:
    """What a valid file will write; built by ``plan_import``, written by ``apply_import``."""

    report: ImportReport
    new_borrowers: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    borrower_updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    # (row, Loan fields, borrower id or the key of a new borrower)
    new_loans: list[tuple[int, dict[str, Any], int | tuple[str, int]]] = field(default_factory=list)
    loan_updates: list[_LoanUpdate] = field(default_factory=list)


# Optional columns whose blank cell keeps the stored value on re-import (instead of the default).
KEEP_WHEN_BLANK = {"risk_class", "settled_on", "restructured_on"}


class _Validator:
    """Checks every row; collects problems and, for a valid file, the plan."""

    def __init__(self, actor: User | None, sheet: Sheet, report: ImportReport) -> None:
        self.actor = actor
        self.sheet = sheet
        self.report = report
        self.plan = ImportPlan(report)
        self.today = local_today()
        self.index: dict[str, int] = {}
        self.header_text: dict[str, str] = {}
        self.seen_contracts: dict[str, int] = {}
        self.seen_borrowers: dict[Any, tuple[int, dict[str, Any]]] = {}

    # -- problems ------------------------------------------------------------------------------
    def problem(self, row: int | None, key: str | None, reason: str) -> None:
        column = self.header_text.get(key, COLUMN[key].header_zh) if key else None
        self.report.problems.append(ImportProblem(row, column, reason))

    def blame(self, *keys: str) -> str:
        """The first of these columns that the file has (a cross-column problem names one)."""
        for key in keys:
            if key in self.index:
                return key
        return keys[0]

    # -- header --------------------------------------------------------------------------------
    def map_header(self) -> bool:
        for position, cell in enumerate(self.sheet.headers):
            if _blank(cell):
                continue
            written = _text(cell)
            key = HEADER_KEYS.get(_norm_header(cell))
            if key is None:
                self.report.ignored_columns.append(written)
                continue
            if key in self.index:
                self.report.problems.append(ImportProblem(
                    self.sheet.header_row, written,
                    _("Two columns mean %(name)s: %(first)s and %(second)s. Keep one.",
                      name=COLUMN[key].header_zh, first=self.header_text[key], second=written)))
                continue
            self.index[key] = position
            self.header_text[key] = written
        missing = [k for k in REQUIRED if k not in self.index]
        if missing:
            names = "、".join(f"{COLUMN[k].header_zh} ({k})" for k in missing)
            self.report.problems.append(ImportProblem(
                self.sheet.header_row, names, _("Required columns are missing: %(names)s.", names=names)))
        return not self.report.problems

    # -- cells ---------------------------------------------------------------------------------
    def read_rows(self) -> list[_Row]:
        rows = []
        percent = self.sheet.percent_cells
        for number, cells in self.sheet.rows:
            row = _Row(number, {})
            for key, column in COLUMN.items():
                position = self.index.get(key)
                if position is None:
                    row.values[key] = ABSENT
                    continue
                value = cells[position] if position < len(cells) else None
                row.values[key] = None
                if _blank(value):
                    if column.required:
                        self.problem(number, key, _("A value is required."))
                        row.bad.add(key)
                    continue
                try:
                    row.values[key] = parse_cell(column, value, (number, position) in percent)
                except CellError as exc:
                    self.problem(number, key, str(exc))
                    row.bad.add(key)
            rows.append(row)
        self.report.rows = len(rows)
        return rows

    # -- lookups, one query per 500 values -----------------------------------------------------
    def load_references(self, rows: list[_Row]) -> None:
        def values(*keys: str) -> set[Any]:
            return {r.values[k] for r in rows for k in keys if _given(r.values[k])}

        self.institutions: dict[str, Institution] = {}
        for chunk in _chunks(values("branch_code")):
            for inst in db.session.execute(select(Institution).where(Institution.code.in_(chunk))).scalars():
                self.institutions[inst.code] = inst
        self.users: dict[str, User] = {}
        for chunk in _chunks({name.lower() for name in values(*PEOPLE)}):
            stmt = select(User).options(joinedload(User.institution)).where(func.lower(User.username).in_(chunk))
            for user in db.session.execute(stmt).scalars():
                self.users[user.username.lower()] = user
        self.loans: dict[str, _StoredLoan] = {}
        loan_columns = [getattr(Loan, name) for name in LOAN_FIELDS]
        for chunk in _chunks(values("contract_no")):
            stmt = (select(*loan_columns, *BORROWER_COLUMNS, Institution.code, Institution.path)
                    .join(Borrower, Loan.borrower_id == Borrower.id)
                    .join(Institution, Loan.branch_id == Institution.id)
                    .where(Loan.contract_no.in_(chunk)))
            for record in db.session.execute(stmt):
                n = len(LOAN_FIELDS)
                borrower = _StoredBorrower(*record[n:n + len(BORROWER_COLUMNS)])
                loan = _StoredLoan(dict(zip(LOAN_FIELDS, record[:n])), borrower, record[-2], record[-1])
                self.loans[loan.contract_no] = loan
        people_ids = {loan.values[f"{k}_id"] for loan in self.loans.values() for k in PEOPLE} - {None}
        self.usernames: dict[int, str] = {}
        for chunk in _chunks(people_ids):
            self.usernames.update(db.session.execute(select(User.id, User.username).where(User.id.in_(chunk))).all())
        branch_ids = [inst.id for inst in self.institutions.values()]
        self.borrowers: dict[tuple[str, int], _StoredBorrower] = {}
        if branch_ids:
            for chunk in _chunks(values("id_number")):
                stmt = (select(*BORROWER_COLUMNS)
                        .where(Borrower.id_number.in_(chunk), Borrower.institution_id.in_(branch_ids))
                        .order_by(Borrower.id.desc()))
                for record in db.session.execute(stmt):
                    # Newest first, so that of duplicated records the oldest borrower wins.
                    borrower = _StoredBorrower(*record)
                    self.borrowers[(borrower.id_number, borrower.institution_id)] = borrower

    # -- scope and references ------------------------------------------------------------------
    def in_actor_scope(self, path: str) -> bool:
        if self.actor is None or is_global(self.actor):
            return True
        return path.startswith(self.actor.institution.path)

    def check_branch(self, row: _Row) -> Institution | None:
        code = row.values["branch_code"]
        if code is None:
            return None
        inst = self.institutions.get(code)
        if inst is None:
            self.problem(row.number, "branch_code", _("Unknown institution code %(code)s.", code=code))
            return None
        if inst.level not in (Level.BRANCH.value, Level.COUNTY.value):
            self.problem(row.number, "branch_code",
                         _("%(code)s is a %(level)s; loans are held by a branch or a county union.",
                           code=code, level=label(inst.level, "level")))
            return None
        if not self.in_actor_scope(inst.path):
            self.problem(row.number, "branch_code",
                         _("%(code)s is outside your institution; you may import loans only into %(mine)s "
                           "and the institutions under it.", code=code, mine=self.actor.institution.name))
            return None
        return inst

    def check_person(self, row: _Row, key: str, branch: Institution | None) -> User | None:
        """The user named in this column, or None (not given, or a problem was recorded)."""
        name = row.values[key]
        if not _given(name):
            return None
        user = self.users.get(name.lower())
        if user is None:
            self.problem(row.number, key, _("There is no user %(name)s.", name=name))
            return None
        if not user.is_active_flag:
            self.problem(row.number, key, _("User %(name)s is deactivated.", name=name))
            return None
        if branch is None:
            return user
        inside = user.institution.path.startswith(branch.path)
        if key == "officer":
            if not inside:
                self.problem(row.number, key, _("%(name)s does not work at %(branch)s or an institution under it.",
                                                name=name, branch=branch.name))
                return None
            if not user.roles & LENDING_STAFF:
                self.problem(row.number, key, _("%(name)s is not a loan officer, post-loan officer or branch "
                                                "director.", name=name))
                return None
        elif not (inside or branch.path.startswith(user.institution.path)):
            self.problem(row.number, key, _("%(name)s works neither at %(branch)s nor above or under it.",
                                            name=name, branch=branch.name))
            return None
        return user

    def check_id_number(self, row: _Row, kind: str | None) -> None:
        id_number = row.values["id_number"]
        if not id_number or "id_number" in row.bad:
            return
        if kind == BorrowerKind.INDIVIDUAL.value and not resident_id_valid(id_number):
            reason = _("Not a valid 18-character resident ID number (wrong length, birth date or check digit).")
        elif kind == BorrowerKind.ENTERPRISE.value and not uscc_valid(id_number):
            reason = _("Not a valid 18-character unified social credit code (wrong characters or check "
                       "character).")
        elif kind is None and not (resident_id_valid(id_number) or uscc_valid(id_number)):
            reason = _("Neither a valid resident ID number nor a valid unified social credit code (wrong "
                       "length or check character).")
        else:
            return
        self.problem(row.number, "id_number", reason)
        row.bad.add("id_number")

    # -- one row -------------------------------------------------------------------------------
    def check_row(self, row: _Row) -> None:
        v = row.values
        before = len(self.report.problems)
        contract = v["contract_no"]
        if contract:
            first = self.seen_contracts.setdefault(contract, row.number)
            if first != row.number:
                self.problem(row.number, "contract_no",
                             _("Contract number %(no)s is also on row %(row)d.", no=contract, row=first))
                return
        kind = v["borrower_kind"] if _given(v["borrower_kind"]) else None
        self.check_id_number(row, kind)
        branch = self.check_branch(row)
        people = {key: self.check_person(row, key, branch) for key in PEOPLE}
        stored = self.loans.get(contract) if contract else None
        if stored is not None and not self.in_actor_scope(stored.branch_path):
            self.problem(row.number, "contract_no",
                         _("Contract number %(no)s is already used by a loan outside your institution.", no=contract))
            return
        state = self.final_state(row, stored)
        self.check_state(row, state)
        borrower = self.match_borrower(row, stored, branch, kind)
        if borrower is False:
            return
        if stored is not None:
            self.compare_terms(row, stored, branch)
            self.check_transition(row, stored, state["status"])
        if len(self.report.problems) > before or row.bad:
            return
        if stored is None:
            self.plan_new_loan(row, branch, people, state, borrower, kind)
        else:
            self.plan_update(row, stored, people, state)

    def final_state(self, row: _Row, stored: _StoredLoan | None) -> dict[str, Any]:
        """The loan's state after the import: a cell's value; for a column not in the file (or,
        for some columns, a blank cell) the stored value; else the default."""
        v = row.values

        def final(key: str, attr: str, default: Any) -> Any:
            value = v[key]
            if _given(value):
                return value
            if stored is not None and (value is ABSENT or key in KEEP_WHEN_BLANK):
                return getattr(stored, attr)
            return default

        dpd = final("days_past_due", "days_past_due", 0)
        if _given(v["status"]):
            status = v["status"]
        elif stored is not None and stored.is_closed and v["status"] is ABSENT:
            status = stored.status
        else:
            status = LoanStatus.OVERDUE.value if dpd > 0 else LoanStatus.ACTIVE.value
        return {
            "balance_fen": v["balance"], "days_past_due": dpd,
            "interest_arrears_fen": final("interest_arrears", "interest_arrears_fen", 0), "status": status,
            "risk_class": final("risk_class", "risk_class", RiskClass.NORMAL.value),
            "settled_on": final("settled_on", "settled_on", None),
            "restructured_on": final("restructured_on", "restructured_on", None),
        }

    def check_state(self, row: _Row, state: dict[str, Any]) -> None:
        """Amounts, dates and status must agree with each other."""
        v, n, bad = row.values, row.number, row.bad
        amount, balance = v["amount"], state["balance_fen"]
        dpd, arrears, status = state["days_past_due"], state["interest_arrears_fen"], state["status"]
        disbursed, maturity = v["disbursed_on"], v["maturity_on"]
        settled_on, restructured_on = state["settled_on"], state["restructured_on"]
        if amount == 0:
            self.problem(n, "amount", _("The contract amount must be above 0."))
        if amount and balance is not None and balance > amount:
            self.problem(n, "balance", _("The balance %(balance)s is more than the contract amount %(amount)s.",
                                         balance=yuan(balance), amount=yuan(amount)))
        if disbursed and disbursed > self.today:
            self.problem(n, "disbursed_on", _("The disbursement date is in the future."))
        if disbursed and maturity and maturity <= disbursed:
            self.problem(n, "maturity_on", _("The maturity date must be after the disbursement date."))
        if disbursed and restructured_on and not disbursed <= restructured_on <= self.today:
            self.problem(n, "restructured_on", _("The restructuring date must lie between disbursement and today."))
        if disbursed and settled_on and not disbursed <= settled_on <= self.today:
            self.problem(n, "settled_on", _("The settlement date must lie between disbursement and today."))
        if "status" in bad:
            return
        if status == LoanStatus.SETTLED.value:
            if balance:
                self.problem(n, "balance", _("A settled loan must have a balance of 0."))
            if arrears:
                self.problem(n, self.blame("interest_arrears", "status"),
                             _("A settled loan cannot have interest in arrears."))
            if dpd:
                self.problem(n, self.blame("days_past_due", "status"), _("A settled loan cannot be past due."))
            if settled_on is None and "settled_on" not in bad:
                self.problem(n, self.blame("settled_on", "status"), _("A settled loan needs its settlement date."))
        elif status != LoanStatus.WRITTEN_OFF.value:
            if settled_on is not None:
                self.problem(n, "settled_on", _("Only a settled or written-off loan has a settlement date."))
            if status == LoanStatus.OVERDUE.value and dpd == 0 and "days_past_due" not in bad:
                self.problem(n, self.blame("days_past_due", "status"), _("An overdue loan needs days past due above 0."))
            if status == LoanStatus.ACTIVE.value and dpd > 0:
                self.problem(n, self.blame("status", "days_past_due"),
                             _("The loan is %(n)d days past due, so its status is overdue, not active.", n=dpd))
            if balance == 0 and not arrears:
                self.problem(n, self.blame("status", "balance"),
                             _("The balance is 0: a repaid loan's status is settled."))

    def match_borrower(self, row: _Row, stored: _StoredLoan | None, branch: Institution | None,
                       kind: str | None) -> _StoredBorrower | None | bool:
        """The loan's own borrower, else the same ID number at the same institution, else None (new).
        False when the contract belongs to someone else (the row is then not checked further)."""
        v = row.values
        id_number = v["id_number"] if "id_number" not in row.bad else None
        borrower = None
        if stored is not None:
            borrower = stored.borrower
            if id_number and borrower.id_number != id_number:
                self.problem(row.number, "id_number", _("Contract %(no)s belongs to another borrower (%(name)s).",
                                                        no=stored.contract_no, name=borrower.name))
                return False
        elif branch is not None and id_number:
            borrower = self.borrowers.get((id_number, branch.id))
        if borrower is not None:
            if v["borrower_name"] and borrower.name != v["borrower_name"]:
                self.problem(row.number, "borrower_name",
                             _("The borrower with this ID number is recorded as %(name)s.", name=borrower.name))
            if kind and borrower.kind != kind:
                self.problem(row.number, "borrower_kind",
                             _("The borrower is recorded as %(kind)s.", kind=label(borrower.kind, "borrower_kind")))
        # Rows of one borrower must agree with each other.
        key: Any = borrower.id if borrower is not None else (
            (id_number, branch.id) if branch is not None and id_number else None)
        if key is not None:
            mine = {"borrower_name": v["borrower_name"], "borrower_kind": kind, "phone": v["phone"],
                    "address": v["address"], "credit_rating": v["credit_rating"]}
            first_row, first = self.seen_borrowers.setdefault(key, (row.number, mine))
            for column, value in mine.items():
                if first_row != row.number and _given(value) and _given(first[column]) and value != first[column]:
                    self.problem(row.number, column, _("Differs from row %(row)d for the same borrower.", row=first_row))
        return borrower

    def compare_terms(self, row: _Row, stored: _StoredLoan, branch: Institution | None) -> None:
        """A stored loan's identity and terms must agree with the file."""
        v = row.values
        if branch is not None and stored.branch_id != branch.id:
            self.problem(row.number, "branch_code", _("The stored loan is held by %(code)s.", code=stored.branch_code))
        terms = [
            ("amount", stored.amount_fen, yuan), ("disbursed_on", stored.disbursed_on, str),
            ("maturity_on", stored.maturity_on, str), ("rate", stored.rate_percent, lambda r: f"{r.normalize()}%"),
            ("product", stored.product, lambda c: label(c, "product")),
            ("guarantee_type", stored.guarantee_type, lambda c: label(c, "guarantee_type")),
            ("payment_method", stored.payment_method, lambda c: label(c, "payment_method")),
            ("purpose", stored.purpose or None, str),
        ] + [(k, self.usernames.get(stored.values[f"{k}_id"]), str) for k in PEOPLE if k != "officer"]
        for key, value_stored, show in terms:
            value = v[key]
            if not _given(value) or value_stored is None or key in row.bad:
                continue
            if (value.lower() != value_stored.lower()) if key in PEOPLE else (value != value_stored):
                self.problem(row.number, key, _("Differs from the stored loan (%(stored)s); an import does not "
                                                "change a loan's terms.", stored=show(value_stored)))

    def check_transition(self, row: _Row, stored: _StoredLoan, status: str) -> None:
        if stored.is_closed and status not in (LoanStatus.SETTLED.value, LoanStatus.WRITTEN_OFF.value):
            self.problem(row.number, self.blame("status"),
                         _("The stored loan is %(status)s; an import cannot reopen it.",
                           status=label(stored.status, "loan_status")))
        elif stored.status == LoanStatus.SETTLED.value and status == LoanStatus.WRITTEN_OFF.value:
            self.problem(row.number, "status", _("A settled loan cannot be written off."))

    # -- the plan ------------------------------------------------------------------------------
    def borrower_changes(self, borrower: _StoredBorrower, v: dict[str, Any]) -> dict[str, list[Any]]:
        """Contact details and rating of a stored borrower: a non-blank cell that differs updates them."""
        changes = {}
        for attr in ("phone", "address", "credit_rating"):
            if _given(v[attr]) and getattr(borrower, attr) != v[attr]:
                changes[f"borrower.{attr}"] = [getattr(borrower, attr), v[attr]]
                self.plan.borrower_updates.setdefault(borrower.id, {})[attr] = v[attr]
        return changes

    def plan_new_loan(self, row: _Row, branch: Institution, people: dict[str, User | None],
                      state: dict[str, Any], borrower: _StoredBorrower | None, kind: str | None) -> None:
        v = row.values
        fields = dict(
            contract_no=v["contract_no"], branch_id=branch.id, product=v["product"],
            guarantee_type=v["guarantee_type"], amount_fen=v["amount"], rate_percent=v["rate"],
            disbursed_on=v["disbursed_on"], maturity_on=v["maturity_on"],
            payment_method=v["payment_method"] if _given(v["payment_method"]) else PaymentMethod.ENTRUSTED.value,
            purpose=v["purpose"] if _given(v["purpose"]) else "", **state,
            **{f"{k}_id": people[k].id for k in PEOPLE if people[k] is not None},
        )
        if borrower is not None:
            self.borrower_changes(borrower, v)
            self.plan.new_loans.append((row.number, fields, borrower.id))
        else:
            key = (v["id_number"], branch.id)
            self.plan.new_borrowers.setdefault(key, {
                "name": v["borrower_name"], "id_number": v["id_number"], "institution_id": branch.id,
                "kind": kind or _kind_of_id(v["id_number"]),
                "phone": v["phone"] if _given(v["phone"]) else None,
                "address": v["address"] if _given(v["address"]) else None,
                "credit_rating": v["credit_rating"] if _given(v["credit_rating"]) else UNRATED,
            })
            self.plan.new_loans.append((row.number, fields, key))
        self.report.created += 1

    def plan_update(self, row: _Row, stored: _StoredLoan, people: dict[str, User | None],
                    state: dict[str, Any]) -> None:
        v = row.values
        changes = {attr: [_jsonable(stored.values[attr]), _jsonable(new)]
                   for attr, new in state.items() if stored.values[attr] != new}
        updates = {attr: state[attr] for attr in changes}
        for key in PEOPLE:
            person = people[key]
            stored_id = stored.values[f"{key}_id"]
            # The officer may change (a handover); the origination people may only be filled in.
            if person is not None and stored_id != person.id and (key == "officer" or stored_id is None):
                changes[key] = [self.usernames.get(stored_id), person.username]
                updates[f"{key}_id"] = person.id
        if _given(v["purpose"]) and not stored.purpose:
            changes["purpose"] = ["", v["purpose"]]
            updates["purpose"] = v["purpose"]
        changes.update(self.borrower_changes(stored.borrower, v))
        if not changes:
            self.report.unchanged += 1
            return
        self.plan.loan_updates.append(_LoanUpdate(row.number, stored.id, stored.contract_no, stored.branch_id,
                                                  changes, updates, stored.updated_at))
        self.report.changes.append(LoanChange(row.number, stored.contract_no, changes))
        self.report.updated += 1


def _kind_of_id(id_number: str) -> str:
    """Borrower kind when the file gives none: a credit code that is not a resident ID is an enterprise."""
    if uscc_valid(id_number) and not resident_id_valid(id_number):
        return BorrowerKind.ENTERPRISE.value
    return BorrowerKind.INDIVIDUAL.value


def _jsonable(value: Any) -> Any:
    if isinstance(value, (date, Decimal)):
        return str(value)
    return value


def plan_import(actor: User | None, data: bytes, filename: str, *, dry_run: bool = False) -> ImportPlan:
    """Read and check the whole file. Writes nothing."""
    if actor is not None:
        check(actor, "loan.import")
    report = ImportReport(filename=filename, checksum=hashlib.sha256(data).hexdigest(), dry_run=dry_run)
    try:
        sheet = read_sheet(data, current_app.config["XINDANG_IMPORT_MAX_ROWS"])
    except FileRejected as exc:
        report.problems.append(ImportProblem(None, None, exc.reason))
        return ImportPlan(report)
    validator = _Validator(actor, sheet, report)
    if not validator.map_header():
        return validator.plan
    rows = validator.read_rows()
    validator.load_references(rows)
    for row in rows:
        validator.check_row(row)
    order = {c.key: i for i, c in enumerate(COLUMNS)}
    position = {text: order[key] for key, text in validator.header_text.items()}
    report.problems.sort(key=lambda p: (p.row or 0, position.get(p.column or "", -1)))
    if report.problems:
        report.created = report.updated = report.unchanged = 0
        report.changes = []
    else:
        report.borrowers_created = len(validator.plan.new_borrowers)
        report.borrowers_updated = len(validator.plan.borrower_updates)
    return validator.plan


def _concurrent_problem(report: ImportReport) -> ImportReport:
    report.problems.append(ImportProblem(None, None, _(
        "Another import changed some of these loans while this file was being checked. Nothing from this "
        "file was saved; import it again.")))
    report.created = report.updated = report.unchanged = report.borrowers_created = report.borrowers_updated = 0
    report.changes = []
    return report


# A re-import changes balances and days past due of most loans every time; those changes are in
# the report and counted in the import's audit event (whose checksum names the exact file). A
# change of state or of a person responsible gets an audit event of its own on the loan.
EVENT_FIELDS = {"status", "risk_class", "settled_on", "restructured_on", *PEOPLE}


def apply_import(actor: User | None, plan: ImportPlan) -> ImportReport:
    """Write a valid plan in the caller's transaction, after re-checking, under the audit
    chain's lock, that no other import wrote the same loans meanwhile. On such a race the
    transaction is rolled back and the report says so (never a duplicate, never a 500)."""
    report = plan.report
    if not report.ok or report.dry_run:
        return report
    changed_fields: dict[str, int] = {}
    for change in report.changes:
        for name in change.changes:
            changed_fields[name] = changed_fields.get(name, 0) + 1
    summary = {"file": report.filename, "sha256": report.checksum, "rows": report.rows,
               "created": report.created, "updated": report.updated, "unchanged": report.unchanged,
               "borrowers_created": report.borrowers_created, "borrowers_updated": report.borrowers_updated,
               "changed_fields": changed_fields}
    try:
        # The first write of the transaction takes the audit chain's lock, which serialises
        # concurrent imports (a row lock on PostgreSQL, the write lock on SQLite).
        record_event(actor, "loan.import", "loan_import", report.checksum, summary,
                     institution_id=actor.institution_id if actor is not None else None)
        if _changed_meanwhile(plan):
            db.session.rollback()
            return _concurrent_problem(report)
        # Before the loans are loaded, while the session is small (each event scans it).
        for update in plan.loan_updates:
            if EVENT_FIELDS & update.changes.keys():
                record_event(actor, "loan.import_update", "loan", update.loan_id,
                             {"contract_no": update.contract_no, "changes": update.changes,
                              "import": report.checksum}, institution_id=update.branch_id)
        _write(plan)
    except IntegrityError as exc:
        if "contract_no" not in str(exc.orig):  # only the unique contract number means a race
            raise
        db.session.rollback()
        return _concurrent_problem(report)
    except OperationalError as exc:
        if "locked" not in str(exc.orig).lower():
            raise
        db.session.rollback()
        return _concurrent_problem(report)
    return report


def _write(plan: ImportPlan) -> None:
    """Borrowers, then new loans, then updated loans, as ORM objects: the session's hooks see
    every new and changed loan. Borrowers and branches are loaded first, so nothing lazy-loads."""
    borrower_ids = set(plan.borrower_updates) | {ref for _r, _f, ref in plan.new_loans if isinstance(ref, int)}
    borrowers: dict[int, Borrower] = {}
    for chunk in _chunks(borrower_ids):
        borrowers.update((b.id, b) for b in db.session.execute(select(Borrower).where(Borrower.id.in_(chunk))).scalars())
    for borrower_id, values in plan.borrower_updates.items():
        for attr, value in values.items():
            setattr(borrowers[borrower_id], attr, value)
    new_borrowers = {key: Borrower(**fields) for key, fields in plan.new_borrowers.items()}
    db.session.add_all(new_borrowers.values())
    db.session.flush()
    for _row, fields, ref in plan.new_loans:
        borrower = borrowers[ref] if isinstance(ref, int) else new_borrowers[ref]
        db.session.add(Loan(borrower_id=borrower.id, **fields))
    updates = {u.loan_id: u.updates for u in plan.loan_updates}
    with db.session.no_autoflush:  # one flush for all, not one per chunk loaded
        for chunk in _chunks(updates):
            stmt = (select(Loan).options(selectinload(Loan.borrower), selectinload(Loan.branch))
                    .where(Loan.id.in_(chunk)))
            for loan in db.session.execute(stmt).scalars():
                for attr, value in updates[loan.id].items():
                    setattr(loan, attr, value)
    db.session.flush()


def _changed_meanwhile(plan: ImportPlan) -> bool:
    """Whether, since the check, a loan or borrower to create appeared or a loan to update
    changed. Read after taking the lock, so it sees every committed import."""
    for chunk in _chunks(fields["contract_no"] for _row, fields, _ref in plan.new_loans):
        if db.session.execute(select(Loan.id).where(Loan.contract_no.in_(chunk)).limit(1)).first():
            return True
    seen = {u.loan_id: u.seen_updated_at for u in plan.loan_updates}
    for chunk in _chunks(seen):
        for loan_id, stamp in db.session.execute(select(Loan.id, Loan.updated_at).where(Loan.id.in_(chunk))):
            if stamp != seen[loan_id]:
                return True
    keys = set(plan.new_borrowers)
    branch_ids = {inst for _id, inst in keys}
    for chunk in _chunks({id_number for id_number, _inst in keys}):
        stmt = select(Borrower.id_number, Borrower.institution_id).where(
            Borrower.id_number.in_(chunk), Borrower.institution_id.in_(branch_ids))
        if any((record.id_number, record.institution_id) in keys for record in db.session.execute(stmt)):
            return True
    return False


def import_loans(actor: User | None, data: bytes, filename: str, *, dry_run: bool = False) -> ImportReport:
    """Validate the whole file and, when every row is valid (and this is not a dry run), write it.

    ``actor`` None is the system (the command line without ``--user``): every institution is in
    scope. The caller commits when ``report.written`` and rolls back otherwise.
    """
    plan = plan_import(actor, data, filename, dry_run=dry_run)
    return apply_import(actor, plan)


# ---------------------------------------------------------------------------------------------
# The upload form
# ---------------------------------------------------------------------------------------------

class ImportForm(FlaskForm):
    file = FileField(_l("Loan file (CSV or XLSX)"), validators=[FileRequired(_l("Choose a file to import."))])
    dry_run = BooleanField(_l("Only check the file, save nothing"))
    submit = SubmitField(_l("Import"))


def import_loans_from_upload(user: User, file_storage, *, dry_run: bool = False) -> ImportReport:
    """The page's entry point: the uploaded file's bytes (the request size limit applies)."""
    data = file_storage.read()
    return import_loans(user, data, file_storage.filename or "", dry_run=dry_run)
