"""The baseline rules, registered ``trylast`` for every union.

Sources: 农村信用社贷后管理实施细则(2篇) (first inspection 7 days, 3 for 自主支付),
ⅩⅩ县农村信用社贷后管理实施细则 第五条 (reports on loans of 50万元 and more go to the
county's 信贷科) and 第六条 (routine intervals by rating; special inspection at once on
arrears or overdue), 农村信用社贷后管理办法 第十条 (archive inspections: county
yearly, branch every six months), 《商业银行金融资产风险分类办法》(2023) (days-past-due floors,
restructuring), 《会计档案管理办法》(2015) and DA/T 22-2015 (retention, archive numbers).

The rules are small pure functions; the hook implementations only pass settings in.
"""
from __future__ import annotations

from datetime import date, timedelta

import pluggy

from ..timeutil import add_months
from .types import (ArchiveNumberParts, ChecklistItem, DocumentType, Escalation, LoanFacts,
                    Responsibility, Retention, RiskSuggestion, RoleAt, SettingSpec)

hookimpl = pluggy.HookimplMarker("xindang")

SETTINGS = [
    SettingSpec("first_inspection_days", "int", 7, "首次检查期限(天)", "First inspection within (days)", "2篇细则 一(二)1"),
    SettingSpec("first_inspection_days_self_pay", "int", 3, "自主支付首次检查期限(天)", "First inspection for self-paid loans within (days)", "2篇细则 一(二)1"),
    SettingSpec("first_visit_rate_percent", "int", 100, "首次回访率(%)", "First-visit rate (%)", "2篇细则 一(二)1 (blank in source)", maximum=100),
    SettingSpec("monthly_spot_check_percent", "int", 10, "每月现场抽查比例(%)", "Monthly on-site spot checks of last month's new borrowers (%)", "2篇细则 一(二)2 (blank in source)", maximum=100),
    SettingSpec("routine_interval_days_aaa_aa", "int", 180, "AAA、AA级检查间隔(天)", "Routine interval for AAA and AA (days)", "ⅩⅩ县细则 第六条", minimum=1),
    SettingSpec("routine_interval_days_a_bbb", "int", 90, "A、BBB级检查间隔(天)", "Routine interval for A and BBB (days)", "ⅩⅩ县细则 第六条", minimum=1),
    SettingSpec("routine_interval_days_low", "int", 60, "BB级以下及未评级检查间隔(天)", "Routine interval for BB and below or unrated (days)", "ⅩⅩ县细则 第六条", minimum=1),
    SettingSpec("escalation_threshold_yuan", "int", 500_000, "检查报告报送县联社的贷款金额(元)", "Loan amount from which reports go to the county (yuan)", "ⅩⅩ县细则 第五条"),
    SettingSpec("escalation_department", "str", "信贷科", "报送部门", "Department receiving escalated reports", "ⅩⅩ县细则 第五条"),
    SettingSpec("special_mention_after_dpd", "int", 0, "逾期超过(天)至少关注", "Overdue beyond (days): at least special-mention", "风险分类办法(2023)", maximum=0),
    SettingSpec("substandard_after_dpd", "int", 90, "逾期超过(天)至少次级", "Overdue beyond (days): at least substandard", "风险分类办法(2023)", maximum=90),
    SettingSpec("doubtful_after_dpd", "int", 270, "逾期超过(天)至少可疑", "Overdue beyond (days): at least doubtful", "风险分类办法(2023)", maximum=270),
    SettingSpec("loss_after_dpd", "int", 360, "逾期超过(天)为损失", "Overdue beyond (days): loss", "风险分类办法(2023)", maximum=360),
    SettingSpec("restructured_observation_months", "int", 6, "重组贷款观察期(月)", "Observation period after restructuring (months)", "风险分类办法(2023)", minimum=6),
    SettingSpec("overdue_bucket_edges", "int_list", [30, 60, 90, 180, 360], "逾期分档上限(天)", "Overdue bucket upper edges (days)", "2篇细则 一(三)", minimum=1),
    SettingSpec("m1_conversion_target_percent", "int", 90, "M1转化率目标(%)", "M1 conversion target (%)", "2篇细则 一(三) (blank in source)", maximum=100),
    SettingSpec("m2_m3_conversion_target_percent", "int", 70, "M2–M3转化率目标(%)", "M2–M3 conversion target (%)", "2篇细则 一(三) (blank in source)", maximum=100),
    SettingSpec("repayment_notice_lead_days", "int", 30, "到期前发送还本付息通知书(天)", "Repayment notice before maturity (days)", "baseline"),
    SettingSpec("overdue_notice_after_days", "int", 3, "逾期后发送催收通知书(天)", "Overdue notice after a miss (days)", "baseline"),
    SettingSpec("archive_fonds", "str", "J001", "全宗号", "Fonds code (全宗号)", "DA/T 22-2015"),
    SettingSpec("archive_category", "str", "XD", "门类代码", "Category code (门类代码)", "DA/T 22-2015"),
    SettingSpec("archive_inspection_months_county", "int", 12, "县联社档案检查周期(月)", "County archive inspection cycle (months)", "贷后管理办法 第十条"),
    SettingSpec("archive_inspection_months_branch", "int", 6, "基层社档案自查周期(月)", "Branch archive self-inspection cycle (months)", "贷后管理办法 第十条"),
    SettingSpec("lending_max_days", "int", 90, "档案借阅及每次续借最长期限(天)", "Longest archive lending or renewal (days)", "baseline", minimum=1, maximum=365),
    SettingSpec("lending_max_renewals", "int", 2, "档案续借次数上限", "Renewals allowed per archive lending", "baseline", maximum=12),
]

