"""Demo credit files: the documents of the demo loans, so the archive, the search and the
completeness audit show a county's working state.

Every loan's file holds what the union's plugin requires at the stages that apply, with gaps of
the kinds a county really has, at a rate that differs between branches (``branch_completeness``):
a 他项权证 still at the registration office, a settlement certificate not yet handed in, a
借据 or guarantee contract missing, a rating sheet never filed. Open loans' 首次检查记录 is not
written here: it is the report PDF the inspection sign-off files (``history.py``),
so a first inspection done late or not yet done is the gap it would be. Closed loans' first
inspection records are scans of the paper record.

Files are small DOCX documents (an XLSX for repayment records) with Chinese text naming the
borrower, the contract and the amounts, built from one XML template rather than through
python-docx per file, and collected through the archive's own service as an upload. Older
loans' documents are sorted, filed and archived by the branch archivist, recent ones are still
collected or sorted. Rerunning adds nothing: a loan's document of a type already in its credit
file is skipped.
"""
from __future__ import annotations

import io
import random
import zipfile
from dataclasses import dataclass
from datetime import date, timedelta
from xml.sax.saxutils import escape

from openpyxl import Workbook
from sqlalchemy import func, select

from ..accounts.models import Institution, Level, User, UserRole
from ..archive.models import Document
from ..archive.services import archive_document, collect_document, file_document, sort_document
from ..extensions import db
from ..labels import label, yuan
from ..loans.models import OPEN_LOAN_STATUSES, Loan, LoanStatus
from ..loans.services import loan_facts
from ..rules.lookup import rules_for
from ..rules.types import STAGES

SEED = "xindang-demo-files"
# Checklist items a county most often lacks, with how often each is the gap (by weight). Only
# the types a loan's checklist has can be its gap.
GAP_WEIGHTS = (
    ("collateral_certificate", 10),    # 他项权证 not yet back from the registration office
    ("settlement_certificate", 6),     # 结清证明 not handed in by the officer
    ("loan_receipt", 4),               # 借款借据 copy missing
    ("guarantee_contract", 4),
    ("credit_rating", 3),              # rating sheet never filed
    ("account_monitoring_record", 3),
    ("review_group_minutes", 3),
    ("id_documents", 2),
    ("approval", 1),
    ("first_visit", 4),                # closed loans: the paper record was never scanned
)
# Documents whose paper original the archive room keeps (signed contracts, certificates).
PAPER_ORIGINALS = frozenset({"loan_contract", "loan_receipt", "guarantee_contract", "mortgage_contract",
                             "pledge_contract", "joint_guarantee_agreement", "collateral_certificate",
                             "settlement_certificate"})
# A document is sorted, filed and archived this many days after disbursement.
SORT_AFTER, FILE_AFTER, ARCHIVE_AFTER = 45, 120, 200


def branch_completeness(code: str) -> float:
    """The share of the branch's credit files with nothing missing, between 70% and 94%."""
    return random.Random(f"{SEED}-rate-{code}").uniform(0.70, 0.94)


# --- cheap documents -------------------------------------------------------------------------

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    '<Override PartName="/word/styles.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/>'
    '</Types>')
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="word/document.xml"/></Relationships>')
_DOC_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" '
    'Target="styles.xml"/></Relationships>')
_W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
_STYLES = (
    f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:styles {_W}>'
    '<w:docDefaults><w:rPrDefault><w:rPr><w:rFonts w:ascii="Times New Roman" w:eastAsia="宋体"/>'
    '<w:sz w:val="24"/></w:rPr></w:rPrDefault></w:docDefaults>'
    '<w:style w:type="paragraph" w:default="1" w:styleId="Normal"><w:name w:val="Normal"/>'
    '<w:pPr><w:spacing w:after="120"/></w:pPr></w:style>'
    '<w:style w:type="paragraph" w:styleId="Title"><w:name w:val="Title"/><w:basedOn w:val="Normal"/>'
    '<w:pPr><w:jc w:val="center"/><w:spacing w:after="240"/></w:pPr>'
    '<w:rPr><w:rFonts w:eastAsia="黑体"/><w:b/><w:sz w:val="36"/></w:rPr></w:style>'
    '</w:styles>')
