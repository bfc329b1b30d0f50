"""Changing a union's rules: the plugin it enables and the settings it saves. Each takes the
acting user, validates, changes the province, writes one audit event and flushes."""
from __future__ import annotations

from typing import Any

from flask_babel import gettext as _

from ..accounts.models import Institution, Level, User
from ..audit_trail import record_event
from ..errors import InvalidInput
from ..extensions import db
from .lookup import plugin_registry
from .manager import available_plugins, parse_setting


def set_union_plugin(actor: User, province: Institution, plugin: str | None) -> None:
    if province.level != Level.PROVINCE.value:
        raise InvalidInput(_("Only a provincial union enables a rules plugin."))
    if plugin and plugin not in available_plugins():
        raise InvalidInput(_("Unknown rules plugin %(name)s.", name=plugin))
    before = province.rules_plugin
    new_specs = plugin_registry().specs_for(plugin or None)
    # Keep only saved values the new plugin still knows.
    province.rules_settings = {k: v for k, v in (province.rules_settings or {}).items() if k in new_specs}
    province.rules_plugin = plugin or None
    db.session.flush()
    record_event(actor, "rules.enable_plugin", "institution", province.code,
                 {"before": before, "after": plugin or None}, institution_id=province.id)


def update_union_settings(actor: User, province: Institution, submitted: dict[str, Any]) -> dict[str, Any]:
    """Validate every submitted value against the plugin's setting specs; all or nothing."""
    specs = plugin_registry().specs_for(province.rules_plugin)
    unknown = sorted(set(submitted) - set(specs))
    if unknown:
        raise InvalidInput(_("Unknown setting: %(names)s", names=", ".join(unknown)))
    errors, parsed = [], {}
    for name, raw in submitted.items():
        try:
            parsed[name] = parse_setting(specs[name], raw)
        except InvalidInput as exc:
            errors.append(exc.message)
    if errors:
        raise InvalidInput(errors[0], details=errors)
    saved = dict(province.rules_settings or {})
    changes = {}
    for name, value in parsed.items():
        if value == specs[name].default:
            if name in saved:
                changes[name] = [saved.pop(name), None]
        elif saved.get(name) != value:
            changes[name] = [saved.get(name), value]
            saved[name] = value
    # Only JSON-safe values are stored; decimals as text.
    province.rules_settings = {k: (str(v) if not isinstance(v, (int, str, bool, list)) else v) for k, v in saved.items()}
    db.session.flush()
    if changes:
        record_event(actor, "rules.update_settings", "institution", province.code, changes, institution_id=province.id)
    return changes
