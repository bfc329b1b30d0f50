"""The bulk reader of W3 posting blocks reads, block for block, what Whoosh's own matcher reads: from
segments written by Whoosh's writer and by ours. (That Whoosh reads what ``write_term`` writes is
``test_segment_writer``'s comparison.)"""
from __future__ import annotations

import pytest
from whoosh import index as whoosh_index

from portal.search.schema import build_schema, document_fields
from portal.search.segment_writer import FastSegmentWriter
from portal.search.w3_postings import BLOCK_LIMIT, decode_block, iter_blocks, read_block
from portal.search.whoosh_internals import term_info

from .test_segment_writer import ANALYZER, records


def whooshs_blocks(reader, fieldname: str, tbytes: bytes) -> list[list[tuple]]:
    """The term's postings as Whoosh's matcher reads them, block by block: (id, weight, value)."""
    matcher = reader.postings(fieldname, tbytes)
    blocks: list[list[tuple]] = [[]]
    while matcher.is_active():
        blocks[-1].append((matcher.id(), matcher.weight(), matcher.value()))
        if matcher.next() and matcher.is_active():   # True: it moved on to the next block
            blocks.append([])
    return blocks


def our_blocks(seg, fieldname: str, tbytes: bytes) -> list[list[tuple]]:
    """The same, read by ``iter_blocks`` and ``decode_block``, values split per posting as Whoosh does."""
    fixed = seg.schema[fieldname].format.fixed_value_size()
    blocks = []
    for count, maxid, data in iter_blocks(seg, term_info(seg, fieldname, tbytes)):
        ids, weights, values = decode_block(data)
        assert (count, maxid) == (len(ids), ids[-1])
        assert read_block(data)[0] == ids
        if fixed == 0:
            values = [None] * count
        elif fixed is not None and fixed > 0:
            values = [values[i:i + fixed] for i in range(0, len(values), fixed)]
        blocks.append(list(zip(ids, weights, values)))
    return blocks


@pytest.mark.parametrize("writer", ["whoosh", "ours"])
def test_blocks_read_in_bulk_are_the_postings_whoosh_reads(tmp_path, writer):
    ix = whoosh_index.create_in(str(tmp_path), build_schema())
    w = ix.writer() if writer == "whoosh" else FastSegmentWriter(ix)
    for rec in records(300):                  # common terms span more than one block of 128
        w.add_document(**document_fields(rec, ANALYZER))
    w.commit()
    with ix.reader() as seg:
        terms = list(seg.all_terms())
        assert any(seg.doc_frequency(f, t) > BLOCK_LIMIT for f, t in terms)
        for fieldname, tbytes in terms:
            assert our_blocks(seg, fieldname, tbytes) == whooshs_blocks(seg, fieldname, tbytes), (fieldname, tbytes)
