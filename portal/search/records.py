"""What the database says a document's index entry must be: ``IndexRecord``s built from the
archive's rows and the extracted text, in batches. The drainer indexes them; ``verify`` compares
their fingerprints with the index. A document that is not live (discarded, destroyed, deleted)
has no record: it must not be in the index."""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from ..accounts.models import Institution
from ..archive.models import LIVE_STATES, Document
from ..extensions import db
from ..rules.lookup import rules_for
from ..timeutil import to_local
from .models import DocumentText
from .schema import IndexRecord


def load_records(ids: Iterable[int], *, with_text: bool = True) -> dict[int, IndexRecord]:
    """Records of the live documents among ``ids`` (missing ids: not live, or gone)."""
    ids = list(ids)
    if not ids:
        return {}
    docs = db.session.execute(
        select(Document).options(joinedload(Document.borrower), joinedload(Document.loan),
                                 joinedload(Document.institution))
        .where(Document.id.in_(ids), Document.state.in_(LIVE_STATES))).scalars().all()
    columns = [DocumentText.document_id, DocumentText.extracted_at, DocumentText.status]
    if with_text:
        columns.append(DocumentText.text)
    texts = {row[0]: row for row in db.session.execute(select(*columns).where(DocumentText.document_id.in_(ids)))}
    names: dict[tuple[int, str], str] = {}
    out: dict[int, IndexRecord] = {}
    for doc in docs:
        text_row = texts.get(doc.id)
        key = (doc.institution_id, doc.doc_type)
        if key not in names:
            dtype = rules_for(doc.institution).document_type(doc.doc_type)
            names[key] = dtype.name_zh if dtype is not None else doc.doc_type
        created = to_local(doc.created_at)
        out[doc.id] = IndexRecord(
            id=doc.id,
            title=names[key],
            doctype=doc.doc_type,
            stage=doc.stage or "",
            state=doc.state,
            institution_path=doc.institution.path,
            doc_date=created.date() if created else None,
            added=doc.created_at,
            text=(text_row[3] or "") if (with_text and text_row is not None) else "",
            borrower=doc.borrower.name if doc.borrower else "",
            contract_no=doc.loan.contract_no if doc.loan else "",
            archive_no=doc.archive_number or "",
            id_number=doc.borrower.id_number if doc.borrower else "",
            text_stamp=f"{text_row[2]}@{text_row[1].isoformat()}" if text_row is not None else "",
            extra_titles=[doc.original_name] if doc.original_name else [],
        )
    return out


def live_document_ids(batch: int = 5000) -> Iterator[list[int]]:
    """Ids of every live document, in batches, in institution order (then id): indexed in this
    order, a branch's documents sit in adjacent blocks of every posting list, so a query within
    one branch or county decodes only those blocks."""
    ids = list(db.session.execute(
        select(Document.id).join(Institution, Institution.id == Document.institution_id)
        .where(Document.state.in_(LIVE_STATES)).order_by(Institution.path, Document.id)).scalars())
    for start in range(0, len(ids), batch):
        yield ids[start:start + batch]
