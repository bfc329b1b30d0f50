"""Signing in through the login form, and the CSRF token a form needs, for Flask test clients.

Tests take ``login`` and ``csrf_token`` as fixtures (tests/conftest.py); helper modules that sign
clients in for a fixture import them from here.
"""
from __future__ import annotations

import re

from .factories import PASSWORD

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client, path: str = "/login") -> str:
    """The CSRF token of the form on ``path`` (fetched with this client, so bound to its session)."""
    page = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client, username: str, password: str = PASSWORD):
    """Post the login form as ``username``; the response (302 when signed in)."""
    token = csrf_token(client)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})
