"""`flask db upgrade` from empty builds exactly the schema the models describe."""
import os

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import text

from portal import create_app
from portal.extensions import db

from tests.helpers.postgres import ON_POSTGRES, create_schema, drop_schemas


def _fresh_url(tmp_path) -> str:
    if ON_POSTGRES:
        return create_schema(f"xd_mig_{os.getpid()}")
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
        drop_schemas(f"xd_mig_{os.getpid()}")
