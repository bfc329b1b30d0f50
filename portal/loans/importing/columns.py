"""The columns of the loan file: ``COLUMNS``, the one description of each column.

Each entry says how the column is headed (its Chinese header, code name and other accepted
names), whether it is required, how its cells are read (its kind and, for coded values, the
accepted names), how the import page explains it, and where its value goes: the model attribute
it fills and what a cell means for a loan already stored. The reader, the cell parsers, the
validator, the planner, the report, the import page and the sample file take all of this from
here; ``docs/import-format.md`` describes the same columns, and a test holds the two together.
A text column's longest value and what a blank cell gives a new loan are the model's (its
column's length and default), so that they are said once; status and borrower kind follow rules
of their own when blank (``validate``, ``apply``).

What does not live here: reading files (``read``), parsing cells (``cells``), the rules that
tie columns together (``validate``) and writing (``apply``).
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Column

from ...labels import label, yuan
from ..models import (CREDIT_RATINGS, UNRATED, Borrower, BorrowerKind, GuaranteeType, Loan, LoanStatus,
                      PaymentMethod, Product, RiskClass)

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

# What a cell means for a loan already stored (found by its contract number):
FINDS = "finds"    # it finds the stored loan or borrower
TERM = "term"      # it must agree with what is stored; an empty stored value may be filled in
UPDATE = "update"  # its value replaces what is stored


@dataclass(frozen=True)
class ImportColumn:
    """One column of the loan file: its headers, how its cells are read and where its value goes."""

    key: str
    header_zh: str
    label: Any  # lazy English label, shown translated
    kind: str   # text, id_number, choice, money, rate, int, date, institution, user
    required: bool
    help: Any   # lazy: format and what a blank cell means
    example: str
    aliases: tuple[str, ...] = ()
    names: dict[str, tuple[str, ...]] | None = None  # choice columns: code -> accepted names
    labels: str | None = None  # choice columns: the ``portal.labels`` kind their codes are shown with
    # The attribute the value fills: a Loan attribute, or "borrower." and a Borrower attribute. A
    # user or institution column names the loan's relationship; the chosen one's id is written.
    field: str = ""
    reimport: str = TERM          # FINDS, TERM or UPDATE: what the cell means for a stored loan
    keep_when_blank: bool = False  # UPDATE: a blank cell keeps the stored value, not the default
    own_event: bool = False       # a change of it gets an audit event of its own on the loan
    keep_spaces: bool = False     # text: runs of spaces are kept, not made one

    @property
    def shown_values(self) -> list[tuple[str, str]]:
        """(Chinese name, code) of every accepted value of a choice column."""
        return [(names[0], code) for code, names in (self.names or {}).items()]

    @cached_property
    def on_borrower(self) -> bool:
        return self.field.startswith("borrower.")

    @cached_property
    def attr(self) -> str:
        """The model attribute written: ``balance_fen``, ``officer_id``, ``phone`` (of the borrower)."""
        name = self.field.removeprefix("borrower.")
        return f"{name}_id" if self.kind in ("user", "institution") else name

    @cached_property
    def model_column(self) -> Column:
        return (Borrower if self.on_borrower else Loan).__table__.columns[self.attr]

    @cached_property
    def max_length(self) -> int | None:
        """Longest text the model keeps (text columns are checked against it)."""
        return getattr(self.model_column.type, "length", None)

    @cached_property
    def default(self) -> Any:
        """A new loan's (or borrower's) value for a blank cell or a column not in the file."""
        default = self.model_column.default
        return default.arg if default is not None and default.is_scalar else None

    def show(self, value: Any) -> str:
        """A stored or imported value as the report and the problems show it."""
        if value is None or value == "":
            return "—"
        if self.kind == "money":
            return yuan(value)
        if self.kind == "rate":
            return f"{Decimal(value).normalize()}%"
        if self.labels:
            return label(value, self.labels)
        return str(value)


COLUMNS: list[ImportColumn] = [
    ImportColumn("contract_no", "合同编号", _l("Contract number"), "text", True,
                 _l("Unique across the portal; a loan already stored under this number is updated."),
                 "HT-2024-0001", ("合同号", "借款合同编号", "贷款合同号", "合同号码"),
                 field="contract_no", reimport=FINDS),
    ImportColumn("borrower_name", "借款人", _l("Borrower"), "text", True,
                 _l("Name of the person or enterprise."), "张三",
                 ("借款人名称", "借款人姓名", "客户名称", "姓名"), field="borrower.name"),
    ImportColumn("borrower_kind", "借款人类型", _l("Borrower kind"), "choice", False,
                 _l("Blank: enterprise when the ID number is a unified social credit code, otherwise "
                    "individual."), "个人", ("客户类型",), KIND_NAMES, "borrower_kind", field="borrower.kind"),
    ImportColumn("id_number", "证件号码", _l("ID number"), "id_number", True,
                 _l("Individuals: 18-character resident ID number; enterprises: 18-character unified "
                    "social credit code. The check digit is verified. In Excel, format the column as text."),
                 "430101198001010015", ("身份证号", "身份证号码", "证件号", "统一社会信用代码"),
                 field="borrower.id_number", reimport=FINDS),
    ImportColumn("phone", "联系电话", _l("Phone"), "text", False,
                 _l("Blank keeps the stored phone number."), "13800000000", ("电话", "手机号", "手机号码"),
                 field="borrower.phone", reimport=UPDATE, keep_when_blank=True),
    ImportColumn("address", "地址", _l("Address"), "text", False,
                 _l("Blank keeps the stored address."), "城关镇东街1号", ("住址", "家庭住址", "联系地址"),
                 field="borrower.address", reimport=UPDATE, keep_when_blank=True, keep_spaces=True),
    ImportColumn("credit_rating", "信用等级", _l("Credit rating"), "choice", False,
                 _l("AAA, AA, A, BBB, BB, B, CCC, CC, C or 未评级. Blank: unrated for a new borrower, "
                    "the stored rating otherwise."), "A", ("信用评级",), RATING_NAMES, "credit_rating",
                 field="borrower.credit_rating", reimport=UPDATE, keep_when_blank=True),
    ImportColumn("branch_code", "机构代码", _l("Institution code"), "institution", True,
                 _l("Code of the branch (or county union) that holds the loan; it must lie within your "
                    "institution."), "B1", ("机构号", "机构编号", "网点代码"), field="branch"),
    ImportColumn("product", "贷款品种", _l("Product"), "choice", True,
                 _l("Chinese name or code."), "农户小额信用贷款", ("贷款产品", "产品"), PRODUCT_NAMES, "product",
                 field="product"),
    ImportColumn("guarantee_type", "担保方式", _l("Guarantee"), "choice", True,
                 _l("Chinese name or code."), "信用", (), GUARANTEE_NAMES, "guarantee_type", field="guarantee_type"),
    ImportColumn("amount", "合同金额(元)", _l("Contract amount (yuan)"), "money", True,
                 _l("Yuan with at most two decimals; thousands commas allowed."), "50,000.00",
                 ("合同金额", "贷款金额", "贷款金额(元)", "发放金额", "发放金额(元)"), field="amount_fen"),
    ImportColumn("balance", "贷款余额(元)", _l("Balance (yuan)"), "money", True,
                 _l("Yuan with at most two decimals; not more than the contract amount."), "48,000.00",
                 ("贷款余额", "余额", "余额(元)"), field="balance_fen", reimport=UPDATE),
    ImportColumn("rate", "年利率(%)", _l("Annual rate (%)"), "rate", True,
                 _l("Percent a year, at most four decimals, e.g. 5.25 or 5.25%."), "5.25",
                 ("年利率", "执行利率", "执行年利率(%)", "利率"), field="rate_percent"),
    ImportColumn("disbursed_on", "发放日期", _l("Disbursed on"), "date", True,
                 _l("YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD, YYYY年M月D日 or an Excel date cell; not in the future."),
                 "2024-03-01", ("放款日期", "借款日期", "起始日期"), field="disbursed_on"),
    ImportColumn("maturity_on", "到期日期", _l("Matures on"), "date", True,
                 _l("Same formats; after the disbursement date."), "2025-03-01", ("到期日",), field="maturity_on"),
    ImportColumn("payment_method", "支付方式", _l("Payment method"), "choice", False,
                 _l("Blank: entrusted payment for a new loan."), "受托支付", (), PAYMENT_NAMES, "payment_method",
                 field="payment_method"),
    ImportColumn("purpose", "用途", _l("Purpose"), "text", False,
                 _l("Free text."), "购买化肥", ("贷款用途", "借款用途"), field="purpose"),
    ImportColumn("status", "状态", _l("Status"), "choice", False,
                 _l("Blank: overdue when days past due is above 0, otherwise active. A settled or "
                    "written-off loan cannot be reopened by an import."), "正常", ("贷款状态",), STATUS_NAMES,
                 "loan_status", field="status", reimport=UPDATE, own_event=True),
    ImportColumn("days_past_due", "逾期天数", _l("Days past due"), "int", False,
                 _l("Whole days, 0 or more. Blank: 0."), "0", (), field="days_past_due", reimport=UPDATE),
    ImportColumn("interest_arrears", "欠息(元)", _l("Interest in arrears (yuan)"), "money", False,
                 _l("Yuan with at most two decimals. Blank: 0."), "0", ("欠息", "欠息金额", "欠息金额(元)"),
                 field="interest_arrears_fen", reimport=UPDATE),
    ImportColumn("risk_class", "风险分类", _l("Risk class"), "choice", False,
                 _l("Five-category class. Blank: normal for a new loan, the stored class otherwise."),
                 "正常", ("五级分类",), RISK_NAMES, "risk_class",
                 field="risk_class", reimport=UPDATE, keep_when_blank=True, own_event=True),
    ImportColumn("officer", "管户客户经理", _l("Managing officer"), "user", True,
                 _l("User name of a loan officer, post-loan officer or branch director working at the "
                    "loan's institution or under it."), "officer", ("客户经理", "管户人", "信贷员"),
                 field="officer", reimport=UPDATE, own_event=True),
    ImportColumn("investigator", "调查人", _l("Investigated by"), "user", False,
                 _l("User name; someone at the loan's institution, above it or under it. Blank keeps "
                    "the stored person."), "officer", (), field="investigator", own_event=True),
    ImportColumn("reviewer", "审查人", _l("Reviewed by"), "user", False,
                 _l("User name, as for the investigator."), "director", (), field="reviewer", own_event=True),
    ImportColumn("approver", "审批人", _l("Approved by"), "user", False,
                 _l("User name, as for the investigator."), "director", (), field="approver", own_event=True),
    ImportColumn("restructured_on", "重组日期", _l("Restructured on"), "date", False,
                 _l("Date formats as above. Blank keeps the stored date."), "", (),
                 field="restructured_on", reimport=UPDATE, keep_when_blank=True, own_event=True),
    ImportColumn("settled_on", "结清日期", _l("Settled on"), "date", False,
                 _l("Required when the status is settled; only for settled or written-off loans."), "", (),
                 field="settled_on", reimport=UPDATE, keep_when_blank=True, own_event=True),
]
COLUMN = {c.key: c for c in COLUMNS}
COLUMN_OF_FIELD = {c.field: c for c in COLUMNS}
REQUIRED = [c.key for c in COLUMNS if c.required]
PEOPLE = [c for c in COLUMNS if c.kind == "user"]
LOAN_COLUMNS = [c for c in COLUMNS if not c.on_borrower]
BORROWER_COLUMNS = [c for c in COLUMNS if c.on_borrower]


def _norm_header(text: Any) -> str:
    """Header cells compare without case, spaces, underscores, '*' marks or full-width forms."""
    folded = unicodedata.normalize("NFKC", str(text)).strip().lower()
    return re.sub(r"[\s_*\-]", "", folded)


HEADER_KEYS = {_norm_header(name): c.key for c in COLUMNS for name in (c.key, c.header_zh, *c.aliases)}


def column_key(header: Any) -> str | None:
    """The key of the column a header cell names, or None."""
    return HEADER_KEYS.get(_norm_header(header))


def sample_csv() -> str:
    """A header row and one example row, as a loan file would start."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.header_zh for c in COLUMNS])
    writer.writerow([c.example for c in COLUMNS])
    return out.getvalue()
