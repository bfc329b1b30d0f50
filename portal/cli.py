"""Command line: ``flask org`` and ``flask users`` here, and every package's command group
(``flask rules``, ``loans``, ``archive``, ``postloan``, ``search``, ``audit``, ``backup``,
``seed-demo``). Each command calls the same services as the pages and commits once."""
from __future__ import annotations

import json
import sys

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from .accounts.models import Institution, Level, Role
from .accounts.services import create_institution, create_user
from .archive.cli import archive_cli
from .auditing.cli import audit_cli
from .backup.cli import backup_cli
from .clitools import fail
from .demo.seed import seed_demo_command
from .errors import XindangError
from .extensions import db
from .loans.cli import loans_cli
from .postloan.cli import postloan_cli
from .rules.cli import rules_cli
from .rules.services import set_union_plugin
from .search.cli import search_cli

org_cli = AppGroup("org", help="Institutions (province → city → county → branch).")
users_cli = AppGroup("users", help="Portal users and their roles.")


@org_cli.command("add-institution")
@click.argument("code")
@click.argument("name")
@click.option("--level", required=True, type=click.Choice([lv.value for lv in Level]))
@click.option("--parent", "parent_code", help="Code of the parent institution.")
@click.option("--plugin", help="Rules plugin of a provincial union.")
def add_institution(code: str, name: str, level: str, parent_code: str | None, plugin: str | None) -> None:
    """Add an institution."""
    try:
        inst = create_institution(None, code, name, level, parent_code)
        if plugin:
            set_union_plugin(None, inst, plugin)
        db.session.commit()
    except XindangError as exc:
        db.session.rollback()
        fail(exc.message)
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


def register_cli(app: Flask) -> None:
    """Every command group: ``org`` and ``users`` (here), and each package's own."""
    for group in (org_cli, users_cli, rules_cli, loans_cli, archive_cli, postloan_cli, search_cli, audit_cli,
                  backup_cli, seed_demo_command):
        app.cli.add_command(group)
