"""The rules of 农户贷款管理办法实施细则 (山东) as small pure functions over plain values.

Nothing here knows pluggy, Flask or the database; ``plugins/shandong/__init__.py`` only passes
the loan's facts and the union's settings in. Article numbers are those of the 细则.
"""
from __future__ import annotations

from dataclasses import dataclass

from portal.rules import DocumentType, Escalation, LoanFacts, Responsibility, RoleAt, SettingSpec

SOURCE = "山东细则"


@dataclass(frozen=True)
class FarmLoanType:
    """One farm-household loan type of 第二条 and where it sits in the portal."""

    name_zh: str
    product: str                  # the portal's product code
    guarantee_type: str           # the portal's guarantee type
    certificate_setting: str | None = None   # the setting saying whether it is lent on a 贷款证


# 第二条: by guarantee — 小额信用, 联保, 一户多保, 抵押, 质押, 其他保证.
FARM_LOAN_TYPES = [
    FarmLoanType("农户小额信用贷款", "farm_credit", "credit", "loan_certificate_farm_credit"),
    FarmLoanType("农户联保贷款", "joint_guarantee", "joint", "loan_certificate_joint_guarantee"),
    FarmLoanType("一户多保", "multi_guarantee", "guarantee", "loan_certificate_multi_guarantee"),
    FarmLoanType("农户抵押贷款", "mortgage", "mortgage"),
    FarmLoanType("农户质押贷款", "pledge", "pledge"),
    FarmLoanType("农户其他保证贷款", "guaranteed", "guarantee"),
]
BY_PRODUCT = {t.product: t for t in FARM_LOAN_TYPES}

SETTINGS = [
    SettingSpec("director_authority_limit_yuan", "int", 100_000, "信用社主任审批权限(元)",
                "Branch director's lending authority (yuan)",
                f"{SOURCE} 第五条、第七条 (set in the county's yearly written authorisation; 100,000 is a stated default)"),
    SettingSpec("loan_certificate_farm_credit", "bool", True, "小额信用贷款凭贷款证发放",
                "Farm credit loans are lent on a loan certificate (贷款证)", f"{SOURCE} 第二条"),
    SettingSpec("loan_certificate_joint_guarantee", "bool", True, "联保贷款凭贷款证发放",
                "Joint-guarantee loans are lent on a loan certificate (贷款证)", f"{SOURCE} 第二条"),
    SettingSpec("loan_certificate_multi_guarantee", "bool", False, "一户多保贷款凭贷款证发放",
                "Multi-guarantor loans are lent on a loan certificate (贷款证)", f"{SOURCE} 第二条"),
]

DOCUMENT_TYPES = [
    DocumentType("loan_certificate", "贷款证", "Loan certificate", "application", "D30"),
    DocumentType("review_group_minutes", "贷审小组审议记录", "Loan review group minutes", "application", "D30"),
    DocumentType("joint_guarantee_agreement", "联保协议书", "Joint-guarantee agreement", "disbursement", "D30"),
]

RISK_DEPARTMENT = "风险管理部"
AUTHORISATION_NOTES = (
    "信用社主任审批权限由联社主任书面授权,每年度调整(第七条)",
    "信用社主任不得以任何形式对信贷人员转授权(第七条)",
    "贷审小组审议自然人信用评定、授信额度及其他信贷业务(第八条)",
)


def guarantee_of(loan: LoanFacts) -> str:
    """The guarantee the loan's product stands for (第二条); other products keep their own."""
    known = BY_PRODUCT.get(loan.product)
    return known.guarantee_type if known else loan.guarantee_type


def lent_on_certificate(product: str, settings) -> bool:
    """第二条: 贷款证贷款 or 非贷款证贷款, as the union lends this product."""
    known = BY_PRODUCT.get(product)
    return bool(known and known.certificate_setting and settings[known.certificate_setting])


def within_director_authority(amount_fen: int, limit_yuan: int) -> bool:
    return amount_fen <= limit_yuan * 100


def responsibility(loan: LoanFacts, limit_yuan: int) -> Responsibility:
    """第五条's matrix of acting (经办) and primary (主) responsible persons."""
    if within_director_authority(loan.amount_fen, limit_yuan):
        return Responsibility(
            acting=(RoleAt("loan_officer", "branch"),),
            primary=(RoleAt("branch_director", "branch"),),
            inspection_sign_off=(RoleAt("branch_director", "branch"),),
            write_off_approval=(RoleAt("branch_director", "county"),),
            basis=f"{SOURCE} 第五条(信用社主任审批权限内)",
            notes=("信贷员为贷前调查和贷后管理的经办责任人", "信贷专管员为审查主责任人",
                   "信用社主任为审批主责任人", *AUTHORISATION_NOTES),
        )
    return Responsibility(
        acting=(RoleAt("loan_officer", "branch"),),
        primary=(RoleAt("branch_director", "branch"), RoleAt("branch_director", "county")),
        inspection_sign_off=(RoleAt("branch_director", "branch"),),
        write_off_approval=(RoleAt("branch_director", "county"),),
        basis=f"{SOURCE} 第五条(超信用社主任权限,报联社审批)",
        notes=("信贷员为贷前调查和贷后管理的经办责任人", "信用社主任为贷前调查和贷后管理的主责任人",
               "信贷专管员为审查经办责任人", f"联社{RISK_DEPARTMENT}经理为审查主责任人",
               "联社有权审批人为审批主责任人", *AUTHORISATION_NOTES),
    )


def county_escalation(loan: LoanFacts, limit_yuan: int) -> Escalation | None:
    """Loans above the director's authority were approved by the county: its risk department
    sees their inspection reports (第五条). None: the baseline decides."""
    if within_director_authority(loan.amount_fen, limit_yuan):
        return None
    return Escalation(True, "county", RISK_DEPARTMENT,
                      f"超信用社主任审批权限({limit_yuan // 10000}万元),由联社审批(第五条)")


def extra_required(loan: LoanFacts, stage: str, settings) -> list[str]:
    """Documents the 细则 adds to the baseline's list for a stage."""
    if stage == "application":
        docs = ["credit_rating",           # 第四条 信用等级评定制度
                "review_opinion"]          # 第五条、第六条 信贷专管员审查
        if loan.borrower_kind == "individual":
            docs.append("review_group_minutes")         # 第八条 贷审小组
        if lent_on_certificate(loan.product, settings):
            docs.append("loan_certificate")             # 第二条 贷款证贷款
        return docs
    if stage == "disbursement":
        guarantee = guarantee_of(loan)
        if guarantee == "joint":
            return ["joint_guarantee_agreement", "guarantee_contract"]
        if guarantee == "guarantee":
            return ["guarantee_contract"]
        if guarantee == "mortgage":
            return ["mortgage_contract", "collateral_certificate"]
        if guarantee == "pledge":
            return ["pledge_contract"]
    return []


def merge(first: list, extra: list) -> list:
    """``first`` followed by what ``extra`` adds, without repeats."""
    return list(first) + [x for x in extra if x not in first]


def with_document_types(baseline: list[DocumentType]) -> list[DocumentType]:
    """The baseline's types, then the 细则's own (a code the baseline already has is kept as is)."""
    known = {d.code for d in baseline}
    return list(baseline) + [d for d in DOCUMENT_TYPES if d.code not in known]
