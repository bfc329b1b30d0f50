"""Concurrency: two people doing the same step at the same moment. Exactly one wins; the other
is told plainly that the step was already taken (never a 500, never a double). Each race is
forced: every request has read the object before any of them writes it.

The gunicorn test at the end runs the real server with three workers: several clients upload
at once while every worker's search drainer indexes; afterwards `flask archive verify` and
`flask search verify` are clean and the row count is exact.
"""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.archive import destruction as destruction_svc
from portal.archive import lending as lending_svc
from portal.archive.models import DestructionList, Lending
from portal.audit_trail import AuditEvent
from portal.extensions import db

from tests.archive.archive_helpers import archived_documents, make_archive_setup
from tests.helpers.factories import PASSWORD
from tests.helpers.files import docx_bytes, pdf_bytes
from tests.loans.loans_helpers import resident_id

from .resilience_helpers import free_port, hold_at, proposed_destruction_list, race

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def signed_in(app, login):
    """``signed_in(*usernames)``: a test client for each, signed in as that user."""
    def make(*usernames):
        clients = []
        for name in usernames:
            client = app.test_client()
            assert login(client, name).status_code in (302, 303)
            clients.append(client)
        return clients
    return make


def events(app, action: str, object_id: int) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == action, AuditEvent.object_id == str(object_id))).scalar_one()


@pytest.fixture()
def post_all(csrf_token):
    """``post_all(clients, path, page, data=None)``: each client's POST to ``path``, fired
    together; CSRF tokens fetched beforehand from ``page``."""
    def make(clients, path: str, page: str, data: dict | None = None):
        calls = []
        for client in clients:
            form = {"csrf_token": csrf_token(client, page), **(data or {})}
            calls.append(lambda client=client, form=form: client.post(path, data=form))
        return race(calls)
    return make


def one_winner(responses, loser_status: int, loser_text: str):
    statuses = sorted(r.status_code for r in responses)
    assert statuses == sorted([303, loser_status]), [(r.status_code, r.get_data(as_text=True)[:300])
                                                      for r in responses]
    loser = next(r for r in responses if r.status_code != 303)
    page = loser.get_data(as_text=True)
    assert loser_text in page and "Traceback" not in page
    return loser


# --- lending --------------------------------------------------------------------------------

def requested_lending(app, setup) -> int:
    from portal.archive import lending
    from portal.archive.models import Document, Volume

    volume_id, ids = archived_documents(app, setup, 1)
    with app.app_context():
        lend = lending.request_lending(setup.org.user("officer"), db.session.get(Volume, volume_id),
                                       [db.session.get(Document, ids[0])], medium="digital",
                                       reason="贷后检查需要查阅借款合同", days=7)
        db.session.commit()
        return lend.id


def test_two_approvers_of_one_lending_request(app, local_store, setup, monkeypatch, signed_in, post_all):
    lending_id = requested_lending(app, setup)
    director, archivist = signed_in("director", "archivist")
    hold_at(monkeypatch, lending_svc, "get_lending_or_404", 2)
    responses = post_all([director, archivist], f"/archive/lending/{lending_id}/approve", "/archive/")
    one_winner(responses, 409, "this step is not possible now")
    with app.app_context():
        lending = db.session.get(Lending, lending_id)
        assert lending.state == "approved" and lending.decided_by_id is not None
    assert events(app, "archive.lending_approve", lending_id) == 1


def test_approve_and_refuse_of_one_lending_request_at_once(app, local_store, setup, monkeypatch, signed_in, csrf_token):
    lending_id = requested_lending(app, setup)
    director, archivist = signed_in("director", "archivist")
    hold_at(monkeypatch, lending_svc, "get_lending_or_404", 2)
    responses = race([
        lambda: director.post(f"/archive/lending/{lending_id}/approve",
                              data={"csrf_token": csrf_token(director, "/archive/")}),
        lambda: archivist.post(f"/archive/lending/{lending_id}/refuse",
                               data={"csrf_token": csrf_token(archivist, "/archive/"), "note": "理由不充分"}),
    ])
    one_winner(responses, 409, "this step is not possible now")
    with app.app_context():
        state = db.session.get(Lending, lending_id).state
    decided = events(app, "archive.lending_approve", lending_id) + events(app, "archive.lending_refuse", lending_id)
    assert state in ("approved", "refused") and decided == 1


