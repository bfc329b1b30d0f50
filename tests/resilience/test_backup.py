"""Backup and restore: `flask backup create DIR` of a deployment with a real history, then
`flask backup restore DIR` into a new, empty deployment migrated with `flask db upgrade`.
Every row of every table is back exactly (documents, checksums, audit events), the audit log's
hash chain verifies, `flask archive verify` is clean, the search index rebuilds, and new work
continues after the restored ids. A damaged or altered backup, another schema and a deployment
with data are refused, and nothing is written.

Deployments are separate apps on their own database (a SQLite file, or a PostgreSQL schema
when XINDANG_TEST_DB=postgresql; SQLite → PostgreSQL is tested there too) and instance folder.
"""
from __future__ import annotations

import io
import json
import shutil
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import MetaData, func, select

from portal.extensions import db
from portal.backup.services import SKIPPED_TABLES

from tests.archive.archive_helpers import archived_documents, make_archive_setup
from tests.helpers.files import docx_bytes, pdf_bytes
from tests.helpers.postgres import ON_POSTGRES

from .resilience_helpers import proposed_destruction_list


def cli(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


# --- a deployment with a history -------------------------------------------------------------------


PHRASE = "抵押物他项权证已收回"


def populate(app) -> dict:
    """Documents in every state (a discarded one's object deleted), a lending, an executed
    destruction with its permanent list PDF, extracted text; hundreds of audit events."""
    from portal.archive import destruction, lending, services
    from portal.archive.models import DestructionList, Document, Volume
    from portal.loans.models import Loan

    setup = make_archive_setup(app, rate_percent="4.3500")
    volume_id, archived = archived_documents(app, setup, 2)
    list_id = proposed_destruction_list(app, setup)
    with app.app_context():
        org = setup.org
        archivist, officer = org.user("archivist"), org.user("officer")
        loan = db.session.get(Loan, setup.loan_id)
        other = db.session.get(Loan, setup.other_loan_id)
        dl = db.session.get(DestructionList, list_id)
        destruction.approve_destruction(org.user("director"), dl, "同意销毁")
        destruction.confirm_destruction(officer, dl)
        destruction.confirm_destruction(org.user("post_loan"), dl)
        destruction.execute_destruction(archivist, dl)
        lend = lending.request_lending(officer, db.session.get(Volume, volume_id),
                                       [db.session.get(Document, archived[0])], medium="digital",
                                       reason="贷后检查需要查阅借款合同", days=7)
        lending.approve_lending(org.user("director"), lend, "同意")
        lending.issue_lending(archivist, lend)
        collected = services.collect_document(officer, borrower=loan.borrower, loan=loan, doc_type="inspection_report",
                                              fileobj=io.BytesIO(docx_bytes(f"贷后检查:{PHRASE}")),
                                              filename="贷后检查报告(第1次).docx")
        wrong = services.collect_document(officer, borrower=loan.borrower, loan=loan, doc_type="loan_receipt",
                                          fileobj=io.BytesIO(pdf_bytes("错扫")), filename="错扫.pdf")
        db.session.commit()
        services.discard_document(archivist, wrong.document, "扫描错误,重复件")
        services.collect_document(org.user("officer2"), borrower=other.borrower, loan=other, doc_type="loan_contract",
                                  fileobj=io.BytesIO(pdf_bytes("河西")), filename="借款合同.pdf")
        db.session.commit()
        inspection_doc = collected.document.id
    drain(app)
    return {"setup": setup, "inspection_doc": inspection_doc}


def drain(app) -> None:
    result = cli(app, "search", "drain")
    assert result.exit_code == 0, result.output


def table_contents(app) -> dict[str, list[tuple]]:
    """Every row of every table (Alembic's aside), in primary-key order."""
    with app.app_context():
        with db.engine.connect() as conn:
            metadata = MetaData()
            metadata.reflect(bind=conn)
            contents = {}
            for table in metadata.sorted_tables:
                if table.name in SKIPPED_TABLES:   # Alembic's, and derived caches
                    continue
                keys = list(table.primary_key.columns) or list(table.columns)
                contents[table.name] = [tuple(row) for row in conn.execute(select(table).order_by(*keys))]
        return contents


def store_of(app):
    return app.extensions["xindang_storage"]


# --- the round trip ---------------------------------------------------------------------------------

def test_backup_and_restore_bring_back_everything(deployments, tmp_path, login):
    source = deployments.new("source")
    made = populate(source)
    backup = tmp_path / "backup"
    created = cli(source, "backup", "create", str(backup))
    assert created.exit_code == 0, created.output
    manifest = json.loads((backup / "manifest.json").read_text(encoding="utf-8"))
    before = table_contents(source)
    assert {t["name"]: t["rows"] for t in manifest["tables"]} == {name: len(rows) for name, rows in before.items()}
    source_keys = sorted(store_of(source).iter_keys())
    assert manifest["store"]["objects"] == len(source_keys) > 0
    assert all(f"objects/{key}" in manifest["files"] for key in source_keys)

    target = deployments.new("target")
    assert cli(target, "backup", "verify", str(backup)).exit_code == 0
    restored = cli(target, "backup", "restore", str(backup))
    assert restored.exit_code == 0, restored.output

    # Every row of every table, byte for byte: documents, checksums, audit events, lendings …
    after = table_contents(target)
    assert after == before
    assert len(after["audit_event"]) > 40 and len(after["archive_document"]) == 6
    assert sorted(store_of(target).iter_keys()) == source_keys
    verified = cli(target, "audit", "verify-log", "--json")
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.output)["events"] == len(before["audit_event"])
    fixity = cli(target, "archive", "verify", "--json", "--quiet")
    assert fixity.exit_code == 0, fixity.output
    with target.app_context():
        from portal.archive.models import LIVE_STATES, Document, ListFile
        live = db.session.execute(select(func.count()).select_from(Document)
                                  .where(Document.state.in_(LIVE_STATES))).scalar_one()
        lists = db.session.execute(select(func.count()).select_from(ListFile)).scalar_one()
    assert json.loads(fixity.output)["objects_checked"] == live + lists == len(source_keys)

    # The search index is rebuilt from the restored database and finds the Chinese phrase.
    drain(target)
    assert cli(target, "search", "verify").exit_code == 0
    client = target.test_client()
    assert login(client, "archivist").status_code in (302, 303)
    found = client.get(f"/search/?q={PHRASE}").get_data(as_text=True)
    assert f"/archive/documents/{made['inspection_doc']}" in found and "王建国" in found

    # Work goes on: new rows get new ids (PostgreSQL's sequences were set), the chain continues.
    with target.app_context():
        from portal.archive import services
        from portal.loans.models import Loan
        setup = made["setup"]
        loan = db.session.get(Loan, setup.loan_id)
        doc = services.collect_document(setup.org.user("officer"), borrower=loan.borrower, loan=loan,
                                        doc_type="loan_receipt", fileobj=io.BytesIO(pdf_bytes("恢复后")),
                                        filename="恢复后的借据.pdf").document
        db.session.commit()
        assert doc.id > max(row[0] for row in before["archive_document"])
    assert cli(target, "audit", "verify-log").exit_code == 0
    assert cli(target, "archive", "verify", "--quiet").exit_code == 0

    # The target now holds data: a second restore is refused and changes nothing.
    rows_now = {name: len(rows) for name, rows in table_contents(target).items()}
    again = cli(target, "backup", "restore", str(backup))
    assert again.exit_code == 1 and "not empty" in again.output and "Nothing was written" in again.output
    assert {name: len(rows) for name, rows in table_contents(target).items()} == rows_now


