"""``flask audit …``: the audit trail's check (``verify-log``) and the audit workspace on the
command line (``completeness``, ``fixity``, ``inspections``). They call the same functions as
the pages and commit once.

``flask audit completeness`` is also what keeps the completeness trend: each run writes the
day's snapshot of every branch it audited (run it daily from cron, without ``--institution`` for
every union, after ``flask postloan run-daily``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy import select

from ..accounts.models import Institution, Level
from ..archive.labels import doc_type_names
from ..archive.storage import StoreUnavailable
from ..clitools import fail
from ..audit_trail import verify_log
from ..extensions import db
from ..timeutil import local_today
from . import exports
from . import fixity as fixity_svc
from .completeness import audit_completeness, write_snapshots
from .dashboards import completeness_trend_chart
from .inspections import archive_inspection_schedule


audit_cli = AppGroup("audit", help="Audit trail and audits.")


def _institution(code: str) -> Institution:
    inst = db.session.execute(select(Institution).where(Institution.code == code)).scalar_one_or_none()
    if inst is None:
        fail(f"No institution {code}.", 2)
    return inst


def _rate(value) -> str:
    return "—" if value is None else f"{value}%"


@audit_cli.command("completeness")
@click.option("--institution", "institution_code", help="Code of the union, county or branch (default: every union).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (with every missing document).")
@click.option("--pdf", "pdf_path", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Also write the completeness report as PDF.")
@click.option("--xlsx", "xlsx_path", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Also write the completeness report as Excel.")
@click.option("--no-snapshot", is_flag=True, help="Do not keep today's snapshot of the branches audited.")
def completeness_command(institution_code: str | None, as_json: bool, pdf_path: Path | None, xlsx_path: Path | None,
                         no_snapshot: bool) -> None:
    """Audit the completeness of every loan's credit file; print the totals per institution."""
    if institution_code:
        roots = [_institution(institution_code)]
    else:
        roots = list(db.session.execute(select(Institution).where(Institution.level == Level.PROVINCE.value)
                                        .order_by(Institution.code)).scalars())
    if (pdf_path or xlsx_path) and len(roots) != 1:
        fail("--pdf and --xlsx need --institution.", 2)
    results = []
    for root in roots:
        audit = audit_completeness(root)
        names = doc_type_names(root, chinese=True)
        if not no_snapshot:
            write_snapshots(audit)
        if pdf_path:
            pdf_path.write_bytes(exports.completeness_pdf(audit, type_names=names,
                                                          trend_svg=completeness_trend_chart(root, audit.as_of)))
        if xlsx_path:
            xlsx_path.write_bytes(exports.completeness_xlsx(audit, type_names=names))
        results.append((audit, names))
    db.session.commit()
    if as_json:
        payload = [exports.completeness_json(audit, type_names=names) for audit, names in results]
        click.echo(json.dumps(payload[0] if institution_code else payload, ensure_ascii=False, indent=2))
        return
    for audit, _names in results:
        total = audit.total
        click.echo(f"{audit.root.code} {audit.root.name} on {audit.as_of}: {total.complete}/{total.files} files "
                   f"complete ({_rate(total.rate)}), {total.missing_documents} documents missing")
        for t in exports.completeness_rows(audit):
            if t.institution.id == audit.root.id:
                continue
            indent = "  " * (t.institution.depth - audit.root.depth)
            click.echo(f"{indent}{t.institution.code} {t.institution.name}: {t.complete}/{t.files} "
                       f"({_rate(t.rate)}), {t.missing_documents} missing")
    for path in (pdf_path, xlsx_path):
        if path:
            click.echo(f"written {path}")


