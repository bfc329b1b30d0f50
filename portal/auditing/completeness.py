"""Completeness of credit files (档案完整性): for every loan, the documents the union's plugin
requires for its product and stage against the documents its credit file holds.

What counts as held: a document of the loan's borrower in a *live* state — collected, sorted,
filed or archived (``portal.archive.models.LIVE_STATES``) — linked to the loan, or linked to no
loan at all (it then belongs to the whole credit file, e.g. identity papers). Destroyed and
discarded documents never count. Collected documents count because the portal's own reports
(inspection reports, notices, settlement certificates) enter the file as "collected"; whether
they have been archived yet is the archive's work list, not a gap in the file.

Which stages apply, and since when each has been due (``stages_due``):

- application and disbursement: at once, since the disbursement date;
- post-loan: once the first inspection is due (the plugin's ``first_inspection_due``), since then;
- settlement: once the loan is settled, since the settlement date;
- write-off: once the loan is written off, since the write-off was approved (or, for a loan
  imported as written off, its settlement date if it has one).

Set-based: one query for the loans of a subtree, one for the document types each holds, one for
the borrower-wide documents, one for write-off dates — never a query per loan. The plugin is
asked once per distinct combination of the loan facts a checklist depends on (``KEY_FACTS``),
not once per loan; ``tests/auditing/test_completeness.py`` compares this with asking the plugin
loan by loan on varied data for every shipped plugin. A plugin whose checklist depends on other
facts (an amount, a date) needs that fact added to ``KEY_FACTS``.

The first inspection's due date is asked the same way: once per combination, and a second time
with the disbursement date moved; when both answers lie the same number of days after
disbursement (every shipped rule), that offset is used for the combination, otherwise the plugin
is asked loan by loan for it.
"""
from __future__ import annotations

import gc
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Iterable, Iterator

from sqlalchemy import func, select

from ..accounts.models import Institution
from ..archive.models import LIVE_STATES, Document
from ..extensions import db
from ..loans.models import Borrower, Loan, LoanStatus
from ..postloan.models import WriteOff, WriteOffStatus
from ..rules.manager import UnionRules
from ..rules.lookup import rules_for
from ..rules.types import STAGES, LoanFacts
from ..timeutil import local_today, to_local, utcnow
from .models import CompletenessSnapshot

# The documents that count as held (see the module docstring).
VALID_STATES = tuple(sorted(LIVE_STATES))
# The loan facts a union's checklist may depend on; loans that agree on all of them get the
# same answer from the plugin, so it is asked once per combination.
KEY_FACTS = ("product", "guarantee_type", "borrower_kind", "status", "risk_class", "payment_method",
             "branch_level")
# The first inspection's offset is checked with a second disbursement date this far away.
PROBE_SHIFT = timedelta(days=400)


@dataclass(frozen=True, slots=True)
class Gap:
    """One document a loan's file should hold and does not."""

    doc_type: str
    stage: str
    due_since: date | None


@dataclass(slots=True)
class LoanResult:
    loan_id: int
    contract_no: str
    borrower_id: int
    borrower_name: str
    branch_id: int
    status: str
    product: str
    plan: tuple[tuple[str, str], ...]   # (document type, stage) the file must hold today, in order
    missing: list[Gap]

    @property
    def required(self) -> int:
        return len(self.plan)

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def due_since(self) -> date | None:
        """Since when the oldest missing document has been due."""
        days = [g.due_since for g in self.missing if g.due_since is not None]
        return min(days) if days else None


@dataclass(frozen=True, slots=True)
class InstitutionRow:
    id: int
    code: str
    name: str
    level: str
    path: str
    parent_id: int | None

    @property
    def depth(self) -> int:
        return self.path.strip("/").count("/")


def percent(part: int, whole: int) -> Decimal | None:
    """``part`` of ``whole`` in percent with one decimal; None when there is nothing to count."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), ROUND_HALF_UP)


@dataclass(slots=True)
class Totals:
    """Files (loans), complete files and missing documents of an institution's subtree."""

    institution: InstitutionRow
    files: int = 0
    complete: int = 0
    missing_documents: int = 0

    @property
    def incomplete(self) -> int:
        return self.files - self.complete

    @property
    def rate(self) -> Decimal | None:
        return percent(self.complete, self.files)