CHECKLIST = [
    ChecklistItem("use_of_funds", "贷款用途及资金流向(有无挪用)", "Use of funds (no misuse)"),
    ChecklistItem("business", "生产经营情况", "Business operations"),
    ChecklistItem("finances", "财务及负债情况", "Finances and debts"),
    ChecklistItem("management", "管理层及重大事项变化", "Changes of management and major events"),
    ChecklistItem("guarantors", "保证人情况", "Guarantors"),
    ChecklistItem("collateral", "抵(质)押物情况", "Collateral"),
    ChecklistItem("lawsuits", "涉诉情况", "Lawsuits"),
    ChecklistItem("contact", "联系方式及账户往来", "Contact and account activity"),
]

DOCUMENT_TYPES = [
    DocumentType("loan_application", "借款申请书", "Loan application", "application", "D30"),
    DocumentType("id_documents", "借款人身份证明", "Borrower identity papers", "application", "D30"),
    DocumentType("credit_rating", "信用等级评定表", "Credit rating sheet", "application", "D30"),
    DocumentType("investigation_report", "贷前调查报告", "Pre-loan investigation report", "application", "D30"),
    DocumentType("review_opinion", "贷款审查意见", "Review opinion", "application", "D30"),
    DocumentType("approval", "贷款审批书", "Approval", "application", "D30"),
    DocumentType("loan_contract", "借款合同", "Loan contract", "disbursement", "D30"),
    DocumentType("guarantee_contract", "保证合同", "Guarantee contract", "disbursement", "D30"),
    DocumentType("mortgage_contract", "抵押合同", "Mortgage contract", "disbursement", "D30"),
    DocumentType("pledge_contract", "质押合同", "Pledge contract", "disbursement", "D30"),
    DocumentType("collateral_certificate", "他项权证", "Collateral certificate", "disbursement", "D30"),
    DocumentType("loan_receipt", "借据", "Loan receipt", "disbursement", "D30"),
    DocumentType("disbursement_voucher", "放款凭证", "Disbursement voucher", "disbursement", "D30"),
    DocumentType("first_visit", "首次检查记录", "First inspection record", "post_loan", "D10"),
    DocumentType("inspection_report", "贷后检查报告", "Post-loan inspection report", "post_loan", "D30"),
    DocumentType("repayment_notice", "还本付息通知书", "Repayment notice", "post_loan", "D30"),
    DocumentType("overdue_notice", "逾期催收通知书", "Overdue collection notice", "post_loan", "D30"),
    DocumentType("risk_classification", "风险分类认定表", "Risk classification sheet", "post_loan", "D30"),
    DocumentType("warning_record", "风险预警处置记录", "Early-warning record", "post_loan", "D30"),
    DocumentType("handover_list", "贷款管理责任移交清单", "Loan handover list", "post_loan", "permanent"),
    DocumentType("repayment_record", "还款凭证", "Repayment record", "settlement", "D30"),
    DocumentType("settlement_certificate", "结清证明", "Settlement certificate", "settlement", "D30"),
    DocumentType("evaluation", "总结评价表", "Final evaluation", "settlement", "D30"),
    DocumentType("write_off_application", "核销申请书", "Write-off application", "write_off", "permanent"),
    DocumentType("write_off_approval", "核销审批书", "Write-off approval", "write_off", "permanent"),
    DocumentType("write_off_evidence", "核销证据材料", "Write-off evidence", "write_off", "permanent"),
]

