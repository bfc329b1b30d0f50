"""Browser journeys: the portal served on a free loopback port from a thread of the test
process, against the session's test database, driven by headless Chromium through Playwright.

- ``browser`` (per process): Debian's ``/usr/bin/chromium``, never a downloaded one. Without it
  (or without Playwright) the journeys are skipped with the reason; with ``CI=true`` they fail.
- ``live_server`` (per process): werkzeug's threaded server around the session ``app``.
- ``portal`` (per test): a fresh object store and search index folder, a search queue drainer
  running beside the server as the portal's own would, and ``portal.sign_in(username)`` giving a
  page in a new browser context (its own cookies) signed in through the login form in English.
  Every page's console errors and uncaught script errors fail the test (a CSP violation shows
  there). Each user's final page of each journey is saved under ``test-artifacts/e2e/`` as
  ``<test>-<database>-<user>.png`` (``FAILED-`` before the user's name when the test failed).

This directory is a package (``__init__.py``) so that this conftest does not shadow the
top-level ``conftest`` module that test files import helpers from.
"""
from __future__ import annotations

import io
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from portal.archive.storage import LocalStore
from portal.extensions import db

from conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
TIMEOUT_MS = 20_000


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
    expect.set_options(timeout=TIMEOUT_MS)  # a PDF rendered in the request takes seconds on a busy machine
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # one line per request drowns a failure's report
        pass


@pytest.fixture(scope="session")
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="e2e-portal", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


class SearchDrainer:
    """What the portal's own drainer thread does (``portal.search.queue``), but stoppable: the
    session's app is shared with other tests of this process, which must not find it running."""

    def __init__(self, app):
        self.app = app
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, name="e2e-search-drainer", daemon=True)

    def _run(self) -> None:
        from portal.search.queue import drain, work_available

        while not self.stop.is_set():
            work_available.wait(timeout=0.3)
            work_available.clear()
            with self.app.app_context():
                try:
                    drain(max_seconds=10, batch=200, lock_timeout=1)
                except Exception as exc:  # noqa: BLE001 - reported by the test, as the portal would log it
                    self.errors.append(f"{exc.__class__.__name__}: {exc}")
                finally:
                    db.session.remove()

    def wait_until_idle(self, timeout: float = 30) -> None:
        """Until the search queue is empty (the portal drains it within seconds of a commit)."""
        from portal.search.queue import queue_length, work_available

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.app.app_context():
                left = queue_length()
                db.session.remove()
            if left == 0:
                return
            work_available.set()
            time.sleep(0.1)
        raise AssertionError(f"the search queue still holds {left} rows after {timeout} s; errors: {self.errors}")


@dataclass
class Portal:
    """The running portal and the pages the test opened on it."""

    base_url: str
    browser: object
    app: object
    drainer: SearchDrainer
    name: str
    pages: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)

    def new_page(self, label: str):
        context = self.browser.new_context(base_url=self.base_url, accept_downloads=True, locale="zh-CN",
                                           viewport={"width": 1400, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
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
        page = self.new_page(username)
        page.goto("/login")
        page.get_by_role("button", name="English").click()
        page.get_by_label("User name").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        assert page.get_by_role("button", name="Sign out").is_visible(), page.content()[:2000]
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
            link.click()
            deadline = time.monotonic() + TIMEOUT_MS / 1000
            while not received and time.monotonic() < deadline:
                page.wait_for_timeout(50)
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
    drainer = SearchDrainer(app)
    drainer.thread.start()
    running = Portal(live_server, browser, app, drainer, _slug(request.node.nodeid))
    for old in ARTIFACTS.glob(f"{running.name}-*.png"):  # an earlier run's pages
        old.unlink()
    try:
        yield running
    finally:
        prefix = "FAILED-" if getattr(request.node, "e2e_failed", True) else ""
        for label, page in running.pages.items():  # each user's final page
            try:
                running.screenshot(page, prefix + label)
            except Exception:  # noqa: BLE001 - a crashed page has nothing to show
                pass
        for page in running.pages.values():
            page.context.close()
        drainer.stop.set()
        drainer.thread.join(timeout=15)
        app.extensions["xindang_storage"] = previous_store
    assert not running.problems, "the browser reported errors:\n" + "\n".join(running.problems)
    assert not drainer.errors, "the search drainer failed:\n" + "\n".join(drainer.errors)


# --- what the journeys download ------------------------------------------------------------------

def pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    assert data.startswith(b"%PDF-"), data[:200]
    return "".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


def docx_text(data: bytes) -> str:
    import docx

    return "\n".join(p.text for p in docx.Document(io.BytesIO(data)).paragraphs)


def docx_bytes(*paragraphs: str) -> bytes:
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
