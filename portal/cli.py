"""Command line: ``flask org``, ``flask users``, ``flask rules``, ``flask audit``, ``flask loans``,
``flask seed-demo``. Each command calls the same services as the pages and commits once."""
from __future__ import annotations

import json
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from .accounts.models import Institution, Level, Role
from .accounts.services import create_institution, create_user
from .audit.trail import verify_log
from .errors import InvalidInput, XindangError
from .extensions import db

org_cli = AppGroup("org", help="Institutions (province → city → county → branch).")
users_cli = AppGroup("users", help="Portal users and their roles.")
rules_cli = AppGroup("rules", help="Provincial rules plugins.")
audit_cli = AppGroup("audit", help="Audit trail and audits.")


def fail(message: str, code: int = 1) -> None:
    click.secho(message, fg="red", err=True)
    sys.exit(code)


@org_cli.command("add-institution")
@click.argument("code")
@click.argument("name")
@click.option("--level", required=True, type=click.Choice([lv.value for lv in Level]))
@click.option("--parent", "parent_code", help="Code of the parent institution.")
@click.option("--plugin", help="Rules plugin of a provincial union.")
def add_institution(code: str, name: str, level: str, parent_code: str | None, plugin: str | None) -> None:
    """Add an institution."""
    try:
        inst = create_institution(None, code, name, level, parent_code, plugin)
        db.session.commit()
    except XindangError as exc:
        db.session.rollback()
        fail(exc.message)
    if inst.level == Level.PROVINCE.value:
        current_app.extensions["xindang_rules"].for_union(inst)
    click.echo(f"{inst.code} {inst.name} ({inst.level}) {inst.path}")


@org_cli.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_institutions(as_json: bool) -> None:
    """List every institution as a tree."""
    rows = db.session.execute(select(Institution).order_by(Institution.path)).scalars().all()
    if as_json:
        click.echo(json.dumps([{"code": i.code, "name": i.name, "level": i.level, "path": i.path,
                                "plugin": i.rules_plugin} for i in rows], ensure_ascii=False, indent=2))
        return
    for inst in rows:
        click.echo(f"{'  ' * inst.depth}{inst.code} {inst.name} [{inst.level}]" +
                   (f" plugin={inst.rules_plugin}" if inst.rules_plugin else ""))


@users_cli.command("add")
@click.argument("username")
@click.option("--role", "roles", required=True, multiple=True, type=click.Choice([r.value for r in Role]),
              help="Repeat for several roles.")
@click.option("--institution", "institution_code", required=True)
@click.option("--name", "display_name", help="Display name (default: the user name).")
@click.option("--department", help="Department, e.g. 信贷科 or 稽核部.")
def add_user(username: str, roles: tuple[str, ...], institution_code: str, display_name: str | None,
             department: str | None) -> None:
    """Add a user. The password is asked for twice at a terminal, or read as one line from stdin."""
    password = _read_password()
    try:
        user = create_user(None, username, password, institution_code, roles, display_name, department)
        db.session.commit()
    except XindangError as exc:
        db.session.rollback()
        fail(exc.message)
    click.echo(f"{user.username} @ {institution_code}: {', '.join(sorted(user.roles))}")


def _read_password() -> str:
    stdin = sys.stdin
    if stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    line = stdin.readline().rstrip("\r\n")
    if not line:
        fail("No password on stdin.")
    return line


@rules_cli.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_rules(as_json: bool) -> None:
    """Unions, their plugin, and the hooks each plugin implements."""
    reg = current_app.extensions["xindang_rules"]
    unions = db.session.execute(select(Institution).where(Institution.level == Level.PROVINCE.value)
                                .order_by(Institution.code)).scalars().all()
    result = []
    for union in unions:
        rules = reg.for_union(union)
        result.append({
            "union": union.code, "name": union.name, "plugin": union.rules_plugin,
            "hooks": reg.implemented_hooks(union.rules_plugin),
            "settings_changed": sorted((union.rules_settings or {}).keys()),
            "settings": {k: (v if isinstance(v, (int, str, bool, list)) else str(v))
                         for k, v in rules.settings.items()},
        })
    if as_json:
        click.echo(json.dumps({"unions": result}, ensure_ascii=False, indent=2))
        return
    for row in result:
        click.echo(f"{row['union']} {row['name']}: plugin={row['plugin'] or '(baseline only)'}")
        for hook in row["hooks"]:
            click.echo(f"    {hook}")


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


def register_cli(app: Flask) -> None:
    from .demo import seed_demo_command
    from .loans.cli import loans_cli

    for group in (org_cli, users_cli, rules_cli, audit_cli, loans_cli):
        app.cli.add_command(group)
    from .postloan.cli import postloan_cli
    app.cli.add_command(postloan_cli)
    app.cli.add_command(seed_demo_command)
    from .archive.cli import archive_cli
    app.cli.add_command(archive_cli)
    from .search.cli import search_cli
    app.cli.add_command(search_cli)
    from .backup.cli import backup_cli
    app.cli.add_command(backup_cli)
    from .auditing.cli import attach as attach_audit_commands
    attach_audit_commands(audit_cli)  # flask audit completeness | fixity | inspections
