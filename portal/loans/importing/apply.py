"""Planning and writing an import: what each checked row writes, then all of it in the
caller's transaction, or nothing.

What lives here: ``import_loans`` (read, check, plan and write one file), its two halves
``plan_import`` (read and check the whole file, and plan what it writes; writes nothing) and
``apply_import`` (write a plan, after making sure no other import wrote the same loans
meanwhile), and the audit events of an import. What does not live here: reading the file
(``read``) and checking it (``validate``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import selectinload

from ...accounts.models import Institution, User
from ...accounts.scope import check
from ...audit_trail import record_event
from ...extensions import db
from ..models import Borrower, Loan
from .cells import kind_of_id_number
from .columns import BORROWER_COLUMNS, COLUMNS, FINDS, LOAN_COLUMNS, TERM, UPDATE, ImportColumn
from .read import FileRejected, read_sheet
from .report import ImportProblem, ImportReport, LoanChange, in_listing_order
from .validate import CheckedRow, StoredBorrower, StoredLoan, check_sheet, chunks, final_value, given


@dataclass
class _LoanUpdate:
    row: int
    loan_id: int
    contract_no: str
    branch_id: int
    changes: dict[str, list[Any]]   # shown and audited: field -> [stored, imported]
    updates: dict[str, Any]         # written: Loan attribute -> value
    seen_updated_at: datetime


@dataclass
class ImportPlan:
    """What a valid file will write; built by ``plan_import``, written by ``apply_import``."""

    report: ImportReport
    new_borrowers: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    borrower_updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    # (row, Loan fields, borrower id or the key of a new borrower)
    new_loans: list[tuple[int, dict[str, Any], int | tuple[str, int]]] = field(default_factory=list)
    loan_updates: list[_LoanUpdate] = field(default_factory=list)


def plan_import(actor: User | None, data: bytes, filename: str, *, dry_run: bool = False) -> ImportPlan:
    """Read and check the whole file. Writes nothing."""
    if actor is not None:
        check(actor, "loan.import")
    report = ImportReport(filename=filename, checksum=hashlib.sha256(data).hexdigest(), dry_run=dry_run)
    plan = ImportPlan(report)
    try:
        sheet = read_sheet(data, current_app.config["XINDANG_IMPORT_MAX_ROWS"])
    except FileRejected as exc:
        report.problems.append(ImportProblem(None, None, exc.reason))
        return plan
    for checked in check_sheet(actor, sheet, report):
        if checked.stored is None:
            _plan_new_loan(plan, checked)
        else:
            _plan_update(plan, checked, checked.stored)
    report.borrowers_created = len(plan.new_borrowers)
    report.borrowers_updated = len(plan.borrower_updates)
    return plan


# -- the plan: what each column writes, from its place in COLUMNS ------------------------------

def _cell(checked: CheckedRow, column: ImportColumn) -> Any:
    """The row's value of a column; the user or institution it names for those columns."""
    if column.kind == "user":
        return checked.people[column.key]
    if column.kind == "institution":
        return checked.branch
    return checked.row.values[column.key]


def _written(value: Any) -> Any:
    """A user or an institution is written as its id."""
    return value.id if isinstance(value, (User, Institution)) else value


def _jsonable(value: Any) -> Any:
    if isinstance(value, (date, Decimal)):
        return str(value)
    return value


def _plan_new_loan(plan: ImportPlan, checked: CheckedRow) -> None:
    fields = {c.attr: _written(final_value(c, _cell(checked, c))) for c in LOAN_COLUMNS}
    fields.update(checked.state)  # the state as checked: a blank status follows days past due
    borrower = checked.borrower
    if borrower is not None:
        _borrower_changes(plan, checked, borrower)
        plan.new_loans.append((checked.row.number, fields, borrower.id))
    else:
        v = checked.row.values
        key = (v["id_number"], checked.branch.id)
        new_borrower = {c.attr: final_value(c, v[c.key]) for c in BORROWER_COLUMNS}
        new_borrower["kind"] = checked.kind or kind_of_id_number(v["id_number"])  # a blank kind: by the ID
        plan.new_borrowers.setdefault(key, {**new_borrower, "institution_id": checked.branch.id})
        plan.new_loans.append((checked.row.number, fields, key))
    plan.report.created += 1


