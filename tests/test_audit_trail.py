"""The audit trail is a hash chain: any edit or deletion is found by `flask audit verify-log`."""
import json

import pytest
from sqlalchemy import text

from portal.audit_trail import AuditEvent, record_event, verify_log
from portal.extensions import db


def _events(app, n=5):
    with app.app_context():
        for i in range(n):
            record_event(None, "test.event", "thing", i, {"n": i, "名称": "贷后检查"})
        db.session.commit()


def test_clean_log_verifies(app, runner):
    _events(app)
    result = runner.invoke(args=["audit", "verify-log", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] and report["events"] == 5


def test_edited_event_is_detected(app, runner):
    _events(app)
    with app.app_context():
        db.session.execute(text("UPDATE audit_event SET action = 'forged' WHERE seq = 3"))
        db.session.commit()
    result = runner.invoke(args=["audit", "verify-log", "--json"])
    assert result.exit_code == 1
    problems = json.loads(result.output)["problems"]
    assert any(p["seq"] == 3 and "edited" in p["problem"] for p in problems)


def test_deleted_event_is_detected(app, runner):
    _events(app)
    with app.app_context():
        db.session.execute(text("DELETE FROM audit_event WHERE seq = 2"))
        db.session.commit()
    assert runner.invoke(args=["audit", "verify-log"]).exit_code == 1


def test_deleting_the_newest_event_is_detected(app):
    _events(app)
    with app.app_context():
        db.session.execute(text("DELETE FROM audit_event WHERE seq = 5"))
        db.session.commit()
        count, problems = verify_log()
        assert count == 4 and problems


def test_orm_refuses_to_change_events(app):
    _events(app, 1)
    with app.app_context():
        ev = db.session.execute(db.select(AuditEvent)).scalar_one()
        ev.action = "changed"
        with pytest.raises(RuntimeError):
            db.session.flush()
        db.session.rollback()
