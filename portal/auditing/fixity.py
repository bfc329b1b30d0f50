"""Fixity from the auditor's side: what the latest runs of ``flask archive verify`` found about
an institution's stored objects, when each object was last verified, and verifying one
institution's files now.

The checking itself is ``portal.archive.fixity.verify_archive`` (re-hash, record a
``FixityRun``, mark passing objects with ``last_verified_at``); nothing here hashes. An object is
*failing* when the most recent run that reported a problem with it started after it was last
verified: a later clean run clears it, an older problem does not come back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import case, func, or_, select

from ..accounts.models import Institution, User
from ..accounts.scope import check, institution_visible
from ..archive.fixity import FixityReport, bytes_to_check, verify_archive
from ..archive.models import LIVE_STATES, Document, FixityRun, ListFile
from ..archive.storage import current_store
from ..audit_trail import record_event
from ..errors import InvalidInput, not_found
from ..extensions import db
from ..timeutil import utcnow
from .completeness import subtree_ids

RECENT_RUNS = 50
# The button verifies in the request; larger subtrees are verified with the command.
MAX_BYTES_IN_REQUEST = 2 * 1024 ** 3
AGE_BANDS = (7, 30, 90)      # days: verified within a week, a month, a quarter, longer ago


@dataclass
class ObjectProblem:
    kind: str                          # mismatch, missing, orphan
    key: str
    detail: str
    run: FixityRun
    document: Document | None = None
    list_file: ListFile | None = None


@dataclass
class FixityOverview:
    institution: Institution
    runs: list[FixityRun]                              # recent runs that looked at these files
    last_covering: FixityRun | None                    # the latest finished run over the whole subtree
    failures: list[ObjectProblem] = field(default_factory=list)
    unattributed_orphans: int | None = None            # objects no row claims (full runs only)
    live_documents: int = 0
    never_verified: int = 0
    verified_within: dict[int, int] = field(default_factory=dict)   # days → documents
    older: int = 0
    oldest_verified_at: datetime | None = None
    list_files: int = 0
    list_files_never_verified: int = 0

    @property
    def failing_documents(self) -> int:
        return sum(1 for p in self.failures if p.document is not None)


def _ancestor_ids(institution: Institution) -> list[int]:
    return [a.id for a in institution.ancestors()] + [institution.id]


def relevant_runs(institution: Institution, limit: int = RECENT_RUNS) -> list[FixityRun]:
    """Runs over the whole store, over this institution or an ancestor, or over part of it."""
    stmt = select(FixityRun).where(or_(FixityRun.institution_id.is_(None),
                                       FixityRun.institution_id.in_(_ancestor_ids(institution)),
                                       FixityRun.institution_id.in_(subtree_ids(institution))))
    return list(db.session.execute(stmt.order_by(FixityRun.started_at.desc(), FixityRun.id.desc())
                                   .limit(limit)).scalars())


def _covers(run: FixityRun, ancestors: set[int]) -> bool:
    return run.institution_id is None or run.institution_id in ancestors


def fixity_overview(institution: Institution, *, with_unclaimed: bool = False) -> FixityOverview:
    """What the auditor of ``institution`` needs to know about its stored objects.
    ``with_unclaimed``: also count the objects no row claims, which belong to no institution
    (for the operator and union-level users)."""
    runs = relevant_runs(institution)
    ancestors = set(_ancestor_ids(institution))
    covering = next((r for r in runs if r.finished_at is not None and _covers(r, ancestors)), None)
    overview = FixityOverview(institution, runs, covering)
    in_subtree = Document.institution_id.in_(subtree_ids(institution))

    # The latest problem reported for each object, newest run first.
    latest: dict[tuple[str, int], tuple[FixityRun, dict]] = {}
    orphans_without_row = None
    for run in runs:
        if run.finished_at is None:
            continue
        for problem in run.problems or []:
            if problem.get("document_id"):
                latest.setdefault(("document", int(problem["document_id"])), (run, problem))
            elif problem.get("list_file_id"):
                latest.setdefault(("list_file", int(problem["list_file_id"])), (run, problem))
        if run.institution_id is None and orphans_without_row is None:
            orphans_without_row = sum(1 for p in run.problems or [] if p.get("kind") == "orphan"
                                      and not p.get("document_id"))
    doc_ids = [i for kind, i in latest if kind == "document"]
    if doc_ids:
        docs = db.session.execute(select(Document).where(Document.id.in_(doc_ids), in_subtree)).scalars()
        for doc in docs:
            run, problem = latest[("document", doc.id)]
            orphan_of_tombstone = problem.get("kind") == "orphan"
            still_failing = (orphan_of_tombstone and not doc.live) or (
                doc.live and (doc.last_verified_at is None or doc.last_verified_at < run.started_at))
            if still_failing:
                overview.failures.append(ObjectProblem(problem.get("kind", ""), problem.get("key", ""),
                                                       problem.get("detail", ""), run, document=doc))
    list_ids = [i for kind, i in latest if kind == "list_file"]
    if list_ids:
        rows = db.session.execute(select(ListFile).where(
            ListFile.id.in_(list_ids), ListFile.institution_id.in_(subtree_ids(institution)))).scalars()
        for row in rows:
            run, problem = latest[("list_file", row.id)]
            if row.last_verified_at is None or row.last_verified_at < run.started_at:
                overview.failures.append(ObjectProblem(problem.get("kind", ""), problem.get("key", ""),
                                                       problem.get("detail", ""), run, list_file=row))
    overview.failures.sort(key=lambda p: (p.run.started_at, p.key), reverse=True)
    if with_unclaimed:
        overview.unattributed_orphans = orphans_without_row

    now = utcnow()
    verified = Document.last_verified_at
    counts = [func.count(), func.sum(case((verified.is_(None), 1), else_=0)), func.min(verified)]
    counts += [func.sum(case((verified >= now - timedelta(days=days), 1), else_=0)) for days in AGE_BANDS]
    row = db.session.execute(select(*counts).where(in_subtree, Document.state.in_(LIVE_STATES))).one()
    overview.live_documents, overview.never_verified = int(row[0] or 0), int(row[1] or 0)
    overview.oldest_verified_at = row[2]
    overview.verified_within = {days: int(n or 0) for days, n in zip(AGE_BANDS, row[3:])}
    overview.older = overview.live_documents - overview.never_verified - overview.verified_within[AGE_BANDS[-1]]
    lists = db.session.execute(select(func.count(), func.sum(case((ListFile.last_verified_at.is_(None), 1), else_=0)))
                               .where(ListFile.institution_id.in_(subtree_ids(institution)))).one()
    overview.list_files, overview.list_files_never_verified = int(lists[0] or 0), int(lists[1] or 0)
    return overview


def verification_list(institution: Institution):
    """Live documents of the subtree, never verified first, then the longest ago (a select to page)."""
    return (select(Document).where(Document.institution_id.in_(subtree_ids(institution)),
                                   Document.state.in_(LIVE_STATES))
            .order_by(case((Document.last_verified_at.is_(None), 0), else_=1), Document.last_verified_at,
                      Document.id))


def verify_institution(actor: User | None, institution: Institution, *,
                       in_request: bool = True) -> tuple[FixityRun, FixityReport]:
    """Re-hash every object held within ``institution`` now (``verify_archive``) and record who
    asked. In a page request, more than ``MAX_BYTES_IN_REQUEST`` to hash is refused (the
    command has no limit). The run commits as it goes; the audit event is flushed for the
    caller to commit."""
    if actor is not None:
        check(actor, "audit.fixity_verify")
        if not institution_visible(actor, institution):
            raise not_found()
    if in_request:
        size = bytes_to_check(institution)
        if size > MAX_BYTES_IN_REQUEST:
            raise InvalidInput(_("%(name)s holds %(gb).1f GB of files, more than a page can verify; run "
                                 "“flask audit fixity --institution %(code)s --verify” on the server instead.",
                                 name=institution.name, gb=size / 1024 ** 3, code=institution.code))
    started = utcnow()
    report = verify_archive(current_store(), institution=institution)
    run = db.session.execute(select(FixityRun).where(
        FixityRun.institution_id == institution.id, FixityRun.started_at >= started - timedelta(seconds=1))
        .order_by(FixityRun.id.desc()).limit(1)).scalar_one()
    record_event(actor, "audit.fixity_verify", "archive_fixity_run", run.id,
                 {"institution": institution.code, "objects": report.objects_checked, "bytes": report.bytes_checked,
                  "mismatches": run.mismatches, "missing": run.missing, "ok": report.ok},
                 institution_id=institution.id)
    return run, report


def last_run_summary(institution: Institution) -> FixityRun | None:
    """The latest finished run covering the whole of ``institution`` (for dashboards)."""
    ancestors = _ancestor_ids(institution)
    return db.session.execute(
        select(FixityRun).where(FixityRun.finished_at.is_not(None),
                                or_(FixityRun.institution_id.is_(None), FixityRun.institution_id.in_(ancestors)))
        .order_by(FixityRun.started_at.desc(), FixityRun.id.desc()).limit(1)).scalar_one_or_none()


def run_scope_label(run: FixityRun) -> str:
    if run.institution_id is None:
        return _("whole store")
    inst = db.session.get(Institution, run.institution_id)
    return inst.name if inst else str(run.institution_id)