def small_backup(deployments, tmp_path) -> tuple[Path, object]:
    source = deployments.new("source")
    setup = make_archive_setup(source)
    archived_documents(source, setup, 2)
    backup = tmp_path / "backup"
    assert cli(source, "backup", "create", str(backup)).exit_code == 0
    return backup, source


def is_empty(app) -> bool:
    with app.app_context():
        from portal.accounts.models import Institution
        from portal.audit_trail import AuditEvent
        rows = sum(db.session.execute(select(func.count()).select_from(model)).scalar_one()
                   for model in (Institution, AuditEvent))
    return rows == 0 and next(iter(store_of(app).iter_keys()), None) is None


def tampered(backup: Path, tmp_path: Path, how: str) -> Path:
    copy = tmp_path / f"backup-{how}"
    shutil.copytree(backup, copy)
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    objects = sorted(name for name in manifest["files"] if name.startswith("objects/"))
    events = next(t["file"] for t in manifest["tables"] if t["name"] == "audit_event")
    if how == "object-changed":
        path = copy / objects[0]
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif how == "event-edited":
        path = copy / events
        path.write_text(path.read_text(encoding="utf-8").replace("archive.collect", "archive.c0llect", 1),
                        encoding="utf-8")
    elif how == "object-removed":
        (copy / objects[0]).unlink()
    elif how == "file-added":
        (copy / "objects" / "2020" / "01").mkdir(parents=True)
        (copy / "objects" / "2020" / "01" / ("0" * 32)).write_bytes(b"planted")
    elif how == "manifest-removed":
        (copy / "manifest.json").unlink()
    elif how == "row-dropped":
        path = copy / events
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(lines[:-1]), encoding="utf-8")
        entry = manifest["files"][events]
        import hashlib
        entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()   # a careful forger …
        entry["size"] = path.stat().st_size
        (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return copy


REFUSALS = {
    "object-changed": "changed since the backup was made",
    "event-edited": "changed since the backup was made",
    "object-removed": "missing",
    "file-added": "not listed in the manifest",
    "manifest-removed": "holds no manifest.json",
    "row-dropped": "rows in",   # … is caught by the row count the manifest records
}


def test_a_damaged_or_altered_backup_is_refused_and_nothing_written(deployments, tmp_path, killable_s3,
                                                                   monkeypatch):
    """… a restore that fails half-way is undone; and the intact backup of a local-folder
    deployment restores into one that keeps its files on an S3 server, under the same keys."""
    from portal.backup import services

    backup, source = small_backup(deployments, tmp_path)
    for how, message in REFUSALS.items():
        checked = cli(source, "backup", "verify", str(tampered(backup, tmp_path, how)))
        assert checked.exit_code == 1 and message in checked.output, (how, checked.output)
    target = deployments.new("target")
    target.extensions["xindang_storage"] = killable_s3.store(f"xd-{uuid.uuid4().hex[:16]}")
    refused = cli(target, "backup", "restore", str(tmp_path / "backup-object-changed"))
    assert refused.exit_code == 1, refused.output
    assert "does not match its manifest" in refused.output and "objects/" in refused.output
    assert is_empty(target)

    # A backup made at another schema revision (another portal version) is refused too.
    other = tmp_path / "backup-other-schema"
    shutil.copytree(backup, other)
    manifest = json.loads((other / "manifest.json").read_text(encoding="utf-8"))
    manifest["database"]["schema_revision"] = "9999_future"
    (other / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    refused = cli(target, "backup", "restore", str(other))
    assert refused.exit_code == 1 and "schema revision 9999_future" in refused.output, refused.output
    assert is_empty(target)

    # The database fails half-way through the rows, after every object was written: undone.
    original = services._insert_rows

    def failing(table, path, columns):
        if table.name == "archive_document":
            raise RuntimeError("connection to the database lost")
        return original(table, path, columns)

    monkeypatch.setattr(services, "_insert_rows", failing)
    failed = cli(target, "backup", "restore", str(backup))
    assert failed.exit_code == 1 and "failed and was undone" in failed.output, failed.output
    assert is_empty(target)
    monkeypatch.undo()

    restored = cli(target, "backup", "restore", str(backup))     # the intact one restores
    assert restored.exit_code == 0, restored.output
    assert sorted(store_of(target).iter_keys()) == sorted(store_of(source).iter_keys())
    fixity = cli(target, "archive", "verify", "--json", "--quiet")
    assert fixity.exit_code == 0 and json.loads(fixity.output)["objects_checked"] == 2, fixity.output

    # A backup is written only into a new or empty folder.
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "notes.txt").write_text("keep me")
    result = cli(source, "backup", "create", str(tmp_path / "old"))
    assert result.exit_code == 1 and "not an empty folder" in result.output
    assert (tmp_path / "old" / "notes.txt").read_text() == "keep me"


def test_a_backup_taken_while_the_portal_works_is_consistent(deployments, tmp_path, monkeypatch):
    """Audit events are written while the tables are being dumped (between the chain head and
    the events): the backup is of one moment, so the restored chain still verifies."""
    from portal.backup import services

    source = deployments.new("source")
    setup = make_archive_setup(source)
    archived_documents(source, setup, 1)
    original = services._dump_table
    written = []

    def dump_while_working(conn, table, path, claims):
        result = original(conn, table, path, claims)
        if table.name == "audit_chain_head":
            def work():
                with source.app_context():
                    from portal.audit_trail import record_event
                    for n in range(3):
                        record_event(None, "test.during_backup", "test", n)
                    db.session.commit()
                    written.append(True)
            thread = threading.Thread(target=work)
            thread.start()
            thread.join(30)
        return result

    monkeypatch.setattr(services, "_dump_table", dump_while_working)
    backup = tmp_path / "backup"
    assert cli(source, "backup", "create", str(backup)).exit_code == 0
    assert written, "the concurrent work did not happen"
    target = deployments.new("target")
    assert cli(target, "backup", "restore", str(backup)).exit_code == 0
    assert cli(target, "audit", "verify-log").exit_code == 0
    with target.app_context():
        from portal.audit_trail import AuditEvent
        assert db.session.execute(select(func.count()).select_from(AuditEvent)
                                  .where(AuditEvent.action == "test.during_backup")).scalar_one() == 0


@pytest.mark.skipif(not ON_POSTGRES, reason="SQLite → PostgreSQL runs with XINDANG_TEST_DB=postgresql")
def test_sqlite_backup_restores_into_postgresql(deployments, tmp_path):
    source = deployments.new("source", postgres=False)
    populate(source)
    backup = tmp_path / "backup"
    assert cli(source, "backup", "create", str(backup)).exit_code == 0
    target = deployments.new("target", postgres=True)
    restored = cli(target, "backup", "restore", str(backup))
    assert restored.exit_code == 0, restored.output
    assert table_contents(target) == table_contents(source)
    assert cli(target, "audit", "verify-log").exit_code == 0
    assert cli(target, "archive", "verify", "--quiet").exit_code == 0
    with target.app_context():
        from portal.accounts.services import create_institution
        inst = create_institution(None, "B9", "新建信用社", "branch", "C1")
        db.session.commit()
        assert inst.id > 7
