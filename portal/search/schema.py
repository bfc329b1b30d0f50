"""The Whoosh schema of the document index, and the record one document becomes.

The index keeps no text: only terms, the document's id and a fingerprint of what was indexed.
The page of results is drawn and highlighted from the database.

Fields (see docs/search.md for the reasoning):

==========  ==============================================================================
id          document id (stored, unique)
fp          fingerprint of the indexed values (stored), so ``verify`` finds stale entries
content     words of the document text (rjieba + domain dictionary, and the dictionary
            words inside each word), with counts, for ranking
cjk         character bigrams of every Chinese run of the text, with counts: which documents
            hold a bigram (read whole, cheaply, for every query)
cjkpos      the same bigrams with their character positions: read only for the candidate
            documents of a phrase, to check that its bigrams are adjacent (the recall
            guarantee, and exactness)
title       bigrams and identifier parts of the title and the original file name
borrower    bigrams of the borrower's name
ids         contract number and archive number, whole and by parts
idgram      character trigrams of contract and archive numbers (any substring ≥ 3)
idno        the borrower's ID number, whole
idnogram    trigrams of the ID number (queried only for users who may see ID numbers)
doctype     document type code (column: counts per type)
stage       lifecycle stage of the loan the document belongs to
state       archive state of the document
scope       every ancestor path of the owning institution ("/P/", "/P/C1/", "/P/C1/B1/"):
            a user's scope is one term of this field inside the query
doc_date    the document's date (column: sort by date, date range)
added       when the document entered the archive
==========  ==============================================================================
"""
from __future__ import annotations

import hashlib
import json
import sys
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from whoosh import fields, formats
from whoosh.analysis import SpaceSeparatedTokenizer

from .analysis import (Analyzer, identifier_grams, identifier_terms, normalize, normalize_identifier,
                       short_text_terms)

# Bump when the schema or the analysis changes: an index of another version is rebuilt.
SCHEMA_VERSION = "xindang-search-3"


# -- a positions format that decodes in C -------------------------------------------------------

_BIG_ENDIAN = sys.byteorder == "big"


def encode_positions(positions: list[int]) -> bytes:
    """Sorted positions as little-endian unsigned 16-bit integers (an even number of bytes), or,
    when one is 65,536 or more, a 0xFF marker and 32-bit integers (an odd number of bytes)."""
    if positions[-1] < 0x10000:
        packed = array("H", positions)
        marker = b""
    else:
        packed = array("I", positions)
        marker = b"\xff"
    if _BIG_ENDIAN:  # pragma: no cover - the index is little-endian everywhere
        packed.byteswap()
    return marker + packed.tobytes()


def decode_positions(data: bytes) -> array:
    if len(data) % 2:
        packed = array("I", data[1:])
    else:
        packed = array("H", data)
    if _BIG_ENDIAN:  # pragma: no cover
        packed.byteswap()
    return packed


class PackedPositions(formats.Format):
    """Positions as fixed-width integers: decoding a posting is one ``array`` call, where Whoosh's
    ``Positions`` unpickles a list (and a varint format loops in Python). Checking that a phrase's
    bigrams are adjacent decodes thousands of postings a query, so this is what makes it fast."""

    def word_values(self, value, analyzer, **kwargs):  # pragma: no cover - PostingsField indexes
        raise NotImplementedError("PackedPositions fields take pre-analysed postings")

    def encode(self, poslist: list[int]) -> bytes:
        return encode_positions(poslist)

    def decode_positions(self, valuestring: bytes) -> list[int]:
        return list(decode_positions(valuestring))

    def decode_frequency(self, valuestring: bytes) -> int:
        return len(decode_positions(valuestring))

    def decode_weight(self, valuestring: bytes) -> float:
        return float(self.decode_frequency(valuestring))

    def decode_position_boosts(self, valuestring: bytes) -> list[tuple[int, float]]:
        return [(p, 1.0) for p in decode_positions(valuestring)]

    def combine(self, vs):
        merged: set[int] = set()
        for v in vs:
            merged.update(decode_positions(v))
        return encode_positions(sorted(merged))


class Counts(formats.Existence):
    """No value bytes; the posting's weight carries the term's count in the document (BM25
    reads the weight, not the value)."""


