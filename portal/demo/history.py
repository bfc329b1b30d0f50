"""The demo's post-loan and archive history: what a county's staff have done with the demo loans
up to today, through the same services their pages call.

- Inspections: every open loan's first inspection was scheduled when it was disbursed (a loan
  that went overdue got its special inspection that day); the officer recorded it, mostly on
  time, now and then a few days late, then the routine inspection the union's schedule asks
  for; the director signed the reports off (the last few days' reports still wait), the county
  reviewed the escalated ones. Of a loan older than two routine periods only the latest routine
  inspection is recorded (it shows as done late against the first one's schedule): each
  sign-off renders the report PDF (about 0.2 s), and the whole history would take minutes. A minority is behind: the first inspection of a few
  recent loans, the routine inspection of about one loan in ten, the special inspection of
  loans that went overdue in the last days. An inspection that found a problem raised its
  warning; the post-loan officer is handling some, lifted others.
- Classification: the daily run opens the reviews the rules ask for; the director has
  confirmed some, the rest wait.
- Snapshots: the daily run writes today's bucket snapshot; the weeks before are written by
  the same ``write_snapshot`` from each loan's state on that day (days past due counted back,
  settled loans still open then, a few loans that were briefly overdue and caught up), so the
  migration matrix has a start and an end. The completeness trend has a weekly snapshot of the
  audit over the loans disbursed by then.
- Lending: a few archived files are on loan, one returned, one waiting for approval, and one
  paper lending past its due date.

Every date counts back from the day of the run; every choice comes from a ``random.Random``
seeded with the contract number, so runs on the same day do the same.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from types import SimpleNamespace

from sqlalchemy import select

from ..accounts.models import Institution, Level, User
from ..archive.lending import approve_lending, issue_lending, remind_lending, request_lending, return_lending
from ..archive.models import Document, DocState, Volume
from ..audit_trail import record_event
from ..auditing.completeness import audit_completeness, write_snapshots
from ..extensions import db
from ..loans.models import OPEN_LOAN_STATUSES, Loan, LoanStatus
from ..loans.services import loan_facts
from ..postloan.classification import confirm_classification
from ..postloan.collection import write_snapshot
from ..postloan.daily import refresh_loans, run_daily
from ..postloan.inspections import (blank_findings, can_review_escalation, can_sign_off, review_escalation,
                                   save_inspection, sign_off_inspection)
from ..postloan.models import (INSPECTION_TODO, ClassificationReview, EscalationStatus, Inspection, InspectionKind,
                              PostloanFile, ReviewStatus, RiskWarning, WARNING_ACTIVE)
from ..postloan.state import Changes, LoanState
from ..postloan.warnings import act_on_warning
from ..rules.lookup import rules_for
from .documents import archivist_of, file_onward

SEED = "xindang-demo-history"
SNAPSHOT_WEEKS = 17          # bucket snapshots: weekly, a little over the migration page's default period
TREND_WEEKS = 13             # completeness snapshots: the trend panel shows 90 days
AWAIT_SIGN_OFF_DAYS = 6      # reports of the last days still wait for the director

CONCLUSIONS = (
    "借款人生产经营正常,贷款资金按约定用途使用,未发现风险信号,继续按期检查。",
    "经实地查看,借款人家庭收入稳定,还款意愿良好,担保情况无变化。",
    "贷款用途与合同约定一致,借款人按期付息,风险可控。",
    "借款人经营规模较上次检查有所扩大,现金流正常,未发现异常。",
)
PROBLEM_NOTES = {
    "use_of_funds": "部分资金用于归还民间借款,已责令整改。",
    "business_finances": "受市场行情影响,销售收入较上年下降约三成。",
    "business": "受市场行情影响,销售收入较上年下降约三成。",
    "repayment_capacity": "本期利息延迟支付,还款能力减弱。",
    "guarantors": "保证人外出务工,联系困难。",
    "collateral": "抵押房屋部分出租,未告知我社。",
    "contact": "借款人更换手机号码未告知,已重新登记。",
    "account_activity": "结算账户资金往来明显减少。",
}
SPECIAL_CONCLUSION = "贷款已逾期,经上门核实,借款人因经营周转困难未能按期还款,已送达催收通知,制定分期还款计划,列入重点监控。"


@dataclass
class HistoryResult:
    inspections: int = 0
    signed_off: int = 0
    warnings_acted: int = 0
    reviews_confirmed: int = 0
    snapshots: int = 0
    completeness_snapshots: int = 0
    lendings: int = 0
    reports_filed: int = 0


def _branch_staff(branch: Institution) -> list[User]:
    ids = [branch.id] + ([branch.parent_id] if branch.parent_id else [])
    return list(db.session.execute(select(User).where(User.institution_id.in_(ids)).order_by(User.id)).scalars())


def _signer(insp: Inspection, rules, staff: list[User]) -> User | None:
    return next((user for user in staff if can_sign_off(user, insp, rules)), None)


def _not_applicable(code: str, loan: Loan) -> bool:
    if code == "guarantors":
        return loan.guarantee_type not in ("guarantee", "joint")
    if code == "collateral":
        return loan.guarantee_type not in ("mortgage", "pledge")
    return False


def _results(insp: Inspection, rules, loan: Loan, rng: random.Random, problem: bool) -> tuple[dict, str]:
    rows = blank_findings(rules)
    results = {r["code"]: ("not_applicable" if _not_applicable(r["code"], loan) else "ok", "") for r in rows}
    conclusion = rng.choice(CONCLUSIONS)
    if insp.kind == InspectionKind.SPECIAL.value or problem:
        codes = [c for c in results if c in PROBLEM_NOTES and results[c][0] == "ok"]
        if codes:
            code = rng.choice(codes)
            results[code] = ("problem", PROBLEM_NOTES[code])
        conclusion = SPECIAL_CONCLUSION if insp.kind == InspectionKind.SPECIAL.value else (
            "检查发现问题,已要求借款人整改,下次检查重点跟踪。")
    return results, conclusion


@dataclass
class _LoanPlan:
    first_overdue: bool
    routine_behind: int          # days the routine inspection may fall behind (0: on schedule)
    special_done: bool


def _loan_plan(loan: Loan, today: date, first_due: date) -> _LoanPlan:
    rng = random.Random(f"{SEED}-plan-{loan.contract_no}")
    recent_first = today - timedelta(days=30) <= first_due < today
    return _LoanPlan(first_overdue=recent_first and rng.random() < 0.5,
                     routine_behind=rng.randint(3, 40) if rng.random() < 0.22 else 0,
                     special_done=loan.days_past_due > 8)


def _planned_day(insp: Inspection, loan: Loan, rules, plan: _LoanPlan, rng: random.Random,
                 today: date) -> date | None:
    """When the officer carried this inspection out, or None if it is still to do."""
    if insp.kind == InspectionKind.FIRST.value:
        if plan.first_overdue:
            return None
        day = insp.due_on + timedelta(days=rng.randint(3, 12) if rng.random() < 0.08 else -rng.randint(0, 2))
    elif insp.kind == InspectionKind.ROUTINE.value:
        interval = timedelta(days=rules.routine_inspection_interval(loan_facts(loan)))
        if insp.due_on + interval <= today:
            # More than one period since the first inspection: only the latest routine
            # inspection is in the demo (see the module's docstring), done a while ago.
            back = interval.days + plan.routine_behind if plan.routine_behind else rng.randint(2, interval.days - 1)
            day = today - timedelta(days=back)
            return day if day > insp.due_on - interval else None
        if plan.routine_behind and insp.due_on >= today - timedelta(days=plan.routine_behind):
            return None
        day = insp.due_on + timedelta(days=rng.randint(1, 6) if rng.random() < 0.1 else -rng.randint(0, 9))
    else:
        if not plan.special_done:
            return None
        day = insp.raised_on + timedelta(days=rng.randint(1, 5))
    day = max(day, loan.disbursed_on + timedelta(days=1))
    return day if day < today else None


def _inspect(loan: Loan, rules, today: date, staff: list[User], archivist: User | None,
             result: HistoryResult) -> None:
    plan = _loan_plan(loan, today, rules.first_inspection_due(loan_facts(loan)))
    rng = random.Random(f"{SEED}-inspections-{loan.contract_no}")
    recorder = loan.officer
    while True:
        todo = db.session.execute(select(Inspection).where(
            Inspection.loan_id == loan.id, Inspection.status.in_(INSPECTION_TODO))
            .order_by(Inspection.due_on, Inspection.id)).scalars().all()
        planned = [(day, insp) for insp in todo if (day := _planned_day(insp, loan, rules, plan, rng, today))]
        if not planned:
            return
        day, insp = min(planned, key=lambda pair: (pair[0], pair[1].id))
        problem = insp.kind == InspectionKind.ROUTINE.value and rng.random() < 0.05
        results, conclusion = _results(insp, rules, loan, rng, problem)
        method = "phone" if insp.kind == InspectionKind.ROUTINE.value and rng.random() < 0.15 else "on_site"
        save_inspection(recorder, insp, method=method, inspected_on=day, results=results,
                        conclusion=conclusion, submit=True)
        result.inspections += 1
        if (today - day).days <= AWAIT_SIGN_OFF_DAYS and rng.random() < 0.6:
            continue
        signer = _signer(insp, rules, staff)
        if signer is None:
            continue
        sign_off_inspection(signer, insp, "同意。" if insp.kind != InspectionKind.SPECIAL.value else "同意,加强催收。")
        result.signed_off += 1
        if insp.escalation_status == EscalationStatus.PENDING.value and (today - day).days > 20:
            reviewer = next((u for u in staff if can_review_escalation(u, insp, rules)), None)
            if reviewer is not None:
                review_escalation(reviewer, insp, "已阅,同意支行处理意见,请持续跟踪。")
        if archivist is not None and insp.report_file_id is not None:
            report = db.session.get(PostloanFile, insp.report_file_id)
            doc = db.session.get(Document, report.archive_document_id) if report.archive_document_id else None
            if doc is not None and doc.state == DocState.COLLECTED.value:
                file_onward(archivist, doc, (today - day).days)
                result.reports_filed += 1


def seed_inspections(loans: list[Loan], today: date, result: HistoryResult) -> None:
    """Schedule each open loan's inspections from its disbursement (or the day it went overdue)
    and record what the officers have done since."""
    open_loans = [loan for loan in loans if loan.status in OPEN_LOAN_STATUSES]
    by_start: dict[date, list[Loan]] = {}
    for loan in open_loans:
        start = loan.disbursed_on
        if loan.days_past_due:
            start = max(loan.disbursed_on + timedelta(days=1), today - timedelta(days=loan.days_past_due))
        by_start.setdefault(min(start, today), []).append(loan)
    for start in sorted(by_start):
        refresh_loans(by_start[start], start)
    staff_of: dict[int, list[User]] = {}
    archivists: dict[int, User | None] = {}
    for loan in sorted(open_loans, key=lambda x: x.contract_no):
        if loan.branch_id not in staff_of:
            staff_of[loan.branch_id] = _branch_staff(loan.branch)
            archivists[loan.branch_id] = archivist_of(loan.branch)
        _inspect(loan, rules_for(loan), today, staff_of[loan.branch_id], archivists[loan.branch_id], result)


def act_on_reviews_and_warnings(loans: list[Loan], today: date, result: HistoryResult) -> None:
    """The director confirms about half the classification reviews the daily run opened; the
    post-loan officer handles the warnings of overdue loans and lifts old inspection findings."""
    ids = [loan.id for loan in loans]
    staff_cache: dict[int, list[User]] = {}

    def staff(branch: Institution) -> list[User]:
        if branch.id not in staff_cache:
            staff_cache[branch.id] = _branch_staff(branch)
        return staff_cache[branch.id]

    reviews = db.session.execute(select(ClassificationReview).where(
        ClassificationReview.loan_id.in_(ids), ClassificationReview.status == ReviewStatus.PENDING.value)
        .order_by(ClassificationReview.id)).scalars().all()
    for review in reviews:
        loan = review.loan
        if random.Random(f"{SEED}-review-{loan.contract_no}").random() < 0.5:
            continue
        director = next((u for u in staff(loan.branch) if u.institution_id == loan.branch_id
                         and u.has_role("branch_director")), None)
        if director is None:
            continue
        confirm_classification(director, review, review.suggested, "")
        result.reviews_confirmed += 1

    warnings = db.session.execute(select(RiskWarning).where(
        RiskWarning.loan_id.in_(ids), RiskWarning.status.in_(WARNING_ACTIVE)).order_by(RiskWarning.id)).scalars().all()
    for warning in warnings:
        loan = warning.loan
        rng = random.Random(f"{SEED}-warning-{warning.signal}-{loan.contract_no}")
        officer = next((u for u in staff(loan.branch) if u.institution_id == loan.branch_id
                        and u.has_role("post_loan_officer")), None)
        if officer is None:
            continue
        age = (today - warning.raised_on).days
        if warning.source == "inspection" and age > 30 and rng.random() < 0.7:
            act_on_warning(officer, warning, "lift", "借款人已整改,复查无异常。")
        elif age > 3 and rng.random() < 0.6:
            act_on_warning(officer, warning, "handle", "已电话联系借款人并上门核实,制定还款计划,跟踪落实。")
        elif age > 60 and rng.random() < 0.5:
            act_on_warning(officer, warning, "escalate", "风险持续,借款人无力按计划还款,报联社信贷科。")
        else:
            continue
        result.warnings_acted += 1


# --- snapshots -------------------------------------------------------------------------------

def _state_on(loan: Loan, day: date, today: date) -> SimpleNamespace | None:
    """The loan as it stood on ``day``: None when it was not open then."""
    if loan.disbursed_on > day or loan.status == LoanStatus.WRITTEN_OFF.value:
        return None
    if loan.settled_on is not None and loan.settled_on <= day:
        return None
    back = (today - day).days
    dpd = max(0, loan.days_past_due - back) if loan.status == LoanStatus.OVERDUE.value else 0
    balance = loan.balance_fen or loan.amount_fen
    if not dpd and loan.status == LoanStatus.ACTIVE.value:
        # A few loans missed an instalment for some weeks in this period and caught up.
        rng = random.Random(f"{SEED}-cure-{loan.contract_no}")
        if rng.random() < 0.07:
            start = today - timedelta(days=rng.randint(40, 7 * SNAPSHOT_WEEKS))
            length = rng.randint(10, 75)
            if start <= day < min(start + timedelta(days=length), today) and loan.disbursed_on < start:
                dpd = (day - start).days + 1
    return SimpleNamespace(id=loan.id, branch_id=loan.branch_id, days_past_due=dpd, balance_fen=balance,
                           borrower=loan.borrower, risk_class=loan.risk_class,
                           status=LoanStatus.OVERDUE.value if dpd else LoanStatus.ACTIVE.value)


def seed_snapshots(loans: list[Loan], today: date, result: HistoryResult) -> None:
    """Weekly bucket snapshots before today (today's is the daily run's) and weekly completeness
    snapshots of each union's audit over the loans disbursed by then."""
    changes = Changes()
    for week in range(1, SNAPSHOT_WEEKS + 1):
        day = today - timedelta(days=7 * week)
        for loan in loans:
            state = _state_on(loan, day, today)
            if state is not None:
                write_snapshot(state, rules_for(loan), day, LoanState(), changes)
    result.snapshots += changes["snapshots"]
    provinces = db.session.execute(select(Institution).where(Institution.level == Level.PROVINCE.value)
                                   .order_by(Institution.code)).scalars().all()
    branch_paths = {i.id: i.path for i in db.session.execute(select(Institution)).scalars()}
    for root in provinces:
        mine = [loan for loan in loans if branch_paths[loan.branch_id].startswith(root.path)]
        if not mine:
            continue
        for week in range(TREND_WEEKS, -1, -1):
            day = today - timedelta(days=7 * week)
            ids = [loan.id for loan in mine if loan.disbursed_on <= day]
            result.completeness_snapshots += write_snapshots(audit_completeness(root, as_of=day, loan_ids=ids))


