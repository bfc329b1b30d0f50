"""Xindang (信档): the Flask application factory.

``create_app`` goes through named steps: configuration, extensions, the rules registry
(every plugin loaded and checked; a broken one stops start-up), login, language, blueprints,
error handlers, security headers and the command line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, has_request_context, request, session
from flask_login import current_user
from sqlalchemy import inspect, select
from sqlalchemy.orm import joinedload
from werkzeug.routing import IntegerConverter

from config import CONFIGS, Config

from .extensions import babel, bootstrap, csrf, db, limiter, login_manager, migrate
from .readonly import keep_prepared_statements

PUBLIC_ENDPOINTS = {"auth.login", "auth.set_language", "static", "bootstrap.static", "main.health"}


# The largest id a record can have: primary keys are INTEGER columns, 32-bit on PostgreSQL.
MAX_ID = 2**31 - 1


def _digits_at_most(limit: int) -> str:
    """A regular expression matching the decimal numbers from 0 to ``limit`` in ASCII digits
    (``\\d`` would take other scripts' digits too; leading zeros within ``limit``'s length
    allowed): shorter numbers, then each digit of ``limit`` lowered once with any digits after
    it, then ``limit`` itself."""
    top = str(limit)
    choices = [f"[0-9]{{1,{len(top) - 1}}}"] if len(top) > 1 else []
    for i, digit in enumerate(top):
        if digit != "0":
            rest = len(top) - i - 1
            choices.append(f"{top[:i]}[0-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    choices.append(top)
    return "(?:" + "|".join(choices) + ")"


class BoundedIntConverter(IntegerConverter):
    """``<int:…>`` that matches only ids a primary key column can hold (up to ``MAX_ID``): any
    other number names no record (404), instead of reaching the database, which refuses it
    ("integer out of range", a 500 on PostgreSQL). The bound is in the pattern, not only in
    ``max``: werkzeug checks ``max`` after the method, so a POST to ``/x/<huge>`` where the
    same path also has a GET rule would be answered 405 instead of 404."""

    def __init__(self, map, *args: Any, **kwargs: Any) -> None:  # noqa: A002 - werkzeug's name
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)
        if not self.signed and self.max == MAX_ID:
            self.regex = _digits_at_most(MAX_ID)


def create_app(config: str | Config | None = None, **overrides: Any) -> Flask:
    app = Flask(__name__, instance_relative_config=False)
    _configure(app, config, overrides)
    _init_extensions(app)
    _init_rules(app)
    _init_login(app)
    _init_babel(app)
    _register_blueprints(app)
    _register_errors_and_headers(app)
    _register_template_helpers(app)
    _register_cli(app)
    return app


def _configure(app: Flask, config: str | Config | None, overrides: dict[str, Any]) -> None:
    if config is None or isinstance(config, str):
        config = CONFIGS[config or "development"](**overrides)
    app.config.from_mapping(config.as_dict())
    app.instance_path = app.config["XINDANG_INSTANCE_DIR"]


def _init_extensions(app: Flask) -> None:
    db.init_app(app)
    keep_prepared_statements(app)   # PostgreSQL: read-only requests commit (portal/readonly.py)
    migrate.init_app(app, db, directory=str(Path(app.root_path).parent / "migrations"))
    csrf.init_app(app)
    bootstrap.init_app(app)
    limiter.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        from sqlalchemy import event
        with app.app_context():
            @event.listens_for(db.engine, "connect")
            def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=15000")
                # Scopes are path prefixes matched with LIKE, which SQLite otherwise compares
                # without case: "/P/C1/%" matched county "c1" too. PostgreSQL's LIKE has case.
                cur.execute("PRAGMA case_sensitive_like=ON")
                cur.close()


def _init_rules(app: Flask) -> None:
    """Load every available plugin and each union's manager; errors stop start-up."""
    from .accounts.models import Institution, Level
    from .rules.manager import RulesRegistry

    reg = RulesRegistry()
    reg.check_all_plugins()
    app.extensions["xindang_rules"] = reg
    with app.app_context():
        try:
            has_tables = inspect(db.engine).has_table("institution")
        except Exception:  # database not reachable yet (e.g. `flask db upgrade` on a new server)
            has_tables = False
        if has_tables:
            provinces = db.session.execute(
                select(Institution).where(Institution.level == Level.PROVINCE.value)).scalars().all()
            reg.load_unions(provinces)
            db.session.remove()


