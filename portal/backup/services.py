"""Backing up a deployment to a folder, checking a backup, restoring it into an empty deployment.

A backup folder holds:

- ``db/NNNN_<table>.jsonl``: one file per table, in foreign-key order. The first line names the
  columns and how each is written (``datetime``, ``date``, ``decimal``, ``bytes``, ``json``, …);
  every further line is one row as a JSON array. Datetimes keep their microseconds and JSON
  columns are written as JSON, so the audit trail's hash chain verifies after a restore, and
  the same files restore into SQLite or PostgreSQL.
- ``objects/<key>``: every object of the store under its own key (``yyyy/mm/<hex>``).
- ``manifest.json``, written last: format, time, the source's database and schema revision,
  the tables with their columns and row counts, and the size and SHA-256 of every other file.

The database is read in one transaction (a snapshot: REPEATABLE READ on PostgreSQL, one read
transaction on SQLite), so the rows agree with each other while the portal keeps working.
Objects never change under a key, only appear and disappear; the store is listed before the
snapshot and every object a row of the snapshot claims must be copied, else the backup fails
(a document destroyed during the backup: run it again).

The search index is not copied: it is derived from the database, whose ``document_text`` table
keeps the extracted text. A restore marks the index for rebuilding. Nor are the dashboards'
panel cache and its data versions (``SKIPPED_TABLES``), which are derived as well.

A restore checks the whole backup against its manifest first and refuses (writing nothing) a
backup with a missing, changed or unlisted file, a deployment with another schema, or one
that is not empty. It then writes the objects, then every row in one transaction, sets
PostgreSQL's sequences past the restored ids, and commits; on any failure it rolls back and
deletes the objects it wrote, leaving the deployment empty as it found it.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator

from flask import current_app
from sqlalchemy import Connection, MetaData, Table, bindparam, func, inspect, select, text
from sqlalchemy import types as sqltypes

from ..archive.models import LIVE_STATES
from ..archive.storage import LocalStore, MinioStore, ObjectMissing, StoreUnavailable, current_store
from ..extensions import db
from ..search.index import current_index

FORMAT = "xindang-backup"
VERSION = 1
MANIFEST = "manifest.json"
BATCH = 1000
CHUNK = 1024 * 1024
# alembic_version: the schema revision is recorded in the manifest instead. The dashboards' data
# versions and panel cache are derived (portal/kept.py): a restored deployment
# starts with an empty cache and builds its panels again.
SKIPPED_TABLES = {"alembic_version", "data_version", "audit_panel_cache"}
OBJECT_KEY_RE = re.compile(r"^\d{4}/\d{2}/[0-9a-f]{32}$")
FILE_RE = re.compile(r"^(db/\d{4}_[A-Za-z0-9_]+\.jsonl|objects/\d{4}/\d{2}/[0-9a-f]{32})$")
# Tables whose rows claim objects: (table, key column, checksum column, only rows in these states).
CLAIMS = (("archive_document", "object_key", "sha256", "state"), ("archive_list_file", "object_key", "sha256", None))


class BackupError(Exception):
    """A backup or restore that cannot be done; ``problems`` lists every reason found."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []


# --- values: written as JSON, read back exactly ------------------------------------------------

def column_kind(coltype: sqltypes.TypeEngine) -> str:
    """How a column's values are written (the reflected type, so any table is covered)."""
    checks = ((sqltypes.JSON, "json"), (sqltypes.DateTime, "datetime"), (sqltypes.Date, "date"),
              (sqltypes.Time, "time"), (sqltypes.Float, "float"), (sqltypes.Numeric, "decimal"),
              (sqltypes.LargeBinary, "bytes"), (sqltypes.Boolean, "bool"))
    for cls, kind in checks:
        if isinstance(coltype, cls):
            return kind
    return "plain"


