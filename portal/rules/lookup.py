"""The one way from the portal to the rules: ``rules_for(owner)``.

``owner`` is an institution, or a loan (whose rules are its branch's union's). The answer is the
union's ``UnionRules`` (portal/rules/manager.py): its plugin manager and effective settings.
It is looked up once a session for each union and looked up again when the union's plugin or
saved settings differ from those it was built from, so a long job (the daily run over every
loan) asks the registry once per union, and a change of settings is seen at once.
"""
from __future__ import annotations

from typing import Any

from flask import current_app

from ..accounts.models import Institution
from ..extensions import db
from .manager import RulesRegistry, UnionRules

_KNOWN = "xindang_rules_by_union"   # in the session's info: union code → (plugin, settings, rules)


def plugin_registry() -> RulesRegistry:
    """The app's registry of plugins and union managers (for the rules pages and commands)."""
    return current_app.extensions["xindang_rules"]


def rules_for(owner: Institution | Any) -> UnionRules:
    """The rules of the union that ``owner`` belongs to: an Institution, or a loan (its branch's)."""
    institution = owner if isinstance(owner, Institution) else owner.branch
    province = institution.province()
    known = db.session.info.setdefault(_KNOWN, {})
    found = known.get(province.code)
    saved = province.rules_settings or {}
    if found is None or found[0] != province.rules_plugin or found[1] != saved:
        found = known[province.code] = (province.rules_plugin, dict(saved),
                                         plugin_registry().for_union(province))
    return found[2]
