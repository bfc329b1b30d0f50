"""``flask postloan …``: the daily run and what a user has due."""
from __future__ import annotations

import json
import sys
from datetime import date

import click
from flask.cli import AppGroup

from ..accounts.services import get_user
from ..extensions import db
from ..labels import label
from ..timeutil import local_today
from .daily import due_as_dict, due_for_user, run_daily

postloan_cli = AppGroup("postloan", help="Post-loan work: the daily run and due lists.")


def _as_of(value: str | None) -> date:
    if not value:
        return local_today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint="--as-of") from None


@postloan_cli.command("run-daily")
@click.option("--as-of", "as_of", help="The date to run for (YYYY-MM-DD); default: today in China.")
@click.option("--json", "as_json", is_flag=True)
def run_daily_command(as_of: str | None, as_json: bool) -> None:
    """Recompute due inspections, warnings, classification suggestions, collection lists, notices
    and the day's bucket snapshot. Running it again for the same date changes nothing."""
    day = _as_of(as_of)
    changes = run_daily(day)
    db.session.commit()
    if as_json:
        click.echo(json.dumps({"as_of": day.isoformat(), "changes": dict(sorted(changes.items()))}, indent=2))
        return
    if not changes:
        click.echo(f"{day}: nothing to change.")
        return
    click.echo(f"{day}:")
    for key, value in sorted(changes.items()):
        click.echo(f"  {key}: {value}")


@postloan_cli.command("due")
@click.option("--user", "username", required=True, help="Whose list to print.")
@click.option("--as-of", "as_of", help="The date (YYYY-MM-DD); default: today in China.")
@click.option("--json", "as_json", is_flag=True)
def due_command(username: str, as_of: str | None, as_json: bool) -> None:
    """Print what the user has overdue and due: inspections, sign-offs, escalated reports,
    collection, notices, classification reviews and handovers to confirm."""
    user = get_user(username)
    if user is None:
        click.secho(f"No user {username!r}.", fg="red", err=True)
        sys.exit(1)
    summary = due_for_user(user, _as_of(as_of))
    if as_json:
        click.echo(json.dumps(due_as_dict(summary), ensure_ascii=False, indent=2))
        return
    click.echo(f"{user.username} ({user.institution.name}) as of {summary.as_of}, week ends {summary.week_end}")

    def section(title: str, rows: list, line) -> None:
        click.echo(f"{title}: {len(rows)}")
        for row in rows:
            click.echo(f"  {line(row)}")

    def insp(i) -> str:
        reasons = f" [{', '.join(label(r, 'warning_signal') for r in i.reasons)}]" if i.reasons else ""
        return f"{i.due_on}  {label(i.kind, 'inspection_kind')}  {i.loan.contract_no}  {i.loan.borrower.name}{reasons}"

    section("Inspections overdue", summary.overdue, insp)
    section("Inspections due this week", summary.due_this_week, insp)
    section("Reports to sign off", summary.sign_off, insp)
    section("Escalated reports to review", summary.escalations, insp)
    section("Collection today", summary.collection,
            lambda r: f"{r.bucket}  {r.loan.days_past_due}d  {r.loan.contract_no}  {r.loan.borrower.name}")
    section("Notices to issue", summary.notices,
            lambda n: f"{n.due_on}  {label(n.kind, 'notice_kind')}  {n.loan.contract_no}")
    section("Classifications to confirm", summary.reviews,
            lambda r: f"{r.loan.contract_no}  {r.loan.risk_class} → {r.suggested} (floor {r.floor})")
    section("Handovers to confirm", summary.handovers,
            lambda h: f"#{h.id}  {h.from_officer.username} → {h.to_officer.username}")
