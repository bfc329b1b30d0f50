"""Every route, as every role, for objects inside and outside the user's subtree.

The cases come from ``matrix.py``; the first test fails for a route of the URL map nobody added
there. Pages and PDFs (GET) are asked as all seven roles for the objects of all three places —
and every answer is also checked for its security headers and for inline script (the web
hardening checks of ``checks.py``, here so that no page is fetched twice); state-changing
requests (POST) first as every role and place that must be refused — and the database must be
exactly as before — then as the roles that may act, in scope.
"""
from __future__ import annotations

import pytest

from .checks import (check, expected, fingerprint, places_of, row_counts, security_problems, send, signed_in_clients,
                     url_map_routes)
from .matrix import AUDITOR_OWN_RECORDS, CASES, EXEMPT, Case, cases_by_key
from .world import ROLES

def test_every_route_is_in_the_matrix(app):
    known = cases_by_key()
    routes = url_map_routes(app)
    missing = [f"{method} {rule}  (endpoint {endpoint})" for endpoint, method, rule in routes
               if (endpoint, method) not in known and (endpoint, method) not in EXEMPT]
    assert not missing, ("these routes have no case in the access matrix; add them to tests/security/matrix.py "
                         "(who may use them, and how to build their URL for an object of a place):\n  "
                         + "\n  ".join(missing))
    existing = {(endpoint, method) for endpoint, method, _rule in routes}
    stale = sorted({f"{c.method} {c.endpoint}" for c in CASES if (c.endpoint, c.method) not in existing}
                   | {f"{m} {e}" for e, m in EXEMPT if (e, m) not in existing})
    assert not stale, "tests/security/matrix.py names routes the portal no longer has: " + ", ".join(stale)


# --- the matrix ------------------------------------------------------------------------------

def test_pages_and_files_by_role_and_scope(app, world, fast_pdfs):
    """Pages, PDFs, spreadsheets and downloads; every 200 is read for other places' names."""
    clients = signed_in_clients(app)
    problems: list[str] = []
    unsafe: set[str] = set()
    for case in (c for c in CASES if c.method == "GET"):
        for role in ROLES:
            for place in places_of(case):
                fast_pdfs.clear()
                path, response = send(clients[role], case, world, place, role)
                check(case, role, place, path, response, problems, fast_pdfs)
                unsafe.update(f"{case.endpoint} ({response.status_code}): {problem}"
                              for problem in security_problems(case.endpoint, response))
    assert not problems, f"{len(problems)} unexpected answers:\n  " + "\n  ".join(problems)
    assert not unsafe, "pages without the security headers, or with inline script:\n  " + "\n  ".join(sorted(unsafe))


def _refused(case: Case, role: str, place: str | None) -> bool:
    return not expected(case, role, place) & {200, 201, 302, 303}


def test_state_changes_by_role_and_scope(app, world):
    """Refused requests first — afterwards every table exactly as before (and, per route, no row
    added or removed, to name the route that did it); then the allowed ones (whose effects may
    change what later requests find, hence last)."""
    clients = signed_in_clients(app)
    problems: list[str] = []
    posts = [c for c in CASES if c.method != "GET"]
    before_all = fingerprint(app)
    for case in posts:
        before = row_counts(app)
        for role in ROLES:
            for place in places_of(case):
                if _refused(case, role, place):
                    path, response = send(clients[role], case, world, place, role)
                    check(case, role, place, path, response, problems)
        if row_counts(app) != before:
            problems.append(f"{case.label}: a refused request added or removed rows")
    if fingerprint(app) != before_all:
        problems.append("a refused request changed the database")
    for case in posts:
        for role in ROLES:
            for place in places_of(case):
                if not _refused(case, role, place):
                    path, response = send(clients[role], case, world, place, role)
                    check(case, role, place, path, response, problems)
    assert not problems, f"{len(problems)} unexpected answers:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("username", ["auditor", "county_auditor"])
def test_auditors_change_nothing(app, world, username, csrf_token, login):
    """Every state-changing route, for every place's objects, as a branch or county auditor:
    refused (403, or 404 out of scope), and not one row changed — except the auditors' own
    audit records."""
    client = app.test_client()
    assert login(client, username).status_code == 302
    client.csrf = csrf_token(client, "/")
    before = fingerprint(app)
    problems = []
    for case in CASES:
        if case.method == "GET" or case.endpoint in AUDITOR_OWN_RECORDS or case.endpoint == "auth.set_language":
            continue
        for place in places_of(case):
            path = case.url(world, place, "auditor")
            data = dict(case.data(world, place)) if case.data else {}
            data["csrf_token"] = client.csrf
            response = client.post(path, data=data, content_type="multipart/form-data")
            if response.status_code not in (403, 404):
                problems.append(f"{case.label} for {place or '-'} ({path}): {response.status_code}")
    assert not problems, "auditors were not refused:\n  " + "\n  ".join(problems)
    assert fingerprint(app) == before, "an auditor's request changed the database"
    if username == "county_auditor":  # and they keep their own records: open, save, withdraw
        opened = client.post("/audit/inspections/new", data={"csrf_token": client.csrf, "sample_size": "2",
                                                              "target": str(world["B1"].institution)})
        assert opened.status_code == 303, opened.get_data(as_text=True)
        own = opened.headers["Location"]
        saved = client.post(own, data={"csrf_token": client.csrf, "findings": "抽查两户"})
        assert saved.status_code == 303
        assert client.post(f"{own}/cancel", data={"csrf_token": client.csrf, "reason": "重新抽样"}).status_code == 303
