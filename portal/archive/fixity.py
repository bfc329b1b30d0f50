"""Fixity and consistency of the store against the database (``flask archive verify``).

Re-hashes every object a row claims (live documents and the permanent list files), streaming,
and reports checksum mismatches, rows whose object is missing and objects no row claims
(including objects of destroyed or discarded documents that are still stored). Each run is
kept as a ``FixityRun``; documents that pass get ``last_verified_at``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

from sqlalchemy import func, select

from ..accounts.models import Institution
from ..extensions import db
from ..timeutil import utcnow
from .models import LIVE_STATES, Document, FixityRun, ListFile
from .storage import ObjectMissing, ObjectStore

BATCH = 500
MAX_PROBLEMS_KEPT = 1000


@dataclass
class Problem:
    kind: str                       # mismatch, missing, orphan
    key: str
    document_id: int | None = None
    list_file_id: int | None = None
    detail: str = ""


@dataclass
class FixityReport:
    objects_checked: int = 0
    bytes_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    orphans_checked: bool = True

    def of_kind(self, kind: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {"ok": self.ok, "objects_checked": self.objects_checked, "bytes_checked": self.bytes_checked,
                "orphans_checked": self.orphans_checked,
                "mismatches": [asdict(p) for p in self.of_kind("mismatch")],
                "missing": [asdict(p) for p in self.of_kind("missing")],
                "orphans": [asdict(p) for p in self.of_kind("orphan")]}


def _documents(institution: Institution | None):
    stmt = select(Document).where(Document.state.in_(LIVE_STATES))
    if institution is not None:
        stmt = stmt.where(Document.institution_id.in_(
            select(Institution.id).where(Institution.path.startswith(institution.path, autoescape=True))))
    return stmt


def _list_files(institution: Institution | None):
    stmt = select(ListFile)
    if institution is not None:
        stmt = stmt.where(ListFile.institution_id.in_(
            select(Institution.id).where(Institution.path.startswith(institution.path, autoescape=True))))
    return stmt


def bytes_to_check(institution: Institution | None = None) -> int:
    docs = _documents(institution).with_only_columns(func.coalesce(func.sum(Document.size_bytes), 0))
    lists = _list_files(institution).with_only_columns(func.coalesce(func.sum(ListFile.size_bytes), 0))
    return int(db.session.execute(docs).scalar_one()) + int(db.session.execute(lists).scalar_one())


def _check_rows(store: ObjectStore, model, stmt, report: FixityReport, progress: Callable[[int], None]) -> set[str]:
    claimed: set[str] = set()
    last_id = 0
    now = utcnow()
    while True:
        rows = db.session.execute(stmt.where(model.id > last_id).order_by(model.id).limit(BATCH)).scalars().all()
        if not rows:
            break
        for row in rows:
            last_id = row.id
            claimed.add(row.object_key)
            ref = {"document_id": row.id} if model is Document else {"list_file_id": row.id}
            try:
                found = store.hash_object(row.object_key)
            except ObjectMissing:
                report.problems.append(Problem("missing", row.object_key, detail="no object under this key", **ref))
                progress(row.size_bytes)
                continue
            report.objects_checked += 1
            report.bytes_checked += found.size
            progress(row.size_bytes)
            if found.sha256 != row.sha256 or found.size != row.size_bytes:
                report.problems.append(Problem(
                    "mismatch", row.object_key,
                    detail=f"expected SHA-256 {row.sha256} ({row.size_bytes} bytes), found {found.sha256} "
                           f"({found.size} bytes)", **ref))
            else:
                row.last_verified_at = now
        db.session.commit()  # keep the verified-at marks of this batch; releases the objects
    return claimed


def verify_archive(store: ObjectStore, *, institution: Institution | None = None,
                   progress: Callable[[int], None] = lambda n: None) -> FixityReport:
    """Check every object rows claim; with no institution, also look for unclaimed objects."""
    run = FixityRun(institution_id=institution.id if institution else None, started_at=utcnow())
    db.session.add(run)
    db.session.commit()
    report = FixityReport(orphans_checked=institution is None)
    claimed = _check_rows(store, Document, _documents(institution), report, progress)
    claimed |= _check_rows(store, ListFile, _list_files(institution), report, progress)
    if institution is None:
        tombstones = dict(db.session.execute(
            select(Document.object_key, Document.id).where(Document.state.not_in(LIVE_STATES))).all())
        for key in store.iter_keys():
            if key in claimed:
                continue
            doc_id = tombstones.get(key)
            detail = (f"belongs to document #{doc_id}, which was destroyed or discarded" if doc_id
                      else "no document or list claims it")
            report.problems.append(Problem("orphan", key, document_id=doc_id, detail=detail))
    run = db.session.get(FixityRun, run.id)
    run.finished_at = utcnow()
    run.objects_checked, run.bytes_checked = report.objects_checked, report.bytes_checked
    run.mismatches = len(report.of_kind("mismatch"))
    run.missing = len(report.of_kind("missing"))
    run.orphans = len(report.of_kind("orphan"))
    run.ok = report.ok
    run.problems = [asdict(p) for p in report.problems[:MAX_PROBLEMS_KEPT]]
    db.session.commit()
    return report
