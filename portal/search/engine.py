"""The query executor: whole posting lists and set operations over Whoosh's segments.

Whoosh stores the index (segments, term dictionary, postings, columns, deletions, locking and
merging are all Whoosh's); this module answers queries over it. Whoosh's own matchers walk the
postings one document at a time in Python, which on this corpus (common phrases in most
documents) costs 0.5–2 s a query at 20,000 documents. Here a term's posting list is read whole
(zlib and pickle do the decoding in C) and combined with Python's set operations, so the
per-document work left in Python is the adjacency check of a phrase's bigrams, done only for
candidates that no cheaper proof covers. Counts per type, sorting and BM25 scores use C-level
``map``/``heapq`` over per-segment columns.

A query is a small tree of nodes (``Terms``, ``Phrase``, ``AnyOf``, ``AllOf``), a list of
required nodes (clauses, scope and filters alike: a document outside the scope is never in a
set, so never counted, ranked or shown), excluded nodes, and ranking terms.
"""
from __future__ import annotations

import heapq
import math
import threading
from bisect import bisect_left, bisect_right
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import add, and_, floordiv, lshift, mul, rshift, sub, truediv

from whoosh.codec.whoosh3 import LENGTHS_COLUMN, _lenfield
from whoosh.reading import TermNotFound
from whoosh.util.numeric import byte_to_length

from .analysis import grams
from .schema import decode_positions
from .writer import decode_block, decode_ids, iter_blocks

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


# -- reading postings in bulk -------------------------------------------------------------------

def _term_info(seg, fieldname: str, term: str):
    try:
        return seg._terms.term_info(fieldname, term.encode("utf-8"))
    except (TermNotFound, KeyError):
        return None


def read_postings(seg, fieldname: str, term: str) -> tuple[list[int], list[float]]:
    """Document numbers and weights of a term in one segment."""
    info = _term_info(seg, fieldname, term)
    if info is None:
        return [], []
    all_ids: list[int] = []
    all_weights: list[float] = []
    for _count, _maxid, data in iter_blocks(seg, info):
        ids, weights, _values = decode_block(data)
        all_ids.extend(ids)
        all_weights.extend(weights)
    return all_ids, all_weights


def read_ids(seg, fieldname: str, term: str, low: int | None = None, high: int | None = None) -> list[int]:
    """The document numbers of a term in one segment; with ``low``/``high``, only the blocks
    that may hold numbers in that range are decoded (a scope's documents are adjacent after
    ``flask search reindex``, which indexes them in institution order)."""
    info = _term_info(seg, fieldname, term)
    if info is None:
        return []
    out: list[int] = []
    prev_max = -1
    for _count, maxid, data in iter_blocks(seg, info):
        if high is not None and prev_max >= high:
            break
        prev_max = maxid
        if low is not None and maxid < low:
            continue
        out.extend(decode_ids(data))
    return out


def read_values_for(seg, fieldname: str, term: str, candidates: list[int]) -> dict[int, bytes]:
    """Values (positions) of ``term`` for the sorted ``candidates`` only: blocks holding none of
    them are skipped without being decompressed."""
    info = _term_info(seg, fieldname, term)
    if info is None or not candidates:
        return {}
    out: dict[int, bytes] = {}
    prev_max = -1
    for _count, maxid, data in iter_blocks(seg, info):
        lo = bisect_right(candidates, prev_max)
        hi = bisect_right(candidates, maxid)
        prev_max = maxid
        if lo == hi:
            continue
        ids, _weights, vals = decode_block(data)
        wanted = candidates[lo:hi]
        if len(wanted) * 4 < len(ids):
            for c in wanted:
                i = bisect_left(ids, c)
                if i < len(ids) and ids[i] == c:
                    out[c] = vals[i]
        else:
            out.update(zip(ids, vals))   # extra entries are harmless: callers look up candidates
        if hi == len(candidates):
            break
    return out


# -- per-segment data, cached across queries ----------------------------------------------------

class _SegmentCache:
    """Columns, field-length norms and small term sets of one segment. Segments never change
    (deletions are read from the live reader each time), so entries live until evicted."""

    def __init__(self) -> None:
        self.columns: dict[str, list] = {}
        self.norms: dict[str, tuple[float, list[float]]] = {}
        self.sets: OrderedDict[tuple[str, str], frozenset] = OrderedDict()


class SegmentCaches:
    """Process-wide cache of segment data, keyed by segment id; a few segments at most."""

    MAX_SEGMENTS = 64
    MAX_SETS = 48   # filter term sets (scope, type, stage, state) kept per segment

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


CACHES = SegmentCaches()
CACHED_SET_FIELDS = frozenset({"scope", "doctype", "stage", "state"})


