"""The query executor: whole posting lists as numpy arrays, combined over Whoosh's segments.

Whoosh stores the index (segments, term dictionary, postings, columns, deletions, locking and
merging are all Whoosh's); this module answers queries over it. Whoosh's own matchers walk the
postings one document at a time in Python, which on this corpus (common phrases in most
documents) costs 0.5–2 s a query at 20,000 documents. Here a term's posting list is decoded
whole (zlib and pickle do that in C) into sorted numpy arrays, kept in a per-process cache
bounded by bytes (segments never change, so an entry never goes stale), and documents are
sets as sorted arrays: intersections are binary searches, the adjacency check of a phrase's
bigrams is one array of (document, start position) keys per bigram, intersected, and counts
per type, sorting and BM25 scores are array operations over per-segment columns. No Python
loop runs per document or per posting.

A query is a small tree of nodes (``Terms``, ``Phrase``, ``AnyOf``, ``AllOf``), a list of
required nodes (clauses, scope and filters alike: a document outside the scope is never in a
set, so never counted, ranked or shown), excluded nodes, and ranking terms.
"""
from __future__ import annotations

import heapq
import math
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import numpy as np
from whoosh.reading import TermNotFound
from whoosh.util.numeric import byte_to_length

from .analysis import grams
from .schema import decode_positions
from .w3_postings import iter_blocks, read_block
from .whoosh_internals import field_length_bytes, term_info

BM25_B = 0.75
BM25_K1 = 1.2
TEXT_FIELDS = frozenset({"content", "cjk", "cjkpos"})


# -- the query tree -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Terms:
    """Documents holding ``term`` in ``field``."""

    field: str
    term: str


@dataclass(frozen=True)
class Phrase:
    """Documents in which ``text`` occurs verbatim: its ``n``-grams at consecutive positions of
    ``pos_field``. ``set_field`` (if any) holds the same grams without positions, cheaper to
    read for the candidate set; ``proof`` names a (field, term) whose documents certainly
    contain ``text`` (the segmenter kept it as one word), so they need no check."""

    pos_field: str
    text: str
    n: int = 2
    set_field: str | None = None
    proof: tuple[str, str] | None = None


@dataclass(frozen=True)
class AnyOf:
    nodes: tuple


@dataclass(frozen=True)
class AllOf:
    nodes: tuple


@dataclass(frozen=True)
class DateRange:
    """Documents whose ``column`` (a DATETIME field) lies in [low, high] (raw column values)."""

    column: str
    low: int | None
    high: int | None


@dataclass
class Plan:
    required: list = field(default_factory=list)
    excluded: list = field(default_factory=list)
    # (field, term, weight): BM25 over these terms ranks the matches.
    ranking: list[tuple[str, str, float]] = field(default_factory=list)
    # (node, points): a match of the node adds points (e.g. the phrase is in the title).
    bonus: list[tuple[object, float]] = field(default_factory=list)
    # If set, ranking terms of the text fields count only for documents matching this node
    # (those whose text the user may read): the order must not reveal what others say.
    text_ranking_scope: object | None = None


@dataclass
class Result:
    total: int
    hits: list[tuple[int, float]]            # (global docnum, score), the requested slice
    facets: Counter
    segments: int = 0


# -- sorted arrays as sets ----------------------------------------------------------------------

DOCS = np.int64
EMPTY = np.zeros(0, dtype=DOCS)


