"""Reaching the rules from inside the app: the registry and the rules of an institution's union."""
from __future__ import annotations

from flask import current_app

from .manager import RulesRegistry, UnionRules


def registry() -> RulesRegistry:
    return current_app.extensions["xindang_rules"]


def rules_for(institution) -> UnionRules:
    """The rules of the union this institution belongs to."""
    return registry().for_union(institution.province())