class _Segment:
    def __init__(self, seg, offset: int) -> None:
        self.seg = seg
        self.offset = offset
        self.doc_count_all = seg.doc_count_all()
        self.deleted = seg.deleted_docs_set if seg.has_deletions() else frozenset()
        self.cache = CACHES.get(seg._segment.segment_id())

    def term_set(self, fieldname: str, term: str, within=None) -> frozenset | set:
        if fieldname in CACHED_SET_FIELDS:
            key = (fieldname, term)
            cached = self.cache.sets.get(key)
            if cached is None:
                cached = frozenset(read_ids(self.seg, fieldname, term))
                self.cache.sets[key] = cached
                while len(self.cache.sets) > SegmentCaches.MAX_SETS:
                    self.cache.sets.popitem(last=False)
            return cached
        if within:
            return set(read_ids(self.seg, fieldname, term, min(within), max(within)))
        return set(read_ids(self.seg, fieldname, term))

    def doc_frequency(self, fieldname: str, term: str) -> int:
        info = _term_info(self.seg, fieldname, term)
        return info.doc_frequency() if info is not None else 0

    def column(self, name: str) -> list:
        col = self.cache.columns.get(name)
        if col is None:
            if self.seg.has_column(name):
                col = list(self.seg.column_reader(name, translate=False))
            else:
                col = [None] * self.doc_count_all
            self.cache.columns[name] = col
        return col

    def norms(self, fieldname: str, avg_length: float) -> list[float]:
        """BM25's length term k1·(1 − b + b·dl/avgdl) for every document of the segment (kept
        for the latest average length only)."""
        cached = self.cache.norms.get(fieldname)
        if cached is not None and cached[0] == avg_length:
            return cached[1]
        reader = self.seg._perdoc._cached_reader(_lenfield(fieldname), LENGTHS_COLUMN)
        lengths = [byte_to_length(b) for b in reader] if reader is not None else [0] * self.doc_count_all
        avg = avg_length or 1.0
        norms = [BM25_K1 * (1 - BM25_B + BM25_B * dl / avg) for dl in lengths]
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


def _evaluate(node, segment: _Segment, within: set | frozenset | None) -> set | frozenset:
    if isinstance(node, Terms):
        docs = segment.term_set(node.field, node.term, within)
        return docs & within if within is not None else docs
    if isinstance(node, Phrase):
        return _phrase(node, segment, within)
    if isinstance(node, AnyOf):
        out: set = set()
        for child in node.nodes:
            out |= _evaluate(child, segment, within)
        return out
    if isinstance(node, AllOf):
        docs = within
        for child in sorted(node.nodes, key=lambda n: _estimate(n, segment)):
            docs = _evaluate(child, segment, docs)
            if not docs:
                return set()
        return docs if docs is not None else set(range(segment.doc_count_all))
    if isinstance(node, DateRange):
        col = segment.column(node.column)
        candidates = within if within is not None else range(segment.doc_count_all)
        low, high = node.low, node.high
        return {d for d in candidates if col[d] is not None and (low is None or col[d] >= low)
                and (high is None or col[d] <= high)}
    raise TypeError(node)


_DOC_SHIFT = 32


def _start_keys(values: dict[int, bytes], docs: list[int], offset: int):
    """For every (document, position) at which a gram occurs, the key (doc << 32) + position −
    offset, i.e. where the phrase would start; the phrase occurs where the keys of all its cover
    grams meet. An iterator built from C-level operations over all candidates at once."""
    raws = list(map(values.get, docs, repeat(b"")))
    lengths = list(map(len, raws))
    wide: list[int] = []
    if sum(map(and_, lengths, repeat(1))):
        # Some documents are longer than 65,535 characters (32-bit positions): one at a time.
        narrow_docs, narrow_raws = [], []
        for doc, raw in zip(docs, raws):
            if len(raw) % 2:
                wide.extend(map(add, decode_positions(raw), repeat((doc << _DOC_SHIFT) - offset)))
            else:
                narrow_docs.append(doc)
                narrow_raws.append(raw)
        docs, raws = narrow_docs, narrow_raws
        lengths = list(map(len, raws))
    positions = decode_positions(b"".join(raws))
    bases = chain.from_iterable(map(repeat, map(sub, map(lshift, docs, repeat(_DOC_SHIFT)), repeat(offset)),
                                    map(floordiv, lengths, repeat(2))))
    return chain(map(add, positions, bases), wide)


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


