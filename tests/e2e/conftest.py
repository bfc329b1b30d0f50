"""Browser journeys: the portal served on a free loopback port from threads of the test
process, against the session's test database, driven by headless Chromium through Playwright.

Made to hold on a loaded 2-core machine (``make test`` runs them on both databases):

- every wait is one of Playwright's auto-waiting expectations or actions, bounded by
  ``STEP_TIMEOUT_MS`` (generous: a step that takes seconds alone can take ten times longer
  under load); no fixed sleeps, no reads of a page that may not have loaded yet;
- nothing runs in the background: the search queue is drained in the test, when the journey
  is about to search (``portal.index_now``), not by a thread racing the pages;
- what is slow the first time in a process (the Chinese analyzer's dictionary, WeasyPrint's
  fonts) is loaded before the first journey, and the server answers ``/healthz`` before a
  browser is pointed at it;
- a test ends only when the server has finished every request of its pages, so the next
  test's emptying of the tables never meets a request still running.

Fixtures:

- ``browser`` (per process): Debian's ``/usr/bin/chromium``, never a downloaded one. Without it
  (or without Playwright) the journeys are skipped with the reason; with ``CI=true`` they fail.
- ``live_server`` (per process): werkzeug's threaded server around the session ``app``.
- ``portal`` (per test): a fresh object store and search index folder, and
  ``portal.sign_in(username)`` giving a page in a new browser context (its own cookies) signed
  in through the login form in English. Every page's console errors and uncaught script errors
  fail the test (a CSP violation shows there). Each user's final page of each journey is saved
  under ``test-artifacts/e2e/`` as ``<test>-<database>-<user>.png`` (``FAILED-`` before the
  user's name when the test failed); a failed test's report lists the slowest requests.
"""
from __future__ import annotations

import os
import re
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wsgi import ClosingIterator

from portal.archive.storage import LocalStore
from portal.extensions import db

from tests.helpers.factories import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
# One step: an expectation, a click, a page load, a download. Alone on the machine the slowest
# (a PDF rendered in the request, a page of a fresh process) takes about a second.
STEP_TIMEOUT_MS = 60_000
SERVER_IDLE_TIMEOUT_S = 15


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail("browser journeys cannot run on CI: " + reason, pytrace=False)
    pytest.skip("SKIPPING browser journeys — " + reason)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (Debian package `chromium`; `make system-deps` installs it)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install -e '.[dev]')")
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class RequestsInFlight:
    """What the server is doing: the connections being served (by their thread, labelled with
    their request) and how long each request took. Counted around the handler's whole
    connection, not around the WSGI response: werkzeug skips closing a response whose client
    went away, so a count kept there would never come back to zero."""

    def __init__(self) -> None:
        self.running: dict[int, str] = {}
        self.idle = threading.Condition()
        self.times: list[tuple[float, str]] = []

    def connection(self, serve) -> None:
        me = threading.get_ident()
        with self.idle:
            self.running[me] = "a connection"
        try:
            serve()
        finally:
            with self.idle:
                self.running.pop(me, None)
                self.idle.notify_all()

    def middleware(self, app):
        def timed(environ, start_response):
            label = f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}"
            started = time.monotonic()
            with self.idle:
                self.running[threading.get_ident()] = label
            return ClosingIterator(app(environ, start_response),
                                   lambda: self.times.append((time.monotonic() - started, label)))
        return timed

    def wait_until_idle(self, timeout: float) -> None:
        with self.idle:
            if not self.idle.wait_for(lambda: not self.running, timeout=timeout):
                raise AssertionError(f"the server still serves {sorted(self.running.values())} after {timeout} s")

    def slowest(self, n: int = 8) -> str:
        return ", ".join(f"{label} {seconds:.1f} s" for seconds, label in sorted(self.times, reverse=True)[:n])


def _request_handler(requests: RequestsInFlight):
    class CountedQuietRequestHandler(WSGIRequestHandler):
        def handle(self) -> None:
            requests.connection(super().handle)

        def log_request(self, *args, **kwargs) -> None:  # a line per request drowns a failure's report
            pass

    return CountedQuietRequestHandler


@dataclass
class LiveServer:
    url: str
    requests: RequestsInFlight


def _warm_up(app) -> None:
    """Load now what the first search, upload or PDF of a process would load inside a timed
    step: the Chinese analyzer's dictionary, and WeasyPrint with its fonts."""
    from weasyprint import HTML

    from portal.search.analysis import get_analyzer

    with app.app_context():
        get_analyzer(app.config.get("XINDANG_SEARCH_DICTIONARY_EXTRA"))
    HTML(string="<p>借款合同 warm-up</p>").write_pdf()