# --- destruction lists -----------------------------------------------------------------------

def test_two_approvers_of_one_destruction_list(app, local_store, setup, monkeypatch, signed_in, post_all):
    list_id = proposed_destruction_list(app, setup)
    director, county_director = signed_in("director", "county_director")
    hold_at(monkeypatch, destruction_svc, "get_list_or_404", 2)
    responses = post_all([director, county_director], f"/archive/destruction/{list_id}/approve", "/archive/")
    one_winner(responses, 409, "this step is not possible now")
    with app.app_context():
        assert db.session.get(DestructionList, list_id).state == "approved"
    assert events(app, "archive.destruction_approve", list_id) == 1


def approved_destruction_list(app, setup) -> int:
    from portal.archive import destruction

    list_id = proposed_destruction_list(app, setup)
    with app.app_context():
        destruction.approve_destruction(setup.org.user("director"), db.session.get(DestructionList, list_id))
        db.session.commit()
    return list_id


def test_two_supervisors_of_one_department_confirm_at_once(app, local_store, setup, monkeypatch, signed_in, post_all):
    """Both from 信贷部: only one may supervise; the other is told a second department is needed."""
    list_id = approved_destruction_list(app, setup)
    officer, director = signed_in("officer", "director")
    hold_at(monkeypatch, destruction_svc, "get_list_or_404", 2)
    responses = post_all([officer, director], f"/archive/destruction/{list_id}/confirm", "/archive/")
    one_winner(responses, 403, "another department")
    with app.app_context():
        dl = db.session.get(DestructionList, list_id)
        assert dl.state == "approved" and dl.supervisor1_id is not None and dl.supervisor2_id is None
    assert events(app, "archive.destruction_supervise", list_id) == 1


def test_two_supervisors_of_two_departments_confirm_at_once(app, local_store, setup, monkeypatch, signed_in, post_all):
    """信贷部 and 风险管理部 at the same moment: one becomes the first supervisor, the other the
    second; neither confirmation is lost or overwritten."""
    list_id = approved_destruction_list(app, setup)
    officer, post_loan = signed_in("officer", "post_loan")
    hold_at(monkeypatch, destruction_svc, "get_list_or_404", 2)
    responses = post_all([officer, post_loan], f"/archive/destruction/{list_id}/confirm", "/archive/")
    assert [r.status_code for r in responses] == [303, 303]
    with app.app_context():
        dl = db.session.get(DestructionList, list_id)
        assert dl.state == "confirmed"
        assert {dl.supervisor1_department, dl.supervisor2_department} == {"信贷部", "风险管理部"}
        summaries = sorted(e.summary["supervisor"] for e in db.session.execute(select(AuditEvent).where(
            AuditEvent.action == "archive.destruction_supervise",
            AuditEvent.object_id == str(list_id))).scalars())
    assert summaries == [1, 2]


def test_two_archivists_execute_one_list_at_once(app, local_store, setup, monkeypatch, signed_in, post_all):
    from portal.archive import destruction
    from portal.archive.models import ListFile

    list_id = approved_destruction_list(app, setup)
    with app.app_context():
        dl = db.session.get(DestructionList, list_id)
        destruction.confirm_destruction(setup.org.user("officer"), dl)
        destruction.confirm_destruction(setup.org.user("post_loan"), dl)
        db.session.commit()
    archivist, county_archivist = signed_in("archivist", "county_archivist")
    hold_at(monkeypatch, destruction_svc, "get_list_or_404", 2)
    responses = post_all([archivist, county_archivist], f"/archive/destruction/{list_id}/execute", "/archive/")
    one_winner(responses, 409, "Only a list confirmed by two supervisors is executed")
    with app.app_context():
        assert db.session.get(DestructionList, list_id).state == "executed"
        list_files = db.session.execute(select(func.count()).select_from(ListFile)).scalar_one()
        keys = set(db.session.execute(select(ListFile.object_key)).scalars())
    assert list_files == 1                        # one destruction list PDF, kept for good
    assert set(local_store.iter_keys()) == keys   # the loser's PDF left no orphan behind


