"""What the security tests share: signing in as each role, sending a matrix case, the
database's fingerprint, and the checks every response gets (another place's names on the page;
security headers; inline script)."""
from __future__ import annotations

import hashlib
import io
import zipfile
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import func, select

from portal.extensions import db

from tests.helpers.web import csrf_token, login

from .matrix import Case
from .world import CONTRACT_PREFIX, MARKERS, PLACES, ROLE_USERS, ROLES, visible

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def url_map_routes(app) -> list[tuple[str, str, str]]:
    return sorted((rule.endpoint, method, rule.rule) for rule in app.url_map.iter_rules()
                  for method in rule.methods - IGNORED_METHODS)


def signed_in_clients(app, roles=ROLES) -> dict[str, object]:
    clients = {}
    for role in roles:
        client = app.test_client()
        response = login(client, ROLE_USERS[role])
        assert response.status_code == 302, f"{role} could not sign in"
        client.csrf = csrf_token(client, "/")
        clients[role] = client
    return clients


def places_of(case: Case) -> tuple[str | None, ...]:
    return PLACES if case.scoped or case.per_place else (None,)


def expected(case: Case, role: str, place: str | None) -> frozenset[int]:
    hidden_place = case.scoped and place is not None and not case.sees(role, place)
    if role not in case.allowed:
        return frozenset({403, 404}) if hidden_place else case.denied
    if hidden_place:
        return case.hidden
    return case.expected_ok


def send(client, case: Case, world, place: str | None, role: str, *, token: bool = True):
    path = case.url(world, place, ROLE_USERS[role])
    if case.method == "GET":
        response = client.get(path)
        response.sent = {}
    else:
        data = dict(case.data(world, place)) if case.data else {}
        if token:
            data["csrf_token"] = client.csrf
        response = client.post(path, data=data, content_type="multipart/form-data")
        response.sent = data
    response.get_data()  # a streamed file is read to its end, inside its request
    response.close()
    return path, response


def leaks(body: str, role: str, path: str, sent: dict | None = None) -> list[str]:
    """Other places' borrower names or contract numbers on a page shown to ``role``, besides
    what the user typed (a query is echoed in its search box, a refused number in its message)."""
    typed = [value for _name, value in parse_qsl(urlsplit(path).query)]
    typed += [v for v in (sent or {}).values() if isinstance(v, str)]
    for value in typed:
        body = body.replace(value, "")
    found = []
    for place in PLACES:
        if not visible(role, place):
            found += [m for m in (MARKERS[place], CONTRACT_PREFIX[place]) if m in body]
    return found


def fingerprint(app) -> str:
    """A digest of every row of every table: equal digests, nothing changed."""
    digest = hashlib.sha256()
    with app.app_context():
        for table in db.metadata.sorted_tables:
            rows = sorted(repr(tuple(row)) for row in db.session.execute(select(table)))
            digest.update(f"{table.name}:{len(rows)}:".encode())
            for row in rows:
                digest.update(row.encode())
        db.session.remove()
    return digest.hexdigest()


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def content_text(response, rendered_pdfs: list[str]) -> str:
    """What a user reads in the response: a page's HTML, a spreadsheet's cells, or the HTML a
    PDF made during this request was rendered from (``fast_pdfs``)."""
    if response.mimetype == "text/html":
        return response.get_data(as_text=True)
    if response.mimetype == XLSX:
        with zipfile.ZipFile(io.BytesIO(response.get_data())) as book:
            return "".join(book.read(n).decode("utf-8", "replace") for n in book.namelist() if n.endswith(".xml"))
    if response.mimetype == "application/pdf":
        return "".join(rendered_pdfs)
    return ""


def row_counts(app) -> tuple[int, ...]:
    """Rows per table, in one query (cheaper than ``fingerprint``, for a check per route)."""
    with app.app_context():
        counts = select(*[select(func.count()).select_from(t).scalar_subquery() for t in db.metadata.sorted_tables])
        row = tuple(db.session.execute(counts).one())
        db.session.remove()
    return row


def check(case: Case, role: str, place: str | None, path: str, response, problems: list[str],
          rendered_pdfs: list[str] | None = None) -> None:
    want = expected(case, role, place)
    where = f"{case.label} as {role} for {place or '-'} ({path})"
    if response.status_code not in want:
        problems.append(f"{where}: {response.status_code}, expected {sorted(want)}")
        return
    found = leaks(content_text(response, rendered_pdfs or []), role, path, response.sent)  # refusals' too
    if found:
        problems.append(f"{where}: {response.status_code} shows {found} of a place outside the user's subtree")


def fetch(client, path: str, method: str = "GET", **kwargs):
    """The response, read to its end and closed (a streamed file runs inside its request)."""
    response = client.open(path, method=method, **kwargs)
    response.get_data()
    response.close()
    return response


# --- headers and inline script -----------------------------------------------------------------

# Shown inside the document page's frame, so framed by the portal itself (never by others).
FRAMED_BY_THE_PORTAL = {"archive.document_open", "archive.object_download"}


class _PageScan(HTMLParser):
    """Inline <script> blocks, on*= handlers and javascript: URLs in a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        if tag == "script":
            self._in_script = True
            if not names.get("src"):
                self.problems.append("an inline <script> block")
        for name, value in attrs:
            if name.lower().startswith("on"):
                self.problems.append(f"<{tag} {name}=…>")
            if name.lower() in ("href", "src", "action", "formaction") and \
                    (value or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}=\"javascript:…\">")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.problems.append("script text inside a <script src> element")


def _policy(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = [w.lower() for w in words[1:]]
    return directives


def header_problems(endpoint: str, response) -> list[str]:
    problems = []
    csp = response.headers.get("Content-Security-Policy")
    if not csp:
        return ["no Content-Security-Policy"]
    policy = _policy(csp)
    scripts = policy.get("script-src", policy.get("default-src"))
    if scripts is None:
        problems.append("no script-src or default-src")
    elif {"'unsafe-inline'", "'unsafe-eval'", "*", "data:"} & set(scripts):
        problems.append(f"script-src allows {scripts}")
    if policy.get("object-src", policy.get("default-src")) not in (["'none'"], ["'self'"]):
        problems.append(f"object-src {policy.get('object-src')}")
    if response.headers.get("X-Content-Type-Options") != "nosniff":
        problems.append("no X-Content-Type-Options: nosniff")
    framing = (policy.get("frame-ancestors"), response.headers.get("X-Frame-Options"))
    allowed = [(["'none'"], "DENY")] + ([(["'self'"], "SAMEORIGIN")] if endpoint in FRAMED_BY_THE_PORTAL else [])
    if framing not in allowed:
        problems.append(f"framing: frame-ancestors {policy.get('frame-ancestors')}, "
                        f"X-Frame-Options {response.headers.get('X-Frame-Options')}")
    return problems


def page_problems(response) -> list[str]:
    if response.mimetype != "text/html":
        return []
    scan = _PageScan()
    scan.feed(response.get_data(as_text=True))
    return scan.problems


def security_problems(endpoint: str, response) -> list[str]:
    return header_problems(endpoint, response) + page_problems(response)
