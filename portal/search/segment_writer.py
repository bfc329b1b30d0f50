"""A faster Whoosh segment writer: the same segments, written without Whoosh's per-posting detours.

Whoosh's ``SegmentWriter`` pushes every posting through a sorting pool as a tuple, sorts them all
at commit, then, per posting, looks the document's field length up in a column file and passes
four layers of calls with type assertions. For this index (≈ 600 postings a document) that is
about 20 µs a posting, 60–80 documents a second, short of the goal of 150.

``FastSegmentWriter`` keeps the postings grouped by term as they arrive (compact arrays), keeps
field lengths in memory, and at commit writes each term's blocks with ``w3_postings.write_term``
in the layout of ``whoosh.codec.whoosh3.W3PostingsWriter``, so every reader, searcher and merge
of Whoosh works on the result unchanged. Merging (``add_reader``) appends a block at a time.
Everything else (locking, stored fields, columns, deletions, merge policies, the TOC) is
Whoosh's own code, reached through ``whoosh_internals.SegmentWriterSteps`` where it is private.
``tests/search/test_segment_writer.py`` checks the result against Whoosh's writer, posting for
posting, before and after a merge.
"""
from __future__ import annotations

from array import array
from itertools import repeat

import numpy as np
from whoosh.codec.whoosh3 import W3Codec

from .analysis import GramCounts, GramPostings, gram_text
from .schema import encode_positions
from .w3_postings import decode_block, iter_blocks, write_term
from .whoosh_internals import SegmentWriterSteps, postings_file, term_infos, term_row_adder


class _FieldPostings:
    """One field's postings in the order they arrive, in columns: term number, document number,
    weight, value length, and the values' bytes one after another. Terms are numbered as they
    first come; the postings are sorted by term (bytes) and document only once, at commit,
    with numpy, instead of being appended to one small structure per term as they arrive."""

    __slots__ = ("terms", "term_ids", "gram_ids", "tids", "docs", "weights", "vlens", "data")

    def __init__(self) -> None:
        self.terms: list[bytes] = []
        self.term_ids: dict[bytes, int] = {}
        self.gram_ids: dict[int, int] = {}      # analysis.gram_code → term number
        self.tids = array("i")
        self.docs = array("i")
        self.weights = array("f")
        self.vlens = array("I")
        self.data = bytearray()

    def __len__(self) -> int:
        return len(self.tids)

    def _new_term(self, tbytes: bytes) -> int:
        number = self.term_ids.get(tbytes)
        if number is None:
            number = self.term_ids[tbytes] = len(self.terms)
            self.terms.append(tbytes)
        return number

    def ids_for(self, tbytes_list: list[bytes]) -> list[int]:
        ids = list(map(self.term_ids.get, tbytes_list))
        if None in ids:
            ids = [self._new_term(t) if i is None else i for t, i in zip(tbytes_list, ids)]
        return ids

    def gram_ids_for(self, codes: list[int]) -> list[int]:
        ids = list(map(self.gram_ids.get, codes))
        if None in ids:
            for k, code in enumerate(codes):
                if ids[k] is None:
                    number = self.gram_ids.get(code)
                    if number is None:
                        number = self.gram_ids[code] = self._new_term(gram_text(code).encode("utf-8"))
                    ids[k] = number
        return ids

    def add(self, tids, docnum: int, weights, vlens=None, data=b"") -> None:
        count = len(tids)
        self.tids.extend(tids)
        self.docs.extend(repeat(docnum, count))
        self.weights.extend(weights)
        self.vlens.extend(repeat(0, count) if vlens is None else vlens)
        if data:
            self.data += data


class _GroupingPool:
    """Stands in for Whoosh's ``PostingPool``: each field's postings, in columns, in memory."""

    def __init__(self) -> None:
        self.fields: dict[str, _FieldPostings] = {}
        self.fieldnames: set[str] = set()

    def field(self, fieldname: str) -> _FieldPostings:
        postings = self.fields.get(fieldname)
        if postings is None:
            postings = self.fields[fieldname] = _FieldPostings()
            self.fieldnames.add(fieldname)
        return postings

    def add(self, item) -> None:
        fieldname, tbytes, docnum, weight, vbytes = item
        self.field(fieldname).add(self.field(fieldname).ids_for([tbytes]), docnum, [weight], [len(vbytes or b"")],
                                  vbytes or b"")

    def iter_postings(self):
        for fieldname in sorted(self.fields):
            for tbytes, ids, weights, data, starts, ends in _sorted_terms(self.fields[fieldname]):
                for docnum, weight, start, end in zip(ids, weights, starts, ends):
                    yield fieldname, tbytes, docnum, weight, data[start:end]

    def cleanup(self) -> None:
        self.fields.clear()