def encode(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind in ("datetime", "date", "time"):
        return value.isoformat()
    if kind == "decimal":
        return str(value)
    if kind == "bytes":
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def decode(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "time":
        return time.fromisoformat(value)
    if kind == "decimal":
        return Decimal(value)
    if kind == "bytes":
        return base64.b64decode(value)
    return value


# --- files with their checksums ---------------------------------------------------------------

class _HashingFile:
    """Write bytes to ``path`` while hashing and counting them."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self._hash.update(data)
        self.size += len(data)

    def close(self) -> dict:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        return {"sha256": self._hash.hexdigest(), "size": self.size}


def hash_file(path: Path) -> tuple[str, int, int]:
    """SHA-256, size and number of lines of a file, streaming."""
    digest, size, lines = hashlib.sha256(), 0, 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
    return digest.hexdigest(), size, lines


# --- the database -------------------------------------------------------------------------------

def reflect(conn: Connection) -> MetaData:
    metadata = MetaData()
    metadata.reflect(bind=conn)
    return metadata


def schema_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def data_tables(metadata: MetaData) -> list[Table]:
    """Every table but the skipped ones (Alembic's, derived caches), parents before children."""
    return [t for t in metadata.sorted_tables if t.name not in SKIPPED_TABLES]


@contextmanager
def snapshot() -> Iterator[Connection]:
    """A connection whose reads all see the database at one moment."""
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        elif conn.dialect.name == "sqlite":
            # pysqlite runs reads outside any transaction (each one its own snapshot); an explicit
            # BEGIN makes them one read transaction.
            conn.exec_driver_sql("BEGIN")
        try:
            yield conn
        finally:
            conn.rollback()


def _ordered(table: Table):
    keys = list(table.primary_key.columns) or list(table.columns)
    return select(table).order_by(*keys)


# --- creating a backup --------------------------------------------------------------------------

@dataclass
class BackupReport:
    directory: Path
    tables: dict[str, int] = field(default_factory=dict)
    objects: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)   # written, but worth a look (see manifest)
    skipped: list[str] = field(default_factory=list)    # objects that vanished or are not archive objects


def _empty_folder(directory: Path) -> None:
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise BackupError(f"{directory} is not an empty folder; a backup is written into a new or empty one.")
    directory.mkdir(parents=True, exist_ok=True)


def _dump_table(conn: Connection, table: Table, path: Path, claims: dict[str, str | None]) -> tuple[dict, int, list]:
    columns = [[c.name, column_kind(c.type)] for c in table.columns]
    kinds = [kind for _name, kind in columns]
    claim = next((c for c in CLAIMS if c[0] == table.name), None)
    if claim is not None:
        names = [c.name for c in table.columns]
        if not {claim[1], claim[2]} <= set(names) or (claim[3] and claim[3] not in names):
            claim = None
    if claim is not None:
        key_at, sha_at = names.index(claim[1]), names.index(claim[2])
        state_at = names.index(claim[3]) if claim[3] else None
    out = _HashingFile(path)
    out.write(json.dumps({"table": table.name, "columns": columns}, ensure_ascii=False).encode() + b"\n")
    rows = 0
    result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(_ordered(table))
    for row in result:
        out.write(json.dumps([encode(k, v) for k, v in zip(kinds, row)], ensure_ascii=False,
                             separators=(",", ":")).encode() + b"\n")
        rows += 1
        if claim is not None and row[key_at] and (state_at is None or row[state_at] in LIVE_STATES):
            claims[row[key_at]] = row[sha_at]
    return out.close(), rows, columns


def _copy_object(store, key: str, path: Path) -> dict:
    out = _HashingFile(path)
    try:
        for chunk in store.get_stream(key):
            out.write(chunk)
    except BaseException:
        out.close()
        path.unlink(missing_ok=True)
        raise
    return out.close()


def create_backup(directory: Path, *, store=None, echo: Callable[[str], None] = lambda line: None) -> BackupReport:
    """Write a backup of the database and the object store into ``directory`` (new or empty)."""
    store = store or current_store()
    directory = Path(directory)
    _empty_folder(directory)
    report = BackupReport(directory)
    files: dict[str, dict] = {}
    listed = set(store.iter_keys())          # before the snapshot: see the module's docstring
    claims: dict[str, str | None] = {}
    tables = []
    with snapshot() as conn:
        dialect = conn.dialect.name
        revision = schema_revision(conn)
        for number, table in enumerate(data_tables(reflect(conn)), start=1):
            name = f"db/{number:04d}_{table.name}.jsonl"
            files[name], rows, columns = _dump_table(conn, table, directory / name, claims)
            tables.append({"name": table.name, "file": name, "rows": rows, "columns": columns})
            report.tables[table.name] = rows
            echo(f"{table.name}: {rows} rows")
    for key in sorted(listed | set(claims)):
        if not OBJECT_KEY_RE.match(key):
            report.skipped.append(f"{key}: not an archive object key (a stray file in the store)")
            continue
        name = f"objects/{key}"
        try:
            files[name] = _copy_object(store, key, directory / name)
        except ObjectMissing:
            if key in claims:
                raise BackupError(f"The object {key} of a stored document vanished while the backup ran (was a "
                                  f"document destroyed meanwhile?). Nothing usable was written; run the backup "
                                  f"again into a new folder.") from None
            report.skipped.append(f"{key}: deleted while the backup ran; no row claimed it")
            continue
        report.objects += 1
        report.bytes += files[name]["size"]
        expected = claims.get(key)
        if expected and files[name]["sha256"] != expected:
            report.problems.append(f"object {key} does not match the checksum its row records "
                                   f"({expected[:12]}…); it is copied as found — see `flask archive verify`")
    echo(f"objects: {report.objects} ({report.bytes} bytes)")
    manifest = {
        "format": FORMAT, "version": VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        "database": {"dialect": dialect, "schema_revision": revision},
        "store": {"backend": getattr(store, "backend", ""), "objects": report.objects, "bytes": report.bytes},
        "search_index": "not copied: derived from the database; a restore marks it for rebuilding",
        "tables": tables,
        "files": files,
        "problems": report.problems,
    }
    tmp = directory / f".{MANIFEST}.part"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, ensure_ascii=False, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, directory / MANIFEST)
    return report


# --- checking a backup ---------------------------------------------------------------------------

def read_manifest(directory: Path) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise BackupError(f"{directory} holds no {MANIFEST}: it is not a backup, or its writing did not finish.")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupError(f"{MANIFEST} cannot be read ({exc}); the backup is damaged.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{MANIFEST} is not the manifest of a Xindang backup.")
    if manifest.get("version") != VERSION:
        raise BackupError(f"This backup has format version {manifest.get('version')}; this portal reads "
                          f"version {VERSION}.")
    if not isinstance(manifest.get("files"), dict) or not isinstance(manifest.get("tables"), list):
        raise BackupError(f"{MANIFEST} lacks its list of files or tables; the backup is damaged.")
    return manifest


def verify_backup(directory: Path) -> dict:
    """The manifest, once every file has its recorded size and SHA-256, every table file its row
    count and columns, and no file is there that the manifest does not list. Raises BackupError
    with every problem otherwise."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    files: dict = manifest["files"]
    problems: list[str] = []
    lines: dict[str, int] = {}
    for name in sorted(files):
        entry = files[name]
        if not FILE_RE.match(name) or not isinstance(entry, dict):
            problems.append(f"{name}: not a file a backup holds (the manifest was altered)")
            continue
        path = directory / name
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        sha, size, count = hash_file(path)
        if sha != entry.get("sha256") or size != entry.get("size"):
            problems.append(f"{name}: changed since the backup was made (SHA-256 {sha[:12]}…, "
                            f"the manifest records {str(entry.get('sha256'))[:12]}…)")
        lines[name] = count
    for root, _dirs, names in os.walk(directory):
        for file_name in names:
            rel = Path(root, file_name).relative_to(directory).as_posix()
            if rel != MANIFEST and rel not in files:
                problems.append(f"{rel}: not listed in the manifest (added after the backup was made)")
    seen_tables = set()
    for table in manifest["tables"]:
        name, file_name = table.get("name"), table.get("file")
        if file_name not in files or name in seen_tables:
            problems.append(f"table {name}: its file is not listed in the manifest")
            continue
        seen_tables.add(name)
        if file_name in lines and lines[file_name] != table.get("rows", -1) + 1:
            problems.append(f"table {name}: {lines[file_name] - 1} rows in {file_name}, the manifest records "
                            f"{table.get('rows')}")
        elif file_name in lines:
            try:
                with open(directory / file_name, encoding="utf-8") as fh:
                    header = json.loads(fh.readline())
            except ValueError:   # not JSON, not UTF-8
                header = {}
            if not isinstance(header, dict):
                header = {}
            if header.get("table") != name or header.get("columns") != table.get("columns"):
                problems.append(f"table {name}: the columns of {file_name} differ from the manifest")
    if problems:
        raise BackupError(f"The backup in {directory} does not match its manifest; it was damaged or altered.",
                          problems)
    return manifest


# --- restoring -----------------------------------------------------------------------------------

@dataclass
class RestoreReport:
    tables: dict[str, int] = field(default_factory=dict)
    objects: int = 0
    bytes: int = 0


def _check_schema(conn: Connection, manifest: dict) -> MetaData:
    metadata = reflect(conn)
    problems = []
    ours = schema_revision(conn)
    theirs = manifest.get("database", {}).get("schema_revision")
    if theirs is not None and ours != theirs:
        problems.append(f"the backup was made at schema revision {theirs}; this database is at {ours or 'none'} "
                        f"(run `flask db upgrade` on an empty database of the portal version that made the backup)")
    present = {t.name: t for t in data_tables(metadata)}
    wanted = {t["name"]: t for t in manifest["tables"]}
    for name in sorted(set(wanted) - set(present)):
        problems.append(f"table {name} of the backup does not exist here")
    for name in sorted(set(present) - set(wanted)):
        problems.append(f"table {name} exists here but not in the backup")
    for name in sorted(set(wanted) & set(present)):
        have = {c.name for c in present[name].columns}
        need = {c for c, _kind in wanted[name]["columns"]}
        if have != need:
            problems.append(f"table {name}: columns differ (here only: {sorted(have - need)}; "
                            f"backup only: {sorted(need - have)})")
    if problems:
        raise BackupError("This deployment's database schema differs from the backup's. Nothing was written.",
                          problems)
    return metadata


def _check_empty(conn: Connection, metadata: MetaData, store) -> None:
    problems = []
    for table in data_tables(metadata):
        stmt = select(func.count()).select_from(table)
        if table.name == "audit_chain_head" and "seq" in table.c:
            stmt = stmt.where(table.c.seq != 0)   # the migration's genesis row is not content
        count = conn.execute(stmt).scalar_one()
        if count:
            problems.append(f"table {table.name} has {count} rows")
    if next(iter(store.iter_keys()), None) is not None:
        problems.append("the object store holds objects")
    if problems:
        raise BackupError("This deployment is not empty; a backup is restored only into a new deployment "
                          "(an empty database after `flask db upgrade`, an empty store). Nothing was written.",
                          problems)


def _put_object(store, key: str, path: Path, size: int) -> None:
    """Store the file under its original key (the store's own ``put_stream`` makes new keys)."""
    if isinstance(store, LocalStore):
        target = store.root / key
        tmp = target.with_name(f".{target.name}.part")
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "rb") as src, open(tmp, "wb") as out:
            while chunk := src.read(CHUNK):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    elif isinstance(store, MinioStore):
        try:
            with open(path, "rb") as src:
                store.client.put_object(store.bucket, key, src, length=size, part_size=store.part_size)
        except Exception as exc:  # noqa: BLE001 - any failure of the store
            raise StoreUnavailable(f"the object store refused {key}: {exc}") from exc
    else:
        raise BackupError(f"Restoring objects into a {type(store).__name__} is not supported.")


def _insert_rows(table: Table, path: Path, columns: list[list[str]]) -> int:
    names = [name for name, _kind in columns]
    kinds = [kind for _name, kind in columns]
    pk = [c.name for c in table.primary_key.columns]
    # A column referring to its own table (an institution's parent, a document's earlier version)
    # is written after all rows are in, so the rows' order does not matter.
    deferred = [fk.parent.name for fk in table.foreign_keys
                if fk.column.table is table and fk.parent.nullable and len(pk) == 1]
    later: list[dict] = []
    count = 0
    batch: list[dict] = []
    with open(path, encoding="utf-8") as fh:
        fh.readline()
        for line in fh:
            row = {name: decode(kind, value) for name, kind, value in zip(names, kinds, json.loads(line))}
            if deferred and any(row[c] is not None for c in deferred):
                later.append({"_pk": row[pk[0]], **{c: row[c] for c in deferred}})
                row.update({c: None for c in deferred})
            batch.append(row)
            count += 1
            if len(batch) >= BATCH:
                db.session.execute(table.insert(), batch)
                batch = []
    if batch:
        db.session.execute(table.insert(), batch)
    if later:
        stmt = table.update().where(table.c[pk[0]] == bindparam("_pk")).values(
            {c: bindparam(c) for c in deferred})
        for start in range(0, len(later), BATCH):
            db.session.execute(stmt, later[start:start + BATCH])
    return count


def _reset_sequences(conn: Connection, tables: list[Table]) -> None:
    """PostgreSQL: each serial/identity column continues after the highest restored id."""
    if conn.dialect.name != "postgresql":
        return   # SQLite continues after the highest rowid by itself
    preparer = conn.dialect.identifier_preparer
    for table in tables:
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or not isinstance(pk[0].type, sqltypes.Integer):
            continue
        sequence = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                {"t": preparer.format_table(table), "c": pk[0].name}).scalar()
        if sequence is None:
            continue
        column = preparer.quote(pk[0].name)
        conn.execute(text(f"SELECT setval(:s, COALESCE((SELECT MAX({column}) FROM {preparer.format_table(table)}), 0) "
                          f"+ 1, false)"), {"s": sequence})