_PAGE = '<w:sectPr><w:pgSz w:w="11906" w:h="16838"/><w:pgMar w:top="1440" w:right="1800" w:bottom="1440" w:left="1800"/></w:sectPr>'


def _paragraph(text: str, style: str | None = None) -> str:
    props = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    return f'<w:p>{props}<w:r><w:t xml:space="preserve">{escape(text)}</w:t></w:r></w:p>'


def docx_bytes(title: str, lines: list[str]) -> bytes:
    """A Word document: a title and one paragraph per line, A4, 宋体. The fixed parts are
    the same for every file; only the body is written."""
    body = _paragraph(title, "Title") + "".join(_paragraph(line) for line in lines)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("[Content_Types].xml", _CONTENT_TYPES)
        zf.writestr("_rels/.rels", _RELS)
        zf.writestr("word/_rels/document.xml.rels", _DOC_RELS)
        zf.writestr("word/styles.xml", _STYLES)
        zf.writestr("word/document.xml", f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                                         f'<w:document {_W}><w:body>{body}{_PAGE}</w:body></w:document>')
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


BODIES = {
    "贷前调查报告": ["经实地调查,借款人家庭经营正常,收入稳定,无不良信用记录,具备还款能力。",
                     "调查人认为该笔贷款风险可控,建议发放。"],
    "借款合同": ["贷款人与借款人经平等协商,订立本借款合同,双方共同遵守。",
                 "借款人应按合同约定用途使用借款,不得挪用。"],
    "贷后检查报告": ["本次贷后检查采用现场检查方式,借款资金按约定用途使用,未发现挪用。",
                     "借款人生产经营正常,担保人情况无重大变化。"],
    "首次检查记录": ["贷款发放后按期进行首次跟踪检查,借款资金已按约定用途支付,未发现挪用。",
                     "(纸质记录扫描件)"],
    "结清证明": ["兹证明上述贷款本息已全部结清,特此证明。"],
}


def _content(type_name: str, loan: Loan, rng: random.Random) -> tuple[str, bytes]:
    """A file for one document type: (file name, bytes)."""
    b = loan.borrower
    if type_name == "还款凭证":
        return f"{type_name}-{loan.contract_no}.xlsx", _xlsx(type_name, loan, rng)
    lines = [
        loan.branch.name,
        f"借款人:{b.name}    证件号码:{b.id_number}",
        f"合同编号:{loan.contract_no}",
        f"贷款品种:{label(loan.product, 'product')}    担保方式:{label(loan.guarantee_type, 'guarantee_type')}",
        f"借款金额:人民币{yuan(loan.amount_fen)}元    年利率:{loan.rate_percent}%",
        f"借款期限:{loan.disbursed_on.isoformat()} 至 {loan.maturity_on.isoformat()}",
        f"借款用途:{loan.purpose}",
    ] + BODIES.get(type_name, [f"{type_name}(附件)", "以上内容经借款人确认无误。"])
    return f"{type_name}-{loan.contract_no}.docx", docx_bytes(type_name, lines)


# --- the plan ----------------------------------------------------------------------------------

def applicable_stages(loan: Loan, first_due: date, today: date) -> list[str]:
    stages = ["application", "disbursement"]
    if first_due <= today:
        stages.append("post_loan")
    if loan.status == LoanStatus.SETTLED.value:
        stages.append("settlement")
    if loan.status == LoanStatus.WRITTEN_OFF.value:
        stages.append("write_off")
    return [s for s in STAGES if s in stages]


@dataclass
class FilePlan:
    loan: Loan
    codes: list[str]            # what the file holds, in checklist order
    gaps: list[str]             # what it lacks