@dataclass
class CompletenessAudit:
    """The result for one institution's subtree on one date."""

    root: InstitutionRow
    as_of: date
    rules: UnionRules
    institutions: dict[int, InstitutionRow]
    totals: dict[int, Totals]
    loans: list[LoanResult]
    missing_by_type: Counter = field(default_factory=Counter)

    @property
    def total(self) -> Totals:
        return self.totals[self.root.id]

    def children(self, institution_id: int) -> list[Totals]:
        """The totals of an institution's direct children, in code order."""
        rows = [t for t in self.totals.values() if t.institution.parent_id == institution_id]
        return sorted(rows, key=lambda t: t.institution.path)

    def branches(self) -> list[Totals]:
        return sorted((t for t in self.totals.values() if t.institution.level == "branch"),
                      key=lambda t: t.institution.path)

    def loans_under(self, institution_id: int, *, incomplete_only: bool = True) -> list[LoanResult]:
        """Loans of the institution's subtree (only the incomplete ones by default), oldest gap first."""
        path = self.institutions[institution_id].path
        branch_ids = {i.id for i in self.institutions.values() if i.path.startswith(path)}
        rows = [r for r in self.loans if r.branch_id in branch_ids and (r.missing or not incomplete_only)]
        rows.sort(key=lambda r: (r.due_since or date.max, r.contract_no))
        return rows

    def gaps(self, institution_id: int | None = None) -> Iterator[tuple[LoanResult, Gap]]:
        for result in self.loans_under(institution_id or self.root.id):
            for gap in result.missing:
                yield result, gap

    def loan(self, loan_id: int) -> LoanResult | None:
        return next((r for r in self.loans if r.loan_id == loan_id), None)


# --- which stages apply --------------------------------------------------------------------

def stages_due(*, status: str, disbursed_on: date, settled_on: date | None, written_off_on: date | None,
               first_inspection_due: date, as_of: date) -> dict[str, date | None]:
    """The checklist stages that apply to a loan on ``as_of``, each with the date since which its
    documents have been due (None: applies, date unknown)."""
    due: dict[str, date | None] = {"application": disbursed_on, "disbursement": disbursed_on}
    if first_inspection_due <= as_of:
        due["post_loan"] = first_inspection_due
    if status == LoanStatus.SETTLED.value:
        due["settlement"] = settled_on
    elif status == LoanStatus.WRITTEN_OFF.value:
        due["write_off"] = written_off_on or settled_on
    return due


def required_by_stage(rules: UnionRules, facts: LoanFacts) -> dict[str, tuple[str, ...]]:
    """The plugin's checklist of this loan, stage by stage."""
    return {stage: tuple(rules.required_documents(facts, stage)) for stage in STAGES}


# --- the set-based audit ---------------------------------------------------------------------

# What the audit reads of each loan; the plugin sees the full facts of one loan per combination.
LOAN_COLUMNS = (Loan.id, Loan.contract_no, Loan.borrower_id, Borrower.name, Loan.branch_id, Loan.product,
                Loan.guarantee_type, Borrower.kind, Loan.status, Loan.risk_class, Loan.payment_method,
                Loan.disbursed_on, Loan.settled_on)
FACT_COLUMNS = (Loan.contract_no, Loan.product, Loan.guarantee_type, Loan.amount_fen, Loan.balance_fen,
                Loan.payment_method, Loan.disbursed_on, Loan.maturity_on, Loan.status, Loan.days_past_due,
                Loan.interest_arrears_fen, Borrower.credit_rating, Borrower.kind, Loan.restructured_on,
                Loan.settled_on, Loan.risk_class)


def _facts(row, branch_level: str) -> LoanFacts:
    (contract_no, product, guarantee, amount, balance, payment, disbursed, maturity, status, dpd, arrears, rating,
     kind, restructured, settled, risk) = row
    return LoanFacts(
        contract_no=contract_no, product=product, guarantee_type=guarantee, amount_fen=amount, balance_fen=balance,
        payment_method=payment, disbursed_on=disbursed, maturity_on=maturity, status=status, days_past_due=dpd,
        interest_arrears_fen=arrears, credit_rating=rating, borrower_kind=kind, restructured_on=restructured,
        settled_on=settled, risk_class=risk, branch_level=branch_level)