# --- lending ---------------------------------------------------------------------------------

def seed_lendings(loans: list[Loan], today: date, result: HistoryResult) -> None:
    """Per county: a paper file and a digital copy on loan, a paper lending returned and a
    request waiting for the director; in each union's first county the paper lending is past
    its due date."""
    counties = db.session.execute(select(Institution).where(Institution.level == Level.COUNTY.value)
                                  .order_by(Institution.path)).scalars().all()
    branch_ids = {loan.branch_id for loan in loans}
    seen_unions: set[str] = set()
    for county in counties:
        first_of_union = county.province_code not in seen_unions
        seen_unions.add(county.province_code)
        branches = db.session.execute(select(Institution).where(Institution.parent_id == county.id,
                                                                Institution.id.in_(branch_ids))
                                      .order_by(Institution.code)).scalars().all()
        for n, branch in enumerate(branches[:2]):
            staff = [u for u in _branch_staff(branch) if u.institution_id == branch.id]
            archivist = next((u for u in staff if u.has_role("archivist")), None)
            director = next((u for u in staff if u.has_role("branch_director")), None)
            officer = next((u for u in staff if u.has_role("loan_officer")), None)
            if not (archivist and director and officer):
                continue
            volumes = db.session.execute(
                select(Volume).where(Volume.id.in_(select(Document.volume_id).where(
                    Document.institution_id == branch.id, Document.state == DocState.ARCHIVED.value,
                    Document.paper_original.is_(True)))).order_by(Volume.id).limit(2)).scalars().all()
            for k, volume in enumerate(volumes):
                docs = db.session.execute(select(Document).where(
                    Document.volume_id == volume.id, Document.state == DocState.ARCHIVED.value,
                    Document.paper_original.is_(True)).order_by(Document.id).limit(2)).scalars().all()
                medium = "digital" if (n, k) == (0, 1) else "paper"
                reason = {(0, 0): "贷款催收诉讼需要,调阅借款合同及抵押资料原件。",
                          (0, 1): "贷后检查核对借款合同条款。",
                          (1, 0): "续贷调查,查阅原借款资料。"}.get((n, k), "稽核检查,调阅信贷档案原件。")
                lending = request_lending(officer, volume, list(docs), medium=medium, reason=reason,
                                          days=15 if k == 0 else 7)
                result.lendings += 1
                if (n, k) == (1, 1):
                    continue                     # waits for the director
                approve_lending(director, lending, "同意借阅,按期归还。")
                issue_lending(archivist, lending)
                if (n, k) == (0, 0) and first_of_union:
                    _backdate(lending, today, days_out=19)
                    remind_lending(archivist, lending)
                elif (n, k) == (1, 0):
                    return_lending(archivist, lending, "原件已归还,页数齐全,无污损。")


def _backdate(lending, today: date, days_out: int) -> None:
    """The demo's one overdue lending: the service issues from today, so the issue is moved back
    ``days_out`` days, and the move is itself in the audit trail."""
    issued_on = today - timedelta(days=days_out)
    lending.issued_at = lending.issued_at - timedelta(days=days_out)
    lending.due_on = issued_on + timedelta(days=lending.days)
    db.session.flush()
    record_event(None, "demo.backdate_lending", "archive_lending", lending.id,
                 {"issued_on": issued_on.isoformat(), "due_on": lending.due_on.isoformat()},
                 institution_id=lending.institution_id)


def seed_history(loans: list[Loan], today: date) -> HistoryResult:
    """The post-loan and archive history of these (newly written) demo loans; the caller commits."""
    result = HistoryResult()
    seed_inspections(loans, today, result)
    run_daily(today)
    act_on_reviews_and_warnings(loans, today, result)
    seed_snapshots(loans, today, result)
    seed_lendings(loans, today, result)
    return result