def intersect(a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """Elements of sorted ``a`` also in sorted ``b`` (``b`` None: all of ``a``); a binary search of
    the smaller array's elements in the larger one."""
    if b is None:
        return a
    if len(a) > len(b):
        a, b = b, a
    if not len(a) or not len(b):
        return EMPTY
    pos = np.searchsorted(b, a)
    pos[pos == len(b)] = len(b) - 1
    return a[b[pos] == a]


def contains(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """For each element of ``a``, whether sorted ``b`` holds it."""
    if not len(b) or not len(a):
        return np.zeros(len(a), dtype=bool)
    pos = np.searchsorted(b, a)
    pos[pos == len(b)] = len(b) - 1
    return b[pos] == a


def difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[~contains(b, a)] if len(b) else a


def union(arrays: list[np.ndarray]) -> np.ndarray:
    arrays = [a for a in arrays if len(a)]
    if not arrays:
        return EMPTY
    if len(arrays) == 1:
        return arrays[0]
    return np.unique(np.concatenate(arrays))


# -- decoded posting lists, cached --------------------------------------------------------------

def _term_info(seg, fieldname: str, term: str):
    try:
        return term_info(seg, fieldname, term.encode("utf-8"))
    except (TermNotFound, KeyError):
        return None


@dataclass
class Postings:
    """Postings of one term in one segment (or in a range of its documents): document numbers
    (sorted), weights, and for fields with positions, each document's positions as
    ``positions[offsets[i]:offsets[i + 1]]``."""

    ids: np.ndarray
    weights: np.ndarray | None = None
    offsets: np.ndarray | None = None
    positions: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.ids, self.weights, self.offsets, self.positions) if a is not None) + 200


NO_POSTINGS = Postings(EMPTY, np.zeros(0), np.zeros(1, dtype=DOCS), EMPTY)


def _blocks_postings(blocks: list, what: str) -> Postings:
    """Consecutive blocks as one ``Postings``; ``what``: "ids", "weights" (and ids) or
    "positions" (and ids). Decoded into lists first, then turned into arrays once."""
    ids: list[int] = []
    weights: list[float] = []
    values: list[bytes] = []
    for data in blocks:
        block_ids, block_weights, block_values = read_block(data)
        ids.extend(block_ids)
        if what == "weights":
            n = len(block_ids)
            weights.extend([1.0] * n if block_weights is None else [block_weights] * n
                           if isinstance(block_weights, float) else block_weights)
        elif what == "positions":
            values.extend(block_values or ())
    out = Postings(np.array(ids, dtype=DOCS))
    if what == "weights":
        out.weights = np.array(weights, dtype=np.float64)
    elif what == "positions":
        lengths = np.fromiter(map(len, values), dtype=DOCS, count=len(values))
        if not (lengths % 2).any():
            out.positions = np.frombuffer(b"".join(values), dtype="<u2").astype(DOCS)
            counts = lengths // 2
        else:
            # A document longer than 65,535 characters (32-bit positions): one at a time.
            decoded = [np.asarray(decode_positions(v), dtype=DOCS) for v in values]
            out.positions = np.concatenate(decoded) if decoded else EMPTY
            counts = np.array([len(d) for d in decoded], dtype=DOCS)
        out.offsets = np.zeros(len(counts) + 1, dtype=DOCS)
        np.cumsum(counts, out=out.offsets[1:])
    return out


def _concat(parts: list[Postings], what: str) -> Postings:
    if not parts:
        return NO_POSTINGS
    if len(parts) == 1:
        return parts[0]
    out = Postings(np.concatenate([p.ids for p in parts]))
    if what == "weights":
        out.weights = np.concatenate([p.weights for p in parts])
    elif what == "positions":
        out.positions = np.concatenate([p.positions for p in parts])
        counts = np.concatenate([np.diff(p.offsets) for p in parts])
        out.offsets = np.zeros(len(counts) + 1, dtype=DOCS)
        np.cumsum(counts, out=out.offsets[1:])
    return out


