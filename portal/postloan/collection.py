"""Overdue and collection (逾期催收): daily bucket snapshots, collection tasks and the officer's
daily list, the contact log, repayment and overdue notices, and the migration report.

Buckets are the plugin's (``bucket_of`` over ``overdue_bucket_edges``); notice lead days are the
plugin's ``notice_lead_days``; the conversion targets on the migration report are union settings.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from flask_babel import gettext as _
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import aliased, joinedload

from ..accounts.models import Institution, User
from ..accounts.scope import scoped, subtree_ids
from ..audit_trail import record_event
from ..errors import InvalidInput, WrongState
from ..extensions import db
from ..loans.models import Loan, LoanStatus
from ..reports.pdf import render_pdf
from ..rules.lookup import rules_for
from ..rules.manager import UnionRules
from ..timeutil import local_today
from .common import parse_date, parse_yuan, require_open
from .files import keep_and_file, safe_filename
from .models import BucketSnapshot, CollectionTask, ContactLog, LoanNotice
from .state import Changes, LoanState

CHANNELS = ("call", "visit", "letter", "sms")
RESULTS = ("promised", "paid", "reached", "refused", "unreachable")
MAX_NOTE = 2000


# --- driven by the daily run --------------------------------------------------------------

def needs_collection(loan: Loan) -> bool:
    return loan.days_past_due > 0 or loan.interest_arrears_fen > 0 or loan.status == LoanStatus.OVERDUE.value


def sync_collection_task(loan: Loan, as_of: date, st: LoanState, changes: Changes) -> None:
    if needs_collection(loan):
        if st.task is None:
            st.task = CollectionTask(loan=loan, branch_id=loan.branch_id, officer_id=loan.officer_id, status="open",
                                     opened_on=as_of, next_action_on=as_of)
            db.session.add(st.task)
            changes["collection_tasks_opened"] += 1
    elif st.task is not None:
        st.task.status = "closed"
        st.task.closed_on = as_of
        st.task.close_reason = "cured"
        st.task = None
        changes["collection_tasks_closed"] += 1


def ensure_notices(loan: Loan, rules: UnionRules, as_of: date, st: LoanState, changes: Changes) -> None:
    """A repayment notice once maturity is within the plugin's lead days; an overdue notice once
    the loan is the plugin's days past a miss. One of each per maturity date / overdue episode."""
    lead = rules.notice_lead_days("repayment")
    if 0 <= (loan.maturity_on - as_of).days <= lead and ("repayment", loan.maturity_on) not in st.notice_keys:
        db.session.add(LoanNotice(loan=loan, branch_id=loan.branch_id, officer_id=loan.officer_id, kind="repayment",
                                  reference_on=loan.maturity_on, due_on=loan.maturity_on - timedelta(days=lead)))
        st.notice_keys.add(("repayment", loan.maturity_on))
        changes["notices_due"] += 1
    after = rules.notice_lead_days("overdue")
    if (loan.days_past_due > 0 and loan.days_past_due >= after and st.task is not None
            and ("overdue", st.task.opened_on) not in st.notice_keys):
        missed_on = as_of - timedelta(days=loan.days_past_due)
        db.session.add(LoanNotice(loan=loan, branch_id=loan.branch_id, officer_id=loan.officer_id, kind="overdue",
                                  reference_on=st.task.opened_on, due_on=missed_on + timedelta(days=after)))
        st.notice_keys.add(("overdue", st.task.opened_on))
        changes["notices_due"] += 1


def write_snapshot(loan: Loan, rules: UnionRules, as_of: date, st: LoanState, changes: Changes) -> None:
    values = {"bucket": rules.bucket_of(loan.days_past_due), "days_past_due": loan.days_past_due,
              "balance_fen": loan.balance_fen, "credit_rating": loan.borrower.credit_rating,
              "risk_class": loan.risk_class, "status": loan.status}
    snap = st.snapshot
    if snap is None:
        st.snapshot = BucketSnapshot(loan_id=loan.id, branch_id=loan.branch_id, as_of=as_of, **values)
        db.session.add(st.snapshot)
        changes["snapshots"] += 1
    elif any(getattr(snap, k) != v for k, v in values.items()):
        for k, v in values.items():
            setattr(snap, k, v)
        changes["snapshots_updated"] += 1


# --- contacts -----------------------------------------------------------------------------