@audit_cli.command("fixity")
@click.option("--institution", "institution_code", required=True, help="Code of the institution whose files to look at.")
@click.option("--verify", is_flag=True, help="Re-hash the institution's files first (flask archive verify --institution).")
@click.option("--json", "as_json", is_flag=True)
def fixity_command(institution_code: str, verify: bool, as_json: bool) -> None:
    """The auditor's fixity view: objects whose last check failed, and how long ago the others
    were verified. Exit 1 when an object is failing."""
    inst = _institution(institution_code)
    if verify:
        try:
            run, report = fixity_svc.verify_institution(None, inst, in_request=False)
        except StoreUnavailable as exc:
            fail(f"The object store cannot be reached: {exc.message}", 2)
        db.session.commit()
        if not as_json:
            click.echo(f"run #{run.id}: {report.objects_checked} objects, {report.bytes_checked} bytes re-hashed")
    overview = fixity_svc.fixity_overview(inst, with_unclaimed=True)
    failures = [{"kind": p.kind, "key": p.key, "detail": p.detail, "run": p.run.id,
                 "document_id": p.document.id if p.document else None,
                 "archive_number": p.document.archive_number if p.document else None,
                 "list_file_id": p.list_file.id if p.list_file else None} for p in overview.failures]
    if as_json:
        click.echo(json.dumps({
            "institution": inst.code, "live_documents": overview.live_documents,
            "never_verified": overview.never_verified,
            "verified_within_days": {str(k): v for k, v in overview.verified_within.items()},
            "oldest_verified_at": overview.oldest_verified_at.isoformat() if overview.oldest_verified_at else None,
            "last_covering_run": overview.last_covering.id if overview.last_covering else None,
            "unclaimed_objects": overview.unattributed_orphans, "failures": failures}, ensure_ascii=False, indent=2))
    else:
        click.echo(f"{inst.code} {inst.name}: {overview.live_documents} live documents, "
                   f"{overview.never_verified} never verified, oldest verification {overview.oldest_verified_at or '—'}")
        for f in failures:
            what = f"document #{f['document_id']}" if f["document_id"] else f"list file #{f['list_file_id']}"
            click.secho(f"  {f['kind'].upper()}: {what} ({f['key']}), run #{f['run']}: {f['detail']}", fg="red")
        if not failures:
            click.secho("No object is failing its last check.", fg="green")
    if failures:
        sys.exit(1)


@audit_cli.command("inspections")
@click.option("--institution", "institution_code", required=True)
@click.option("--overdue", is_flag=True, help="Only the overdue ones; exit 1 if there are any.")
@click.option("--json", "as_json", is_flag=True)
def inspections_command(institution_code: str, overdue: bool, as_json: bool) -> None:
    """The archive inspections the union's rules require of the institution's branches."""
    inst = _institution(institution_code)
    today = local_today()
    schedule = archive_inspection_schedule(inst, today)
    rows = schedule.overdue if overdue else schedule.rows
    data = [{"branch": r.target.code, "inspector": r.inspector.code, "level": r.level, "cycle_months": r.cycle_months,
             "last_completed": r.last_completed.inspected_on.isoformat() if r.last_completed else None,
             "due_on": r.due_on.isoformat(), "overdue": r.overdue(today),
             "draft": r.draft.id if r.draft else None} for r in rows]
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        for row in data:
            flag = "OVERDUE " if row["overdue"] else ""
            click.echo(f"{flag}{row['branch']} by {row['inspector']} (every {row['cycle_months']} months): "
                       f"due {row['due_on']}, last {row['last_completed'] or 'never'}")
        click.echo(f"{len(schedule.rows)} required, {len(schedule.overdue)} overdue.")
    if overdue and schedule.overdue:
        sys.exit(1)


@audit_cli.command("verify-log")
@click.option("--json", "as_json", is_flag=True)
def verify_log_command(as_json: bool) -> None:
    """Recompute the audit trail's hash chain; exit 1 on any break."""
    count, problems = verify_log()
    if as_json:
        click.echo(json.dumps({"events": count, "ok": not problems,
                               "problems": [p.as_dict() for p in problems]}, ensure_ascii=False, indent=2))
    else:
        click.echo(f"{count} events checked.")
        for p in problems:
            click.secho(f"  seq {p.seq} (event {p.event_id}): {p.problem}", fg="red")
        if not problems:
            click.secho("Audit log intact.", fg="green")
    if problems:
        sys.exit(1)
