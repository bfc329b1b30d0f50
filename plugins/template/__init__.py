"""Rules plugin ``template``: xx省农村信用社贷后管理办法(模版) — the skeleton a new province copies.

The 模版 has four tiers (第五条): the provincial union (省联社), the city office (市级机构:
办事处、市联社), the county union or bank (县级行社) and the lending unit (办贷机构). This plugin
shows the three ways a province answers a hook:

1. always answer — ``xindang_inspection_checklist`` (第九条) and
   ``xindang_responsibility_roles`` (第三条、第七条至第九条);
2. answer some loans and return ``None`` for the rest, so the baseline answers them —
   ``xindang_inspection_escalation`` (the city tier for the largest loans, 第五条);
3. not implement the hook at all — every other hook is the baseline's.

``xindang_default_settings`` adds the province's own setting and changes the default of a
baseline setting (the county department that receives reports, 第八条). Everything here is
pure: no Flask, no database, only ``portal.rules`` and its types. See docs/plugins.md.
"""
from __future__ import annotations

from portal.rules import ChecklistItem, Escalation, LoanFacts, Responsibility, RoleAt, SettingSpec, hookimpl

SOURCE = "模版"

SETTINGS = [
    SettingSpec("city_escalation_threshold_yuan", "int", 5_000_000, "检查报告报送市级机构的贷款金额(元)",
                "Loan amount from which inspection reports go to the city office (yuan)",
                f"{SOURCE} 第五条 (four tiers; the amount is the province's, 5,000,000 is a stated default)"),
    # Same name as the baseline's setting: the 模版 gives the receiving county department's name.
    SettingSpec("escalation_department", "str", "贷后管理职能部门", "县级行社接收检查报告的部门",
                "County department receiving escalated reports", f"{SOURCE} 第八条"),
]

# 第九条: the lending unit's post-loan duties, in the article's order.
CHECKLIST = [
    ChecklistItem("account_activity", "账户监管:客户账户资金往来(第九条(一))", "Account monitoring: money in and out (art. 9(1))"),
    ChecklistItem("business_finances", "现场检查:生产经营及财务状况(第九条(二))", "On-site: business and finances (art. 9(2))"),
    ChecklistItem("guarantors", "现场检查:担保人情况(第九条(二))", "On-site: guarantors (art. 9(2))"),
    ChecklistItem("collateral", "现场检查:抵(质)押物情况(第九条(二))", "On-site: collateral (art. 9(2))"),
    ChecklistItem("public_information", "日常跟踪:行业、市场、客户公开信息(第九条(三))", "Tracking: sector, market and public news (art. 9(3))"),
    ChecklistItem("risk_signals", "风险信号及处理建议(第九条(四))", "Risk signals and proposed handling (art. 9(4))"),
    ChecklistItem("risk_classification", "风险分类(第九条(五))", "Risk classification (art. 9(5))"),
]


# --- pure rules -------------------------------------------------------------------------

def city_escalation(amount_fen: int, threshold_yuan: int) -> Escalation | None:
    """第五条: the largest loans go up to the city tier; None lets the baseline send the rest
    to the county."""
    if amount_fen >= threshold_yuan * 100:
        return Escalation(True, "city", "市级机构(办事处、市联社)",
                          f"贷款金额达到{threshold_yuan // 10000}万元,报送市级机构(第五条)")
    return None


def responsibility(loan: LoanFacts) -> Responsibility:
    """第三条、第九条: the lending unit's post-loan staff act and its head answers; 第七条: the
    county carries overall risk control, so it approves write-offs."""
    return Responsibility(
        acting=(RoleAt("loan_officer", "branch"),),
        primary=(RoleAt("branch_director", "branch"),),
        inspection_sign_off=(RoleAt("branch_director", "branch"),),
        write_off_approval=(RoleAt("branch_director", "county"),),
        basis=f"{SOURCE} 第三条、第七条至第九条",
        notes=("省联社、市级机构(办事处、市联社)、县级行社、办贷机构四级(第五条)",
               "县级行社负责贷后管理的组织实施、总体风险控制、定期风险分析(第七条)",
               "县级行社贷后管理职能部门监督检查办贷机构贷后管理工作(第八条)"),
    )


# --- hook implementations: a few lines each ---------------------------------------------

@hookimpl
def xindang_default_settings():
    """第五条、第八条: the city tier's amount; the county department's name."""
    return list(SETTINGS)


@hookimpl
def xindang_inspection_checklist():
    """第九条: what the lending unit checks."""
    return list(CHECKLIST)


@hookimpl
def xindang_inspection_escalation(loan, settings):
    """第五条: city tier for the largest loans; otherwise None, and the baseline decides."""
    return city_escalation(loan.amount_fen, settings["city_escalation_threshold_yuan"])


@hookimpl
def xindang_responsibility_roles(loan):
    """第三条、第七条至第九条: who acts, who answers, who signs off, who approves write-offs."""
    return responsibility(loan)