def _borrower_changes(plan: ImportPlan, checked: CheckedRow, borrower: StoredBorrower) -> dict[str, list[Any]]:
    """The stored borrower's columns that an import updates (contact details and rating)."""
    changes = {}
    for column in BORROWER_COLUMNS:
        if column.reimport != UPDATE:
            continue
        old = borrower.values[column.attr]
        new = final_value(column, checked.row.values[column.key], old)
        if new != old:
            changes[column.field] = [old, new]
            plan.borrower_updates.setdefault(borrower.id, {})[column.attr] = new
    return changes


def _plan_update(plan: ImportPlan, checked: CheckedRow, stored: StoredLoan) -> None:
    changes: dict[str, list[Any]] = {}
    updates: dict[str, Any] = {}
    for column in LOAN_COLUMNS:
        if column.reimport == FINDS or column.kind == "institution":
            continue  # the loan and its branch stay (the file agrees with them: checked)
        old = stored.values[column.attr]
        if column.attr in checked.state:
            new = checked.state[column.attr]
        else:  # the managing officer, and the terms: an empty one is filled in, the others agree
            new = _cell(checked, column)
            if not given(new) or (column.reimport == TERM and old not in (None, "")):
                continue
        if _written(new) == old:
            continue
        if column.kind == "user":
            changes[column.field] = [stored.people[column.key], new.username]
        else:
            changes[column.field] = [_jsonable(old), _jsonable(new)]
        updates[column.attr] = _written(new)
    changes.update(_borrower_changes(plan, checked, stored.borrower))
    if not changes:
        plan.report.unchanged += 1
        return
    changes = in_listing_order(changes)
    plan.loan_updates.append(_LoanUpdate(checked.row.number, stored.id, stored.contract_no, stored.branch_id,
                                         changes, updates, stored.updated_at))
    plan.report.changes.append(LoanChange(checked.row.number, stored.contract_no, changes))
    plan.report.updated += 1


# -- writing --------------------------------------------------------------------------------

def _concurrent_problem(report: ImportReport) -> ImportReport:
    report.problems.append(ImportProblem(None, None, _(
        "Another import changed some of these loans while this file was being checked. Nothing from this "
        "file was saved; import it again.")))
    report.created = report.updated = report.unchanged = report.borrowers_created = report.borrowers_updated = 0
    report.changes = []
    return report


# A re-import changes balances and days past due of most loans every time; those changes are in
# the report and counted in the import's audit event (whose checksum names the exact file). A
# change of state or of a person responsible gets an audit event of its own on the loan.
EVENT_FIELDS = {c.field for c in COLUMNS if c.own_event}


def apply_import(actor: User | None, plan: ImportPlan) -> ImportReport:
    """Write a valid plan in the caller's transaction, after re-checking, under the audit
    chain's lock, that no other import wrote the same loans meanwhile. On such a race the
    transaction is rolled back and the report says so (never a duplicate, never a 500)."""
    report = plan.report
    if not report.ok or report.dry_run:
        return report
    changed_fields: dict[str, int] = {}
    for change in report.changes:
        for name in change.changes:
            changed_fields[name] = changed_fields.get(name, 0) + 1
    summary = {"file": report.filename, "sha256": report.checksum, "rows": report.rows,
               "created": report.created, "updated": report.updated, "unchanged": report.unchanged,
               "borrowers_created": report.borrowers_created, "borrowers_updated": report.borrowers_updated,
               "changed_fields": changed_fields}
    try:
        # The first write of the transaction takes the audit chain's lock, which serialises
        # concurrent imports (a row lock on PostgreSQL, the write lock on SQLite).
        record_event(actor, "loan.import", "loan_import", report.checksum, summary,
                     institution_id=actor.institution_id if actor is not None else None)
        if _changed_meanwhile(plan):
            db.session.rollback()
            return _concurrent_problem(report)
        # Before the loans are loaded, while the session is small (each event scans it).
        for update in plan.loan_updates:
            if EVENT_FIELDS & update.changes.keys():
                record_event(actor, "loan.import_update", "loan", update.loan_id,
                             {"contract_no": update.contract_no, "changes": update.changes,
                              "import": report.checksum}, institution_id=update.branch_id)
        _write(plan)
    except IntegrityError as exc:
        if "contract_no" not in str(exc.orig):  # only the unique contract number means a race
            raise
        db.session.rollback()
        return _concurrent_problem(report)
    except OperationalError as exc:
        if "locked" not in str(exc.orig).lower():
            raise
        db.session.rollback()
        return _concurrent_problem(report)
    return report