def plan_branch_files(branch: Institution, loans: list[Loan], today: date) -> list[FilePlan]:
    """Which documents each loan's file holds. The share of files with a gap is the branch's
    own; a gap is one document (now and then two) of the kinds in ``GAP_WEIGHTS``."""
    rules = rules_for(branch)
    rng = random.Random(f"{SEED}-{branch.code}")
    required = []
    for loan in loans:
        facts = loan_facts(loan)
        codes = []
        for stage in applicable_stages(loan, rules.first_inspection_due(facts), today):
            codes += [c for c in rules.required_documents(facts, stage) if c not in codes]
        required.append(codes)
    target = round(len(loans) * (1 - branch_completeness(branch.code)))
    # Gaps fall on loans that have a gap-prone document; the newest loans' files are still
    # being put together by the officer, so they are not chosen here.
    candidates = [i for i, codes in enumerate(required) if any(c in codes for c, _w in GAP_WEIGHTS)]
    with_gap = set(rng.sample(candidates, min(target, len(candidates))))
    plans = []
    for i, (loan, codes) in enumerate(zip(loans, required)):
        open_loan = loan.status in OPEN_LOAN_STATUSES
        gaps: list[str] = []
        if i in with_gap:
            kinds = [(c, w) for c, w in GAP_WEIGHTS if c in codes and not (c == "first_visit" and open_loan)]
            if kinds:
                gaps.append(_pick(rng, kinds))
                rest = [(c, w) for c, w in kinds if c not in gaps]
                if rest and rng.random() < 0.15:
                    gaps.append(_pick(rng, rest))
        # An open loan's first inspection record is the signed-off report, filed by the inspection.
        held = [c for c in codes if c not in gaps and not (c == "first_visit" and open_loan)]
        plans.append(FilePlan(loan, held, gaps))
    return plans


def _pick(rng: random.Random, pairs: list[tuple[str, int]]) -> str:
    values, weights = zip(*pairs)
    return rng.choices(values, weights=weights)[0]


def archivist_of(branch: Institution) -> User | None:
    return db.session.execute(
        select(User).join(UserRole).where(User.institution_id == branch.id, UserRole.role == "archivist")
        .order_by(User.id).limit(1)).scalar_one_or_none()


def shelf_of(loan: Loan) -> str:
    """Where the paper originals of a loan's file stand: one box per year and fifty contracts."""
    box = int(loan.contract_no.rsplit("-", 1)[-1]) // 50 + 1
    return f"{loan.branch.code}-{loan.disbursed_on.year}-{box:02d}"


def file_onward(archivist: User, doc: Document, age_days: int, shelf: str | None = None) -> None:
    """Take a collected document as far as the archivist would have by now."""
    if age_days > SORT_AFTER:
        sort_document(archivist, doc)
    if age_days > FILE_AFTER:
        file_document(archivist, doc)
    if age_days > ARCHIVE_AFTER:
        archive_document(archivist, doc, shelf_location=shelf if doc.paper_original else None)


def seed_demo_documents(today: date, loan_ids: set[int] | None = None) -> int:
    """Collect the demo files of these loans (every loan when None); returns how many documents
    were added. The caller commits."""
    added = 0
    branches = db.session.execute(select(Institution).where(Institution.level == Level.BRANCH.value)
                                  .order_by(Institution.code)).scalars().all()
    for branch in branches:
        archivist = archivist_of(branch)
        if archivist is None:
            continue
        rules = rules_for(branch)
        loans = db.session.execute(select(Loan).where(Loan.branch_id == branch.id)
                                   .order_by(Loan.contract_no)).scalars().all()
        held_by_loan: dict[int, set[str]] = {}
        for loan_id, code in db.session.execute(select(Document.loan_id, Document.doc_type).where(
                Document.loan_id.in_([loan.id for loan in loans]))):
            held_by_loan.setdefault(loan_id, set()).add(code)
        for plan in plan_branch_files(branch, loans, today):
            loan = plan.loan
            if loan_ids is not None and loan.id not in loan_ids:
                continue
            rng = random.Random(f"{SEED}-{loan.contract_no}")
            held = held_by_loan.get(loan.id, set())
            age_days = (today - loan.disbursed_on).days
            for code in plan.codes:
                if code in held:
                    continue
                name, data = _content(rules.document_type(code).name_zh, loan, rng)
                doc = collect_document(archivist, borrower=loan.borrower, loan=loan, doc_type=code,
                                       fileobj=io.BytesIO(data), filename=name, source="demo",
                                       paper_original=code in PAPER_ORIGINALS).document
                file_onward(archivist, doc, age_days, shelf_of(loan))
                added += 1
    return added


def demo_document_count() -> int:
    return db.session.execute(select(func.count()).select_from(Document).where(Document.source == "demo")).scalar_one()
