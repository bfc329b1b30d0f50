"""``flask seed-demo``: plan and write the whole demo, then print the logins."""
from __future__ import annotations

import sys
import unicodedata
from typing import Callable

import click
from flask.cli import with_appcontext
from flask_babel import gettext as _
from sqlalchemy import func, select

from ..accounts.models import Institution
from ..errors import XindangError
from ..extensions import db
from ..labels import label
from ..timeutil import local_today
from . import places as data
from .documents import seed_demo_documents
from .history import seed_history
from .loans import (DEMO_PASSWORD, DemoUser, SeedResult, ensure_institutions, ensure_users, write_branch_loans,
                    plan_province, plan_staff)


def seed_demo(progress: Callable[[str], None] = lambda _message: None) -> SeedResult:
    """Plan and write the demo data; the caller commits."""
    result = SeedResult()
    anchor = local_today()
    for spec in data.PROVINCES:
        progress(_("%(union)s (rules plugin %(plugin)s): institutions, staff and loans …",
                   union=spec.name, plugin=spec.plugin))
        ensure_institutions(spec, result)
        users = ensure_users(plan_staff(spec), result)
        plans = plan_province(spec)
        for county in spec.counties:
            for branch in county.branches:
                write_branch_loans(county, branch, plans[branch.code], users, anchor, result)
    if not result.new_loans:
        return result
    progress(_("Credit files: the documents of each loan, with the gaps a county has …"))
    result.documents = seed_demo_documents(anchor, {loan.id for loan in result.new_loans})
    progress(_("Post-loan work so far: inspections, warnings, classification, snapshots and lendings …"))
    history = seed_history(result.new_loans, anchor)
    result.inspections, result.lendings = history.inspections, history.lendings
    return result


def _pad(text: str, width: int) -> str:
    """Left-justify by display width: a Chinese character takes two columns in a terminal."""
    shown = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(1, width - shown)


def _print_logins(logins: list[DemoUser]) -> None:
    codes = {u.institution_code for u in logins}
    names = dict(db.session.execute(select(Institution.code, Institution.name)
                                    .where(Institution.code.in_(codes))).all())
    click.echo()
    click.secho(_("Demo logins (password for all: %(password)s)", password=DEMO_PASSWORD), bold=True)
    click.echo(_pad(_("User name"), 18) + _pad(_("Role"), 20) + _pad(_("Name"), 10) + _("Institution"))
    for u in logins:
        click.echo(_pad(u.username, 18) + _pad(label(u.role, "role"), 20) + _pad(u.display_name, 10)
                   + f"{u.institution_code} {names.get(u.institution_code, '')} · {u.department}")


@click.command("seed-demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already has institutions.")
@with_appcontext
def seed_demo_command(if_empty: bool) -> None:
    """Load demo data: three unions, their branches, staff logins and 330 loans with their credit
    files and post-loan history (inspections, warnings, reviews, snapshots, lendings).

    Safe to run again: what exists already is left as it is.
    """
    if if_empty and db.session.execute(select(func.count()).select_from(Institution)).scalar_one():
        click.echo(_("The database already has data; no demo data loaded."))
        return
    try:
        result = seed_demo(progress=click.echo)
        db.session.commit()
    except XindangError as exc:
        db.session.rollback()
        click.secho(exc.message, fg="red", err=True)
        sys.exit(1)
    click.echo(_("Demo data: %(i)d institutions, %(u)d users, %(b)d borrowers, %(l)d loans, %(d)d documents, "
                 "%(n)d inspections and %(k)d lendings added; %(s)d loans were there already.",
                 i=result.institutions, u=result.users, b=result.borrowers, l=result.loans, d=result.documents,
                 n=result.inspections, k=result.lendings, s=result.skipped_loans))
    _print_logins(result.logins)
