"""``flask backup create|verify|restore``: the commands only call ``services`` and report.

Exit status: 0 done; 1 refused or failed, with every reason printed (a restore that is refused
has written nothing).
"""
from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import AppGroup

from ..errors import XindangError
from .services import BackupError, create_backup, restore_backup, verify_backup

backup_cli = AppGroup("backup", help="Back up a deployment to a folder, check a backup, restore it.")


def _refused(exc: BackupError | XindangError) -> None:
    click.secho(exc.message, fg="red", err=True)
    for problem in getattr(exc, "problems", None) or getattr(exc, "details", None) or []:
        click.secho(f"  {problem}", fg="red", err=True)
    sys.exit(1)


@backup_cli.command("create")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="Only the summary and problems.")
def create_command(directory: Path, quiet: bool) -> None:
    """Write the database, every stored object and a manifest with checksums into DIRECTORY
    (a new or empty folder). The portal may keep running."""
    echo = (lambda line: None) if quiet else click.echo
    try:
        report = create_backup(directory, echo=echo)
    except (BackupError, XindangError) as exc:
        _refused(exc)
    rows = sum(report.tables.values())
    click.echo(f"Backup written to {directory}: {len(report.tables)} tables, {rows} rows, "
               f"{report.objects} objects ({report.bytes} bytes).")
    for line in report.skipped:
        click.secho(f"  skipped {line}", fg="yellow")
    if report.problems:
        for line in report.problems:
            click.secho(f"  {line}", fg="red")
        click.secho(f"{len(report.problems)} problem(s) found in the store; the backup holds the objects as found.",
                    fg="red", err=True)
        sys.exit(1)
    click.secho("Manifest written; `flask backup verify` checks the folder at any time.", fg="green")


@backup_cli.command("verify")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
def verify_command(directory: Path) -> None:
    """Check every file of the backup in DIRECTORY against its manifest."""
    try:
        manifest = verify_backup(directory)
    except BackupError as exc:
        _refused(exc)
    rows = sum(t["rows"] for t in manifest["tables"])
    click.echo(f"Backup of {manifest['created_at']} ({manifest['database']['dialect']}, schema "
               f"{manifest['database']['schema_revision'] or '—'}): {len(manifest['tables'])} tables, {rows} rows, "
               f"{manifest['store']['objects']} objects.")
    click.secho("Every file matches the manifest.", fg="green")


@backup_cli.command("restore")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="Only the summary and problems.")
def restore_command(directory: Path, quiet: bool) -> None:
    """Restore the backup in DIRECTORY into this deployment, which must be empty (a database
    after `flask db upgrade`, an empty store). The backup is checked first; a damaged or altered
    backup, another schema or a deployment with data is refused and nothing is written."""
    echo = (lambda line: None) if quiet else click.echo
    try:
        report = restore_backup(directory, echo=echo)
    except (BackupError, XindangError) as exc:
        _refused(exc)
    except Exception as exc:  # noqa: BLE001 - e.g. the database refused a row: already undone
        click.secho(f"The restore failed and was undone; the deployment is empty again. "
                    f"{exc.__class__.__name__}: {exc}", fg="red", err=True)
        sys.exit(1)
    click.echo(f"Restored {sum(report.tables.values())} rows in {len(report.tables)} tables and "
               f"{report.objects} objects ({report.bytes} bytes).")
    click.secho("Now run `flask audit verify-log` and `flask archive verify`; the search index rebuilds "
                "itself (or run `flask search reindex`).", fg="green")
