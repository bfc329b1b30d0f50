"""Checking every row of the loan file, against each other and against the database.

What lives here: mapping the header to columns, reading every cell (``cells``), loading the
stored loans, borrowers, institutions and users the file names (one query per 500 values), and
the rules that tie values together: scope, where the people named work, the ID number of the
borrower's kind, amounts, dates and status, a stored loan's terms and changes of state, and rows
of one borrower agreeing. Every problem goes to the report, named by spreadsheet row and column
header; a row without problems comes back as a ``CheckedRow``.

What does not live here: what a valid row writes (``apply``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from ...accounts.models import Institution, Level, User
from ...accounts.scope import LENDING_STAFF, is_global
from ...extensions import db
from ...labels import label, yuan
from ...timeutil import local_today
from ..models import Borrower, BorrowerKind, Loan, LoanStatus
from .cells import CellError, cell_text, is_blank, parse_cell, resident_id_valid, uscc_valid
from .columns import (BORROWER_COLUMNS, COLUMN, COLUMNS, FINDS, LOAN_COLUMNS, PEOPLE, REQUIRED, TERM, UPDATE,
                      ImportColumn, column_key)
from .read import Sheet
from .report import ImportProblem, ImportReport

ABSENT = object()  # the column is not in the file at all
CHUNK = 500

# The loan's state: what an import changes on a stored loan (besides its managing officer).
STATE_COLUMNS = [c for c in LOAN_COLUMNS if c.reimport == UPDATE and c.kind != "user"]
# A stored loan's terms, which the file must repeat (the holding branch is checked on its own).
TERM_COLUMNS = [c for c in LOAN_COLUMNS if c.reimport == TERM and c.kind != "institution"]


def chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    items = list(values)
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def given(value: Any) -> bool:
    return value is not None and value is not ABSENT


def final_value(column: ImportColumn, value: Any, stored: Any = ABSENT) -> Any:
    """A column's value after the import: the cell's; for a column not in the file (or a blank
    cell of a column that keeps) the stored value, if there is one; else the column's default."""
    if given(value):
        return value
    if stored is not ABSENT and (value is ABSENT or column.keep_when_blank):
        return stored
    return column.default


@dataclass
class Row:
    number: int
    values: dict[str, Any]  # column key -> value, None for a blank cell, ABSENT for a column not in the file
    bad: set[str] = field(default_factory=set)  # columns whose cell could not be read


# Validation reads stored borrowers and loans as plain values, not ORM objects: a 10,000-row
# file then leaves the session small, and the writes and audit events that follow stay linear.

class _Values:
    values: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class StoredBorrower(_Values):
    values: dict[str, Any]  # by Borrower attribute


@dataclass
class StoredLoan(_Values):
    values: dict[str, Any]  # by Loan attribute
    borrower: StoredBorrower
    branch_code: str
    branch_path: str
    people: dict[str, str | None] = field(default_factory=dict)  # user column -> stored user name

    @property
    def is_closed(self) -> bool:
        return self.status in (LoanStatus.SETTLED.value, LoanStatus.WRITTEN_OFF.value)


BORROWER_FIELDS = ("id", "institution_id", *(c.attr for c in BORROWER_COLUMNS))
LOAN_FIELDS = ("id", "updated_at", *(c.attr for c in LOAN_COLUMNS))


@dataclass
class CheckedRow:
    """A row without problems and what its checks found."""

    row: Row
    stored: StoredLoan | None              # None: a new loan
    branch: Institution
    people: dict[str, User | None]         # user column -> the user named, None if blank
    state: dict[str, Any]                  # the loan's state after the import, by Loan attribute
    borrower: StoredBorrower | None        # None: a new borrower
    kind: str | None                       # the borrower kind the file gives


def check_sheet(actor: User | None, sheet: Sheet, report: ImportReport) -> list[CheckedRow]:
    """Check every row. The problems go to the report, by row and then in column order; the
    rows come back checked when none has a problem."""
    validator = _Validator(actor, sheet, report)
    if not validator.map_header():
        return []
    rows = validator.read_rows()
    validator.load_references(rows)
    checked = [validator.check_row(row) for row in rows]
    order = {c.key: i for i, c in enumerate(COLUMNS)}
    position = {text: order[key] for key, text in validator.header_text.items()}
    report.problems.sort(key=lambda p: (p.row or 0, position.get(p.column or "", -1)))
    return [c for c in checked if c is not None] if report.ok else []