def _init_login(app: Flask) -> None:
    from flask_babel import lazy_gettext

    from .accounts.models import User

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = lazy_gettext("Please sign in to continue.")
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def load_user(ident: str):
        user_id, _, token = ident.partition(":")
        if not user_id.isdigit():
            return None
        # The user with their institution and roles in one statement: every page asks for both
        # (scope, menus), and on PostgreSQL each statement is a round trip.
        user = db.session.get(User, int(user_id), options=[joinedload(User.institution),
                                                             joinedload(User.role_rows)])
        if user is None or user.session_token != token or not user.is_active_flag:
            return None
        return user

    @app.before_request
    def require_login():
        if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
            return None
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        return None


def _init_babel(app: Flask) -> None:
    def select_locale() -> str:
        if not has_request_context():  # commands: the configured language
            return app.config["BABEL_DEFAULT_LOCALE"]
        lang = session.get("lang")
        if lang in ("zh", "en"):
            return lang
        if current_user and getattr(current_user, "is_authenticated", False) and current_user.locale:
            return current_user.locale
        return app.config["BABEL_DEFAULT_LOCALE"]

    babel.init_app(app, locale_selector=select_locale)


def _register_blueprints(app: Flask) -> None:
    # Before any rule is added: an id in a URL beyond what a primary key holds names no record
    # (404), instead of reaching the database, which refuses it (a 500).
    app.url_map.converters["int"] = BoundedIntConverter

    from .accounts.views import bp as accounts_bp
    from .auth import bp as auth_bp
    from .loans.views import bp as loans_bp
    from .main import bp as main_bp
    from .rules.views import bp as rules_bp

    for bp in (auth_bp, main_bp, accounts_bp, loans_bp, rules_bp):
        app.register_blueprint(bp)

    from .archive import init_app as init_archive
    from .archive.views import bp as archive_bp
    init_archive(app)  # the object store, in app.extensions["xindang_storage"]
    app.register_blueprint(archive_bp)

    from .postloan.views import bp as postloan_bp
    app.register_blueprint(postloan_bp)

    from .search.views import bp as search_bp
    app.register_blueprint(search_bp)  # its first request starts the index queue drainer

    from .auditing.views import bp as auditing_bp
    app.register_blueprint(auditing_bp)


def _register_errors_and_headers(app: Flask) -> None:
    from .errors import register_error_handlers

    register_error_handlers(app)

    @app.before_request
    def refuse_nul_characters():
        """PostgreSQL cannot store or compare U+0000 in text. In a query string (filters, a
        search) it is dropped, as any other nonsense in a filter is ignored; in a form field or
        the path it is refused with a message, instead of failing in the database. (Names of
        uploaded files are not fields: the services clean those.)"""
        from flask_babel import gettext as _
        from werkzeug.datastructures import ImmutableMultiDict

        from .errors import InvalidInput

        if any("\x00" in v for _k, values in request.args.lists() for v in values):
            request.args = ImmutableMultiDict([(k, v.replace("\x00", "")) for k, values in request.args.lists()
                                               for v in values])
        path_values = [v for v in (request.view_args or {}).values() if isinstance(v, str)]
        fields = [v for _k, values in request.form.lists() for v in values]
        if any("\x00" in value for value in path_values + fields):
            raise InvalidInput(_("The request contains a NUL character (U+0000), which no field accepts. "
                                 "Remove it and try again."))

    @app.after_request
    def security_headers(response):
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; object-src 'none'; frame-ancestors 'none'; "
            "base-uri 'self'; form-action 'self'")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.endpoint not in ("static", "bootstrap.static"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def _register_template_helpers(app: Flask) -> None:
    from . import labels
    from .accounts.scope import can

    app.jinja_env.filters["yuan"] = labels.yuan
    app.jinja_env.filters["label"] = labels.label
    app.jinja_env.filters["localtime"] = labels.localtime
    app.jinja_env.globals["can"] = lambda perm: can(current_user, perm)
    app.jinja_env.globals["labels"] = labels

    @app.context_processor
    def inject_locale():
        from flask_babel import get_locale
        return {"current_locale": str(get_locale() or "zh")}


def _register_cli(app: Flask) -> None:
    from .cli import register_cli

    register_cli(app)
