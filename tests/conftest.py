"""Shared fixtures: one app per test session on the database named by XINDANG_TEST_DB
(``sqlite``, the default, or ``postgresql``), emptied after every test.

PostgreSQL: 127.0.0.1:5432, database ``test``, trust auth; each xdist worker gets its own
schema. Outside CI an unreachable server skips the PostgreSQL run with a visible message;
with CI=true it fails.

Besides ``app``, ``client`` and ``runner``: ``org`` (a known organisation, tests/helpers/
factories.py), and the everyday tools as fixtures that return a function: ``make_org``,
``make_loan``, ``login`` and ``csrf_token``. Plain builders and constants (files, ``PASSWORD``)
are imported from tests/helpers; a test never imports a conftest.
"""
from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from portal import create_app
from portal.extensions import db

from tests.helpers import factories, web
from tests.helpers.postgres import ON_POSTGRES, PG_BASE, create_schema, drop_schemas


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def pytest_report_header(config):
    return f"xindang test database: {os.environ.get('XINDANG_TEST_DB', 'sqlite')}"


def _pg_url() -> str:
    # Unique per process: several test runs may share the server at once.
    schema = f"xd_{_worker()}_{os.getpid()}"
    try:
        return create_schema(schema)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server
        message = f"PostgreSQL at {PG_BASE} is not reachable: {exc.__class__.__name__}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.exit(message, returncode=3)
        pytest.skip("SKIPPING PostgreSQL tests — " + message, allow_module_level=True)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    if ON_POSTGRES:
        return _pg_url()
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def app(database_url, tmp_path_factory):
    instance = tmp_path_factory.mktemp("instance")
    # Tests sign in hundreds of times from one address; test_auth lowers the limit itself.
    application = create_app("testing", XINDANG_DATABASE_URL=database_url, XINDANG_INSTANCE_DIR=str(instance),
                             XINDANG_LOGIN_RATE_LIMIT="100000 per minute")
    with application.app_context():
        db.drop_all()
        db.create_all()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()
    if database_url.startswith("postgresql"):
        drop_schemas(database_url.rsplit("%3D", 1)[1])


@pytest.fixture(autouse=True)
def _english_unless_marked(request, monkeypatch):
    """Tests read English messages; tests of the Chinese default are marked ``chinese``."""
    if "app" in request.fixturenames and request.node.get_closest_marker("chinese") is None:
        monkeypatch.setitem(request.getfixturevalue("app").config, "BABEL_DEFAULT_LOCALE", "en")


@pytest.fixture(autouse=True)
def _clean_database(request):
    """Empty every table after each test that used the app."""
    yield
    if "app" not in request.fixturenames:
        return
    application = request.getfixturevalue("app")
    with application.app_context():
        db.session.remove()
        tables = list(reversed(db.metadata.sorted_tables))
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                names = ", ".join(f'"{t.name}"' for t in tables)
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    conn.execute(table.delete())
        from portal.rules.lookup import plugin_registry
        plugin_registry().forget_unions()


@pytest.fixture()
def index_dir(request, tmp_path, monkeypatch):
    """A search index folder of this test's own (the app is shared by the whole session)."""
    path = tmp_path / "search_index"
    if "app" in request.fixturenames:
        monkeypatch.setitem(request.getfixturevalue("app").config, "XINDANG_SEARCH_INDEX_DIR", str(path))
    return path


@pytest.fixture()
def local_store(app, tmp_path):
    """A fresh local-folder object store as the app's store for this test (for tests where the
    backend does not matter; tests/archive runs the same tests on MinIO too)."""
    from portal.archive.storage import LocalStore

    chosen = LocalStore(tmp_path / "objects")
    previous = app.extensions["xindang_storage"]
    app.extensions["xindang_storage"] = chosen
    yield chosen
    app.extensions["xindang_storage"] = previous


@pytest.fixture()
def app_ctx(app):
    with app.app_context():
        yield app


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def runner(app):
    return app.test_cli_runner()


@pytest.fixture()
def org(app):
    """The known organisation of tests/helpers/factories.py (provinces P and Q, their users)."""
    with app.app_context():
        return factories.make_org()


@pytest.fixture()
def make_org():
    """``make_org(plugin=None, other_plugin=None)``: the known organisation with P (and Q) on
    these plugins; call it inside an app context."""
    return factories.make_org


@pytest.fixture()
def make_loan():
    """``make_loan(branch, officer=None, **fields)``: a loan with a new borrower, flushed; call it
    inside an app context."""
    return factories.make_loan


@pytest.fixture()
def login():
    """``login(client, username, password=PASSWORD)``: post the login form; the response."""
    return web.login


@pytest.fixture()
def csrf_token():
    """``csrf_token(client, path="/login")``: the CSRF token of the form on ``path``."""
    return web.csrf_token