def _write(plan: ImportPlan) -> None:
    """Borrowers, then new loans, then updated loans, as ORM objects: the session's hooks see
    every new and changed loan. Borrowers and branches are loaded first, so nothing lazy-loads."""
    borrower_ids = set(plan.borrower_updates) | {ref for _r, _f, ref in plan.new_loans if isinstance(ref, int)}
    borrowers: dict[int, Borrower] = {}
    for chunk in chunks(borrower_ids):
        borrowers.update((b.id, b) for b in db.session.execute(select(Borrower).where(Borrower.id.in_(chunk))).scalars())
    for borrower_id, values in plan.borrower_updates.items():
        for attr, value in values.items():
            setattr(borrowers[borrower_id], attr, value)
    new_borrowers = {key: Borrower(**fields) for key, fields in plan.new_borrowers.items()}
    db.session.add_all(new_borrowers.values())
    db.session.flush()
    for _row, fields, ref in plan.new_loans:
        borrower = borrowers[ref] if isinstance(ref, int) else new_borrowers[ref]
        db.session.add(Loan(borrower_id=borrower.id, **fields))
    updates = {u.loan_id: u.updates for u in plan.loan_updates}
    with db.session.no_autoflush:  # one flush for all, not one per chunk loaded
        for chunk in chunks(updates):
            stmt = (select(Loan).options(selectinload(Loan.borrower), selectinload(Loan.branch))
                    .where(Loan.id.in_(chunk)))
            for loan in db.session.execute(stmt).scalars():
                for attr, value in updates[loan.id].items():
                    setattr(loan, attr, value)
    db.session.flush()


def _changed_meanwhile(plan: ImportPlan) -> bool:
    """Whether, since the check, a loan or borrower to create appeared or a loan to update
    changed. Read after taking the lock, so it sees every committed import."""
    for chunk in chunks(fields["contract_no"] for _row, fields, _ref in plan.new_loans):
        if db.session.execute(select(Loan.id).where(Loan.contract_no.in_(chunk)).limit(1)).first():
            return True
    seen = {u.loan_id: u.seen_updated_at for u in plan.loan_updates}
    for chunk in chunks(seen):
        for loan_id, stamp in db.session.execute(select(Loan.id, Loan.updated_at).where(Loan.id.in_(chunk))):
            if stamp != seen[loan_id]:
                return True
    keys = set(plan.new_borrowers)
    branch_ids = {inst for _id, inst in keys}
    for chunk in chunks({id_number for id_number, _inst in keys}):
        stmt = select(Borrower.id_number, Borrower.institution_id).where(
            Borrower.id_number.in_(chunk), Borrower.institution_id.in_(branch_ids))
        if any((record.id_number, record.institution_id) in keys for record in db.session.execute(stmt)):
            return True
    return False


def import_loans(actor: User | None, data: bytes, filename: str, *, dry_run: bool = False) -> ImportReport:
    """Validate the whole file and, when every row is valid (and this is not a dry run), write it.

    ``actor`` None is the system (the command line without ``--user``): every institution is in
    scope. The caller commits when ``report.written`` and rolls back otherwise.
    """
    plan = plan_import(actor, data, filename, dry_run=dry_run)
    return apply_import(actor, plan)