def record_contact(actor: User, loan: Loan, *, channel: str, result: str, contacted_on: date,
                   promised_on: date | None = None, promised_amount_fen: int | None = None,
                   note: str = "") -> ContactLog:
    """Log a collection contact; a promise puts the loan back on the list on the promised day."""
    require_open(loan)
    errors = []
    if channel not in CHANNELS:
        errors.append(_("Unknown contact channel %(c)s.", c=channel))
    if result not in RESULTS:
        errors.append(_("Unknown contact result %(r)s.", r=result))
    today = local_today()
    if contacted_on > today:
        errors.append(_("The contact date cannot be in the future."))
    if result == "promised":
        if promised_on is None:
            errors.append(_("Give the date the borrower promised to pay."))
        elif promised_on < contacted_on:
            errors.append(_("The promised date is before the contact."))
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        errors.append(_("The note is longer than %(n)d characters.", n=MAX_NOTE))
    if errors:
        raise InvalidInput(errors[0], details=errors)
    task = db.session.execute(select(CollectionTask).where(
        CollectionTask.loan_id == loan.id, CollectionTask.status == "open")).scalars().first()
    entry = ContactLog(loan_id=loan.id, branch_id=loan.branch_id, task_id=task.id if task else None,
                       officer_id=actor.id, contacted_on=contacted_on, channel=channel, result=result,
                       promised_on=promised_on if result == "promised" else None,
                       promised_amount_fen=promised_amount_fen if result == "promised" else None, note=note)
    db.session.add(entry)
    if task is not None:
        task.next_action_on = promised_on if result == "promised" else contacted_on + timedelta(days=1)
    db.session.flush()
    record_event(actor, "collection.contact", "loan", loan.contract_no,
                 {"channel": channel, "result": result, "promised_on": entry.promised_on}, institution_id=loan.branch_id)
    return entry


def parse_contact_form(form) -> dict:
    return {
        "channel": form.get("channel", ""), "result": form.get("result", ""),
        "contacted_on": parse_date(form.get("contacted_on"), _("Contact date")),
        "promised_on": parse_date(form.get("promised_on"), _("Promised date"), required=False),
        "promised_amount_fen": parse_yuan(form.get("promised_amount"), _("Promised amount")),
        "note": form.get("note", ""),
    }


def contact_log(loan: Loan) -> list[ContactLog]:
    return list(db.session.execute(select(ContactLog).where(ContactLog.loan_id == loan.id)
                                   .options(joinedload(ContactLog.officer))
                                   .order_by(ContactLog.contacted_on.desc(), ContactLog.id.desc())).scalars())


@dataclass
class CollectionRow:
    task: CollectionTask
    loan: Loan
    bucket: str
    last_contact: ContactLog | None
    notices: list[LoanNotice]


def collection_list(user: User, as_of: date, *, officer_id: int | None) -> list[CollectionRow]:
    """Open collection tasks due on or before ``as_of``, worst first."""
    stmt = scoped(select(CollectionTask), CollectionTask, user).where(
        CollectionTask.status == "open", CollectionTask.next_action_on <= as_of)
    if officer_id:
        stmt = stmt.where(CollectionTask.officer_id == officer_id)
    tasks = db.session.execute(stmt.options(joinedload(CollectionTask.loan).joinedload(Loan.borrower),
                                            joinedload(CollectionTask.loan).joinedload(Loan.branch))
                               ).scalars().unique().all()
    loan_ids = [t.loan_id for t in tasks]
    last: dict[int, ContactLog] = {}
    notices: dict[int, list[LoanNotice]] = {}
    if loan_ids:
        for entry in db.session.execute(select(ContactLog).where(ContactLog.loan_id.in_(loan_ids))
                                        .order_by(ContactLog.contacted_on, ContactLog.id)).scalars():
            last[entry.loan_id] = entry
        for notice in db.session.execute(select(LoanNotice).where(LoanNotice.loan_id.in_(loan_ids),
                                                                  LoanNotice.status == "pending")).scalars():
            notices.setdefault(notice.loan_id, []).append(notice)
    rows = []
    for task in tasks:
        rows.append(CollectionRow(task, task.loan, rules_for(task.loan).bucket_of(task.loan.days_past_due),
                                  last.get(task.loan_id), notices.get(task.loan_id, [])))
    rows.sort(key=lambda r: (-r.loan.days_past_due, -r.loan.interest_arrears_fen, r.loan.contract_no))
    return rows


# --- notices ------------------------------------------------------------------------------

def pending_notices(user: User, as_of: date, *, officer_id: int | None) -> list[LoanNotice]:
    stmt = scoped(select(LoanNotice), LoanNotice, user).where(LoanNotice.status == "pending",
                                                              LoanNotice.due_on <= as_of)
    if officer_id:
        stmt = stmt.where(LoanNotice.officer_id == officer_id)
    return list(db.session.execute(stmt.options(joinedload(LoanNotice.loan).joinedload(Loan.borrower))
                                   .order_by(LoanNotice.due_on, LoanNotice.id)).scalars().unique())


def notices_in_scope(user: User, status: str | None = None, *, limit: int = 500) -> list[LoanNotice]:
    """The notices of the user's scope, latest due first; ``status`` (pending, issued or
    cancelled) keeps only those."""
    stmt = scoped(select(LoanNotice), LoanNotice, user).options(joinedload(LoanNotice.loan).joinedload(Loan.borrower))
    if status in ("pending", "issued", "cancelled"):
        stmt = stmt.where(LoanNotice.status == status)
    return list(db.session.execute(stmt.order_by(LoanNotice.due_on.desc(), LoanNotice.id.desc()).limit(limit))
                .scalars().unique())


