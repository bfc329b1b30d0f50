"""The union's rules page: which plugin is enabled, its settings, and what the rules answer."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ..accounts.models import Institution, Level
from ..accounts.scope import can, require, visible_institutions

from ..errors import InvalidInput, not_found
from ..extensions import db
from .manager import available_plugins
from .lookup import plugin_registry
from .services import set_union_plugin, update_union_settings

bp = Blueprint("rules", __name__, url_prefix="/rules")


def _union_or_404(code: str) -> Institution:
    for inst in visible_institutions(current_user, levels=(Level.PROVINCE.value,)):
        if inst.code == code:
            return inst
    # A user below the province still reads their own union's rules.
    own = current_user.institution.province()
    if own.code == code:
        return own
    raise not_found()


@bp.route("/")
@require("rules.view")
def overview():
    unions = visible_institutions(current_user, levels=(Level.PROVINCE.value,)) or [current_user.institution.province()]
    if len(unions) == 1:
        return redirect(url_for("rules.union", code=unions[0].code))
    return render_template("rules/overview.html", unions=unions)


@bp.route("/<code>", methods=["GET"])
@require("rules.view")
def union(code: str):
    province = _union_or_404(code)
    rules = plugin_registry().for_union(province)
    editable = can(current_user, "rules.manage") and province.path.startswith(current_user.institution.path) \
        or current_user.has_role("admin")
    return render_template("rules/union.html", province=province, rules=rules, specs=rules.specs,
                           plugins=sorted(available_plugins()), editable=editable,
                           implemented=plugin_registry().implemented_hooks(province.rules_plugin), errors={})


def _editable_union(code: str) -> Institution:
    province = _union_or_404(code)
    if not (current_user.has_role("admin") or province.path.startswith(current_user.institution.path)):
        raise not_found()
    return province


@bp.route("/<code>/plugin", methods=["POST"])
@require("rules.manage")
def enable_plugin(code: str):
    province = _editable_union(code)
    set_union_plugin(current_user, province, request.form.get("plugin") or None)
    db.session.commit()
    flash(_("Rules plugin updated."), "success")
    return redirect(url_for("rules.union", code=code))


@bp.route("/<code>/settings", methods=["POST"])
@require("rules.manage")
def save_settings(code: str):
    province = _editable_union(code)
    specs = plugin_registry().specs_for(province.rules_plugin)
    submitted = {name: request.form.get(name, "") for name in specs if name in request.form}
    # An unticked checkbox is absent from the form: it means false.
    for name, spec in specs.items():
        if spec.type == "bool" and name not in request.form:
            submitted[name] = "false"
    try:
        changes = update_union_settings(current_user, province, submitted)
    except InvalidInput as exc:
        db.session.rollback()
        rules = plugin_registry().for_union(province)
        flash(exc.message, "danger")
        return render_template("rules/union.html", province=province, rules=rules, specs=rules.specs,
                               plugins=sorted(available_plugins()), editable=True,
                               implemented=plugin_registry().implemented_hooks(province.rules_plugin),
                               errors={"details": exc.details}, submitted=submitted), 422
    db.session.commit()
    flash(_("%(n)d settings changed.", n=len(changes)) if changes else _("Nothing changed."), "success")
    return redirect(url_for("rules.union", code=code))