def _mark_search_for_rebuild(directory: Path) -> bool:
    try:
        current_index().mark_for_rebuild(f"restored from the backup in {directory}")
    except OSError:
        current_app.logger.exception("could not mark the search index for rebuilding")
        return False
    return True


def restore_backup(directory: Path, *, store=None, echo: Callable[[str], None] = lambda line: None) -> RestoreReport:
    """Restore the backup in ``directory`` into this (empty) deployment. Raises BackupError,
    having written nothing, when the backup or the deployment is not as it must be."""
    directory = Path(directory)
    store = store or current_store()
    manifest = verify_backup(directory)
    echo(f"backup verified: {len(manifest['files'])} files match the manifest")
    db.session.remove()
    conn = db.session.connection()
    metadata = _check_schema(conn, manifest)
    store.check()
    _check_empty(conn, metadata, store)
    report = RestoreReport()
    written: list[str] = []
    try:
        for name, entry in sorted(manifest["files"].items()):
            if name.startswith("objects/"):
                key = name[len("objects/"):]
                _put_object(store, key, directory / name, entry["size"])
                written.append(key)
                report.objects += 1
                report.bytes += entry["size"]
        echo(f"objects: {report.objects} ({report.bytes} bytes)")
        wanted = {t["name"]: t for t in manifest["tables"]}
        tables = [t for t in data_tables(metadata) if t.name in wanted]
        if "audit_chain_head" in metadata.tables:
            db.session.execute(metadata.tables["audit_chain_head"].delete())   # the genesis row; the backup has the head
        for table in tables:
            entry = wanted[table.name]
            report.tables[table.name] = _insert_rows(table, directory / entry["file"], entry["columns"])
            echo(f"{table.name}: {report.tables[table.name]} rows")
        _reset_sequences(db.session.connection(), tables)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        for key in written:
            try:
                store.delete(key)
            except Exception:  # noqa: BLE001 - reported: the store may be what failed
                current_app.logger.exception("could not remove restored object %s after a failed restore", key)
        raise
    if _mark_search_for_rebuild(directory):
        echo("search index marked for rebuilding from the restored database")
    else:
        echo("the search index was not marked for rebuilding: run `flask search reindex`")
    return report