def issue_notice(actor: User, notice: LoanNotice) -> LoanNotice:
    """Render the notice, keep it and file it into the credit file; it is then issued."""
    if notice.status != "pending":
        raise WrongState(_("This notice has already been issued or cancelled."))
    loan = notice.loan
    require_open(loan)
    rules = rules_for(loan)
    doc_type = f"{notice.kind}_notice"
    doc = rules.document_type(doc_type)
    today = local_today()
    data = render_pdf(f"reports/postloan_{notice.kind}_notice.html",
                      title=doc.name_zh if doc else _("Notice"), institution_name=loan.branch.name,
                      notice=notice, loan=loan, today=today, bucket=rules.bucket_of(loan.days_past_due))
    record = keep_and_file(actor, loan, owner_kind="notice", owner_id=notice.id, doc_type=doc_type,
                           filename=safe_filename(f"{doc_type}-{loan.contract_no}-{today}.pdf"), data=data)
    notice.status = "issued"
    notice.issued_on = today
    notice.issued_by_id = actor.id
    notice.file_id = record.id
    db.session.flush()
    record_event(actor, "notice.issue", "loan_notice", notice.id,
                 {"loan": loan.contract_no, "kind": notice.kind, "file": record.id,
                  "archive_document": record.archive_document_id}, institution_id=loan.branch_id)
    return notice


# --- migration ----------------------------------------------------------------------------

@dataclass
class MigrationReport:
    institution: Institution
    start: date
    end: date
    start_day: date | None
    end_day: date | None
    buckets: list[tuple[str, str]]
    columns: list[str]
    cells: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    rows: dict[str, tuple[int, int]] = field(default_factory=dict)
    targets: dict[str, int | None] = field(default_factory=dict)
    new_loans: tuple[int, int] = (0, 0)

    def rate(self, i: str, j: str) -> Decimal | None:
        """Balance moved from bucket i to j ÷ balance in i at the start, in percent."""
        total = self.rows.get(i, (0, 0))[1]
        if not total:
            return None
        moved = self.cells.get((i, j), (0, 0))[1]
        return (Decimal(moved) * 100 / Decimal(total)).quantize(Decimal("0.01"), ROUND_HALF_UP)

    def conversion(self, sources: list[str]) -> Decimal | None:
        """Share of the sources' starting balance that came back to current or was settled."""
        total = sum(self.rows.get(i, (0, 0))[1] for i in sources)
        if not total:
            return None
        cured = sum(self.cells.get((i, j), (0, 0))[1] for i in sources for j in ("M0", "settled"))
        return (Decimal(cured) * 100 / Decimal(total)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def snapshot_day_on_or_before(day: date, branch_ids) -> date | None:
    return db.session.execute(select(func.max(BucketSnapshot.as_of)).where(
        BucketSnapshot.as_of <= day, BucketSnapshot.branch_id.in_(branch_ids))).scalar_one()


def migration_report(user: User, institution: Institution, start: date, end: date) -> MigrationReport:
    """The bucket-to-bucket matrix between the snapshots on (or last before) two dates, for the
    loans of ``institution``'s subtree that the user may see."""
    if end <= start:
        raise InvalidInput(_("The end date must be after the start date."))
    rules = rules_for(institution)
    buckets = rules.bucket_labels()
    report = MigrationReport(institution, start, end, None, None, buckets,
                             [code for code, _label in buckets] + ["settled", "written_off"])
    report.targets = {"M1": rules.settings.get("m1_conversion_target_percent"),
                      "M2-M3": rules.settings.get("m2_m3_conversion_target_percent")}
    branch_ids = select(Institution.id).where(Institution.path.startswith(institution.path, autoescape=True))
    if not user.has_role("admin"):
        branch_ids = branch_ids.where(Institution.id.in_(subtree_ids(user)))
    report.start_day = snapshot_day_on_or_before(start, branch_ids)
    report.end_day = snapshot_day_on_or_before(end, branch_ids)
    if report.start_day is None or report.end_day is None or report.end_day <= report.start_day:
        return report
    s, e = aliased(BucketSnapshot), aliased(BucketSnapshot)
    moved_to = case((e.bucket.is_not(None), e.bucket),
                    (Loan.status == LoanStatus.WRITTEN_OFF.value, "written_off"), else_="settled")
    rows = db.session.execute(
        select(s.bucket, moved_to, func.count(), func.coalesce(func.sum(s.balance_fen), 0))
        .select_from(s).join(Loan, Loan.id == s.loan_id)
        .outerjoin(e, and_(e.loan_id == s.loan_id, e.as_of == report.end_day))
        .where(s.as_of == report.start_day, s.branch_id.in_(branch_ids))
        .group_by(s.bucket, moved_to)).all()
    for i, j, count, balance in rows:
        report.cells[(i, j)] = (count, int(balance))
        n, b = report.rows.get(i, (0, 0))
        report.rows[i] = (n + count, b + int(balance))
    new = db.session.execute(
        select(func.count(), func.coalesce(func.sum(e.balance_fen), 0)).select_from(e)
        .outerjoin(s, and_(s.loan_id == e.loan_id, s.as_of == report.start_day))
        .where(e.as_of == report.end_day, e.branch_id.in_(branch_ids), s.id.is_(None))).one()
    report.new_loans = (new[0], int(new[1]))
    return report