class _TermBlocks:
    """A term's blocks in one segment, decoded a chunk of blocks at a time as queries need them:
    a query within an institution's subtree reads only the chunks of its documents (adjacent
    after ``flask search reindex``), and a later query reuses what an earlier one decoded."""

    CHUNK = 16   # blocks (of up to 128 postings) decoded together

    def __init__(self, seg, info, what: str) -> None:
        directory = list(iter_blocks(seg, info)) if info is not None else []
        self.data = [data for _count, _maxid, data in directory]
        self.maxids = np.array([maxid for _count, maxid, _data in directory][self.CHUNK - 1::self.CHUNK]
                               + ([directory[-1][1]] if len(directory) % self.CHUNK else []), dtype=DOCS)
        self.decoded: list[Postings | None] = [None] * len(self.maxids)
        self.what = what
        self.whole: Postings | None = None
        self.nbytes = 64 * len(directory) + 200

    def range(self, low: int | None, high: int | None) -> tuple[Postings, int]:
        """The postings of documents in [low, high] (and possibly some around), and the bytes
        newly decoded."""
        if self.whole is not None:
            return self.whole, 0
        count = len(self.maxids)
        first = 0 if low is None else int(np.searchsorted(self.maxids, low))
        last = count if high is None else min(count, int(np.searchsorted(self.maxids, high)) + 1)
        added = 0
        for c in range(first, last):
            if self.decoded[c] is None:
                self.decoded[c] = _blocks_postings(self.data[c * self.CHUNK:(c + 1) * self.CHUNK], self.what)
                added += self.decoded[c].nbytes
        if first == 0 and last == count:
            chunks_bytes = sum(p.nbytes for p in self.decoded)
            self.whole = _concat(self.decoded, self.what)
            self.decoded = []                # the whole list replaces its chunks
            return self.whole, added + self.whole.nbytes - chunks_bytes
        return _concat(self.decoded[first:last], self.what), added