class _Validator:
    """Checks every row; collects the problems."""

    def __init__(self, actor: User | None, sheet: Sheet, report: ImportReport) -> None:
        self.actor = actor
        self.sheet = sheet
        self.report = report
        self.today = local_today()
        self.index: dict[str, int] = {}
        self.header_text: dict[str, str] = {}
        self.seen_contracts: dict[str, int] = {}
        self.seen_borrowers: dict[Any, tuple[int, dict[str, Any]]] = {}

    # -- problems ------------------------------------------------------------------------------
    def problem(self, row: int | None, key: str | None, reason: str) -> None:
        column = self.header_text.get(key, COLUMN[key].header_zh) if key else None
        self.report.problems.append(ImportProblem(row, column, reason))

    def blame(self, *keys: str) -> str:
        """The first of these columns that the file has (a cross-column problem names one)."""
        for key in keys:
            if key in self.index:
                return key
        return keys[0]

    # -- header --------------------------------------------------------------------------------
    def map_header(self) -> bool:
        for position, cell in enumerate(self.sheet.headers):
            if is_blank(cell):
                continue
            written = cell_text(cell)
            key = column_key(cell)
            if key is None:
                self.report.ignored_columns.append(written)
                continue
            if key in self.index:
                self.report.problems.append(ImportProblem(
                    self.sheet.header_row, written,
                    _("Two columns mean %(name)s: %(first)s and %(second)s. Keep one.",
                      name=COLUMN[key].header_zh, first=self.header_text[key], second=written)))
                continue
            self.index[key] = position
            self.header_text[key] = written
        missing = [k for k in REQUIRED if k not in self.index]
        if missing:
            names = "、".join(f"{COLUMN[k].header_zh} ({k})" for k in missing)
            self.report.problems.append(ImportProblem(
                self.sheet.header_row, names, _("Required columns are missing: %(names)s.", names=names)))
        return not self.report.problems

    # -- cells ---------------------------------------------------------------------------------
    def read_rows(self) -> list[Row]:
        rows = []
        percent = self.sheet.percent_cells
        for number, cells in self.sheet.rows:
            row = Row(number, {})
            for column in COLUMNS:
                key = column.key
                position = self.index.get(key)
                if position is None:
                    row.values[key] = ABSENT
                    continue
                value = cells[position] if position < len(cells) else None
                row.values[key] = None
                if is_blank(value):
                    if column.required:
                        self.problem(number, key, _("A value is required."))
                        row.bad.add(key)
                    continue
                try:
                    row.values[key] = parse_cell(column, value, (number, position) in percent)
                except CellError as exc:
                    self.problem(number, key, str(exc))
                    row.bad.add(key)
            rows.append(row)
        self.report.rows = len(rows)
        return rows

    # -- lookups, one query per 500 values -----------------------------------------------------
    def load_references(self, rows: list[Row]) -> None:
        def values(*keys: str) -> set[Any]:
            return {r.values[k] for r in rows for k in keys if given(r.values[k])}

        self.institutions: dict[str, Institution] = {}
        for chunk in chunks(values("branch_code")):
            for inst in db.session.execute(select(Institution).where(Institution.code.in_(chunk))).scalars():
                self.institutions[inst.code] = inst
        self.users: dict[str, User] = {}
        for chunk in chunks({name.lower() for name in values(*(c.key for c in PEOPLE))}):
            stmt = select(User).options(joinedload(User.institution)).where(func.lower(User.username).in_(chunk))
            for user in db.session.execute(stmt).scalars():
                self.users[user.username.lower()] = user
        self.loans: dict[str, StoredLoan] = {}
        loan_columns = [getattr(Loan, name) for name in LOAN_FIELDS]
        borrower_columns = [getattr(Borrower, name) for name in BORROWER_FIELDS]
        for chunk in chunks(values("contract_no")):
            stmt = (select(*loan_columns, *borrower_columns, Institution.code, Institution.path)
                    .join(Borrower, Loan.borrower_id == Borrower.id)
                    .join(Institution, Loan.branch_id == Institution.id)
                    .where(Loan.contract_no.in_(chunk)))
            for record in db.session.execute(stmt):
                n = len(LOAN_FIELDS)
                borrower = StoredBorrower(dict(zip(BORROWER_FIELDS, record[n:n + len(BORROWER_FIELDS)])))
                loan = StoredLoan(dict(zip(LOAN_FIELDS, record[:n])), borrower, record[-2], record[-1])
                self.loans[loan.contract_no] = loan
        people_ids = {loan.values[c.attr] for loan in self.loans.values() for c in PEOPLE} - {None}
        usernames: dict[int, str] = {}
        for chunk in chunks(people_ids):
            usernames.update(db.session.execute(select(User.id, User.username).where(User.id.in_(chunk))).all())
        for loan in self.loans.values():
            loan.people = {c.key: usernames.get(loan.values[c.attr]) for c in PEOPLE}
        branch_ids = [inst.id for inst in self.institutions.values()]
        self.borrowers: dict[tuple[str, int], StoredBorrower] = {}
        if branch_ids:
            for chunk in chunks(values("id_number")):
                stmt = (select(*borrower_columns)
                        .where(Borrower.id_number.in_(chunk), Borrower.institution_id.in_(branch_ids))
                        .order_by(Borrower.id.desc()))
                for record in db.session.execute(stmt):
                    # Newest first, so that of duplicated records the oldest borrower wins.
                    borrower = StoredBorrower(dict(zip(BORROWER_FIELDS, record)))
                    self.borrowers[(borrower.id_number, borrower.institution_id)] = borrower

    # -- scope and references ------------------------------------------------------------------
    def in_actor_scope(self, path: str) -> bool:
        if self.actor is None or is_global(self.actor):
            return True
        return path.startswith(self.actor.institution.path)

    def check_branch(self, row: Row) -> Institution | None:
        code = row.values["branch_code"]
        if code is None:
            return None
        inst = self.institutions.get(code)
        if inst is None:
            self.problem(row.number, "branch_code", _("Unknown institution code %(code)s.", code=code))
            return None
        if inst.level not in (Level.BRANCH.value, Level.COUNTY.value):
            self.problem(row.number, "branch_code",
                         _("%(code)s is a %(level)s; loans are held by a branch or a county union.",
                           code=code, level=label(inst.level, "level")))
            return None
        if not self.in_actor_scope(inst.path):
            self.problem(row.number, "branch_code",
                         _("%(code)s is outside your institution; you may import loans only into %(mine)s "
                           "and the institutions under it.", code=code, mine=self.actor.institution.name))
            return None
        return inst

    def check_person(self, row: Row, key: str, branch: Institution | None) -> User | None:
        """The user named in this column, or None (not given, or a problem was recorded)."""
        name = row.values[key]
        if not given(name):
            return None
        user = self.users.get(name.lower())
        if user is None:
            self.problem(row.number, key, _("There is no user %(name)s.", name=name))
            return None
        if not user.is_active_flag:
            self.problem(row.number, key, _("User %(name)s is deactivated.", name=name))
            return None
        if branch is None:
            return user
        inside = user.institution.path.startswith(branch.path)
        if key == "officer":
            if not inside:
                self.problem(row.number, key, _("%(name)s does not work at %(branch)s or an institution under it.",
                                                name=name, branch=branch.name))
                return None
            if not user.roles & LENDING_STAFF:
                self.problem(row.number, key, _("%(name)s is not a loan officer, post-loan officer or branch "
                                                "director.", name=name))
                return None
        elif not (inside or branch.path.startswith(user.institution.path)):
            self.problem(row.number, key, _("%(name)s works neither at %(branch)s nor above or under it.",
                                            name=name, branch=branch.name))
            return None
        return user

    def check_id_number(self, row: Row, kind: str | None) -> None:
        id_number = row.values["id_number"]
        if not id_number or "id_number" in row.bad:
            return
        if kind == BorrowerKind.INDIVIDUAL.value and not resident_id_valid(id_number):
            reason = _("Not a valid 18-character resident ID number (wrong length, birth date or check digit).")
        elif kind == BorrowerKind.ENTERPRISE.value and not uscc_valid(id_number):
            reason = _("Not a valid 18-character unified social credit code (wrong characters or check "
                       "character).")
        elif kind is None and not (resident_id_valid(id_number) or uscc_valid(id_number)):
            reason = _("Neither a valid resident ID number nor a valid unified social credit code (wrong "
                       "length or check character).")
        else:
            return
        self.problem(row.number, "id_number", reason)
        row.bad.add("id_number")

    # -- one row -------------------------------------------------------------------------------
    def check_row(self, row: Row) -> CheckedRow | None:
        v = row.values
        before = len(self.report.problems)
        contract = v["contract_no"]
        if contract:
            first = self.seen_contracts.setdefault(contract, row.number)
            if first != row.number:
                self.problem(row.number, "contract_no",
                             _("Contract number %(no)s is also on row %(row)d.", no=contract, row=first))
                return None
        kind = v["borrower_kind"] if given(v["borrower_kind"]) else None
        self.check_id_number(row, kind)
        branch = self.check_branch(row)
        people = {c.key: self.check_person(row, c.key, branch) for c in PEOPLE}
        stored = self.loans.get(contract) if contract else None
        if stored is not None and not self.in_actor_scope(stored.branch_path):
            self.problem(row.number, "contract_no",
                         _("Contract number %(no)s is already used by a loan outside your institution.", no=contract))
            return None
        state = self.final_state(row, stored)
        self.check_state(row, state)
        borrower = self.match_borrower(row, stored, branch, kind)
        if borrower is False:
            return None
        if stored is not None:
            self.compare_terms(row, stored, branch)
            self.check_transition(row, stored, state["status"])
        if len(self.report.problems) > before or row.bad:
            return None
        return CheckedRow(row, stored, branch, people, state, borrower, kind)

    def final_state(self, row: Row, stored: StoredLoan | None) -> dict[str, Any]:
        """The loan's state after the import (see ``final_value``); a status not given follows
        days past due, except that a closed loan stays closed when the file has no status column."""
        v = row.values
        state = {c.attr: final_value(c, v[c.key], stored.values[c.attr] if stored is not None else ABSENT)
                 for c in STATE_COLUMNS}
        if not given(v["status"]) and not (stored is not None and stored.is_closed and v["status"] is ABSENT):
            state["status"] = LoanStatus.OVERDUE.value if state["days_past_due"] > 0 else LoanStatus.ACTIVE.value
        return state

    def check_state(self, row: Row, state: dict[str, Any]) -> None:
        """Amounts, dates and status must agree with each other."""
        v, n, bad = row.values, row.number, row.bad
        amount, balance = v["amount"], state["balance_fen"]
        dpd, arrears, status = state["days_past_due"], state["interest_arrears_fen"], state["status"]
        disbursed, maturity = v["disbursed_on"], v["maturity_on"]
        settled_on, restructured_on = state["settled_on"], state["restructured_on"]
        if amount == 0:
            self.problem(n, "amount", _("The contract amount must be above 0."))
        if amount and balance is not None and balance > amount:
            self.problem(n, "balance", _("The balance %(balance)s is more than the contract amount %(amount)s.",
                                         balance=yuan(balance), amount=yuan(amount)))
        if disbursed and disbursed > self.today:
            self.problem(n, "disbursed_on", _("The disbursement date is in the future."))
        if disbursed and maturity and maturity <= disbursed:
            self.problem(n, "maturity_on", _("The maturity date must be after the disbursement date."))
        if disbursed and restructured_on and not disbursed <= restructured_on <= self.today:
            self.problem(n, "restructured_on", _("The restructuring date must lie between disbursement and today."))
        if disbursed and settled_on and not disbursed <= settled_on <= self.today:
            self.problem(n, "settled_on", _("The settlement date must lie between disbursement and today."))
        if "status" in bad:
            return
        if status == LoanStatus.SETTLED.value:
            if balance:
                self.problem(n, "balance", _("A settled loan must have a balance of 0."))
            if arrears:
                self.problem(n, self.blame("interest_arrears", "status"),
                             _("A settled loan cannot have interest in arrears."))
            if dpd:
                self.problem(n, self.blame("days_past_due", "status"), _("A settled loan cannot be past due."))
            if settled_on is None and "settled_on" not in bad:
                self.problem(n, self.blame("settled_on", "status"), _("A settled loan needs its settlement date."))
        elif status != LoanStatus.WRITTEN_OFF.value:
            if settled_on is not None:
                self.problem(n, "settled_on", _("Only a settled or written-off loan has a settlement date."))
            if status == LoanStatus.OVERDUE.value and dpd == 0 and "days_past_due" not in bad:
                self.problem(n, self.blame("days_past_due", "status"), _("An overdue loan needs days past due above 0."))
            if status == LoanStatus.ACTIVE.value and dpd > 0:
                self.problem(n, self.blame("status", "days_past_due"),
                             _("The loan is %(n)d days past due, so its status is overdue, not active.", n=dpd))
            if balance == 0 and not arrears:
                self.problem(n, self.blame("status", "balance"),
                             _("The balance is 0: a repaid loan's status is settled."))

    def match_borrower(self, row: Row, stored: StoredLoan | None, branch: Institution | None,
                       kind: str | None) -> StoredBorrower | None | bool:
        """The loan's own borrower, else the same ID number at the same institution, else None (new).
        False when the contract belongs to someone else (the row is then not checked further)."""
        v = row.values
        id_number = v["id_number"] if "id_number" not in row.bad else None
        borrower = None
        if stored is not None:
            borrower = stored.borrower
            if id_number and borrower.id_number != id_number:
                self.problem(row.number, "id_number", _("Contract %(no)s belongs to another borrower (%(name)s).",
                                                        no=stored.contract_no, name=borrower.name))
                return False
        elif branch is not None and id_number:
            borrower = self.borrowers.get((id_number, branch.id))
        if borrower is not None:
            if v["borrower_name"] and borrower.name != v["borrower_name"]:
                self.problem(row.number, "borrower_name",
                             _("The borrower with this ID number is recorded as %(name)s.", name=borrower.name))
            if kind and borrower.kind != kind:
                self.problem(row.number, "borrower_kind",
                             _("The borrower is recorded as %(kind)s.", kind=label(borrower.kind, "borrower_kind")))
        # Rows of one borrower must agree with each other.
        key: Any = borrower.id if borrower is not None else (
            (id_number, branch.id) if branch is not None and id_number else None)
        if key is not None:
            mine = {c.key: v[c.key] for c in BORROWER_COLUMNS if c.reimport != FINDS}
            first_row, first = self.seen_borrowers.setdefault(key, (row.number, mine))
            for column, value in mine.items():
                if first_row != row.number and given(value) and given(first[column]) and value != first[column]:
                    self.problem(row.number, column, _("Differs from row %(row)d for the same borrower.", row=first_row))
        return borrower

    def compare_terms(self, row: Row, stored: StoredLoan, branch: Institution | None) -> None:
        """A stored loan's terms must agree with the file; an empty one may be filled in."""
        if branch is not None and stored.branch_id != branch.id:
            self.problem(row.number, "branch_code", _("The stored loan is held by %(code)s.", code=stored.branch_code))
        for column in TERM_COLUMNS:
            value = row.values[column.key]
            person = column.kind == "user"
            value_stored = stored.people[column.key] if person else stored.values[column.attr]
            if not given(value) or value_stored in (None, "") or column.key in row.bad:
                continue
            if (value.lower() != value_stored.lower()) if person else (value != value_stored):
                self.problem(row.number, column.key, _("Differs from the stored loan (%(stored)s); an import does not "
                                                       "change a loan's terms.", stored=column.show(value_stored)))

    def check_transition(self, row: Row, stored: StoredLoan, status: str) -> None:
        if stored.is_closed and status not in (LoanStatus.SETTLED.value, LoanStatus.WRITTEN_OFF.value):
            self.problem(row.number, self.blame("status"),
                         _("The stored loan is %(status)s; an import cannot reopen it.",
                           status=label(stored.status, "loan_status")))
        elif stored.status == LoanStatus.SETTLED.value and status == LoanStatus.WRITTEN_OFF.value:
            self.problem(row.number, "status", _("A settled loan cannot be written off."))