def _phrase(node: Phrase, segment: _Segment, within) -> set:
    all_grams = grams(node.text, node.n)
    if not all_grams:
        return set()
    set_field = node.set_field or node.pos_field
    seg = segment.seg
    frequency = {}
    for gram in set(all_grams):
        info = _term_info(seg, set_field, gram)
        if info is None:
            return set()
        frequency[gram] = (info.doc_frequency(), info.weight())
    low, high = (min(within), max(within)) if within else (None, None)
    if len(all_grams) == 1:
        docs = set(read_ids(seg, set_field, all_grams[0], low, high))
        return docs & within if within is not None else docs
    cover = cheapest_cover([frequency[g][1] for g in all_grams], node.n)
    # The candidates: documents holding every cover gram, and the rarest gram of all.
    needed = {all_grams[o] for o in cover}
    needed.add(min(frequency, key=lambda g: frequency[g][0]))
    docs = within
    for gram in sorted(needed, key=lambda g: frequency[g][0]):
        if docs is not None and frequency[gram][0] > 8 * len(docs):
            # The candidates are few next to this gram's postings: checking positions (which
            # reads only the blocks holding candidates) is cheaper than reading all its ids.
            break
        gram_docs = set(read_ids(seg, set_field, gram, low, high))
        docs = gram_docs if docs is None else gram_docs & docs
        if not docs:
            return set()
    proven: set = set()
    if node.proof is not None:
        proven = docs & segment.term_set(*node.proof, docs)
    candidates = sorted(docs - proven)
    if not candidates:
        return proven
    offsets: dict[str, list[int]] = {}
    for o in cover:
        offsets.setdefault(all_grams[o], []).append(o)
    starts: set | None = None
    alive = candidates
    for gram in sorted(offsets, key=lambda g: frequency[g][1]):
        values = read_values_for(seg, node.pos_field, gram, alive)
        for offset in offsets[gram]:
            keys = _start_keys(values, alive, offset)
            starts = set(keys) if starts is None else starts.intersection(keys)
            if not starts:
                return proven
        if len(starts) * 4 < len(alive):
            # Most candidates are out: read the next grams only for the ones left.
            alive = sorted(set(map(rshift, starts, repeat(_DOC_SHIFT))))
    return proven | set(map(rshift, starts, repeat(_DOC_SHIFT)))


# -- the whole query ----------------------------------------------------------------------------

def execute(searcher, plan: Plan, *, sort: str = "relevance", offset: int = 0, limit: int = 20,
            facet: str | None = "doctype", date_column: str = "doc_date", tie_column: str = "added") -> Result:
    """Run ``plan`` over every segment; return the total, the slice [offset, offset+limit) of
    the ordered hits, and counts per ``facet`` value, all over the same set of documents."""
    reader = searcher.reader()
    leaves = reader.leaf_readers() if hasattr(reader, "leaf_readers") else [(reader, 0)]
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
        if not docs:
            continue
        total += len(docs)
        docs_list = list(docs)
        if facet:
            col = segment.column(facet)
            facets.update(map(col.__getitem__, docs_list))
        dates = segment.column(date_column)
        date_keys = [d if d is not None else -1 for d in map(dates.__getitem__, docs_list)]
        added = segment.column(tie_column)
        added_keys = [d if d is not None else -1 for d in map(added.__getitem__, docs_list)]
        global_ids = list(map(add, docs_list, repeat(base)))
        if sort == "relevance":
            scores = _scores(plan, segment, docs_list, idf, avg_len)
            rows = zip(scores, date_keys, added_keys, global_ids)
            best = heapq.nlargest(want, [*best, *heapq.nlargest(want, rows)])
        elif sort == "date_asc":
            rows = zip(date_keys, added_keys, global_ids)
            best = heapq.nsmallest(want, [*best, *heapq.nsmallest(want, rows)])
        else:
            rows = zip(date_keys, added_keys, global_ids)
            best = heapq.nlargest(want, [*best, *heapq.nlargest(want, rows)])
    page = best[offset:want]
    if sort == "relevance":
        hits = [(gid, score) for score, _date, _added, gid in page]
    else:
        hits = [(gid, 0.0) for _date, _added, gid in page]
    facets.pop(None, None)
    # ID columns hold UTF-8 bytes.
    facets = Counter({k.decode("utf-8") if isinstance(k, bytes) else k: n for k, n in facets.items()})
    return Result(total=total, hits=hits, facets=facets, segments=len(leaves))


def _matches(plan: Plan, segment: _Segment) -> set:
    required = sorted(plan.required, key=lambda n: _estimate(n, segment))
    docs: set | frozenset | None = None
    for node in required:
        docs = _evaluate(node, segment, docs)
        if not docs:
            return set()
    if docs is None:
        docs = set(range(segment.doc_count_all))
    docs = set(docs) - segment.deleted if segment.deleted else set(docs)
    for node in plan.excluded:
        if not docs:
            break
        docs -= _evaluate(node, segment, docs)
    return docs


def _scores(plan: Plan, segment: _Segment, docs: list[int], idf, avg_len) -> list[float]:
    """BM25 of the ranking terms plus bonuses, for ``docs``, computed with C-level maps."""
    totals = [0.0] * len(docs)
    readable = None
    if plan.text_ranking_scope is not None:
        readable = _evaluate(plan.text_ranking_scope, segment, set(docs))
    for fieldname, term, weight in plan.ranking:
        ids, weights = read_postings(segment.seg, fieldname, term)
        if not ids:
            continue
        tf = dict(zip(ids, weights))
        tfs = list(map(tf.get, docs, repeat(0.0)))
        norms = segment.norms(fieldname, avg_len[fieldname])
        factor = idf[(fieldname, term)] * weight * (BM25_K1 + 1)
        contrib = map(truediv, map(mul, tfs, repeat(factor)), map(add, tfs, map(norms.__getitem__, docs)))
        if readable is not None and fieldname in TEXT_FIELDS:
            contrib = map(mul, contrib, map(readable.__contains__, docs))
        totals = list(map(add, totals, contrib))
    for node, points in plan.bonus:
        matched = _evaluate(node, segment, set(docs))
        if matched:
            totals = list(map(add, totals, map(mul, map(matched.__contains__, docs), repeat(points))))
    return totals