class PostingsCache:
    """Decoded posting lists of this process, least recently used first out, bounded by bytes.
    Keyed by segment id: a segment never changes (deletions are read from the live reader)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, _TermBlocks] = OrderedDict()
        self._sizes: dict[tuple, int] = {}

    def get(self, seg, segment_id: str, fieldname: str, term: str, what: str,
            low: int | None = None, high: int | None = None) -> Postings:
        key = (segment_id, fieldname, term, what)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                if entry.whole is not None:
                    return entry.whole
            else:
                entry = self._entries[key] = _TermBlocks(seg, _term_info(seg, fieldname, term), what)
                self._sizes[key] = entry.nbytes
                self.bytes += entry.nbytes
            # Decoding under the lock: a worker's threads rarely search at once, and two threads
            # decoding the same block would only waste the work.
            postings, added = entry.range(low, high)
            self._sizes[key] += added
            self.bytes += added
            while self.bytes > self.max_bytes and len(self._entries) > 1:
                old_key, _old = self._entries.popitem(last=False)
                self.bytes -= self._sizes.pop(old_key)
            return postings

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._sizes.clear()
            self.bytes = 0


# 192 MB a process: the posting lists of the bigrams and words of many queries at 100,000
# documents (a common bigram's positions over all of them take about 2 MB).
POSTINGS = PostingsCache(192 * 1024 * 1024)


# -- per-segment data, cached across queries ----------------------------------------------------

class _SegmentCache:
    """Columns and field-length norms of one segment, as arrays."""

    def __init__(self) -> None:
        self.columns: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.categories: dict[str, tuple[list, np.ndarray]] = {}
        self.norms: dict[str, tuple[float, np.ndarray]] = {}
        # Document frequency per (field, term): the query plan asks for every gram of every
        # phrase (about 200 lookups a search, a third of its CPU before). A segment never
        # changes once written, so a kept answer stays true; bounded, emptied when full.
        self.frequencies: dict[tuple[str, str], tuple[int, float] | None] = {}


MAX_FREQUENCIES = 50_000
_UNKNOWN = object()


class SegmentCaches:
    """Process-wide cache of segment data, keyed by segment id; a few segments at most."""

    MAX_SEGMENTS = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_segment: OrderedDict[str, _SegmentCache] = OrderedDict()

    def get(self, segment_id: str) -> _SegmentCache:
        with self._lock:
            cache = self._by_segment.get(segment_id)
            if cache is None:
                cache = self._by_segment[segment_id] = _SegmentCache()
                while len(self._by_segment) > self.MAX_SEGMENTS:
                    self._by_segment.popitem(last=False)
            else:
                self._by_segment.move_to_end(segment_id)
            return cache

    def clear(self) -> None:
        with self._lock:
            self._by_segment.clear()

    def snapshot(self) -> list[_SegmentCache]:
        with self._lock:
            return list(self._by_segment.values())

    def retain(self, segment_ids) -> None:
        """Forget the segments a merge has replaced (the index no longer has them)."""
        with self._lock:
            for gone in set(self._by_segment) - set(segment_ids):
                del self._by_segment[gone]


CACHES = SegmentCaches()


def forget_terms() -> None:
    """Forget what was learnt of terms (decoded posting lists, document frequencies), keeping
    each segment's columns and norms: a query none of whose terms was asked for since the
    worker started (the benchmark's and the tests' cold runs)."""
    POSTINGS.clear()
    for cache in CACHES.snapshot():
        cache.frequencies.clear()


def clear_caches() -> None:
    """Forget every decoded posting list, column and frequency."""
    POSTINGS.clear()
    CACHES.clear()


class _Segment:
    def __init__(self, seg, offset: int) -> None:
        self.seg = seg
        self.offset = offset
        self.doc_count_all = seg.doc_count_all()
        self.segment_id = seg.segment().segment_id()
        self.deleted = (np.array(sorted(seg.deleted_docs_set), dtype=DOCS) if seg.has_deletions() else EMPTY)
        self.cache = CACHES.get(self.segment_id)

    def postings(self, fieldname: str, term: str, what: str = "ids", within: np.ndarray | None = None) -> Postings:
        """The term's postings; with ``within`` (sorted), at least those of its documents."""
        if within is not None and len(within):
            return POSTINGS.get(self.seg, self.segment_id, fieldname, term, what, int(within[0]), int(within[-1]))
        return POSTINGS.get(self.seg, self.segment_id, fieldname, term, what)

    def ids(self, fieldname: str, term: str, within: np.ndarray | None = None) -> np.ndarray:
        return self.postings(fieldname, term, "ids", within).ids

    def all_docs(self) -> np.ndarray:
        return np.arange(self.doc_count_all, dtype=DOCS)

    def term_stats(self, fieldname: str, term: str) -> tuple[int, float] | None:
        """(document frequency, total weight) of the term, None if the segment lacks it."""
        known = self.cache.frequencies
        key = (fieldname, term)
        stats = known.get(key, _UNKNOWN)   # one lookup: another thread may empty the dict
        if stats is not _UNKNOWN:
            return stats
        info = _term_info(self.seg, fieldname, term)
        stats = (info.doc_frequency(), info.weight()) if info is not None else None
        if len(known) >= MAX_FREQUENCIES:
            known.clear()
        known[key] = stats
        return stats

    def doc_frequency(self, fieldname: str, term: str) -> int:
        stats = self.term_stats(fieldname, term)
        return stats[0] if stats is not None else 0

    def column(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """A numeric column as (values, present), values -1 where absent."""
        col = self.cache.columns.get(name)
        if col is None:
            raw = list(self.seg.column_reader(name, translate=False)) if self.seg.has_column(name) else []
            raw = raw or [None] * self.doc_count_all
            present = np.array([v is not None for v in raw], dtype=bool)
            values = np.array([-1 if v is None else v for v in raw], dtype=np.int64)
            col = self.cache.columns[name] = (values, present)
        return col

    def categories(self, name: str) -> tuple[list, np.ndarray]:
        """A column of few distinct values (a document type) as (values, code per document)."""
        cat = self.cache.categories.get(name)
        if cat is None:
            raw = list(self.seg.column_reader(name, translate=False)) if self.seg.has_column(name) else []
            raw = raw or [None] * self.doc_count_all
            values = list(dict.fromkeys(raw))
            index = {v: i for i, v in enumerate(values)}
            cat = self.cache.categories[name] = (values, np.array([index[v] for v in raw], dtype=DOCS))
        return cat

    def norms(self, fieldname: str, avg_length: float) -> np.ndarray:
        """BM25's length term k1·(1 − b + b·dl/avgdl) for every document of the segment (kept
        for the latest average length only)."""
        cached = self.cache.norms.get(fieldname)
        if cached is not None and cached[0] == avg_length:
            return cached[1]
        reader = field_length_bytes(self.seg, fieldname)
        lengths = [byte_to_length(b) for b in reader] if reader is not None else [0] * self.doc_count_all
        avg = avg_length or 1.0
        norms = np.array([BM25_K1 * (1 - BM25_B + BM25_B * dl / avg) for dl in lengths], dtype=np.float64)
        self.cache.norms[fieldname] = (avg_length, norms)
        return norms


# -- evaluation ---------------------------------------------------------------------------------

def _estimate(node, segment: _Segment) -> int:
    if isinstance(node, Terms):
        return segment.doc_frequency(node.field, node.term)
    if isinstance(node, Phrase):
        f = node.set_field or node.pos_field
        return min((segment.doc_frequency(f, g) for g in set(grams(node.text, node.n))), default=0)
    if isinstance(node, AnyOf):
        return sum(_estimate(n, segment) for n in node.nodes)
    if isinstance(node, AllOf):
        return min((_estimate(n, segment) for n in node.nodes), default=0)
    if isinstance(node, DateRange):
        return segment.doc_count_all + 1   # applied last, as a filter
    raise TypeError(node)


def _evaluate(node, segment: _Segment, within: np.ndarray | None) -> np.ndarray:
    """The documents of ``segment`` matching ``node`` (among ``within``, if given), sorted."""
    if isinstance(node, Terms):
        return intersect(segment.ids(node.field, node.term, within), within)
    if isinstance(node, Phrase):
        return _phrase(node, segment, within)
    if isinstance(node, AnyOf):
        return union([_evaluate(child, segment, within) for child in node.nodes])
    if isinstance(node, AllOf):
        docs = within
        for child in sorted(node.nodes, key=lambda n: _estimate(n, segment)):
            docs = _evaluate(child, segment, docs)
            if not len(docs):
                return EMPTY
        return docs if docs is not None else segment.all_docs()
    if isinstance(node, DateRange):
        values, present = segment.column(node.column)
        candidates = within if within is not None else segment.all_docs()
        keep = present[candidates]
        if node.low is not None:
            keep &= values[candidates] >= node.low
        if node.high is not None:
            keep &= values[candidates] <= node.high
        return candidates[keep]
    raise TypeError(node)


_DOC_SHIFT = 32


def cheapest_cover(weights: list[float], n: int) -> list[int]:
    """Offsets of grams covering every character of the text (the first and last grams, and no
    gap of more than ``n`` between chosen offsets), with the least total weight. Fewer
    positions to decode than a fixed cover when a middle gram is common (经营 in 生产经营正常)."""
    count = len(weights)
    cost = [0.0] * count
    back = [-1] * count
    cost[0] = weights[0]
    for i in range(1, count):
        j = min(range(max(0, i - n), i), key=cost.__getitem__)
        cost[i] = cost[j] + weights[i]
        back[i] = j
    chosen, i = [], count - 1
    while i != -1:
        chosen.append(i)
        i = back[i]
    return chosen[::-1]


def _start_keys(postings: Postings, docs: np.ndarray, offset: int) -> np.ndarray:
    """For every position at which the gram occurs in one of ``docs``, the key
    (doc << 32) + position − offset, i.e. where the phrase would start; sorted, as the
    documents and each document's positions are."""
    rows = np.searchsorted(postings.ids, docs)
    rows[rows == len(postings.ids)] = max(len(postings.ids) - 1, 0)
    found = postings.ids[rows] == docs if len(postings.ids) else np.zeros(len(docs), dtype=bool)
    rows, docs = rows[found], docs[found]
    starts = postings.offsets[rows]
    counts = postings.offsets[rows + 1] - starts
    total = int(counts.sum())
    if not total:
        return EMPTY
    # Gather each document's run of positions: start of its run + 0, 1, 2, …
    run_starts = np.cumsum(counts) - counts
    gather = np.repeat(starts - run_starts, counts) + np.arange(total, dtype=DOCS)
    return (np.repeat(docs, counts) << _DOC_SHIFT) + postings.positions[gather] - offset


def _phrase(node: Phrase, segment: _Segment, within) -> np.ndarray:
    all_grams = grams(node.text, node.n)
    if not all_grams:
        return EMPTY
    set_field = node.set_field or node.pos_field
    frequency = {}
    for gram in set(all_grams):
        stats = segment.term_stats(set_field, gram)
        if stats is None:
            return EMPTY
        frequency[gram] = stats
    if len(all_grams) == 1:
        return intersect(segment.ids(set_field, all_grams[0], within), within)
    cover = cheapest_cover([frequency[g][1] for g in all_grams], node.n)
    # The candidates: documents holding every cover gram, and the rarest gram of all.
    needed = {all_grams[o] for o in cover}
    needed.add(min(frequency, key=lambda g: frequency[g][0]))
    cover_grams = {all_grams[o] for o in cover}
    docs = within
    for gram in sorted(needed, key=lambda g: frequency[g][0]):
        # A cover gram's positions are read anyway (cached, in the same chunks): take its
        # documents from them rather than decode the set field's blocks as well.
        field_ids = (segment.postings(node.pos_field, gram, "positions", docs).ids if gram in cover_grams
                     else segment.ids(set_field, gram, docs))
        docs = intersect(field_ids, docs)
        if not len(docs):
            return EMPTY
    proven = EMPTY
    if node.proof is not None:
        proven = intersect(docs, segment.ids(*node.proof, docs))
    candidates = difference(docs, proven)
    if not len(candidates):
        return proven
    offsets: dict[str, list[int]] = {}
    for o in cover:
        offsets.setdefault(all_grams[o], []).append(o)
    starts: np.ndarray | None = None
    alive = candidates
    for gram in sorted(offsets, key=lambda g: frequency[g][1]):
        postings = segment.postings(node.pos_field, gram, "positions", alive)
        for offset in offsets[gram]:
            keys = _start_keys(postings, alive, offset)
            starts = keys if starts is None else intersect(starts, keys)
            if not len(starts):
                return proven
        if len(starts) * 4 < len(alive):
            # Most candidates are out: gather the next grams' positions only for the ones left.
            alive = np.unique(starts >> _DOC_SHIFT)
    return union([proven, np.unique(starts >> _DOC_SHIFT)])


# -- the whole query ----------------------------------------------------------------------------

def execute(searcher, plan: Plan, *, sort: str = "relevance", offset: int = 0, limit: int = 20,
            facet: str | None = "doctype", date_column: str = "doc_date", tie_column: str = "added") -> Result:
    """Run ``plan`` over every segment; return the total, the slice [offset, offset+limit) of
    the ordered hits, and counts per ``facet`` value, all over the same set of documents."""
    reader = searcher.reader()
    leaves = reader.leaf_readers() if hasattr(reader, "leaf_readers") else [(reader, 0)]
    # An index without a segment yet (no document ever indexed) reads as Whoosh's EmptyReader.
    leaves = [(leaf, base) for leaf, base in leaves if leaf.segment() is not None]
    CACHES.retain(leaf.segment().segment_id() for leaf, _base in leaves)
    want = offset + limit
    doc_count = max(reader.doc_count(), 1)
    idf: dict[tuple[str, str], float] = {}
    avg_len: dict[str, float] = {}
    for fieldname, term, _w in plan.ranking:
        df = reader.doc_frequency(fieldname, term)
        idf[(fieldname, term)] = math.log(1 + (doc_count - df + 0.5) / (df + 0.5))
        if fieldname not in avg_len:
            avg_len[fieldname] = reader.field_length(fieldname) / doc_count

    total = 0
    facets: Counter = Counter()
    best: list = []
    for seg, base in leaves:
        segment = _Segment(seg, base)
        if segment.doc_count_all == 0:
            continue
        docs = _matches(plan, segment)
        if not len(docs):
            continue
        total += len(docs)
        if facet:
            values, codes = segment.categories(facet)
            counts = np.bincount(codes[docs], minlength=len(values))
            facets.update({values[i]: int(n) for i, n in enumerate(counts.tolist()) if n})
        date_keys = segment.column(date_column)[0][docs]
        added_keys = segment.column(tie_column)[0][docs]
        global_ids = docs + base
        if sort == "relevance":
            scores = _scores(plan, segment, docs, idf, avg_len)
            order = np.lexsort((global_ids, added_keys, date_keys, scores))[::-1][:want]
            rows = zip(scores[order].tolist(), date_keys[order].tolist(), added_keys[order].tolist(),
                       global_ids[order].tolist())
            best = heapq.nlargest(want, [*best, *rows])
        elif sort == "date_asc":
            order = np.lexsort((global_ids, added_keys, date_keys))[:want]
            rows = zip(date_keys[order].tolist(), added_keys[order].tolist(), global_ids[order].tolist())
            best = heapq.nsmallest(want, [*best, *rows])
        else:
            order = np.lexsort((global_ids, added_keys, date_keys))[::-1][:want]
            rows = zip(date_keys[order].tolist(), added_keys[order].tolist(), global_ids[order].tolist())
            best = heapq.nlargest(want, [*best, *rows])
    page = best[offset:want]
    if sort == "relevance":
        hits = [(gid, score) for score, _date, _added, gid in page]
    else:
        hits = [(gid, 0.0) for _date, _added, gid in page]
    facets.pop(None, None)
    # ID columns hold UTF-8 bytes.
    facets = Counter({k.decode("utf-8") if isinstance(k, bytes) else k: n for k, n in facets.items()})
    return Result(total=total, hits=hits, facets=facets, segments=len(leaves))


def _matches(plan: Plan, segment: _Segment) -> np.ndarray:
    required = sorted(plan.required, key=lambda n: _estimate(n, segment))
    docs: np.ndarray | None = None
    for node in required:
        docs = _evaluate(node, segment, docs)
        if not len(docs):
            return EMPTY
    if docs is None:
        docs = segment.all_docs()
    docs = difference(docs, segment.deleted)
    for node in plan.excluded:
        if not len(docs):
            break
        docs = difference(docs, _evaluate(node, segment, docs))
    return docs


def _scores(plan: Plan, segment: _Segment, docs: np.ndarray, idf, avg_len) -> np.ndarray:
    """BM25 of the ranking terms plus bonuses, for ``docs``, as arrays."""
    totals = np.zeros(len(docs), dtype=np.float64)
    readable = None
    if plan.text_ranking_scope is not None:
        readable = contains(_evaluate(plan.text_ranking_scope, segment, docs), docs)
    for fieldname, term, weight in plan.ranking:
        postings = segment.postings(fieldname, term, "weights", docs)
        if not len(postings.ids):
            continue
        rows = np.searchsorted(postings.ids, docs)
        rows[rows == len(postings.ids)] = len(postings.ids) - 1
        tfs = np.where(postings.ids[rows] == docs, postings.weights[rows], 0.0)
        norms = segment.norms(fieldname, avg_len[fieldname])
        factor = idf[(fieldname, term)] * weight * (BM25_K1 + 1)
        contrib = (tfs * factor) / (tfs + norms[docs])
        if readable is not None and fieldname in TEXT_FIELDS:
            contrib = contrib * readable
        totals = totals + contrib
    for node, points in plan.bonus:
        matched = _evaluate(node, segment, docs)
        if len(matched):
            totals = totals + contains(matched, docs) * points
    return totals