def _sorted_terms(postings: _FieldPostings):
    """(term bytes, document numbers, weights, values' bytes, value starts, value ends) of each
    term of a field, in the order of the terms' bytes, documents ascending."""
    count = len(postings)
    if not count:
        return
    tids = np.frombuffer(postings.tids, dtype=np.int32)
    docs = np.frombuffer(postings.docs, dtype=np.int32)
    terms = postings.terms
    rank = np.empty(len(terms), dtype=np.int64)
    rank[sorted(range(len(terms)), key=terms.__getitem__)] = np.arange(len(terms))
    ranks = rank[tids]
    if count < 2 or bool(np.all(docs[1:] >= docs[:-1])):
        order = np.argsort(ranks, kind="stable")     # documents arrived in order: keep it per term
    else:
        order = np.lexsort((docs, ranks))           # merged segments out of order: sort by both
    vlens = np.frombuffer(postings.vlens, dtype=np.uint32).astype(np.int64)
    value_starts = np.cumsum(vlens) - vlens
    ids = docs[order].tolist()
    weights = np.frombuffer(postings.weights, dtype=np.float32)[order].tolist()
    starts = value_starts[order]
    ends = (starts + vlens[order]).tolist()
    starts = starts.tolist()
    sorted_ranks = ranks[order]
    bounds = np.flatnonzero(sorted_ranks[1:] != sorted_ranks[:-1]) + 1
    firsts = [0, *bounds.tolist()]
    lasts = [*bounds.tolist(), count]
    data = bytes(postings.data)
    for a, b in zip(firsts, lasts):
        yield (terms[int(tids[order[a]])], ids[a:b], weights[a:b], data, starts[a:b], ends[a:b])


