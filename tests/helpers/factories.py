"""Records the tests start from: a small known organisation with its users (``make_org``) and
loans (``make_loan``). Plain functions over the database session; call them inside an app
context.

Tests take ``make_org`` and ``make_loan`` as fixtures (tests/conftest.py); the modules that build
a larger world for a fixture import them from here.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from itertools import count

from portal.extensions import db

# Every user make_org creates signs in with this password.
PASSWORD = "correct-horse-42"


@dataclass
class Org:
    """A small, known tree, as codes and ids (no ORM objects: the test client must not share
    an app context with the test). Province P (plugin as asked), county C1 with branches B1
    and B2; a second province Q with county D1 and branch E1. Users by name, see ORG_USERS."""

    plugin: str | None
    user_ids: dict

    def inst(self, code: str):
        """The Institution with this code (call inside an app context)."""
        from portal.accounts.models import Institution
        return db.session.execute(db.select(Institution).filter_by(code=code)).scalar_one()

    def user(self, name: str):
        from portal.accounts.models import User
        return db.session.get(User, self.user_ids[name])


ORG_USERS = {
    "admin": ("P", ["admin"]),
    "union_admin": ("P", ["union_admin"]),
    "q_union_admin": ("Q", ["union_admin"]),
    "officer": ("B1", ["loan_officer"]),
    "post_loan": ("B1", ["post_loan_officer"]),
    "director": ("B1", ["branch_director"]),
    "archivist": ("B1", ["archivist"]),
    "auditor": ("B1", ["auditor"]),
    "county_auditor": ("C1", ["auditor"]),
    "county_director": ("C1", ["branch_director"]),
    "county_archivist": ("C1", ["archivist"]),
    "officer2": ("B2", ["loan_officer"]),
    "director2": ("B2", ["branch_director"]),
    "officer_q": ("E1", ["loan_officer"]),
}


def make_org(plugin: str | None = None, other_plugin: str | None = None) -> Org:
    """Create the tree and users in the current app context and commit."""
    from portal.accounts.services import create_institution, create_user
    from portal.rules.services import set_union_plugin

    def union(code: str, name: str, plugin_name: str | None) -> None:
        province = create_institution(None, code, name, "province")
        if plugin_name:
            set_union_plugin(None, province, plugin_name)

    union("P", "测试省农村信用社联合社", plugin)
    create_institution(None, "C1", "测试县联社", "county", "P")
    create_institution(None, "B1", "城关信用社", "branch", "C1")
    create_institution(None, "B2", "河西信用社", "branch", "C1")
    union("Q", "另一省联社", other_plugin)
    create_institution(None, "D1", "另一县联社", "county", "Q")
    create_institution(None, "E1", "另一信用社", "branch", "D1")
    ids = {name: create_user(None, name, PASSWORD, inst, roles, display_name=name).id
           for name, (inst, roles) in ORG_USERS.items()}
    db.session.commit()
    return Org(plugin, ids)


_counter = count(1)


def make_loan(branch, officer=None, **fields):
    """A loan with a new borrower; any field may be overridden."""
    from portal.loans.models import Borrower, Loan

    n = next(_counter)
    borrower = fields.pop("borrower", None) or Borrower(
        kind=fields.pop("borrower_kind", "individual"), name=fields.pop("borrower_name", f"借款人{n}"),
        id_number=fields.pop("id_number", f"43010119800101{n:04d}"), credit_rating=fields.pop("credit_rating", "A"),
        institution=branch)
    values = dict(contract_no=f"HT-{uuid.uuid4().hex[:10]}", product="farm_credit", guarantee_type="credit",
                  amount_fen=5_000_000, balance_fen=5_000_000, rate_percent="5.2500",
                  disbursed_on=date(2024, 3, 1), maturity_on=date(2025, 3, 1), payment_method="entrusted",
                  purpose="种植", status="active", days_past_due=0, interest_arrears_fen=0, risk_class="normal")
    values.update(fields)
    loan = Loan(borrower=borrower, branch=branch, officer=officer, **values)
    db.session.add(loan)
    db.session.flush()
    return loan