# --- loan import -------------------------------------------------------------------------------

def loan_file(count: int) -> bytes:
    """A CSV loan file of ``count`` new loans of branch B1, headers as the import page documents them."""
    from portal.loans.importing.columns import COLUMNS

    header = {c.key: c.header_zh for c in COLUMNS}
    keys = ["contract_no", "borrower_name", "id_number", "branch_code", "product", "guarantee_type", "amount",
            "balance", "rate", "disbursed_on", "maturity_on", "officer"]
    lines = [",".join(header[k] for k in keys)]
    for n in range(1, count + 1):
        lines.append(",".join([f"HT-RACE-{n:03d}", f"借款人{n}", resident_id(n), "B1", "农户小额信用贷款", "信用",
                               "50000", "50000", "5.25", "2024-03-01", "2025-03-01", "officer"]))
    return ("\n".join(lines) + "\n").encode("utf-8")


def test_two_imports_of_one_loan_file_at_once(app, org, monkeypatch, signed_in, csrf_token):
    from portal.loans.importing import apply
    from portal.loans.models import Loan

    data = loan_file(20)
    director, county_director = signed_in("director", "county_director")
    hold_at(monkeypatch, apply, "apply_import", 2, before=True)  # both files checked before either is written
    calls = []
    for client in (director, county_director):
        token = csrf_token(client, "/loans/import")
        calls.append(lambda client=client, token=token: client.post(
            "/loans/import", data={"csrf_token": token, "file": (io.BytesIO(data), "贷款台账.csv")},
            content_type="multipart/form-data"))
    responses = race(calls)
    pages = [r.get_data(as_text=True) for r in responses]
    assert sorted(r.status_code for r in responses) == [200, 422], [p[:500] for p in pages]
    loser = pages[[r.status_code for r in responses].index(422)]
    assert "Another import changed some of these loans" in loser and "Traceback" not in loser
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(Loan)).scalar_one() == 20
        assert db.session.execute(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "loan.import")).scalar_one() == 1


# --- several gunicorn workers uploading and indexing at once ----------------------------------------

