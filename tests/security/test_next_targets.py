"""No state-changing route redirects off the site, whatever ``next`` a form posts.

Every POST route whose view goes back through ``portal.web`` (``done``/``back``, which follow a
form's ``next``) is sent, as a role allowed to use it and with its matrix form, each hostile
``next``: never a 500 (a line break in Location was one, after the change was saved), and any
redirect stays on the site. The forms that really post ``next`` are tested with a fresh record
each, and their exact redirect, in ``tests/test_web.py``.
"""
from __future__ import annotations

import inspect
import re
import unicodedata

from .checks import fetch, signed_in_clients
from .matrix import CASES
from .world import ROLE_USERS, ROLES

HOSTILE_NEXT = ["/\t/evil.example", "/\n/x", "//evil.example", "/\\evil.example", "https://evil.example/"]
GOES_BACK = re.compile(r"\b(?:done|back)\(")


def _on_site(location: str) -> bool:
    return (location.startswith("/") and not location.startswith("//") and "\\" not in location
            and "evil" not in location and not any(unicodedata.category(ch) == "Cc" for ch in location))


def test_no_form_redirects_off_the_site(app, world):
    clients = signed_in_clients(app)
    swept, problems = set(), []
    for case in (c for c in CASES if c.method == "POST"):
        view = inspect.unwrap(app.view_functions[case.endpoint])
        if not GOES_BACK.search(inspect.getsource(view)):
            continue
        role = next(r for r in ROLES if r in case.allowed) if case.allowed else "archivist"
        place = "B1" if case.scoped or case.per_place else None
        path = case.url(world, place, ROLE_USERS[role])
        swept.add(case.endpoint)
        for target in HOSTILE_NEXT:
            data = dict(case.data(world, place)) if case.data else {}
            data.update(next=target, csrf_token=clients[role].csrf)
            response = fetch(clients[role], path, "POST", data=data, content_type="multipart/form-data")
            location = response.headers.get("Location", "")
            if response.status_code >= 500 or (300 <= response.status_code < 400 and not _on_site(location)):
                problems.append(f"{case.label} as {role}, next={target!r}: {response.status_code} {location!r}")
    assert len(swept) > 30, f"only {len(swept)} routes go back through portal.web?"
    assert {"postloan.issue_notice", "auth.set_language", "archive.lending_action"} <= swept
    assert not problems, "\n  ".join(problems)
