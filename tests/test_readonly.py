"""PostgreSQL: a request that wrote nothing commits (so psycopg keeps its prepared statements);
one that wrote, or failed, rolls back as before (portal/readonly.py)."""
import pytest
from sqlalchemy import select, text

from portal.accounts.models import Institution
from portal.extensions import db



def _on_postgresql(app) -> bool:
    with app.app_context():
        return db.engine.dialect.name == "postgresql"


def _prepared_statements(app) -> int:
    """How many statements the pooled connection has prepared (a test client uses one)."""
    with app.app_context():
        count = db.session.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one()
        db.session.commit()   # read-only: keeps them
    return count


def test_read_only_pages_keep_prepared_statements(app, org, client, login):
    if not _on_postgresql(app):
        pytest.skip("prepared statements are PostgreSQL's (XINDANG_TEST_DB=postgresql)")
    login(client, "county_director")
    for _ in range(7):   # psycopg prepares a statement on its fifth run on a connection
        assert client.get("/loans/").status_code == 200
    # Without the commit, each request's rollback made psycopg forget them all: none was kept.
    assert _prepared_statements(app) > 0


def test_a_flushed_change_without_commit_is_rolled_back(app, org):
    with app.test_request_context("/"):
        inst = db.session.execute(select(Institution).where(Institution.code == "B1")).scalar_one()
        inst.name = "改了没提交"
        db.session.flush()   # written to the transaction, never committed: the teardown must not commit it
    with app.app_context():
        assert db.session.execute(select(Institution.name).where(Institution.code == "B1")).scalar_one() == "城关信用社"


def test_sql_text_write_without_commit_is_rolled_back(app, org):
    with app.test_request_context("/"):
        db.session.execute(select(Institution.id)).all()                # reads first
        db.session.execute(text("UPDATE institution SET name = 'x' WHERE code = 'B2'"))
    with app.app_context():
        assert db.session.execute(select(Institution.name).where(Institution.code == "B2")).scalar_one() == "河西信用社"


def test_pending_change_is_not_flushed_by_the_teardown(app, org):
    with app.test_request_context("/"):
        inst = db.session.execute(select(Institution).where(Institution.code == "C1")).scalar_one()
        inst.name = "只在内存里"   # dirty, not flushed: committing would write it
    with app.app_context():
        assert db.session.execute(select(Institution.name).where(Institution.code == "C1")).scalar_one() == "测试县联社"


def test_a_request_that_failed_is_rolled_back(app, org):
    with pytest.raises(RuntimeError):
        with app.test_request_context("/"):
            db.session.execute(select(Institution.id)).all()
            raise RuntimeError("the view failed")
    with app.app_context():   # the session of the failed request is gone, the database usable
        assert db.session.execute(select(Institution.name).where(Institution.code == "B1")).scalar_one() == "城关信用社"


def test_switched_off_nothing_is_prepared_and_requests_roll_back(app, org, database_url, tmp_path, login):
    """``XINDANG_PG_PREPARED_STATEMENTS=false`` (behind PgBouncer in transaction mode)."""
    if not _on_postgresql(app):
        pytest.skip("prepared statements are PostgreSQL's (XINDANG_TEST_DB=postgresql)")
    from portal import create_app

    other = create_app("testing", XINDANG_DATABASE_URL=database_url, XINDANG_INSTANCE_DIR=str(tmp_path),
                       XINDANG_LOGIN_RATE_LIMIT="100000 per minute", XINDANG_PG_PREPARED_STATEMENTS=False)
    try:
        client = other.test_client()
        login(client, "county_director")
        for _ in range(7):
            assert client.get("/loans/").status_code == 200
        assert _prepared_statements(other) == 0
        with other.app_context():
            assert db.engine.raw_connection().driver_connection.prepare_threshold is None
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()