def _facts_of(loan_ids: list[int], levels: dict[int, str]) -> dict[int, LoanFacts]:
    """The plugin's view of a few loans, in one query."""
    facts = {}
    for start in range(0, len(loan_ids), 500):
        chunk = loan_ids[start:start + 500]
        for row in db.session.connection().execute(
                select(Loan.id, Loan.branch_id, *FACT_COLUMNS).join(Borrower, Borrower.id == Loan.borrower_id)
                .where(Loan.id.in_(chunk))):
            facts[row[0]] = _facts(row[2:], levels[row[1]])
    return facts


Plan = tuple[tuple[tuple[str, str], ...], frozenset[str]]


def _plan(required: dict[str, tuple[str, ...]], status: str, first_due_passed: bool, as_of: date) -> Plan:
    """The (document type, stage) pairs a file must hold, in checklist order, and their types as
    a set. Which stages apply depends only on the status and on whether the first inspection is
    due yet (``stages_due``); a type required at two stages counts once, at the earlier."""
    stages = stages_due(status=status, disbursed_on=as_of, settled_on=None, written_off_on=None,
                        first_inspection_due=as_of if first_due_passed else as_of + timedelta(days=1), as_of=as_of)
    seen: set[str] = set()
    pairs = []
    for stage in STAGES:
        if stage in stages:
            for code in required[stage]:
                if code not in seen:
                    seen.add(code)
                    pairs.append((code, stage))
    return tuple(pairs), frozenset(seen)


@dataclass(slots=True)
class _Combination:
    """What the plugin said for one combination of ``KEY_FACTS``."""

    first_offset: timedelta | None      # first inspection due this long after disbursement; None: ask per loan
    before_first: Plan                  # the checklist until the first inspection is due
    after_first: Plan                   # and from then on


def _combination(rules: UnionRules, facts: LoanFacts, as_of: date) -> _Combination:
    required = required_by_stage(rules, facts)
    offset = rules.first_inspection_due(facts) - facts.disbursed_on
    moved = replace(facts, disbursed_on=facts.disbursed_on + PROBE_SHIFT, maturity_on=facts.maturity_on + PROBE_SHIFT)
    same = rules.first_inspection_due(moved) - moved.disbursed_on == offset
    return _Combination(offset if same else None, _plan(required, facts.status, False, as_of),
                        _plan(required, facts.status, True, as_of))


def subtree_ids(root: InstitutionRow | Institution):
    return select(Institution.id).where(Institution.path.startswith(root.path, autoescape=True))


def _institutions(root: Institution) -> dict[int, InstitutionRow]:
    rows = db.session.execute(
        select(Institution.id, Institution.code, Institution.name, Institution.level, Institution.path,
               Institution.parent_id).where(Institution.path.startswith(root.path, autoescape=True))).all()
    return {r.id: InstitutionRow(*r) for r in rows}


def _loan_filter(root: Institution, loan_ids: Iterable[int] | None, borrower_ids: Iterable[int] | None):
    conditions = [Loan.branch_id.in_(subtree_ids(root))]
    if loan_ids is not None:
        conditions.append(Loan.id.in_(list(loan_ids)))
    if borrower_ids is not None:
        conditions.append(Loan.borrower_id.in_(list(borrower_ids)))
    return conditions


def _plain_rows(stmt) -> list[tuple]:
    """Run ``stmt`` in the session's transaction and return plain tuples, without SQLAlchemy's
    per-row processing: for the two queries that return a row per loan (measured on 50,000
    loans: 0.1 s less on PostgreSQL, 0.3 s on SQLite). Dates come back as the driver gives them
    (``_day`` reads both)."""
    conn = db.session.connection()
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    if compiled.positional:
        params = tuple(params[name] for name in compiled.positiontup)
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(str(compiled), params)
        return cursor.fetchall()
    finally:
        cursor.close()


def _day(value) -> date | None:
    """A date column as returned by the driver: a date (PostgreSQL) or ISO text (SQLite)."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(value[:10])


def _aggregate_types():
    """The document types of a group as one comma-separated string (codes hold no commas)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.string_agg(Document.doc_type, ",")
    return func.group_concat(Document.doc_type, ",")


def _held_by_loan(loans_in_scope) -> dict[int, frozenset[str]]:
    """Document types held per loan: one row per loan, its types joined by commas (read from the
    covering index ``ix_audit_document_loan_state_type``)."""
    rows = _plain_rows(select(Document.loan_id, _aggregate_types())
                       .where(Document.loan_id.in_(loans_in_scope), Document.state.in_(VALID_STATES))
                       .group_by(Document.loan_id))
    return {loan_id: frozenset(types.split(",")) for loan_id, types in rows}


