"""Web hardening: CSRF on every state-changing route, security headers and no inline script
(every page the access matrix fetches is scanned there; the error and signed-out pages here),
no redirect off the site, the sign-in rate limit, the session on sign-in, NUL characters, and
hostile query parameters and form fields (bad dates, absurd page numbers, non-numeric or
oversized ids, malformed search queries): a message, never a 500.

Routes come from the URL map and the access matrix (``matrix.py``), and the parameters a page
reads from its view's source, so a new route or parameter is covered the day it is added.
"""
from __future__ import annotations

import inspect
import io
import re

import pytest

from tests.helpers.factories import PASSWORD
from tests.helpers.files import pdf_bytes

from .checks import fetch, fingerprint, security_problems, send, signed_in_clients, url_map_routes
from .matrix import CASES, EXEMPT, Case, cases_by_key
from .world import ROLE_USERS, ROLES

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def _case_for(endpoint: str, method: str) -> Case | None:
    cases = cases_by_key().get((endpoint, method), [])
    return cases[0] if cases else None


def _actor(case: Case) -> str:
    """Someone who may do it (so that a missing CSRF check would let it through)."""
    return next((r for r in ROLES if r in case.allowed), "archivist")


# --- CSRF ------------------------------------------------------------------------------------

def test_every_state_changing_route_needs_the_csrf_token(app, world):
    routes = [(e, m, r) for e, m, r in url_map_routes(app) if m in STATE_CHANGING]
    assert len(routes) > 40, "the URL map lost its state-changing routes?"
    clients = signed_in_clients(app)
    before = fingerprint(app)
    problems = []
    for endpoint, method, rule in routes:
        if (endpoint, method) in EXEMPT:
            continue
        case = _case_for(endpoint, method)
        assert case is not None, f"{method} {rule}: add it to tests/security/matrix.py"
        role = _actor(case)
        place = "B1" if case.scoped or case.per_place else None
        path, response = send(clients[role], case, world, place, role, token=False)
        body = response.get_data(as_text=True)
        if response.status_code != 400 or "reload the page" not in body:
            problems.append(f"{method} {path} as {role} without a token: {response.status_code}")
    assert not problems, "accepted without a CSRF token:\n  " + "\n  ".join(problems)
    assert fingerprint(app) == before, "a request without a CSRF token changed the database"


def test_a_token_of_another_session_is_refused(app, world):
    clients = signed_in_clients(app, roles=("loan_officer", "branch_director"))
    foreign = clients["branch_director"].csrf
    response = clients["loan_officer"].post(f"/postloan/loans/{world['B1'].loan}/warnings",
                                            data={"csrf_token": foreign, "signal": "other", "details": "x"})
    assert response.status_code == 400


def test_sign_in_and_sign_out_need_the_token(app, client, org, login):
    response = client.post("/login", data={"username": "officer", "password": PASSWORD})
    assert response.status_code == 400 and client.get("/").status_code == 302
    login(client, "officer")
    response = client.post("/logout")
    assert response.status_code == 400
    assert client.get("/").status_code == 200, "a forged sign-out request signed the user out"


# --- headers and inline script -----------------------------------------------------------------

def test_error_and_signed_out_pages_have_the_security_headers(app, world, monkeypatch):
    """The matrix test checks every page it fetches (test_access_matrix); here, the pages it
    does not reach: signed out, and each error a user can run into."""
    problems = []

    def scan(label, response, status):
        assert response.status_code == status, (label, response.status_code)
        problems.extend(f"{label} ({status}): {p}" for p in security_problems("", response))

    anonymous = app.test_client()
    scan("sign-in page", fetch(anonymous, "/login"), 200)
    scan("a page, signed out", fetch(anonymous, "/loans/"), 302)
    scan("no such page, signed out", fetch(anonymous, "/no-such-page"), 404)
    client = signed_in_clients(app, roles=("loan_officer",))["loan_officer"]
    scan("no token", fetch(client, "/postloan/loans/1/warnings", "POST", data={"signal": "other"}), 400)
    scan("no such page", fetch(client, "/no-such-page"), 404)
    scan("role refused", fetch(client, "/org/users"), 403)
    scan("wrong method", fetch(client, "/loans/", "POST", data={"csrf_token": client.csrf}), 405)
    scan("NUL in a form field", fetch(client, f"/postloan/loans/{world['B1'].loan}/warnings", "POST",
                                      data={"csrf_token": client.csrf, "signal": "other", "details": "a\x00"}), 422)
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 1024)
    scan("request too large", fetch(client, f"/archive/borrowers/{world['B1'].borrower}/upload", "POST",
                                    data={"csrf_token": client.csrf, "files": [(io.BytesIO(b"%PDF-" + b"0" * 4096), "a.pdf")]},
                                    content_type="multipart/form-data"), 413)
    assert not problems, "\n  ".join(problems)