HIGH_RATINGS = {"AAA", "AA"}
MID_RATINGS = {"A", "BBB"}
RETENTION_YEARS = {"permanent": None, "D30": 30, "D10": 10}


# --- pure rules -------------------------------------------------------------------------

def first_inspection_due(disbursed_on: date, payment_method: str, days: int, days_self_pay: int) -> date:
    return disbursed_on + timedelta(days=days_self_pay if payment_method == "self" else days)


def routine_interval(rating: str, high: int, mid: int, low: int) -> int:
    if rating in HIGH_RATINGS:
        return high
    if rating in MID_RATINGS:
        return mid
    return low


def special_triggers(days_past_due: int, interest_arrears_fen: int, status: str) -> list[str]:
    if status in ("settled", "written_off"):
        return []
    reasons = []
    if days_past_due > 0 or status == "overdue":
        reasons.append("overdue")
    if interest_arrears_fen > 0:
        reasons.append("interest_arrears")
    return reasons


def escalation(amount_fen: int, threshold_yuan: int, level: str, department: str) -> Escalation:
    if amount_fen >= threshold_yuan * 100:
        return Escalation(True, level, department, f"贷款金额达到{threshold_yuan // 10000}万元")
    return Escalation(False)


def dpd_floor(dpd: int, sm: int, sub: int, dbt: int, loss: int) -> tuple[str, list[str]]:
    if dpd > loss:
        return "loss", [f"逾期{dpd}天,超过{loss}天"]
    if dpd > dbt:
        return "doubtful", [f"逾期{dpd}天,超过{dbt}天"]
    if dpd > sub:
        return "substandard", [f"逾期{dpd}天,超过{sub}天"]
    if dpd > sm:
        return "special_mention", [f"逾期{dpd}天"]
    return "normal", []


def worse(a: str, b: str) -> str:
    order = ("normal", "special_mention", "substandard", "doubtful", "loss")
    return a if order.index(a) >= order.index(b) else b


def classify(loan: LoanFacts, as_of: date, s) -> RiskSuggestion:
    floor, reasons = dpd_floor(loan.days_past_due, s["special_mention_after_dpd"], s["substandard_after_dpd"],
                               s["doubtful_after_dpd"], s["loss_after_dpd"])
    locked_until = None
    if loan.restructured_on is not None:
        end = add_months(loan.restructured_on, s["restructured_observation_months"])
        if as_of < end:
            locked_until = end
            if worse(floor, "substandard") != floor:
                floor = "substandard"
            reasons.append(f"重组贷款,观察期至{end.isoformat()}")
    if loan.interest_arrears_fen > 0 and floor == "normal":
        floor = "special_mention"
        reasons.append("欠息")
    return RiskSuggestion(floor=floor, suggested=floor, reasons=tuple(reasons), locked_until=locked_until)


