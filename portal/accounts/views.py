"""Institution tree and user list (read), within the user's scope."""
from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db
from .models import User
from .scope import in_scope, require, visible_institutions

bp = Blueprint("accounts", __name__, url_prefix="/org")


@bp.route("/")
@require("org.view")
def institutions():
    return render_template("accounts/institutions.html", institutions=visible_institutions(current_user))


@bp.route("/users")
@require("users.manage")
def users():
    rows = db.session.execute(select(User).where(in_scope(User.institution_id, current_user))
                              .order_by(User.username)).scalars().all()
    return render_template("accounts/users.html", users=rows)
