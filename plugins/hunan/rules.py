"""The rules of 湖南省农村信用社贷后管理办法(试行) as small pure functions over plain values.

Nothing here knows pluggy, Flask or the database; ``plugins/hunan/__init__.py`` only passes
the loan's facts and the union's settings in. Article numbers are those of the 办法.
"""
from __future__ import annotations

from portal.rules import (ArchiveNumberParts, ChecklistItem, DocumentType, Escalation, LoanFacts, Responsibility,
                          RoleAt, SettingSpec)

SOURCE = "湖南办法"
NON_PERFORMING = ("substandard", "doubtful", "loss")

SETTINGS = [
    # Same name as the baseline's setting: in Hunan the amount means "the county approves
    # (上报审批/咨询) and so shares the post-loan duty", not only "the report goes up".
    SettingSpec("escalation_threshold_yuan", "int", 500_000,
                "上报县联社审批(咨询)的贷款金额起点(元)",
                "Loan amount from which the county union approves and shares post-loan duty (yuan)",
                f"{SOURCE} 第四条、第六条 (amount set by the union's authorisation; 500,000 as in the baseline)"),
    SettingSpec("report_major_risk_to_county", "bool", True,
                "出现重大风险的贷款检查报告报送县联社",
                "Send inspection reports on loans at major risk to the county union",
                f"{SOURCE} 第五条(五)"),
    SettingSpec("archive_item_digits", "int", 5, "档号件号位数", "Digits of the item number in an archive number",
                f"{SOURCE} 第五条(四)、第六条 (a branch files all loans of its area; 5 digits is a stated default)",
                minimum=4, maximum=8),
]

# 第五条(二) customer supervision and inspection; (三) guarantors and collateral; (四) re-rating.
CHECKLIST = [
    ChecklistItem("account_activity", "客户资金账户往来(第五条(二))", "Account activity of the customer (art. 5(2))"),
    ChecklistItem("use_of_funds", "信贷资金实际用途(第五条(二))", "Actual use of the loan funds (art. 5(2))"),
    ChecklistItem("approval_conditions", "审批内容落实情况(第五条(二))", "Conditions of the approval carried out (art. 5(2))"),
    ChecklistItem("business_finances", "生产经营及财务状况(第五条(二))", "Business and financial condition (art. 5(2))"),
    ChecklistItem("repayment_capacity", "到期偿还贷款本息能力(第五条(二))", "Ability to repay principal and interest at maturity (art. 5(2))"),
    ChecklistItem("major_changes", "改组改制、重大人事调整、对外担保(第五条(二))", "Reorganisation, key staff changes, guarantees given (art. 5(2))"),
    ChecklistItem("guarantors", "担保人情况(第五条(三))", "Guarantors (art. 5(3))"),
    ChecklistItem("collateral", "抵(质)押物情况(第五条(三))", "Collateral (art. 5(3))"),
    ChecklistItem("credit_rating", "客户信用等级复测(第五条(四))", "Credit rating re-tested (art. 5(4))"),
]

# Document types the 办法 names on top of the baseline's credit file.
DOCUMENT_TYPES = [
    DocumentType("account_monitoring_record", "账户监管记录", "Account monitoring record", "post_loan", "D30"),
    DocumentType("debit_voucher", "本息扣划凭证", "Principal and interest debit voucher", "post_loan", "D30"),
    DocumentType("rating_retest", "客户信用等级复测表", "Credit rating re-test sheet", "post_loan", "D30"),
    DocumentType("npl_disposal_plan", "不良贷款处置方案", "Non-performing loan disposal plan", "post_loan", "D30"),
    DocumentType("audit_inspection_report", "稽核检查报告", "Audit inspection report", "post_loan", "D30"),
]

LEADERSHIP_NOTE = "县级联社理事长、主任和分管信贷业务副主任对辖内贷后管理负领导责任(第六条第二款)"
ACCOUNTING_NOTE = "会计部门配合严控资金流向,做好账户监管、本息扣划(第七条)"
AUDIT_NOTE = "稽核部门对贷后管理进行再监督,定期与不定期稽核检查(第七条)"


def approved_by_county(amount_fen: int, threshold_yuan: int) -> bool:
    """第四条、第六条: loans from the threshold up are approved by (or reported to) the county."""
    return amount_fen >= threshold_yuan * 100


def at_major_risk(loan: LoanFacts, substandard_after_dpd: int) -> bool:
    """第五条(五): a non-performing class, or overdue past the substandard floor."""
    return loan.risk_class in NON_PERFORMING or loan.days_past_due > substandard_after_dpd


def county_escalation(loan: LoanFacts, threshold_yuan: int, report_major_risk: bool,
                      substandard_after_dpd: int, department: str) -> Escalation | None:
    """The county's share of the inspection report, or None when the branch keeps it alone."""
    if approved_by_county(loan.amount_fen, threshold_yuan):
        return Escalation(True, "county", department,
                          f"县联社审批(咨询)的贷款(≥{threshold_yuan // 10000}万元),县联社承担相应贷后管理责任(第六条)")
    is_open = loan.status not in ("settled", "written_off")
    if report_major_risk and is_open and at_major_risk(loan, substandard_after_dpd):
        return Escalation(True, "county", department, "及时向上级报告重大风险(第五条(五))")
    return None


def responsibility(loan: LoanFacts, threshold_yuan: int) -> Responsibility:
    """第六条: the loan officer acts, the branch manages every loan of its area directly; the
    county answers with it for loans it approved. Leadership, accounting and audit are notes."""
    primary = [RoleAt("branch_director", "branch")]
    if approved_by_county(loan.amount_fen, threshold_yuan):
        primary.append(RoleAt("branch_director", "county"))
    return Responsibility(
        acting=(RoleAt("loan_officer", "branch"),),
        primary=tuple(primary),
        inspection_sign_off=(RoleAt("branch_director", "branch"),),
        write_off_approval=(RoleAt("branch_director", "county"),),
        basis=f"{SOURCE} 第五条至第七条",
        notes=(LEADERSHIP_NOTE, ACCOUNTING_NOTE, AUDIT_NOTE),
    )


def extra_required(loan: LoanFacts, stage: str) -> list[str]:
    """Documents the 办法 adds to the baseline's list for a stage."""
    if stage != "post_loan" or loan.status in ("settled", "written_off"):
        return []
    docs = ["account_monitoring_record"]                   # 第五条(二)、第七条 账户监管
    if loan.risk_class in NON_PERFORMING:
        docs.append("npl_disposal_plan")                   # 第五条(六)
    return docs


def merge(first: list, extra: list) -> list:
    """``first`` followed by what ``extra`` adds, without repeats."""
    return list(first) + [x for x in extra if x not in first]


def with_document_types(baseline: list[DocumentType]) -> list[DocumentType]:
    """The baseline's types, then the 办法's own (a code the baseline already has is kept as is)."""
    known = {d.code for d in baseline}
    return list(baseline) + [d for d in DOCUMENT_TYPES if d.code not in known]


def archive_number(parts: ArchiveNumberParts, item_digits: int) -> str:
    """DA/T 22-2015 order with a wider item number (件号)."""
    return (f"{parts.fonds}-{parts.category}·{parts.year}-{parts.retention_code}-"
            f"{parts.institution_code}-{parts.item_no:0{item_digits}d}")
