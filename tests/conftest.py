"""Shared fixtures: one app per test session on the database named by XINDANG_TEST_DB
(``sqlite``, the default, or ``postgresql``), emptied after every test.

PostgreSQL: 127.0.0.1:5432, database ``test``, trust auth; each xdist worker gets its own
schema. Outside CI an unreachable server skips the PostgreSQL run with a visible message;
with CI=true it fails.
"""
from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from datetime import date

import pytest
from sqlalchemy import create_engine, text

from portal import create_app
from portal.extensions import db

PG_BASE = os.environ.get("XINDANG_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PASSWORD = "correct-horse-42"


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def pytest_report_header(config):
    return f"xindang test database: {os.environ.get('XINDANG_TEST_DB', 'sqlite')}"


def _pg_url(tmp_factory) -> str:
    # Unique per process: several test runs may share the server at once.
    schema = f"xd_{_worker()}_{os.getpid()}"
    try:
        engine = create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server
        message = f"PostgreSQL at {PG_BASE} is not reachable: {exc.__class__.__name__}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.exit(message, returncode=3)
        pytest.skip("SKIPPING PostgreSQL tests — " + message, allow_module_level=True)
    return f"{PG_BASE}?options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    if os.environ.get("XINDANG_TEST_DB", "sqlite") == "postgresql":
        return _pg_url(tmp_path_factory)
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
        schema = database_url.rsplit("%3D", 1)[1]
        engine = create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


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


CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client, username: str, password: str = PASSWORD):
    token = csrf_token(client)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


@dataclass
class Org:
    """A small, known tree, as codes and ids (no ORM objects: the test client must not share
    an app context with the test). Province P (plugin as asked), county C1 with branches B1
    and B2; a second province Q with county D1 and branch E1. Users by name, see ORG_USERS."""

    plugin: str | None
    user_ids: dict

    def inst(self, code: str):
        """The Institution with this code (call inside an app context)."""
        from portal.accounts.models import Institution
        return db.session.execute(db.select(Institution).filter_by(code=code)).scalar_one()

    def user(self, name: str):
        from portal.accounts.models import User
        return db.session.get(User, self.user_ids[name])


ORG_USERS = {
    "admin": ("P", ["admin"]),
    "union_admin": ("P", ["union_admin"]),
    "q_union_admin": ("Q", ["union_admin"]),
    "officer": ("B1", ["loan_officer"]),
    "post_loan": ("B1", ["post_loan_officer"]),
    "director": ("B1", ["branch_director"]),
    "archivist": ("B1", ["archivist"]),
    "auditor": ("B1", ["auditor"]),
    "county_auditor": ("C1", ["auditor"]),
    "county_director": ("C1", ["branch_director"]),
    "county_archivist": ("C1", ["archivist"]),
    "officer2": ("B2", ["loan_officer"]),
    "director2": ("B2", ["branch_director"]),
    "officer_q": ("E1", ["loan_officer"]),
}


def make_org(plugin: str | None = None, other_plugin: str | None = None) -> Org:
    """Create the tree and users in the current app context and commit."""
    from portal.accounts.services import create_institution, create_user
    from portal.rules.services import set_union_plugin

    def union(code: str, name: str, plugin_name: str | None) -> None:
        province = create_institution(None, code, name, "province")
        if plugin_name:
            set_union_plugin(None, province, plugin_name)

    union("P", "测试省农村信用社联合社", plugin)
    create_institution(None, "C1", "测试县联社", "county", "P")
    create_institution(None, "B1", "城关信用社", "branch", "C1")
    create_institution(None, "B2", "河西信用社", "branch", "C1")
    union("Q", "另一省联社", other_plugin)
    create_institution(None, "D1", "另一县联社", "county", "Q")
    create_institution(None, "E1", "另一信用社", "branch", "D1")
    ids = {name: create_user(None, name, PASSWORD, inst, roles, display_name=name).id
           for name, (inst, roles) in ORG_USERS.items()}
    db.session.commit()
    return Org(plugin, ids)


@pytest.fixture()
def org(app):
    with app.app_context():
        return make_org()


_counter = iter(range(1, 10**9))


def make_loan(branch, officer=None, **fields):
    """A loan with a new borrower; any field may be overridden."""
    from portal.loans.models import Borrower, Loan

    n = next(_counter)
    borrower = fields.pop("borrower", None) or Borrower(
        kind=fields.pop("borrower_kind", "individual"), name=fields.pop("borrower_name", f"借款人{n}"),
        id_number=fields.pop("id_number", f"43010119800101{n:04d}"), credit_rating=fields.pop("credit_rating", "A"),
        institution=branch)
    values = dict(contract_no=f"HT-{uuid.uuid4().hex[:10]}", product="farm_credit", guarantee_type="credit",
                  amount_fen=5_000_000, balance_fen=5_000_000, rate_percent="5.2500",
                  disbursed_on=date(2024, 3, 1), maturity_on=date(2025, 3, 1), payment_method="entrusted",
                  purpose="种植", status="active", days_past_due=0, interest_arrears_fen=0, risk_class="normal")
    values.update(fields)
    loan = Loan(borrower=borrower, branch=branch, officer=officer, **values)
    db.session.add(loan)
    db.session.flush()
    return loan


def docx_bytes(*paragraphs: str) -> bytes:
    """A Word document with these paragraphs (an upload with text to extract)."""
    import io

    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