class Browser:
    """A signed-in user of the served portal: cookies and CSRF tokens, as a browser keeps them."""

    def __init__(self, base: str) -> None:
        import http.cookiejar

        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def request(self, path: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
        import urllib.error

        req = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with self.opener.open(req, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def token(self, path: str) -> str:
        status, body = self.request(path)
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', body.decode())
        assert status == 200 and match, (path, status)
        return match.group(1)

    def sign_in(self, username: str) -> None:
        from urllib.parse import urlencode

        form = {"csrf_token": self.token("/login"), "username": username, "password": PASSWORD}
        status, body = self.request("/login", urlencode(form).encode(),
                                    {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200 and b"Sign out" in body, (username, status)

    def upload(self, borrower_id: int, name: str, content: bytes, doc_type: str) -> tuple[int, dict]:
        path = f"/archive/borrowers/{borrower_id}/upload"
        boundary = uuid.uuid4().hex
        fields = {"csrf_token": self.token(path), "doc_type": doc_type, "loan": "0"}
        body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                        for k, v in fields.items())
        body += (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
        status, reply = self.request(path, body, {"Content-Type": f"multipart/form-data; boundary={boundary}",
                                                  "Accept": "application/json"})
        return status, json.loads(reply or b"{}")


def start_gunicorn(app, workers: int, log: Path) -> tuple[subprocess.Popen, str]:
    """``gunicorn -w N wsgi:app`` on a free loopback port, configured like production over the
    app's database and instance folder; skipped, with the reason, if it cannot start."""
    binary = Path(sys.executable).parent / "gunicorn"
    if not binary.exists():
        pytest.skip("SKIPPING the gunicorn test — gunicorn is not installed in the virtualenv")
    port = free_port()
    env = {**os.environ, "XINDANG_CONFIG": "production", "XINDANG_SECURE_COOKIES": "false",
           "XINDANG_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "XINDANG_INSTANCE_DIR": app.config["XINDANG_INSTANCE_DIR"], "XINDANG_DEFAULT_LOCALE": "en",
           "XINDANG_SEARCH_DRAIN_INTERVAL": "0.5", "XINDANG_LOGIN_RATE_LIMIT": "1000 per minute"}
    with open(log, "wb") as out:
        process = subprocess.Popen([str(binary), "-w", str(workers), "-b", f"127.0.0.1:{port}", "--timeout", "60",
                                    "wsgi:app"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return process, base
        except OSError:
            time.sleep(0.2)
    process.kill()
    process.wait()
    pytest.skip("SKIPPING the gunicorn test — gunicorn did not start:\n" + log.read_text(errors="replace")[-3000:])


def test_gunicorn_workers_upload_and_index_at_once(deployments, tmp_path):
    from portal.archive.models import Document
    from portal.search.models import SearchQueue

    served = deployments.new("served")
    setup = make_archive_setup(served)
    uploaders = ["officer", "director", "archivist", "county_archivist"]
    per_user = 4
    process, base = start_gunicorn(served, 3, tmp_path / "gunicorn.log")
    try:
        browsers = []
        for name in uploaders:
            browser = Browser(base)
            browser.sign_in(name)
            browsers.append(browser)

        def work(browser, name):
            results = []
            for i in range(per_user):
                if i % 2:
                    content, file_name, doc_type = docx_bytes(f"{name}的贷后检查记录第{i}号"), f"检查{i}.docx", \
                        "inspection_report"
                else:
                    content, file_name, doc_type = pdf_bytes(f"{name}-{i}"), f"借款合同{i}.pdf", "loan_contract"
                results.append(browser.upload(setup.borrower_id, file_name, content, doc_type))
            return results

        started = time.monotonic()
        outcomes = race([lambda b=b, n=n: work(b, n) for b, n in zip(browsers, uploaders)])
        elapsed = time.monotonic() - started
        statuses = [status for results in outcomes for status, _reply in results]
        assert statuses == [201] * len(uploaders) * per_user, outcomes
        total = len(statuses)

        # Every worker's drainer indexes; wait until the queue is empty.
        deadline = time.monotonic() + 60
        while True:
            with served.app_context():
                queued = db.session.execute(select(func.count()).select_from(SearchQueue)).scalar_one()
                db.session.remove()
            if queued == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert queued == 0, f"{queued} index changes still queued after 60 s"
    finally:
        process.terminate()
        process.wait(30)
    log = (tmp_path / "gunicorn.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    with served.app_context():
        assert db.session.execute(select(func.count()).select_from(Document)).scalar_one() == total
        assert db.session.execute(select(func.count()).select_from(AuditEvent)
                                  .where(AuditEvent.action == "archive.collect")).scalar_one() == total
    runner = served.test_cli_runner()
    fixity = runner.invoke(args=["archive", "verify", "--json", "--quiet"])
    assert fixity.exit_code == 0 and json.loads(fixity.output)["objects_checked"] == total, fixity.output
    search = runner.invoke(args=["search", "verify", "--json"])
    assert search.exit_code == 0 and json.loads(search.output)["indexed"] == total, search.output
    chain = runner.invoke(args=["audit", "verify-log"])
    assert chain.exit_code == 0, chain.output
    print(f"{total} uploads by {len(uploaders)} users over 3 gunicorn workers in {elapsed:.1f} s")


