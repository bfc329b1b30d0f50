"""`flask archive ingest` for scanning stations and `flask archive verify [--json]`: clean, then a
checksum mismatch after an object is changed behind the portal's back, then an orphan after a
row is removed; exit status non-zero on any problem."""
import io
import json

from sqlalchemy import delete, select

from portal.archive.models import Document, FixityRun
from portal.archive.storage import LocalStore
from portal.extensions import db

from tests.helpers.files import pdf_bytes

from .archive_helpers import PNG_BYTES


def _ingest(runner, paths, contract_no, user="officer", doc_type="loan_contract", *extra):
    return runner.invoke(args=["archive", "ingest", *map(str, paths), "--loan", contract_no, "--type", doc_type,
                               "--user", user, *extra])


def test_ingest_stores_files_and_reports_refusals(app, runner, store, setup, tmp_path):
    good = tmp_path / "扫描 001.pdf"
    good.write_bytes(pdf_bytes())
    image = tmp_path / "he tong.png"
    image.write_bytes(PNG_BYTES)
    bad = tmp_path / "notes.pdf"
    bad.write_text("not a pdf")
    result = _ingest(runner, [good, image, bad, good], setup.contract_no)
    assert result.exit_code == 1
    assert "stored" in result.output and "REFUSED" in result.output
    assert "it is plain text" in result.output          # what was received
    assert "already in this credit file" in result.output  # the duplicate
    with app.app_context():
        docs = db.session.execute(select(Document).order_by(Document.id)).scalars().all()
        assert [d.original_name for d in docs] == ["扫描 001.pdf", "he tong.png"]
        assert {d.source for d in docs} == {"ingest"} and {d.loan_id for d in docs} == {setup.loan_id}
    assert len(list(store.iter_keys())) == 2


def test_ingest_respects_the_users_scope_and_role(app, runner, store, setup, tmp_path):
    path = tmp_path / "a.pdf"
    path.write_bytes(pdf_bytes())
    other_branch = _ingest(runner, [path], setup.contract_no, "officer2")
    assert other_branch.exit_code != 0 and "No loan" in other_branch.output
    auditor = _ingest(runner, [path], setup.contract_no, "auditor")
    assert auditor.exit_code == 1 and "does not allow" in auditor.output
    unknown_type = _ingest(runner, [path], setup.contract_no, "officer", "no_such_type")
    assert unknown_type.exit_code == 1 and "Unknown document type" in unknown_type.output
    assert list(store.iter_keys()) == []


def _tamper(store, key: str, data: bytes) -> None:
    """Change a stored object's bytes behind the portal's back."""
    if isinstance(store, LocalStore):
        (store.root / key).write_bytes(data)
    else:
        store.client.put_object(store.bucket, key, io.BytesIO(data), length=len(data))


def test_verify_clean_then_mismatch_then_orphan(app, runner, store, setup, tmp_path):
    paths = []
    for i in range(3):
        path = tmp_path / f"{i}.pdf"
        path.write_bytes(pdf_bytes())
        paths.append(path)
    assert _ingest(runner, paths, setup.contract_no).exit_code == 0

    clean = runner.invoke(args=["archive", "verify", "--json"])
    assert clean.exit_code == 0, clean.output
    report = json.loads(clean.stdout)
    assert report["ok"] is True and report["objects_checked"] == 3
    assert report["mismatches"] == report["missing"] == report["orphans"] == []

    with app.app_context():
        docs = db.session.execute(select(Document).order_by(Document.id)).scalars().all()
        assert all(d.last_verified_at is not None for d in docs)
        tampered, removed = docs[0], docs[1]
        tampered_key, removed_key, removed_id = tampered.object_key, removed.object_key, removed.id
    _tamper(store, tampered_key, b"%PDF-1.4 altered behind the portal's back")
    mismatch = runner.invoke(args=["archive", "verify", "--json"])
    assert mismatch.exit_code == 1
    report = json.loads(mismatch.stdout)
    assert [p["key"] for p in report["mismatches"]] == [tampered_key]
    assert report["orphans"] == [] and report["missing"] == []

    with app.app_context():
        db.session.execute(delete(Document).where(Document.id == removed_id))
        db.session.commit()
    orphan = runner.invoke(args=["archive", "verify", "--json"])
    assert orphan.exit_code == 1
    report = json.loads(orphan.stdout)
    assert [p["key"] for p in report["orphans"]] == [removed_key]
    assert [p["key"] for p in report["mismatches"]] == [tampered_key]

    # A row whose object is gone is reported as missing; the plain output names every problem.
    store.delete(removed_key)
    with app.app_context():
        third = db.session.execute(select(Document).where(Document.id != tampered.id)).scalars().first()
        missing_key = third.object_key
    store.delete(missing_key)
    text = runner.invoke(args=["archive", "verify"])
    assert text.exit_code == 1
    assert "MISMATCH" in text.output and "MISSING" in text.output and missing_key in text.output
    with app.app_context():
        runs = db.session.execute(select(FixityRun).order_by(FixityRun.id)).scalars().all()
        assert [r.ok for r in runs] == [True, False, False, False]
        assert runs[-1].missing == 1 and runs[-1].mismatches == 1


def test_verify_one_institution(app, runner, store, setup, tmp_path):
    path = tmp_path / "a.pdf"
    path.write_bytes(pdf_bytes())
    _ingest(runner, [path], setup.contract_no)
    result = runner.invoke(args=["archive", "verify", "--json", "--institution", "B2"])
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["objects_checked"] == 0 and report["orphans_checked"] is False
    assert runner.invoke(args=["archive", "verify", "--institution", "NOPE"]).exit_code == 2


def test_storage_command(app, runner, store):
    result = runner.invoke(args=["archive", "storage"])
    assert result.exit_code == 0 and "answers" in result.output
