"""``flask archive …``: ingest from scanning stations, verify the store, remind overdue lendings,
check the storage configuration. Commands call the same services as the pages and commit."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy import select

from ..accounts.models import Institution
from ..accounts.services import get_user
from ..accounts.scope import institution_visible
from ..clitools import fail
from ..errors import XindangError
from ..extensions import db
from ..loans.models import Loan
from . import lending as lending_svc
from .fixity import bytes_to_check, verify_archive
from .services import collect_document, doc_ref
from .storage import StoreUnavailable, current_store

archive_cli = AppGroup("archive", help="The credit archive: ingest, verify, reminders, storage.")


@archive_cli.command("ingest")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--loan", "contract_no", required=True, help="Contract number of the loan the files belong to.")
@click.option("--type", "doc_type", required=True, help="Document type code (see the Rules page).")
@click.option("--user", "username", required=True, help="The scanning operator; their role and institution apply.")
@click.option("--paper", is_flag=True, help="The paper originals are kept (they get shelf locations when archived).")
def ingest(files: tuple[Path, ...], contract_no: str, doc_type: str, username: str, paper: bool) -> None:
    """Store scanned FILES in the credit file of the loan's borrower. Exit 1 if any was refused."""
    user = get_user(username)
    if user is None or not user.is_active_flag:
        fail(f"No active user {username}.")
    loan = db.session.execute(select(Loan).where(Loan.contract_no == contract_no)).scalar_one_or_none()
    if loan is None or not institution_visible(user, loan.branch):
        fail(f"No loan {contract_no} within {username}'s institution.")
    refused = 0
    for path in files:
        try:
            with path.open("rb") as fh:
                collected = collect_document(user, borrower=loan.borrower, loan=loan, doc_type=doc_type,
                                             fileobj=fh, filename=path.name, paper_original=paper, source="ingest")
            db.session.commit()
        except XindangError as exc:
            db.session.rollback()
            refused += 1
            click.secho(f"REFUSED {path}: {exc.message}", fg="red", err=True)
            if isinstance(exc, StoreUnavailable):
                break
            continue
        doc = collected.document
        click.echo(f"stored {path} as document #{doc.id} ({doc.sha256[:12]}…, {doc.size_bytes} bytes)")
        for other in collected.duplicates_elsewhere:
            click.secho(f"  note: same content as document {doc_ref(other)} of another credit file", fg="yellow")
    if refused:
        sys.exit(1)


@archive_cli.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--institution", "institution_code", help="Only the files held within this institution "
              "(objects no row claims are looked for only without this option).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def verify(as_json: bool, institution_code: str | None, quiet: bool) -> None:
    """Re-hash every stored object; list mismatches, missing objects and orphans. Exit 0 only when clean."""
    institution = None
    if institution_code:
        institution = db.session.execute(select(Institution).where(Institution.code == institution_code)) \
            .scalar_one_or_none()
        if institution is None:
            fail(f"No institution {institution_code}.", 2)
    store = current_store()
    total = bytes_to_check(institution)
    try:
        if quiet:
            report = verify_archive(store, institution=institution)
        else:
            with click.progressbar(length=max(total, 1), label="Hashing", file=sys.stderr,
                                   show_pos=False, show_percent=True) as bar:
                report = verify_archive(store, institution=institution, progress=bar.update)
    except StoreUnavailable as exc:
        fail(f"The object store cannot be reached: {exc.message}", 2)
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(f"{report.objects_checked} objects, {report.bytes_checked} bytes re-hashed.")
        for p in report.problems:
            what = f"document #{p.document_id}" if p.document_id else (
                f"list file #{p.list_file_id}" if p.list_file_id else "no row")
            click.secho(f"  {p.kind.upper()}: {p.key} ({what}): {p.detail}", fg="red")
        if report.ok:
            click.secho("All objects match their checksums; no orphans." if report.orphans_checked
                        else "All objects match their checksums.", fg="green")
    if not report.ok:
        sys.exit(1)


@archive_cli.command("remind-overdue")
def remind_overdue() -> None:
    """Record a reminder (催还) on every overdue lending; run daily."""
    rows = db.session.execute(lending_svc.overdue_query(None)).scalars().all()
    for lending in rows:
        lending_svc.remind_lending(None, lending)
        click.echo(f"lending #{lending.id}: {lending.requester.username}, due {lending.due_on}, "
                   f"reminder {lending.reminders}")
    db.session.commit()
    click.echo(f"{len(rows)} overdue lending(s) reminded.")


@archive_cli.command("storage")
def storage_check() -> None:
    """Show the configured object store and check that it answers (creating the bucket)."""
    try:
        click.echo(current_store().check())
    except StoreUnavailable as exc:
        fail(exc.message, 2)
    click.secho("The object store answers.", fg="green")
