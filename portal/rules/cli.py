"""``flask rules …``: the unions, their plugins and settings."""
from __future__ import annotations

import json

import click
from flask.cli import AppGroup
from sqlalchemy import select

from ..accounts.models import Institution, Level
from ..extensions import db
from .lookup import plugin_registry, rules_for

rules_cli = AppGroup("rules", help="Provincial rules plugins.")


@rules_cli.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_rules(as_json: bool) -> None:
    """Unions, their plugin, and the hooks each plugin implements."""
    reg = plugin_registry()
    unions = db.session.execute(select(Institution).where(Institution.level == Level.PROVINCE.value)
                                .order_by(Institution.code)).scalars().all()
    result = []
    for union in unions:
        rules = rules_for(union)
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
