"""Every SQLAlchemy listener is installed by ``portal/session_events.py`` and nowhere else, in
the order its table lists."""
from __future__ import annotations

import ast
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session

from portal import session_events
from portal.extensions import db

PORTAL = Path(session_events.__file__).resolve().parent


def _registrations(path: Path) -> list[int]:
    """Lines of ``path`` that register an event listener (``event.listen``, ``listens_for``)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("listen", "listens_for"):
                lines.append(node.lineno)
    return lines


def test_no_listener_is_registered_outside_session_events():
    found = {str(path.relative_to(PORTAL.parent)): lines for path in PORTAL.rglob("*.py")
             if path != Path(session_events.__file__).resolve() and (lines := _registrations(path))}
    assert found == {}


def test_the_listeners_run_in_the_order_listed(app):
    with app.app_context():
        session = db.session()
        for name in {listener.event for listener in session_events.SESSION_LISTENERS
                     if listener.target is Session}:
            listed = [listener.function for listener in session_events.SESSION_LISTENERS
                      if listener.target is Session and listener.event == name]
            installed = [fn for fn in getattr(session.dispatch, name) if fn in listed]
            assert installed == listed, name


def test_installing_twice_adds_nothing(app):
    session_events.install_session_listeners()
    session_events.install_engine_listeners(app)
    with app.app_context():
        session = db.session()
        for listener in session_events.SESSION_LISTENERS:
            if listener.target is Session:
                assert list(getattr(session.dispatch, listener.event)).count(listener.function) == 1
        for listener in session_events.engine_listeners(app):
            assert event.contains(listener.target, listener.event, listener.function)


def test_each_listener_says_why():
    assert all(listener.why for listener in session_events.SESSION_LISTENERS)