def test_the_page_checks_can_fail():
    """The scanner used on every page finds what it is there to find."""
    from werkzeug.wrappers import Response

    page = Response('<p onclick="x()">a</p><script>alert(1)</script><a href=" javascript:x()">b</a>'
                    '<script src="/static/js/archive.js"></script>', mimetype="text/html")
    page.headers["Content-Security-Policy"] = "default-src 'self'; script-src 'self' 'unsafe-inline'"
    found = " | ".join(security_problems("", page))
    for expected_problem in ("inline <script>", "onclick", "javascript:", "unsafe-inline", "nosniff", "framing"):
        assert expected_problem in found, (expected_problem, found)


# --- sign-in --------------------------------------------------------------------------------

def test_the_sign_in_limit_cannot_be_dodged_with_a_forwarded_address(app, client, org, csrf_token):
    """The limit counts the connection's address; a client naming another one in
    X-Forwarded-For (no proxy is trusted by default) is still counted as itself."""
    from portal.extensions import limiter
    app.config["XINDANG_LOGIN_RATE_LIMIT"] = "3 per minute"
    try:
        limiter.reset()
        statuses = []
        for i in range(5):
            token = csrf_token(client)
            statuses.append(client.post("/login", data={"username": "officer", "password": "wrong", "csrf_token": token},
                                        headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code)
        assert statuses[:3] == [401, 401, 401] and statuses[3:] == [429, 429]
        refused = client.post("/login", data={"username": "officer", "password": PASSWORD,
                                              "csrf_token": csrf_token(client)})
        assert refused.status_code == 429 and "wait" in refused.get_data(as_text=True)
        assert client.get("/").status_code == 302, "signed in past the limit"
    finally:
        app.config["XINDANG_LOGIN_RATE_LIMIT"] = "100000 per minute"
        limiter.reset()


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "/\\evil.example", "/\\/evil.example",
                                    "\\\\evil.example", "/\t/evil.example", "javascript:alert(1)", "http:evil.example",
                                    " //evil.example"])
