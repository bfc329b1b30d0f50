"""What the archive's pages show, read in one place: the overview, a credit file, a document
and the lending desk. Each function reads for one page, as the user may see it; the names of
its results are the page template's.

Reads only. Changes are the services' (``services``, ``lending``, ``transfer``, ``holds``,
``destruction``); the scoped lookups a page starts from (``credit_file_or_404``, …) are there too.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ..accounts.models import User
from ..accounts.scope import can, in_scope
from ..audit_trail import AuditEvent
from ..extensions import db
from ..loans.models import Borrower, Loan
from ..loans.services import borrower_loans
from ..rules.types import STAGES
from . import lending as lending_svc
from .destruction import Eligibility, destruction_blockers
from .models import LIVE_STATES, DocState, Document, DocumentAccess, Hold, Lending, LendingState, Volume
from .services import content_access

OWN_OPEN_LENDING_STATES = (LendingState.REQUESTED.value, LendingState.APPROVED.value, LendingState.ISSUED.value)


@dataclass
class ArchiveOverview:
    counts: dict[str, int]      # documents in scope by state
    mine: list[Lending]         # the user's own lendings still open
    to_decide: list[Lending]    # requests waiting for the user's decision
    overdue: int                # lendings in scope past their due date
    recent: list[Document]      # the last documents collected in scope


def archive_overview(user: User) -> ArchiveOverview:
    """The archive's front page for ``user``."""
    counts = dict(db.session.execute(
        select(Document.state, func.count()).where(in_scope(Document.institution_id, user))
        .group_by(Document.state)).all())
    mine = db.session.execute(
        select(Lending).where(Lending.requester_id == user.id, Lending.state.in_(OWN_OPEN_LENDING_STATES))
        .order_by(Lending.requested_at.desc())).scalars().all()
    to_decide = db.session.execute(lending_svc.awaiting_decision(user)).scalars().all() \
        if can(user, "lending.approve") else []
    overdue = db.session.execute(select(func.count()).select_from(
        lending_svc.overdue_query(user).subquery())).scalar_one()
    recent = db.session.execute(
        select(Document).where(in_scope(Document.institution_id, user))
        .options(selectinload(Document.borrower)).order_by(Document.id.desc()).limit(15)).scalars().all()
    return ArchiveOverview(counts=counts, mine=list(mine), to_decide=list(to_decide), overdue=overdue,
                           recent=list(recent))


@dataclass
class CreditFileContents:
    by_stage: dict[str, list[Document]]   # every stage, in order, with its documents
    holds: list[Hold]                     # holds on the credit file or on any of the borrower's loans
    loans: list[Loan]                     # the borrower's loans in the user's scope


def credit_file_contents(borrower: Borrower, volume: Volume | None, user: User, *,
                         show_removed: bool = False) -> CreditFileContents:
    """A borrower's credit file as ``user`` sees it: the documents of the user's scope by stage
    (discarded and destroyed ones too with ``show_removed``), the holds on it, the loans.

    The holds are every hold still on that covers the file, whoever's scope placed it; the
    documents and loans are only those of the user's scope."""
    documents: list[Document] = []
    holds: list[Hold] = []
    if volume is not None:
        stmt = select(Document).where(Document.volume_id == volume.id, in_scope(Document.institution_id, user))
        if not show_removed:
            stmt = stmt.where(Document.state.in_(LIVE_STATES))
        documents = list(db.session.execute(stmt.options(selectinload(Document.loan))
                                            .order_by(Document.stage, Document.id)).scalars())
        holds = list(db.session.execute(
            select(Hold).where(Hold.lifted_at.is_(None),
                               (Hold.volume_id == volume.id) | Hold.loan_id.in_(
                                   select(Loan.id).where(Loan.borrower_id == borrower.id)))).scalars())
    by_stage = {stage: [d for d in documents if d.stage == stage] for stage in STAGES}
    return CreditFileContents(by_stage=by_stage, holds=holds, loans=borrower_loans(borrower, user))


@dataclass
class DocumentDetails:
    may_open: bool                        # the user may open the content
    lending: Lending | None               # under this lending of theirs, if not directly
    history: list[AuditEvent]             # the document's audit trail, oldest first
    accesses: list[DocumentAccess]        # the last 100 looks, for those who keep the register
    versions: list[Document]              # later versions in the user's scope
    eligibility: Eligibility | None       # what keeps an archived document from destruction


def document_details(doc: Document, user: User) -> DocumentDetails:
    """A document's page for ``user`` (the document is one they may see)."""
    may_open, lending = content_access(user, doc)
    history = db.session.execute(
        select(AuditEvent).where(AuditEvent.object_type == "archive_document", AuditEvent.object_id == str(doc.id))
        .order_by(AuditEvent.seq)).scalars().all()
    accesses = []
    if can(user, "archive.read") or can(user, "lending.register"):
        accesses = db.session.execute(
            select(DocumentAccess).where(DocumentAccess.document_id == doc.id)
            .options(selectinload(DocumentAccess.user)).order_by(DocumentAccess.at.desc()).limit(100)).scalars().all()
    versions = db.session.execute(select(Document).where(Document.version_of_id == doc.id,
                                                         in_scope(Document.institution_id, user))).scalars().all()
    return DocumentDetails(
        may_open=may_open, lending=lending, history=list(history), accesses=list(accesses), versions=list(versions),
        eligibility=destruction_blockers(doc) if doc.state == DocState.ARCHIVED.value else None)


@dataclass
class LendingDesk:
    mine: list[Lending]        # the user's own requests, latest first
    to_decide: list[Lending]   # requests waiting for their decision (approvers)
    to_issue: list[Lending]    # approved, to hand out (issuers)
    out: list[Lending]         # issued, soonest due first (those who keep the register or issue)


def lending_desk(user: User) -> LendingDesk:
    """The lending page for ``user``: each list only for those whose role works on it."""
    base = lending_svc.lendings_query(user).options(selectinload(Lending.requester), selectinload(Lending.volume))
    mine = db.session.execute(base.where(Lending.requester_id == user.id)
                              .order_by(Lending.requested_at.desc()).limit(100)).scalars().all()
    to_decide = db.session.execute(lending_svc.awaiting_decision(user)).scalars().all() \
        if can(user, "lending.approve") else []
    to_issue = db.session.execute(base.where(Lending.state == LendingState.APPROVED.value,
                                             in_scope(Lending.institution_id, user))).scalars().all() \
        if can(user, "lending.issue") else []
    out = db.session.execute(base.where(Lending.state == LendingState.ISSUED.value,
                                        in_scope(Lending.institution_id, user))
                             .order_by(Lending.due_on)).scalars().all() \
        if can(user, "lending.register") or can(user, "lending.issue") else []
    return LendingDesk(mine=list(mine), to_decide=list(to_decide), to_issue=list(to_issue), out=list(out))