def required_for(loan: LoanFacts, stage: str) -> list[str]:
    if stage == "application":
        docs = ["loan_application", "id_documents", "investigation_report", "approval"]
        if loan.borrower_kind == "individual":
            docs.insert(2, "credit_rating")
        return docs
    if stage == "disbursement":
        docs = ["loan_contract", "loan_receipt"]
        if loan.guarantee_type in ("guarantee", "joint"):
            docs.append("guarantee_contract")
        if loan.guarantee_type == "mortgage":
            docs += ["mortgage_contract", "collateral_certificate"]
        if loan.guarantee_type == "pledge":
            docs.append("pledge_contract")
        return docs
    if stage == "post_loan":
        return ["first_visit"]
    if stage == "settlement":
        return ["settlement_certificate"] if loan.status == "settled" else []
    if stage == "write_off":
        return (["write_off_application", "write_off_approval", "write_off_evidence"]
                if loan.status == "written_off" else [])
    return []


def format_archive_number(p: ArchiveNumberParts) -> str:
    return f"{p.fonds}-{p.category}·{p.year}-{p.retention_code}-{p.institution_code}-{p.item_no:04d}"


# --- hook implementations ---------------------------------------------------------------

@hookimpl(trylast=True)
def xindang_default_settings():
    return list(SETTINGS)


@hookimpl(trylast=True)
def xindang_first_inspection_due(loan: LoanFacts, settings):
    return first_inspection_due(loan.disbursed_on, loan.payment_method,
                                settings["first_inspection_days"], settings["first_inspection_days_self_pay"])


@hookimpl(trylast=True)
def xindang_routine_inspection_interval(loan: LoanFacts, settings):
    return routine_interval(loan.credit_rating, settings["routine_interval_days_aaa_aa"],
                            settings["routine_interval_days_a_bbb"], settings["routine_interval_days_low"])


@hookimpl(trylast=True)
def xindang_special_inspection_triggers(loan: LoanFacts, settings):
    return special_triggers(loan.days_past_due, loan.interest_arrears_fen, loan.status)


@hookimpl(trylast=True)
def xindang_inspection_escalation(loan: LoanFacts, settings):
    return escalation(loan.amount_fen, settings["escalation_threshold_yuan"], "county",
                      settings["escalation_department"])


@hookimpl(trylast=True)
def xindang_inspection_checklist(settings):
    return list(CHECKLIST)


@hookimpl(trylast=True)
def xindang_classify_risk(loan: LoanFacts, as_of: date, settings):
    return classify(loan, as_of, settings)


@hookimpl(trylast=True)
def xindang_overdue_bucket_edges(settings):
    return sorted(settings["overdue_bucket_edges"])


@hookimpl(trylast=True)
def xindang_document_types(settings):
    return list(DOCUMENT_TYPES)


@hookimpl(trylast=True)
def xindang_required_documents(loan: LoanFacts, stage: str, settings):
    return required_for(loan, stage)


@hookimpl(trylast=True)
def xindang_retention_period(doc_type: DocumentType, settings):
    years = RETENTION_YEARS.get(doc_type.retention, 30)
    return Retention("Y" if years is None else f"D{years}", years)


@hookimpl(trylast=True)
def xindang_archive_number(parts: ArchiveNumberParts, settings):
    return format_archive_number(parts)


@hookimpl(trylast=True)
def xindang_archive_inspection_cycle(level: str, settings):
    return {"county": settings["archive_inspection_months_county"],
            "branch": settings["archive_inspection_months_branch"]}.get(level, 0)


@hookimpl(trylast=True)
def xindang_responsibility_roles(loan: LoanFacts, settings):
    return Responsibility(
        acting=(RoleAt("loan_officer", "branch"),),
        primary=(RoleAt("branch_director", "branch"),),
        inspection_sign_off=(RoleAt("branch_director", "branch"),),
        write_off_approval=(RoleAt("branch_director", "county"),),
        basis="农村信用社贷后管理办法 第四条",
    )


@hookimpl(trylast=True)
def xindang_notice_lead_days(kind: str, settings):
    return {"repayment": settings["repayment_notice_lead_days"],
            "overdue": settings["overdue_notice_after_days"]}.get(kind, 0)