def test_sign_in_and_language_switch_never_redirect_off_site(app, client, org, target, csrf_token):
    """A link to the sign-in page naming another site as ``next`` (browsers read "\\" as "/" and
    drop tabs) lands on the portal's home page, as does the language switch."""
    token = csrf_token(client)
    response = client.post("/login", query_string={"next": target},
                           data={"username": "officer", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/", response.headers["Location"]
    response = client.post("/language/en", data={"next": target, "csrf_token": csrf_token(client, "/")})
    assert response.status_code == 302 and response.headers["Location"] == "/", response.headers["Location"]


def test_sign_in_starts_a_new_session(app, client, org, login):
    """What was in the session before sign-in (planted by whoever handed the browser over) is
    gone after it, and the session cookie is a new one."""
    client.get("/login")
    with client.session_transaction() as sess:
        sess["planted"] = "by-attacker"
        sess["_user_id"] = "1:forged"
    before = client.get_cookie("session").value
    assert client.get("/").status_code == 302, "a forged user id in the session signed someone in"
    login(client, "officer")
    with client.session_transaction() as sess:
        assert "planted" not in sess and sess["_user_id"] != "1:forged"
    assert client.get_cookie("session").value != before
    assert client.get("/").status_code == 200


def test_sign_out_ends_the_session_for_every_copy_of_its_cookie(app, client, org, csrf_token, login):
    """A session cookie copied while the user was signed in (from a shared computer, a proxy's
    log) opens nothing once the user has signed out, nor after they sign in again."""
    from portal.audit_trail import AuditEvent
    from portal.extensions import db

    assert login(client, "officer").status_code == 302
    copied = client.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/").status_code == 200, "the copy should work while the session lasts"
    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert response.status_code == 302 and client.get("/").status_code == 302
    for path in ("/", "/loans/", "/org/"):
        response = thief.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path
    assert login(client, "officer").status_code == 302 and client.get("/").status_code == 200
    assert thief.get("/").status_code == 302, "signing in again revived the old session"
    with app.app_context():
        events = db.session.execute(db.select(AuditEvent.action).where(AuditEvent.action.like("user.log%"))
                                    .order_by(AuditEvent.id)).scalars().all()
        db.session.remove()
    assert events == ["user.login", "user.logout", "user.login"]


# --- hostile parameters and fields -----------------------------------------------------------

BAD_VALUES = ["abc", "-1", "2147483648", "99999999999999999999", "²", "١٢", "2024-02-30", "9999-12-31", "0001-01-01"]
# Whoosh query syntax a user can get wrong.
BAD_QUERIES = ['"unclosed', "title:(", "(((", "a AND", "OR", "NOT", "*", "?", "[a TO", "{x TO y]", "field:", "~2",
               "^3", "借款 AND (", "\\", "/", '"借款人', "'", "a" * 2000]
_PARAM = re.compile(r"""(?:request\.(?:args|values|form)\.get(?:list)?\(\s*|\b(?:id|page|date)_arg\(\s*|\bid_list\(\s*)["']([A-Za-z_][\w-]*)["']""")
_IN_ARGS = re.compile(r"""["']([A-Za-z_]\w*)["']\s+in\s+request\.(?:args|form)""")


def parameters_read_by(app, endpoint: str) -> set[str]:
    """The query or form parameters a view reads, from its source (the view and the module's
    small helpers it calls are found by name)."""
    view = inspect.unwrap(app.view_functions[endpoint])
    source = inspect.getsource(view)
    names = set(_PARAM.findall(source)) | set(_IN_ARGS.findall(source))
    return names


def test_list_pages_survive_bad_parameters(app, world):
    """Every parameter every GET page reads (found in its view's source), and on lists the usual
    ones, with each bad value: a page or a refusal with a message, never a 500."""
    clients = signed_in_clients(app)
    usual = {"page", "start", "end", "as_of"}
    problems = []
    asked = 0
    done: set[str] = set()
    for case in (c for c in CASES if c.method == "GET" and c.endpoint not in ("static", "bootstrap.static")):
        role = _actor(case)
        place = "B1" if case.scoped or case.per_place else None
        base = case.url(world, place, ROLE_USERS[role]).split("?", 1)[0]
        if base in done:
            continue
        done.add(base)
        for name in sorted(parameters_read_by(app, case.endpoint) | (set() if case.scoped else usual)):
            for value in BAD_VALUES:
                response = fetch(clients[role], base, query_string={name: value})
                asked += 1
                if response.status_code >= 500:
                    problems.append(f"{base}?{name}={value[:30]!r} as {role}: {response.status_code}")
    assert asked > 250
    assert not problems, f"{len(problems)} server errors:\n  " + "\n  ".join(problems)


def test_malformed_search_queries_show_a_message(app, world):
    clients = signed_in_clients(app, roles=("archivist", "loan_officer"))
    for role, client in clients.items():
        for query in BAD_QUERIES:
            for extra in ({}, {"page": "999999999"}, {"sort": "date"}, {"from": "2024-02-30", "to": "x"}):
                response = fetch(client, "/search/", query_string={"q": query, **extra})
                assert response.status_code in (200, 422), (role, query, extra, response.status_code)
                assert "<form" in response.get_data(as_text=True), (role, query, extra)


def test_an_absurd_page_number_shows_the_last_page(app, world):
    client = signed_in_clients(app, roles=("archivist",))["archivist"]
    for path, query in (("/loans/", {}), ("/search/", {"q": "借款"}), ("/search/", {"q": ""})):
        for page in ("99999999999", "999999999999999999999999", "-5", "0", "1.5"):
            response = fetch(client, path, query_string={**query, "page": page})
            assert response.status_code == 200, (path, page, response.status_code)


def test_forms_survive_bad_fields(app, world):
    """Every state-changing route, as someone allowed, with each field it reads (its view's
    source and the matrix's form) set to each bad value: never a 500."""
    clients = signed_in_clients(app)
    problems = []
    done: set[tuple[str, str]] = set()
    for case in (c for c in CASES if c.method != "GET" and c.endpoint != "auth.set_language"):
        role = _actor(case)
        place = "B1" if case.scoped or case.per_place else None
        path = case.url(world, place, ROLE_USERS[role])
        fields = parameters_read_by(app, case.endpoint) | set(case.data(world, place) if case.data else {})
        for name in sorted(fields - {"csrf_token", "files", "evidence", "file"}):
            if (path, name) in done:
                continue
            done.add((path, name))
            for value in ("abc", "2024-02-30", "9999-12-31", "2147483648", "99999999999999999999", "²", "x" * 20000,
                          "\x00"):
                data = dict(case.data(world, place)) if case.data else {}
                data[name] = value
                data["csrf_token"] = clients[role].csrf
                response = fetch(clients[role], path, "POST", data=data, content_type="multipart/form-data")
                if response.status_code >= 500:
                    problems.append(f"{case.label} {name}={value[:20]!r} as {role}: {response.status_code}")
    assert not problems, f"{len(problems)} server errors:\n  " + "\n  ".join(problems)


def test_nul_characters_never_reach_the_database(app, world):
    """PostgreSQL refuses U+0000 in text: dropped from filters and searches, refused with a
    message in form fields and paths — on SQLite too, so both behave alike."""
    clients = signed_in_clients(app, roles=("archivist", "branch_director"))
    archivist = clients["archivist"]
    for path, query in (("/loans/", {"q": "SEC-B1\x00"}), ("/search/", {"q": "本社户\x00"}),
                        ("/archive/transfers/new", {"q": "本社\x00"}), ("/loans/", {"officer": "\x00"})):
        response = fetch(archivist, path, query_string=query)
        assert response.status_code == 200, (path, query, response.status_code)
    assert "SEC-B1-A" in fetch(archivist, "/loans/", query_string={"q": "SEC-B1\x00"}).get_data(as_text=True)
    for path in ("/archive/number/J001%00", "/rules/P%00"):
        response = fetch(archivist, path)
        assert response.status_code == 422 and "NUL character" in response.get_data(as_text=True), path
    before = fingerprint(app)
    director = clients["branch_director"]
    response = fetch(director, "/archive/holds", "POST",
                     data={"csrf_token": director.csrf, "kind": "legal", "reason": "诉讼\x00", "volume_id": "1"})
    assert response.status_code == 422 and "NUL character" in response.get_data(as_text=True)
    response = fetch(archivist, "/login", "POST", data={"csrf_token": archivist.csrf, "username": "a\x00", "password": "x"})
    assert response.status_code in (302, 422)
    assert fingerprint(app) == before


@pytest.mark.parametrize("path", ["/loans/abc", "/loans/borrowers/-1", "/archive/documents/1e3", "/postloan/loans/0x10",
                                  "/archive/lending/99999999999999999999", "/postloan/files/%00"])
def test_non_numeric_and_absurd_ids_are_not_found(app, client, org, path, login):
    login(client, "archivist")
    response = fetch(client, path)
    assert response.status_code == 404 and "does not exist" in response.get_data(as_text=True)


# --- ids beyond what a primary key holds --------------------------------------------------------

# Primary keys are INTEGER: 32 bits on PostgreSQL, which refuses a larger number in a comparison
# with one ("integer out of range"); beyond 64 bits no driver binds it.
HUGE_IDS = [2**31, 2**32 + 5, 2**63 - 1, 2**63, 10**30]


def test_ids_beyond_a_primary_key_are_not_found_on_every_route(app, org, csrf_token, login):
    """Every route with an ``<int:…>`` part, each such part set to each huge id (the others to
    an id that exists nowhere): 404 with the message, never a 500, on both databases."""
    from werkzeug.routing import IntegerConverter

    client = app.test_client()
    assert login(client, "archivist").status_code == 302
    token = csrf_token(client, "/")
    routes = [rule for rule in app.url_map.iter_rules()
              if any(isinstance(c, IntegerConverter) for c in rule._converters.values())]
    assert len(routes) > 40, "the URL map lost its routes with ids?"
    problems = []
    asked = 0
    for rule in routes:
        ints = [name for name, c in rule._converters.items() if isinstance(c, IntegerConverter)]
        others = {name: "approve" for name in rule.arguments if name not in ints}
        for name in ints:
            for huge in HUGE_IDS:
                values = {**{n: 1 for n in ints}, **others, name: huge}
                path = rule.rule
                for key, value in values.items():
                    path = re.sub(rf"<(?:[^:<>]+:)?{key}>", str(value), path)
                for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                    response = fetch(client, path, method, data={"csrf_token": token} if method == "POST" else None)
                    asked += 1
                    if response.status_code != 404 or "does not exist" not in response.get_data(as_text=True):
                        problems.append(f"{method} {path}: {response.status_code}")
    assert asked > 200
    assert not problems, f"{len(problems)} routes did not answer 404:\n  " + "\n  ".join(problems)


def test_huge_ids_in_forms_and_filters_name_no_record(app, world):
    """An id a primary key cannot hold, typed into a filter or a form field that names a record:
    ignored or refused with a message, never a 500."""
    clients = signed_in_clients(app, roles=("archivist", "branch_director", "loan_officer"))
    huge = str(2**31)
    problems = []
    # A filter is ignored (the page as without it); a page about an institution has none.
    for role, path, query, status in (
            ("loan_officer", "/loans/", {"branch": huge, "officer": huge}, 200),
            ("archivist", "/search/", {"q": "借款", "institution": huge}, 200),
            ("branch_director", "/postloan/inspections", {"view": "branch", "officer": huge}, 200),
            ("branch_director", "/postloan/warnings", {"branch": huge}, 200),
            ("branch_director", "/postloan/collection", {"officer": huge}, 200),
            ("branch_director", "/postloan/handovers/new", {"from": huge}, 200),
            ("archivist", f"/archive/borrowers/{world['B1'].borrower}/upload", {"loan": huge, "version_of": huge}, 200),
            ("archivist", "/archive/transfers/new", {"sender": huge}, 404),
            ("archivist", "/audit/completeness", {"institution": huge}, 404),
            ("archivist", "/audit/dashboard", {"institution": huge}, 404)):
        response = fetch(clients[role], path, query_string=query)
        if response.status_code != status:
            problems.append(f"GET {path} {query}: {response.status_code}, expected {status}")
    before = fingerprint(app)
    archivist, director = clients["archivist"], clients["branch_director"]
    for client, path, data in (
            (archivist, "/archive/lending/new", {"volume_id": huge, "document_ids": [huge], "medium": "digital",
                                                 "reason": "复核", "days": "5"}),
            (archivist, "/archive/holds", {"kind": "audit", "reason": "审计", "volume_id": huge}),
            (archivist, "/archive/transfers/new", {"sender": huge, "receiver": huge, "volume_ids": [huge]}),
            (archivist, f"/archive/destruction/{world['B1'].destruction_list}/add", {"document_ids": [huge]}),
            (archivist, f"/archive/documents/{world['B1'].doc_collected}/sort", {"loan": huge}),
            (archivist, f"/archive/borrowers/{world['B1'].borrower}/upload",
             {"doc_type": "loan_contract", "loan": "0", "version_of": huge,
              "files": [(io.BytesIO(pdf_bytes("huge version_of")), "a.pdf")]}),
            (archivist, "/audit/fixity/verify", {"institution": huge}),
            (director, "/postloan/handovers/new", {"from": huge, "to": huge, "loan": [huge], "reason": "离职"}),
            (director, "/audit/inspections/new", {"target": huge, "sample_size": "2"})):
        response = fetch(client, path, "POST", data={**data, "csrf_token": client.csrf},
                         content_type="multipart/form-data")
        if response.status_code >= 500:
            problems.append(f"POST {path} {data}: {response.status_code}")
    assert not problems, "\n  ".join(problems)
    assert fingerprint(app) == before, "a form naming no record changed the database"


def test_an_id_in_other_digits_names_no_record(app, client, org, login, make_loan):
    """Only ASCII digits make an id: the loan the archivist may see is not found by its id
    written in full-width or Arabic-Indic digits (which Python's ``int`` would read alike), so
    every record has exactly one address."""
    from portal.extensions import db

    with app.app_context():
        loan_id = make_loan(org.inst("B1"), org.user("officer")).id
        db.session.commit()
        db.session.remove()
    login(client, "archivist")
    assert fetch(client, f"/loans/{loan_id}").status_code == 200
    for digits in ("０１２３４５６７８９", "٠١٢٣٤٥٦٧٨٩"):
        other = "".join(digits[int(d)] for d in str(loan_id))
        response = fetch(client, f"/loans/{other}")
        assert response.status_code == 404 and "does not exist" in response.get_data(as_text=True), other
        response = fetch(client, "/loans/", query_string={"page": other, "officer": other})
        assert response.status_code == 200, other


def test_errors_asked_for_as_json_tell_no_more(app, world):
    """An API-style client (Accept: application/json) gets the same refusals as a browser, as
    JSON, and nothing of another branch: the portal has no JSON endpoints of its own."""
    import json

    client = signed_in_clients(app, roles=("loan_officer",))["loan_officer"]
    headers = {"Accept": "application/json"}
    b2 = world["B2"]
    for path in (f"/loans/{b2.loan}", f"/archive/documents/{b2.doc_archived}", f"/archive/documents/{b2.doc_archived}/open",
                 f"/archive/number/{b2.archive_number}", f"/loans/borrowers/{b2.borrower}", f"/loans/{2**31}"):
        response = fetch(client, path, headers=headers)
        assert response.status_code == 404 and response.mimetype == "application/json", (path, response.status_code)
        body = response.get_data(as_text=True)
        assert set(json.loads(body)) == {"error", "message", "details"}
        assert "邻社户" not in body and b2.contract not in body and b2.archive_number not in body, path
    assert fetch(client, "/org/users", headers=headers).status_code == 403
