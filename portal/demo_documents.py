"""Demo credit files: documents for part of the demo loans, so the archive, the search and the
completeness audit have something real to show.

For ``LOANS_WITH_FILES`` loans of each branch (every fifth, old and new), every document the union's plugin
requires at the stages that apply is written as a small DOCX (a repayment record as XLSX) with
Chinese text naming the borrower, the contract and the amounts, and collected through the same
archive service as an upload. About one document in eight is left out on purpose, so the
completeness audit finds gaps. Older loans' files are sorted, filed and archived by the branch
archivist; recent ones stay collected or sorted. Rerunning adds nothing: a loan's document of a
type already in its credit file is skipped.
"""
from __future__ import annotations

import io
import random
from datetime import date, timedelta

from docx import Document as DocxDocument
from openpyxl import Workbook
from sqlalchemy import func, select

from .accounts.models import Institution, Level, User
from .archive.models import Document
from .archive.services import archive_document, collect_document, file_document, sort_document
from .extensions import db
from .labels import label, yuan
from .loans.models import Loan
from .loans.services import loan_facts
from .rules.service import rules_for
from .rules.types import STAGES

LOANS_WITH_FILES = 5
GAP_RATE = 0.12
SEED = "xindang-demo-files"


def _applicable_stages(loan: Loan, first_due: date, today: date) -> list[str]:
    stages = ["application", "disbursement"]
    if first_due <= today:
        stages.append("post_loan")
    if loan.status == "settled":
        stages.append("settlement")
    if loan.status == "written_off":
        stages.append("write_off")
    return [s for s in STAGES if s in stages]


def _docx(title: str, loan: Loan, lines: list[str]) -> bytes:
    doc = DocxDocument()
    doc.add_heading(title, level=1)
    doc.add_paragraph(f"{loan.branch.name}")
    for line in lines:
        doc.add_paragraph(line)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def _xlsx(title: str, loan: Loan, rng: random.Random) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "还款记录"
    ws.append([title, loan.contract_no, loan.borrower.name])
    ws.append(["还款日期", "归还本金(元)", "归还利息(元)", "经办人"])
    day = loan.disbursed_on
    for _ in range(4):
        day += timedelta(days=90)
        ws.append([day.isoformat(), yuan(rng.randint(5, 50) * 100_000), yuan(rng.randint(100, 900) * 100),
                   loan.officer.display_name if loan.officer else ""])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _content(type_name: str, loan: Loan, rng: random.Random) -> tuple[str, bytes]:
    """A file for one document type: (file name, bytes)."""
    b = loan.borrower
    common = [
        f"借款人:{b.name}    证件号码:{b.id_number}",
        f"合同编号:{loan.contract_no}",
        f"贷款品种:{label(loan.product, 'product')}    担保方式:{label(loan.guarantee_type, 'guarantee_type')}",
        f"借款金额:人民币{yuan(loan.amount_fen)}元    年利率:{loan.rate_percent}%",
        f"借款期限:{loan.disbursed_on.isoformat()} 至 {loan.maturity_on.isoformat()}",
        f"借款用途:{loan.purpose}",
    ]
    if type_name == "还款凭证":
        return f"{type_name}-{loan.contract_no}.xlsx", _xlsx(type_name, loan, rng)
    body = {
        "贷前调查报告": ["经实地调查,借款人家庭经营正常,收入稳定,无不良信用记录,具备还款能力。",
                         "调查人认为该笔贷款风险可控,建议发放。"],
        "借款合同": ["贷款人与借款人经平等协商,订立本借款合同,双方共同遵守。",
                     "借款人应按合同约定用途使用借款,不得挪用。"],
        "贷后检查报告": ["本次贷后检查采用现场检查方式,借款资金按约定用途使用,未发现挪用。",
                         "借款人生产经营正常,担保人情况无重大变化。"],
        "结清证明": ["兹证明上述贷款本息已全部结清,特此证明。"],
    }.get(type_name, [f"{type_name}(附件)", "以上内容经借款人确认无误。"])
    return f"{type_name}-{loan.contract_no}.docx", _docx(type_name, loan, common + body)


def _archivist(branch: Institution) -> User | None:
    from .accounts.models import UserRole
    return db.session.execute(
        select(User).join(UserRole).where(User.institution_id == branch.id, UserRole.role == "archivist")
        .order_by(User.id).limit(1)).scalar_one_or_none()


def seed_demo_documents(today: date) -> int:
    """Collect the demo files; returns how many documents were added. The caller commits."""
    rng = random.Random(SEED)
    added = 0
    branches = db.session.execute(select(Institution).where(Institution.level == Level.BRANCH.value)
                                  .order_by(Institution.code)).scalars().all()
    for branch in branches:
        archivist = _archivist(branch)
        if archivist is None:
            continue
        rules = rules_for(branch)
        # Every fifth loan in disbursement order: old files (archived) and new ones (collected).
        loans = db.session.execute(select(Loan).where(Loan.branch_id == branch.id)
                                   .order_by(Loan.contract_no)).scalars().all()[::5][:LOANS_WITH_FILES]
        for loan in loans:
            held = set(db.session.execute(select(Document.doc_type).where(Document.loan_id == loan.id)).scalars())
            facts = loan_facts(loan)
            age_days = (today - loan.disbursed_on).days
            for stage in _applicable_stages(loan, rules.first_inspection_due(facts), today):
                for code in rules.required_documents(facts, stage):
                    gap = rng.random() < GAP_RATE  # drawn for every slot, so reruns plan the same gaps
                    if code in held or gap:
                        continue
                    dtype = rules.document_type(code)
                    name, data = _content(dtype.name_zh, loan, rng)
                    doc = collect_document(archivist, borrower=loan.borrower, loan=loan, doc_type=code,
                                           fileobj=io.BytesIO(data), filename=name, source="demo").document
                    added += 1
                    if age_days > 60:
                        sort_document(archivist, doc)
                    if age_days > 120:
                        file_document(archivist, doc)
                    if age_days > 180:
                        archive_document(archivist, doc)
    return added


def demo_document_count() -> int:
    return db.session.execute(select(func.count()).select_from(Document).where(Document.source == "demo")).scalar_one()