class FastSegmentWriter(SegmentWriterSteps):
    """``SegmentWriter`` with columnar postings and a direct block writer (see module doc).
    ``lock=False``: a writer of one segment for ``SearchIndex.bulk_add``, whose parent holds the lock."""

    def __init__(self, ix, **kwargs) -> None:
        kwargs.setdefault("codec", W3Codec())
        super().__init__(ix, **kwargs)
        if not isinstance(self.codec, W3Codec):  # pragma: no cover - pinned dependency
            raise TypeError("FastSegmentWriter writes the W3 codec only")
        self.pool = _GroupingPool()
        self._lengths: dict[str, dict[int, int]] = {}
        pdw = self.perdocwriter
        original_add_field = pdw.add_field
        lengths = self._lengths

        def add_field(fieldname, fieldobj, value, length):
            # Keep every document's field length (new or merged) for the block statistics.
            if length:
                bucket = lengths.get(fieldname)
                if bucket is None:
                    bucket = lengths[fieldname] = {}
                bucket[self.docnum] = length   # the document being written, new or merged
            original_add_field(fieldname, fieldobj, value, length)

        pdw.add_field = add_field

    def add_document(self, **fields) -> None:
        self.check_open()
        perdocwriter = self.perdocwriter
        schema = self.schema
        docnum = self.docnum
        pool = self.pool
        fieldnames = sorted(name for name in fields if not name.startswith("_"))
        self.check_field_names(fieldnames)

        perdocwriter.start_doc(docnum)
        try:
            for fieldname in fieldnames:
                value = fields.get(fieldname)
                if value is None:
                    continue
                field = schema[fieldname]
                length = 0
                if field.indexed:
                    postings = pool.field(fieldname)
                    kind = getattr(field, "kind", None)
                    if isinstance(value, (GramPostings, GramCounts)) and kind in ("positions", "counts"):
                        length = _add_grams(postings, docnum, value, kind)
                    elif kind == "positions":
                        length = _add_positions(postings, docnum, value)
                    elif kind == "counts":
                        postings.add(postings.ids_for(list(map(str.encode, value))), docnum, list(value.values()))
                        length = sum(value.values())
                    else:
                        tids, weights, vlens, data = [], [], [], []
                        for tbytes, freq, weight, vbytes in field.index(value):
                            length += freq
                            tids.append(tbytes)
                            weights.append(weight)
                            vlens.append(len(vbytes or b""))
                            if vbytes:
                                data.append(vbytes)
                        postings.add(postings.ids_for(tids), docnum, weights, vlens, b"".join(data))
                    if not field.scorable:
                        length = 0
                customval = fields.get("_stored_%s" % fieldname, value)
                perdocwriter.add_field(fieldname, field, customval if field.stored else None, length)
                column = field.column_type
                if column and customval is not None:
                    perdocwriter.add_column_value(fieldname, column, field.to_column_value(customval))
        except Exception:
            perdocwriter.cancel_doc()
            raise
        perdocwriter.finish_doc()
        self.mark_added()
        self.docnum += 1

    def add_reader(self, reader) -> None:
        """Merge a segment in (Whoosh's merge policies call this): stored fields and columns
        through Whoosh, postings read and appended a block at a time instead of one by one."""
        self.check_open()
        basedoc = self.docnum
        indexed = {name for name in reader.indexed_field_names() if name in self.schema}
        docmap = self.write_per_doc(set(self.schema.names()) | indexed, reader)
        for (fieldname, tbytes), info in term_infos(reader):
            if fieldname not in self.schema:
                continue
            postings = self.pool.field(fieldname)
            tid = postings.ids_for([tbytes])[0]
            for _count, _maxid, data in iter_blocks(reader, info):
                ids, weights, values = decode_block(data)
                if docmap is not None:
                    keep = [i for i, d in enumerate(ids) if d in docmap]
                    if not keep:
                        continue
                    ids = [docmap[ids[i]] for i in keep]
                    weights = [weights[i] for i in keep]
                    if isinstance(values, (tuple, list)):
                        values = [values[i] for i in keep]
                else:
                    ids = [d + basedoc for d in ids]
                count = len(ids)
                postings.tids.extend(repeat(tid, count))
                postings.docs.extend(ids)
                postings.weights.extend(weights)
                if isinstance(values, (tuple, list)):
                    postings.vlens.extend(map(len, values))
                    postings.data += b"".join(values)
                elif values:
                    # Values of fixed size: the same length for every posting.
                    postings.vlens.extend(repeat(len(values) // count, count))
                    postings.data += values
                else:
                    postings.vlens.extend(repeat(0, count))
        self.mark_added()

    def flush_postings(self) -> None:
        self.perdocwriter.close()
        fw = self.fieldwriter
        schema = self.schema
        for fieldname in sorted(self.pool.fields):
            postings = self.pool.fields[fieldname]
            if fieldname not in schema or not len(postings):
                continue
            fieldobj = schema[fieldname]
            fw.start_field(fieldname, fieldobj)
            fixed = fieldobj.format.fixed_value_size()
            by_doc = self._lengths.get(fieldname)
            lengths = None
            if by_doc:
                lengths = [0] * (max(max(by_doc), self.docnum) + 1)
                for docnum, length in by_doc.items():
                    lengths[docnum] = length
            postfile = postings_file(fw)
            add_term = term_row_adder(fw)
            for tbytes, ids, weights, data, starts, ends in _sorted_terms(postings):
                add_term(tbytes, write_term(postfile, ids, weights, data, starts, ends, lengths, fixed))
            fw.finish_field()
        fw.close()


_ONE_POSITION = [array("H", [n]).tobytes() for n in range(1 << 16)]


def _add_positions(postings: _FieldPostings, docnum: int, value: dict[str, list[int]]) -> int:
    """Add one document's term → positions mapping (``schema.PackedPositions``); return the
    field length. A single position, the usual case, comes from a table."""
    one = _ONE_POSITION
    chunks = [one[plist[0]] if len(plist) == 1 and plist[0] < 0x10000 else encode_positions(plist)
              for plist in value.values()]
    counts = list(map(len, value.values()))
    postings.add(postings.ids_for(list(map(str.encode, value))), docnum, counts, list(map(len, chunks)),
                 b"".join(chunks))
    return sum(counts)


def _add_grams(postings: _FieldPostings, docnum: int, value, kind: str) -> int:
    """Add a document's bigrams (``analysis.GramPostings``) as whole arrays: the ``cjk`` counts
    or the ``cjkpos`` positions, 16-bit as ``schema.encode_positions`` writes them."""
    grams = value.grams if isinstance(value, GramCounts) else value
    count = len(grams.codes)
    if not count:
        return 0
    tids = postings.gram_ids_for(grams.codes.tolist())
    counts = grams.counts
    if kind == "counts":
        postings.add(tids, docnum, counts.astype(np.float32).tolist())
    elif not len(grams.positions) or int(grams.positions.max()) < 0x10000:
        postings.add(tids, docnum, counts.astype(np.float32).tolist(), (counts * 2).tolist(),
                     grams.positions.astype("<u2").tobytes())
    else:
        # A text longer than 65,536 characters: bigrams with a position past that use 32 bits.
        chunks = [encode_positions(plist) for _gram, plist in grams.items()]
        postings.add(tids, docnum, counts.astype(np.float32).tolist(), list(map(len, chunks)), b"".join(chunks))
    return int(counts.sum())
