"""`flask db upgrade` from empty builds exactly the schema the models describe."""
import os

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import create_engine, text

from portal import create_app
from portal.extensions import db

from conftest import PG_BASE


def _fresh_url(tmp_path) -> str:
    if os.environ.get("XINDANG_TEST_DB", "sqlite") == "postgresql":
        schema = f"xd_mig_{os.getpid()}"
        engine = create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
        return f"{PG_BASE}?options=-csearch_path%3D{schema}"
    return f"sqlite:///{tmp_path / 'migrated.db'}"


def test_upgrade_from_empty_matches_models(tmp_path):
    url = _fresh_url(tmp_path)
    app = create_app("testing", XINDANG_DATABASE_URL=url, XINDANG_INSTANCE_DIR=str(tmp_path))
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)
            head = conn.execute(text("SELECT seq FROM audit_chain_head WHERE id = 1")).scalar_one()
        db.engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"
    assert head == 0
    if url.startswith("postgresql"):
        engine = create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "xd_mig_{os.getpid()}" CASCADE'))
        engine.dispose()
