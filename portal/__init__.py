"""Xindang (信档): the Flask application factory.

``create_app`` goes through named steps: configuration, extensions, every SQLAlchemy listener
(``session_events``), the rules registry (every plugin loaded and checked; a broken one stops
start-up), login, language, the object store, each package's labels, blueprints, error
handlers, security headers, template helpers and the command line.

This module imports every package; none imports it (only ``wsgi.py``, the ``flask`` command
and tests do): docs/architecture.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, has_request_context, request, session
from flask_babel import get_locale, lazy_gettext
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import inspect, select
from sqlalchemy.orm import joinedload
from werkzeug.datastructures import ImmutableMultiDict

from config import CONFIGS, Config

from . import labels
from .accounts.auth import bp as auth_bp
from .accounts.models import Institution, Level, User
from .accounts.scope import can
from .accounts.views import bp as accounts_bp
from .archive.labels import ARCHIVE_LABELS
from .archive.storage import store_from_config
from .archive.views import bp as archive_bp
from .auditing.labels import AUDITING_LABELS
from .auditing.views import bp as auditing_bp
from .cli import register_cli
from .errors import InvalidInput, register_error_handlers
from .extensions import babel, bootstrap, csrf, db, limiter, login_manager, migrate
from .loans.views import bp as loans_bp
from .main import bp as main_bp
from .postloan.labels import POSTLOAN_LABELS
from .postloan.views import bp as postloan_bp
from .readonly import keep_prepared_statements
from .routing import BoundedIntConverter
from .rules.manager import RulesRegistry
from .rules.views import bp as rules_bp
from .search.labels import SEARCH_LABELS
from .search.views import bp as search_bp
from .session_events import install_engine_listeners, install_session_listeners

PUBLIC_ENDPOINTS = {"auth.login", "auth.set_language", "static", "bootstrap.static", "main.health"}


def create_app(config: str | Config | None = None, **overrides: Any) -> Flask:
    app = Flask(__name__, instance_relative_config=False)
    _configure(app, config, overrides)
    _init_extensions(app)
    _install_listeners(app)
    _init_rules(app)
    _init_login(app)
    _init_babel(app)
    _init_storage(app)
    _register_labels()
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
    migrate.init_app(app, db, directory=str(Path(app.root_path).parent / "migrations"))
    csrf.init_app(app)
    bootstrap.init_app(app)
    limiter.init_app(app)


def _install_listeners(app: Flask) -> None:
    """Every SQLAlchemy listener, in the order listed in ``portal/session_events.py`` (before the
    first connection: SQLite's settings are made as each connection opens)."""
    install_session_listeners()
    install_engine_listeners(app)
    keep_prepared_statements(app)   # PostgreSQL: read-only requests commit (portal/readonly.py)


def _init_rules(app: Flask) -> None:
    """Load every available plugin and each union's manager; errors stop start-up."""
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


def _init_storage(app: Flask) -> None:
    """The configured object store (no network yet), in ``app.extensions["xindang_storage"]``."""
    app.extensions["xindang_storage"] = store_from_config(app.config, app.instance_path)


def _register_labels() -> None:
    """Each package's display names of its codes, for the ``label`` filter."""
    for kinds in (ARCHIVE_LABELS, POSTLOAN_LABELS, SEARCH_LABELS, AUDITING_LABELS):
        labels.register_labels(kinds)


def _register_blueprints(app: Flask) -> None:
    # Before any rule is added: an id in a URL beyond what a primary key holds names no record
    # (404), instead of reaching the database, which refuses it (a 500).
    app.url_map.converters["int"] = BoundedIntConverter
    # The search blueprint's first request starts this process's index queue drainer.
    for blueprint in (auth_bp, main_bp, accounts_bp, loans_bp, rules_bp, archive_bp, postloan_bp, search_bp,
                      auditing_bp):
        app.register_blueprint(blueprint)


def _register_errors_and_headers(app: Flask) -> None:
    register_error_handlers(app)

    @app.before_request
    def refuse_nul_characters():
        """PostgreSQL cannot store or compare U+0000 in text. In a query string (filters, a
        search) it is dropped, as any other nonsense in a filter is ignored; in a form field or
        the path it is refused with a message, instead of failing in the database. (Names of
        uploaded files are not fields: the services clean those.)"""
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
    app.jinja_env.filters["yuan"] = labels.yuan
    app.jinja_env.filters["label"] = labels.label
    app.jinja_env.filters["localtime"] = labels.localtime
    app.jinja_env.globals["can"] = lambda perm: can(current_user, perm)
    app.jinja_env.globals["labels"] = labels

    @app.context_processor
    def inject_locale():
        return {"current_locale": str(get_locale() or "zh")}


def _register_cli(app: Flask) -> None:
    register_cli(app)
