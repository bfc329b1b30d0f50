"""The only module that reads Whoosh's private attributes or calls its private functions and methods.

The search package leans on a few internals of whoosh-reloaded for speed: the segment writer
(``segment_writer``) hooks into the steps of ``SegmentWriter.commit`` and writes a field's term
table rows itself, and the query engine (``engine``) reads a segment's term table, postings file
and field-length columns without the reader's per-call checks. None of these names is Whoosh's
API; any release may change them. So:

- pyproject.toml pins whoosh-reloaded to exactly ``PINNED_VERSION``;
- importing this module raises ``WhooshVersionError`` on any other version. The check runs at
  import, not in a start-up step: every process that can write the index (the web app through
  the search blueprint, ``flask search``, the benchmark, forked bulk loaders) imports this
  module before it opens a writer, and none of them may run on other internals, where it could
  write segments Whoosh cannot read back;
- ``tests/search/test_whoosh_internals.py`` checks that every internal named here still exists
  with the shape used here, and that no other module names one of ``PRIVATE_NAMES``.

The W3 posting-block format (``w3_postings``) is a file format rather than an attribute: its
tests compare what it writes and reads with Whoosh's own writer and reader, posting for posting.
"""
from __future__ import annotations

import whoosh
from whoosh.codec.whoosh3 import LENGTHS_COLUMN, _lenfield
from whoosh.system import pack_ushort
from whoosh.writing import SegmentWriter

PINNED_VERSION = "2.7.5"    # as pyproject.toml pins it

# The file lock a SegmentWriter takes: FileIndex.lock("WRITELOCK") of an index of the default
# name ("MAIN", whoosh.index._DEF_INDEX_NAME). Taken by name where no FileIndex can be opened yet.
WRITER_LOCK_NAME = "MAIN_WRITELOCK"

# Whoosh's private names used here, and nowhere else in the portal (the test checks both).
PRIVATE_NAMES = frozenset({
    "_lenfield", "_perdoc", "_cached_reader", "_terms", "_postfile", "_tindex", "_fieldid",
    "_lk", "_check_state", "_check_fields", "_added", "_flush_segment", "_close_segment",
    "_finalize_segment", "_commit_toc", "_finish", "_segments",
})


class WhooshVersionError(RuntimeError):
    """The installed Whoosh is not the version whose internals this package was written against."""


def check_version(installed: str | None = None) -> None:
    """Raise ``WhooshVersionError`` unless ``installed`` (default: the imported Whoosh) is the pinned version."""
    installed = whoosh.versionstring() if installed is None else installed
    if installed != PINNED_VERSION:
        raise WhooshVersionError(
            f"The search index needs whoosh-reloaded {PINNED_VERSION} exactly, found {installed}: "
            f"portal/search relies on its internals (portal/search/whoosh_internals.py). "
            f"Install the version pinned in pyproject.toml, or port whoosh_internals.py and "
            f"w3_postings.py to {installed} and run tests/search.")


check_version()


# -- reading a segment ----------------------------------------------------------------------------

def term_info(seg, fieldname: str, tbytes: bytes):
    """SegmentReader._terms.term_info: a term's W3TermInfo, without the reader's schema checks; raises TermNotFound."""
    return seg._terms.term_info(fieldname, tbytes)


def term_infos(seg):
    """SegmentReader._terms.items(): ((field name, term bytes), W3TermInfo) of every term of the segment."""
    return seg._terms.items()


def posting_bytes(seg, info) -> bytes:
    """SegmentReader._terms._postfile: the bytes of a term's posting blocks, at W3TermInfo.extent()."""
    offset, length = info.extent()
    if isinstance(length, tuple):
        length = length[0]      # W3TermInfo.from_bytes keeps struct.unpack's 1-tuple
    return seg._terms._postfile.get(offset, length)


def field_length_bytes(seg, fieldname: str):
    """SegmentReader._perdoc._cached_reader of column whoosh3._lenfield(field): each document's length byte, or None."""
    return seg._perdoc._cached_reader(_lenfield(fieldname), LENGTHS_COLUMN)


def index_segments(ix) -> list:
    """FileIndex._segments(): the segments listed by the index's latest table of contents."""
    return ix._segments()


# -- writing a segment ----------------------------------------------------------------------------

def postings_file(fieldwriter):
    """W3FieldWriter._postfile: the new segment's postings file, written at its end."""
    return fieldwriter._postfile


def term_row_adder(fieldwriter):
    """W3FieldWriter._tindex and _fieldid: a function adding (term bytes, W3TermInfo) rows, as finish_term does."""
    add_row = fieldwriter._tindex.add
    field_key = pack_ushort(fieldwriter._fieldid)    # the field started last (start_field)

    def add_term(tbytes: bytes, info) -> None:
        add_row(field_key + tbytes, info.to_bytes())

    return add_term


class SegmentWriterSteps(SegmentWriter):
    """SegmentWriter with the private steps of its commit under public names, and one hook:
    ``flush_postings`` writes the new segment's postings in place of SegmentWriter._flush_segment."""

    def __init__(self, ix, *, lock: bool = True, **kwargs) -> None:
        # SegmentWriter's ``_lk``; SegmentWriter takes **kwargs, so a misspelt name would be ignored.
        super().__init__(ix, _lk=lock, **kwargs)

    def check_open(self) -> None:
        """SegmentWriter._check_state: raise IndexingError if this writer is closed."""
        self._check_state()

    def check_field_names(self, fieldnames) -> None:
        """SegmentWriter._check_fields: raise UnknownFieldError for a name the schema lacks."""
        self._check_fields(self.schema, fieldnames)

    def mark_added(self) -> None:
        """SegmentWriter._added: the segment has documents, so commit writes it."""
        self._added = True

    def flush_postings(self) -> None:
        """Close the per-document writer and write every posting of the new segment."""
        raise NotImplementedError

    def _flush_segment(self) -> None:
        """SegmentWriter._flush_segment: the step of _finalize_segment that writes the postings."""
        self.flush_postings()

    def close_segment(self) -> None:
        """SegmentWriter._close_segment: close the new segment's files, unwritten if not flushed."""
        self._close_segment()

    def finalize_segment(self):
        """SegmentWriter._finalize_segment: flush, close and assemble the new segment; return it."""
        return self._finalize_segment()

    def commit_toc(self, segments: list) -> None:
        """SegmentWriter._close_segment, _commit_toc and _finish: commit ``segments`` (written by
        other writers) as the index's table of contents, without a segment of this writer's own."""
        self._close_segment()
        self._commit_toc(segments)
        self._finish()