def _held_by_borrower(borrowers_in_scope) -> dict[int, frozenset[str]]:
    """Document types of the credit file linked to no loan, per borrower."""
    rows = db.session.connection().execute(
        select(Document.borrower_id, _aggregate_types())
        .where(Document.loan_id.is_(None), Document.borrower_id.in_(borrowers_in_scope),
               Document.state.in_(VALID_STATES))
        .group_by(Document.borrower_id)).all()
    return {borrower_id: frozenset(types.split(",")) for borrower_id, types in rows}


def _written_off_on(loans_in_scope) -> dict[int, date]:
    rows = db.session.connection().execute(
        select(WriteOff.loan_id, func.max(WriteOff.decided_at))
        .where(WriteOff.loan_id.in_(loans_in_scope), WriteOff.status == WriteOffStatus.APPROVED.value)
        .group_by(WriteOff.loan_id))
    return {loan_id: to_local(decided).date() for loan_id, decided in rows if decided is not None}


@contextmanager
def _no_collector_passes():
    """The audit makes a few objects per loan that live until it returns and form no cycles;
    the cyclic collector's passes over them cost a quarter of the time on 50,000 loans
    (bench/completeness.md), so it waits until the audit is done."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def audit_completeness(root: Institution, *, as_of: date | None = None, loan_ids: Iterable[int] | None = None,
                       borrower_ids: Iterable[int] | None = None) -> CompletenessAudit:
    """Completeness of every loan whose branch lies in ``root``'s subtree (optionally only some
    loans or borrowers), with totals per institution. The caller has checked that the user may
    see ``root``."""
    with _no_collector_passes():
        return _audit(root, as_of or local_today(), loan_ids, borrower_ids)


def _audit(root: Institution, as_of: date, loan_ids: Iterable[int] | None,
           borrower_ids: Iterable[int] | None) -> CompletenessAudit:
    rules = rules_for(root)
    institutions = _institutions(root)
    levels = {i: row.level for i, row in institutions.items()}
    conditions = _loan_filter(root, loan_ids, borrower_ids)
    loans_in_scope = select(Loan.id).where(*conditions)

    rows = _plain_rows(select(*LOAN_COLUMNS).join(Borrower, Borrower.id == Loan.borrower_id).where(*conditions))
    held = _held_by_loan(loans_in_scope)
    file_wide = _held_by_borrower(select(Loan.borrower_id).where(*conditions))
    written_off = (_written_off_on(loans_in_scope.where(Loan.status == LoanStatus.WRITTEN_OFF.value))
                   if any(r[8] == LoanStatus.WRITTEN_OFF.value for r in rows) else {})

    # The plugin is asked once per combination of the facts its checklist depends on.
    keys = [(row[5], row[6], row[7], row[8], row[9], row[10], levels[row[4]]) for row in rows]
    first_of: dict[tuple, int] = {}
    for row, key in zip(rows, keys):
        if key not in first_of:
            first_of[key] = row[0]
    facts = _facts_of(list(first_of.values()), levels)
    combinations = {key: _combination(rules, facts[loan_id], as_of) for key, loan_id in first_of.items()}
    # Combinations whose first inspection is not a fixed number of days after disbursement:
    # the plugin is asked for each of their loans.
    exact_first: dict[int, date] = {}
    irregular = [row[0] for row, key in zip(rows, keys) if combinations[key].first_offset is None]
    if irregular:
        exact_first = {i: rules.first_inspection_due(f) for i, f in _facts_of(irregular, levels).items()}

    totals = {i: Totals(row) for i, row in institutions.items()}
    missing_by_type: Counter = Counter()
    results: list[LoanResult] = []
    empty: frozenset[str] = frozenset()
    for row, key in zip(rows, keys):
        loan_id, contract_no, borrower_id, name, branch_id, product, _g, _k, status, _r, _p, disbursed_on, settled_on = row
        disbursed_on = _day(disbursed_on)
        combo = combinations[key]
        offset = combo.first_offset
        first_due = disbursed_on + offset if offset is not None else exact_first[loan_id]
        plan, codes = combo.after_first if first_due <= as_of else combo.before_first
        have = held.get(loan_id, empty)
        extra = file_wide.get(borrower_id)
        if extra:
            have = have | extra
        t = totals[branch_id]
        t.files += 1
        if not codes <= have:
            missing = [pair for pair in plan if pair[0] not in have]
            due = stages_due(status=status, disbursed_on=disbursed_on, settled_on=_day(settled_on),
                             written_off_on=written_off.get(loan_id), first_inspection_due=first_due, as_of=as_of)
            gaps = [Gap(code, stage, due[stage]) for code, stage in missing]
            t.missing_documents += len(gaps)
            missing_by_type.update(code for code, _stage in missing)
        else:
            gaps = []
            t.complete += 1
        results.append(LoanResult(loan_id, contract_no, borrower_id, name, branch_id, status, product, plan, gaps))
    _roll_up(totals, institutions, root.id)
    return CompletenessAudit(institutions[root.id], as_of, rules, institutions, totals, results, missing_by_type)


def _roll_up(totals: dict[int, Totals], institutions: dict[int, InstitutionRow], root_id: int) -> None:
    """Add every institution's own counts to each ancestor within the subtree, deepest first."""
    for inst in sorted(institutions.values(), key=lambda i: -i.depth):
        if inst.id == root_id or inst.parent_id not in totals:
            continue
        child, parent = totals[inst.id], totals[inst.parent_id]
        parent.files += child.files
        parent.complete += child.complete
        parent.missing_documents += child.missing_documents