class PostingsField(fields.FieldType):
    """A field whose value is already analysed, in one of three kinds:

    - ``positions``: a mapping of term → positions (the gram phrase checks them);
    - ``counts``: a mapping of term → count (ranking only);
    - ``terms``: a list of terms (filters and exact matches, weight 1).

    Analysis happens once, in ``portal.search.analysis``, outside Whoosh's token pipeline; that
    keeps the analyzer (and rjieba's dictionary) out of the pickled schema, so opening the index
    is fast, and it skips Whoosh's per-token objects, the cost that dominates indexing.
    """

    def __init__(self, kind: str = "positions", *, scorable: bool = True) -> None:
        if kind not in ("positions", "counts", "terms"):
            raise ValueError(kind)
        fmt = PackedPositions() if kind == "positions" else Counts() if kind == "counts" else formats.Existence()
        super().__init__(fmt, SpaceSeparatedTokenizer(), scorable=scorable, stored=False)
        self.kind = kind

    def index(self, value, **kwargs):
        if self.kind == "positions":
            encode = self.format.encode
            for term, poslist in value.items():
                yield term.encode("utf-8"), len(poslist), float(len(poslist)), encode(poslist)
        elif self.kind == "counts":
            for term, count in value.items():
                yield term.encode("utf-8"), count, float(count), b""
        else:
            for term in value:
                yield term.encode("utf-8"), 1, 1.0, b""

    def process_text(self, qstring, mode="", **kwargs):
        return iter(qstring.split())


def build_schema() -> fields.Schema:
    return fields.Schema(
        id=fields.ID(stored=True, unique=True),
        fp=fields.STORED(),
        content=PostingsField("counts"),
        cjk=PostingsField("counts"),
        cjkpos=PostingsField(scorable=False),
        title=PostingsField(),
        borrower=PostingsField(),
        ids=PostingsField("terms", scorable=False),
        idgram=PostingsField(scorable=False),
        idno=PostingsField("terms", scorable=False),
        idnogram=PostingsField(scorable=False),
        doctype=fields.ID(sortable=True),
        stage=fields.ID(sortable=True),
        state=fields.ID(sortable=True),
        scope=PostingsField("terms", scorable=False),
        doc_date=fields.DATETIME(sortable=True),
        added=fields.DATETIME(sortable=True),
    )


# -- what one document becomes ------------------------------------------------------------------

@dataclass
class IndexRecord:
    """Plain values of one document, drawn from the database (or the benchmark's corpus)."""

    id: int
    title: str
    doctype: str
    stage: str
    state: str
    institution_path: str
    doc_date: date | datetime | None
    added: datetime | None
    text: str = ""
    borrower: str = ""
    contract_no: str = ""
    archive_no: str = ""
    id_number: str = ""
    text_stamp: str = ""          # when the text was extracted (changes the fingerprint)
    extra_titles: list[str] = field(default_factory=list)  # e.g. the original file name

    def fingerprint(self) -> str:
        """A hash of every indexed value except the text itself, which is represented by its
        extraction stamp: cheap to recompute from the database for every document."""
        body = [SCHEMA_VERSION, self.id, self.title, self.doctype, self.stage, self.state,
                self.institution_path, _iso(self.doc_date), _iso(self.added), self.borrower,
                self.contract_no, self.archive_no, self.id_number, self.text_stamp, self.extra_titles]
        return hashlib.sha1(json.dumps(body, ensure_ascii=False).encode()).hexdigest()[:20]


def _iso(value: date | datetime | None) -> str:
    return value.isoformat() if value else ""


def _as_datetime(value: date | datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day)


def scope_terms(path: str) -> list[str]:
    """``/P/C1/B1/`` → ``/P/``, ``/P/C1/``, ``/P/C1/B1/``."""
    codes = [c for c in path.split("/") if c]
    return ["/" + "/".join(codes[:i]) + "/" for i in range(1, len(codes) + 1)]


def document_fields(record: IndexRecord, analyzer: Analyzer) -> dict:
    """The keyword arguments of ``writer.update_document`` for one record."""
    analyzed = analyzer.analyze(normalize(record.text))
    title_text = normalize(" ".join([record.title, *record.extra_titles]))
    identifiers = [v for v in (record.contract_no, record.archive_no) if v]
    values: dict = {
        "id": str(record.id),
        "fp": record.fingerprint(),
        "content": analyzed.words,
        "cjk": analyzed.bigrams.count_view(),
        "cjkpos": analyzed.bigrams,
        "title": short_text_terms(title_text),
        "borrower": short_text_terms(normalize(record.borrower)),
        "ids": list(identifier_terms(identifiers)),
        "idgram": identifier_grams(identifiers),
        "doctype": record.doctype or "",
        "stage": record.stage or "",
        "state": record.state or "",
        "scope": scope_terms(record.institution_path),
    }
    if record.id_number:
        values["idno"] = [normalize_identifier(record.id_number)]
        values["idnogram"] = identifier_grams([record.id_number])
    for name, value in (("doc_date", record.doc_date), ("added", record.added)):
        as_dt = _as_datetime(value)
        if as_dt is not None:
            values[name] = as_dt
    # Whoosh refuses an empty mapping for nothing, but an empty field adds nothing: drop them.
    return {k: v for k, v in values.items() if not (v == "" or (isinstance(v, (dict, list, Mapping)) and not len(v)))}
