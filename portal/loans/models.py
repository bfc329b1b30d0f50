"""Borrowers and loans. Money is integer fen everywhere; rates are annual percent as Decimal."""
from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..accounts.models import Institution, User
from ..extensions import db
from ..timeutil import utcnow


class BorrowerKind(str, enum.Enum):
    INDIVIDUAL = "individual"
    ENTERPRISE = "enterprise"


CREDIT_RATINGS = ["AAA", "AA", "A", "BBB", "BB", "B", "CCC", "CC", "C"]
UNRATED = "unrated"


class Product(str, enum.Enum):
    FARM_CREDIT = "farm_credit"              # 农户小额信用贷款
    JOINT_GUARANTEE = "joint_guarantee"      # 农户联保贷款
    MULTI_GUARANTEE = "multi_guarantee"      # 一户多保
    MORTGAGE = "mortgage"                    # 抵押贷款
    PLEDGE = "pledge"                        # 质押贷款
    GUARANTEED = "guaranteed"                # 保证贷款
    WORKING_CAPITAL = "working_capital"      # 企业流动资金贷款
    FIXED_ASSETS = "fixed_assets"            # 固定资产贷款
    CONSUMER = "consumer"                    # 个人消费贷款


class GuaranteeType(str, enum.Enum):
    CREDIT = "credit"          # 信用
    GUARANTEE = "guarantee"    # 保证
    JOINT = "joint"            # 联保
    MORTGAGE = "mortgage"      # 抵押
    PLEDGE = "pledge"          # 质押


class PaymentMethod(str, enum.Enum):
    ENTRUSTED = "entrusted"    # 受托支付
    SELF = "self"              # 自主支付


class LoanStatus(str, enum.Enum):
    ACTIVE = "active"
    OVERDUE = "overdue"
    SETTLED = "settled"
    WRITTEN_OFF = "written_off"


# Open loans are managed after the loan (inspections, warnings, classification, collection);
# closed ones only keep their files.
OPEN_LOAN_STATUSES = (LoanStatus.ACTIVE.value, LoanStatus.OVERDUE.value)
CLOSED_LOAN_STATUSES = (LoanStatus.SETTLED.value, LoanStatus.WRITTEN_OFF.value)


class RiskClass(str, enum.Enum):
    NORMAL = "normal"                  # 正常
    SPECIAL_MENTION = "special_mention"  # 关注
    SUBSTANDARD = "substandard"        # 次级
    DOUBTFUL = "doubtful"              # 可疑
    LOSS = "loss"                      # 损失


RISK_ORDER = [r.value for r in RiskClass]


class Borrower(db.Model):
    __tablename__ = "borrower"
    __scope_column__ = "institution_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default=BorrowerKind.INDIVIDUAL.value)
    name: Mapped[str] = mapped_column(String(128), index=True)
    id_number: Mapped[str] = mapped_column(String(32), index=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(255))
    credit_rating: Mapped[str] = mapped_column(String(8), default=UNRATED)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    institution: Mapped[Institution] = relationship()
    loans: Mapped[list[Loan]] = relationship(back_populates="borrower", order_by="Loan.disbursed_on")

    @property
    def masked_id_number(self) -> str:
        return mask_id_number(self.id_number)


def mask_id_number(value: str) -> str:
    """``430***********1234``: first three and last four shown, the rest starred."""
    if not value:
        return ""
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


class Loan(db.Model):
    __tablename__ = "loan"
    __scope_column__ = "branch_id"
    # The loan list, newest first, read in index order without a sort (bench/load.md): a branch's
    # from the first index; a county's or a union's from the second, walked from the newest and
    # kept by the branch it holds, until the page is full (it also serves disbursement dates).
    __table_args__ = (Index("ix_loan_branch_disbursed", "branch_id", "disbursed_on", "id"),
                      Index("ix_loan_disbursed_id_branch", "disbursed_on", "id", "branch_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_no: Mapped[str] = mapped_column(String(64), unique=True)
    borrower_id: Mapped[int] = mapped_column(ForeignKey("borrower.id"), index=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    product: Mapped[str] = mapped_column(String(32))
    guarantee_type: Mapped[str] = mapped_column(String(16))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    balance_fen: Mapped[int] = mapped_column(BigInteger)
    rate_percent: Mapped[Decimal] = mapped_column(Numeric(7, 4))
    disbursed_on: Mapped[date] = mapped_column()
    maturity_on: Mapped[date] = mapped_column(index=True)
    payment_method: Mapped[str] = mapped_column(String(16), default=PaymentMethod.ENTRUSTED.value)
    purpose: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=LoanStatus.ACTIVE.value, index=True)
    days_past_due: Mapped[int] = mapped_column(default=0)
    interest_arrears_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    risk_class: Mapped[str] = mapped_column(String(16), default=RiskClass.NORMAL.value, index=True)
    restructured_on: Mapped[date | None] = mapped_column()
    settled_on: Mapped[date | None] = mapped_column()
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), index=True)
    investigator_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    approver_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    borrower: Mapped[Borrower] = relationship(back_populates="loans")
    branch: Mapped[Institution] = relationship()
    officer: Mapped[User | None] = relationship(foreign_keys=[officer_id])
    investigator: Mapped[User | None] = relationship(foreign_keys=[investigator_id])
    reviewer: Mapped[User | None] = relationship(foreign_keys=[reviewer_id])
    approver: Mapped[User | None] = relationship(foreign_keys=[approver_id])

    @property
    def is_closed(self) -> bool:
        return self.status in (LoanStatus.SETTLED.value, LoanStatus.WRITTEN_OFF.value)