def _wait_until_answering(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=10) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the portal at {url} did not answer /healthz within {timeout} s")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def live_server(app):
    _warm_up(app)
    requests = RequestsInFlight()
    server = make_server("127.0.0.1", 0, requests.middleware(app), threaded=True,
                         request_handler=_request_handler(requests))
    thread = threading.Thread(target=server.serve_forever, name="e2e-portal", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    _wait_until_answering(url)
    yield LiveServer(url, requests)
    server.shutdown()
    thread.join(timeout=10)


@dataclass
class Portal:
    """The running portal and the pages the test opened on it."""

    server: LiveServer
    browser: object
    app: object
    name: str
    pages: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)

    def index_now(self, timeout: float = 120) -> None:
        """Index what the journey's pages changed, here and now, as the portal's own drainer
        does within seconds of each change (a thread doing it would race the journey)."""
        from portal.search.queue import drain, queue_length

        deadline = time.monotonic() + timeout
        with self.app.app_context():
            try:
                while True:
                    result = drain(lock_timeout=10)
                    assert not result.errors, f"indexing failed: {result.errors}"
                    left = queue_length()
                    if left == 0:
                        return
                    assert time.monotonic() < deadline, f"the search queue still holds {left} rows after {timeout} s"
            finally:
                db.session.remove()

    def new_page(self, label: str):
        context = self.browser.new_context(base_url=self.server.url, accept_downloads=True, locale="zh-CN",
                                           viewport={"width": 1400, "height": 900})
        context.set_default_timeout(STEP_TIMEOUT_MS)
        page = context.new_page()
        page.on("console", lambda msg: self._console(label, msg))
        page.on("pageerror", lambda exc: self.problems.append(f"{label}: script error: {exc}"))
        # Buttons with data-confirm ask first (portal/static/js/archive.js): the user agrees.
        page.on("dialog", lambda dialog: dialog.accept())
        self.pages[label] = page
        return page

    def _console(self, label: str, message) -> None:
        # An error status (a 404 favicon, a 422 form) is logged too; the journeys check statuses
        # through what the page shows. Everything else (a refused script or style, a script
        # error) is a fault of the page.
        if message.type == "error" and not message.text.startswith("Failed to load resource: the server responded"):
            self.problems.append(f"{label}: console: {message.text}")

    def sign_in(self, username: str, password: str = PASSWORD):
        """A new browser for this user: the login page, English chosen, the form filled and sent."""
        from playwright.sync_api import expect

        page = self.new_page(username)
        page.goto("/login")
        page.get_by_role("button", name="English").click()
        page.get_by_label("User name").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        return page

    def open_pdf(self, page, link) -> bytes:
        """Click a link to a PDF the browser shows inline; returns the bytes the browser received
        (Chromium's viewer wraps the file in a page of its own, so they are taken off the wire)."""
        received: list[bytes] = []

        def keep_pdf(route):
            response = route.fetch()
            if response.headers.get("content-type", "").startswith("application/pdf"):
                received.append(response.body())
            route.fulfill(response=response)

        page.route("**/*", keep_pdf)
        try:
            with page.expect_response(lambda r: r.headers.get("content-type", "").startswith("application/pdf")):
                link.click()
        finally:
            page.unroute("**/*", keep_pdf)
        assert received, f"no PDF arrived after clicking {link}"
        return received[0]

    def download(self, page, link) -> tuple[str, bytes]:
        """Click a link the browser saves as a file; returns its suggested name and its bytes."""
        with page.expect_download() as info:
            link.click()
        download = info.value
        return download.suggested_filename, Path(download.path()).read_bytes()

    def screenshot(self, page, suffix: str = "") -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}{('-' + suffix) if suffix else ''}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


def _slug(nodeid: str) -> str:
    db_name = os.environ.get("XINDANG_TEST_DB", "sqlite")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.rsplit("::", 1)[-1]) + f"-{db_name}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.e2e_failed = report.failed


@pytest.fixture()
def portal(request, app, live_server, browser, tmp_path, monkeypatch):
    # A fresh store and index for this test (the app is shared by the whole session).
    monkeypatch.setitem(app.config, "XINDANG_SEARCH_INDEX_DIR", str(tmp_path / "search_index"))
    previous_store = app.extensions["xindang_storage"]
    app.extensions["xindang_storage"] = LocalStore(tmp_path / "objects")
    with app.app_context():  # an index already open and empty, as in a running portal
        from portal.search.index import current_index
        index = current_index()
        index.open()
        index.rebuild_enqueued()
    live_server.requests.times.clear()
    running = Portal(live_server, browser, app, _slug(request.node.nodeid))
    for old in ARTIFACTS.glob(f"{running.name}-*.png"):  # an earlier run's pages
        old.unlink()
    try:
        yield running
    finally:
        failed = getattr(request.node, "e2e_failed", True)
        prefix = "FAILED-" if failed else ""
        for label, page in running.pages.items():  # each user's final page
            try:
                running.screenshot(page, prefix + label)
            except Exception:  # noqa: BLE001 - a crashed page has nothing to show
                pass
        for page in running.pages.values():
            page.context.close()
        # Before the tables are emptied for the next test: no request of these pages still runs.
        live_server.requests.wait_until_idle(SERVER_IDLE_TIMEOUT_S)
        app.extensions["xindang_storage"] = previous_store
        if failed:
            print("slowest requests:", live_server.requests.slowest())
    assert not running.problems, "the browser reported errors:\n" + "\n".join(running.problems)