# --- daily snapshots ---------------------------------------------------------------------------

def write_snapshots(audit: CompletenessAudit) -> int:
    """Keep each branch's totals of this audit as the snapshot of its date (overwriting a
    snapshot of the same date). Only whole-subtree audits may be kept. Flushed, not committed."""
    existing = {s.institution_id: s for s in db.session.execute(
        select(CompletenessSnapshot).where(CompletenessSnapshot.as_of == audit.as_of,
                                           CompletenessSnapshot.institution_id.in_(list(audit.institutions))))
        .scalars()}
    written = 0
    for totals in audit.branches():
        snap = existing.get(totals.institution.id)
        if snap is None:
            snap = CompletenessSnapshot(institution_id=totals.institution.id, as_of=audit.as_of)
            db.session.add(snap)
        snap.files, snap.complete, snap.missing_documents = totals.files, totals.complete, totals.missing_documents
        snap.written_at = utcnow()
        written += 1
    db.session.flush()
    return written


@dataclass(frozen=True, slots=True)
class TrendPoint:
    as_of: date
    files: int
    complete: int
    missing_documents: int

    @property
    def rate(self) -> Decimal | None:
        return percent(self.complete, self.files)


def completeness_trend(institution: Institution, *, days: int = 90, as_of: date | None = None) -> list[TrendPoint]:
    """The subtree's completeness per snapshot date over the last ``days`` days."""
    as_of = as_of or local_today()
    rows = db.session.execute(
        select(CompletenessSnapshot.as_of, func.sum(CompletenessSnapshot.files),
               func.sum(CompletenessSnapshot.complete), func.sum(CompletenessSnapshot.missing_documents))
        .where(CompletenessSnapshot.institution_id.in_(subtree_ids(institution)),
               CompletenessSnapshot.as_of > as_of - timedelta(days=days), CompletenessSnapshot.as_of <= as_of)
        .group_by(CompletenessSnapshot.as_of).order_by(CompletenessSnapshot.as_of)).all()
    return [TrendPoint(day, int(files or 0), int(complete or 0), int(missing or 0))
            for day, files, complete, missing in rows]


@dataclass
class LoanFileCheck:
    """One loan's credit file against the checklist, for its page: the audit's result, every
    document of the loan (and the borrower's tied to no loan), the live ones by type, and the
    missing ones by type."""

    result: LoanResult
    documents: list[Document]
    held: dict[str, list[Document]]
    missing: dict[str, Gap]
    as_of: date


def loan_file_check(loan: Loan) -> LoanFileCheck:
    audit = audit_completeness(loan.branch, loan_ids=[loan.id])
    result = audit.loans[0]
    documents = list(db.session.execute(
        select(Document).where(Document.borrower_id == loan.borrower_id,
                               (Document.loan_id == loan.id) | Document.loan_id.is_(None))
        .order_by(Document.stage, Document.doc_type, Document.id)).scalars())
    held: dict[str, list[Document]] = {}
    for doc in documents:
        if doc.state in LIVE_STATES:
            held.setdefault(doc.doc_type, []).append(doc)
    return LoanFileCheck(result=result, documents=documents, held=held,
                         missing={g.doc_type: g for g in result.missing}, as_of=audit.as_of)
