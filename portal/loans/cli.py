"""``flask loans …`` commands."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask.cli import AppGroup
from flask_babel import gettext as _

from ..accounts.services import get_user
from ..errors import XindangError
from ..extensions import db
from .importing import import_loans
from .importing.report import ImportReport

loans_cli = AppGroup("loans", help="Borrowers and loans.")

SHOWN_CHANGES = 50  # changed loans listed in the text report; --json lists every one


@loans_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--user", "username", help="Import as this user, within their institution (default: the "
                                          "system, every institution).")
@click.option("--dry-run", is_flag=True, help="Check the file and print the report; save nothing.")
def import_command(file: Path, as_json: bool, username: str | None, dry_run: bool) -> None:
    """Import loans from a CSV or XLSX file (format: docs/import-format.md).

    Nothing is written unless every row is valid. Exit status: 0 imported (or, with --dry-run,
    valid), 1 the file has problems and nothing was written, 2 the command itself was wrong.
    """
    actor = None
    if username:
        actor = get_user(username)
        if actor is None or not actor.is_active_flag:
            click.secho(_("There is no active user %(name)s.", name=username), fg="red", err=True)
            sys.exit(2)
    try:
        report = import_loans(actor, file.read_bytes(), file.name, dry_run=dry_run)
    except XindangError as exc:
        db.session.rollback()
        click.secho(exc.message, fg="red", err=True)
        sys.exit(2)
    if report.written:
        db.session.commit()
    else:
        db.session.rollback()
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        _print_report(report)
    sys.exit(0 if report.ok else 1)


def _print_report(report: ImportReport) -> None:
    click.echo(_("File %(name)s (SHA-256 %(sum)s), %(n)d rows.", name=report.filename, sum=report.checksum,
                 n=report.rows))
    if report.ignored_columns:
        click.echo(_("Ignored columns: %(names)s", names=", ".join(report.ignored_columns)))
    if not report.ok:
        click.secho(_("Nothing was imported: %(n)d problems.", n=len(report.problems)), fg="red")
        for p in report.problems:
            where = _("row %(row)d", row=p.row) if p.row else _("file")
            click.echo(f"  {where}" + (f", {p.column}" if p.column else "") + f": {p.reason}")
        return
    counts = _("%(created)d created, %(updated)d updated, %(unchanged)d unchanged; %(borrowers)d new borrowers.",
               created=report.created, updated=report.updated, unchanged=report.unchanged,
               borrowers=report.borrowers_created)
    if report.dry_run:
        click.secho(_("The file is valid; nothing was saved (dry run): %(counts)s", counts=counts), fg="green")
    else:
        click.secho(_("Imported: %(counts)s", counts=counts), fg="green")
    for row, contract, name, old, new in report.change_lines(SHOWN_CHANGES):
        click.echo(f"  {_('row %(row)d', row=row)} {contract}: {name} {old} → {new}")
    if len(report.changes) > SHOWN_CHANGES:
        click.echo(_("  … and %(n)d more changed loans (--json lists them all).",
                     n=len(report.changes) - SHOWN_CHANGES))
