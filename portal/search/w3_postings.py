"""The W3 codec's posting blocks: a term's postings written in one go, and read back in bulk.

A term's postings in a segment's postings file, as ``whoosh.codec.whoosh3.W3PostingsWriter``
writes them: the header ``W3Bl``, then per block of up to 128 postings a signed 4-byte length
(negative for the last block), the pickled block info (count, last document, highest weight,
compression, shortest and longest field length as bytes) and the pickled block (document
deltas from zero, weights, values), deflated if the info says so. The term's statistics go to
its ``W3TermInfo`` in the term table.

``write_term`` writes that layout for the segment writer (``segment_writer``), with Whoosh's
block and term statistics; only the block's pickle (protocol 5, which stores bytes natively;
Whoosh's reader unpickles any protocol) and its compression (small blocks stored as they are,
a smaller window) differ. ``iter_blocks``, ``read_block`` and ``decode_block`` read it back for
the query engine and for merges. ``tests/search/test_w3_postings.py`` reads segments written by
Whoosh and by us both ways, posting for posting, so a change of the format in another Whoosh
fails there (the version is pinned: ``whoosh_internals``).
"""
from __future__ import annotations

import io
import pickle
import struct
import zlib
from itertools import accumulate

from whoosh.codec.whoosh3 import WHOOSH3_HEADER_MAGIC, W3TermInfo
from whoosh.compat import dumps
from whoosh.util.numeric import length_to_byte

from .whoosh_internals import posting_bytes

BLOCK_LIMIT = 128     # postings a block, as W3Codec's default
COMPRESSION = 3       # zlib level, as W3Codec's default
MIN_COMPRESS = 64     # bytes: a smaller block's pickle is stored as it is
_BLOCK_LENGTH = struct.Struct("!i")


# -- writing ------------------------------------------------------------------------------------

def _compress(raw: bytes) -> tuple[bytes, int]:
    """A block's pickle, deflated if that makes it smaller (the block header says which, and
    Whoosh's reader and ours decompress only flagged blocks). A 4 KB window: blocks are a few
    KB, and setting up zlib's default 32 KB window costs more than compressing the block."""
    if len(raw) < MIN_COMPRESS:
        return raw, 0
    deflate = zlib.compressobj(COMPRESSION, zlib.DEFLATED, 12, 4)
    packed = deflate.compress(raw) + deflate.flush()
    return (packed, COMPRESSION) if len(packed) < len(raw) else (raw, 0)


def write_term(postfile, ids: list[int], weights: list[float], data: bytes, starts: list[int], ends: list[int],
               lengths: list[int] | None, fixed: int | None) -> W3TermInfo:
    """Write one term's postings (documents ascending) as W3 blocks, in one write; return its
    term info (the statistics ``W3TermInfo.add_block`` would gather over all blocks).

    ``data[starts[i]:ends[i]]`` is the value of posting i; ``lengths`` the field length of every
    document by number (None: the field is not scorable); ``fixed`` the format's value size."""
    count = len(ids)
    term_minlength, term_maxlength, term_maxweight = None, 0, 0
    parts = [WHOOSH3_HEADER_MAGIC]
    term_lengths = list(map(lengths.__getitem__, ids)) if lengths else None
    for b0 in range(0, count, BLOCK_LIMIT):
        b1 = min(b0 + BLOCK_LIMIT, count)
        block_ids = ids[b0:b1]
        block_weights = weights[b0:b1]
        if term_lengths:
            block_lengths = term_lengths[b0:b1]
            minlength = min(block_lengths)
            if not minlength:
                nonzero = [n for n in block_lengths if n]
                minlength = min(nonzero) if nonzero else None
            maxlength = max(block_lengths)
        else:
            minlength, maxlength = None, 0
        maxweight = max(block_weights)
        if term_minlength is None:
            term_minlength = minlength
        elif minlength is not None and minlength < term_minlength:
            term_minlength = minlength
        term_maxlength = max(term_maxlength, maxlength)
        term_maxweight = max(term_maxweight, maxweight)
        # Block body, as W3PostingsWriter._write_block and its _mini_* methods
        # Each block's ids are delta-encoded from zero (whoosh.util.numlists.delta_encode).
        deltas = tuple(map(int.__sub__, block_ids, [0, *block_ids[:-1]]))
        first = block_weights[0]
        if block_weights.count(first) == b1 - b0:
            mini_weights = None if first == 1.0 else first
        else:
            mini_weights = tuple(block_weights)
        if fixed == 0:
            mini_values = None
        else:
            mini_values = tuple(map(data.__getitem__, map(slice, starts[b0:b1], ends[b0:b1])))
            if fixed is not None and fixed > 0:
                mini_values = b"".join(mini_values)
        # Protocol 5 pickles bytes natively (protocol 2, Whoosh's, goes through _codecs.encode);
        # the reader uses pickle.loads, which reads any protocol.
        databytes, compression = _compress(dumps((deltas, mini_weights, mini_values), 5))
        infobytes = dumps((b1 - b0, block_ids[-1], maxweight, compression,
                           length_to_byte(minlength), length_to_byte(maxlength)), 2)
        blocklength = len(infobytes) + len(databytes)
        parts.append(_BLOCK_LENGTH.pack(-blocklength if b1 == count else blocklength))
        parts.append(infobytes)
        parts.append(databytes)
    info = W3TermInfo(weight=float(sum(weights)), df=count, minlength=term_minlength, maxlength=term_maxlength,
                      maxweight=term_maxweight, minid=ids[0], maxid=ids[-1])
    body = b"".join(parts)
    startoffset = postfile.tell()
    postfile.write(body)
    info.set_extent(startoffset, len(body))
    return info


# -- reading in bulk ----------------------------------------------------------------------------

def iter_blocks(seg, info):
    """Yield (count, maxid, data) for each posting block of a term in a segment reader; ``data``
    is decoded by ``read_block`` or ``decode_block`` only when the caller needs the block."""
    if info.is_inlined():
        ids, weights, values = info.inlined_postings()
        yield len(ids), ids[-1] if ids else -1, ("inline", ids, weights, values)
        return
    buf = posting_bytes(seg, info)
    stream = io.BytesIO(buf)
    pos, end_all = 4, len(buf)   # after the "W3Bl" header
    while pos < end_all:
        (blen,) = _BLOCK_LENGTH.unpack_from(buf, pos)
        pos += 4
        end = pos + abs(blen)
        stream.seek(pos)
        count, maxid, _maxweight, compression, _mnl, _mxl = pickle.load(stream)
        yield count, maxid, (compression, buf, stream.tell(), end)
        pos = end


def read_block(data) -> tuple[list[int], object, object]:
    """(ids, weights, values) of a block from ``iter_blocks`` (pickle and zlib, in C), weights as
    stored: None (all 1.0), one float (all alike) or one a posting; values None for formats of
    fixed size 0, bytes for other fixed sizes, else a tuple of bytes."""
    if data[0] == "inline":
        _tag, ids, weights, values = data
        return list(ids), list(weights), tuple(values) if values else None
    compression, buf, start, end = data
    raw = buf[start:end]
    deltas, weights, values = pickle.loads(zlib.decompress(raw) if compression else raw)
    return list(accumulate(deltas)), weights, values


def decode_block(data) -> tuple[list[int], object, object]:
    """(ids, weights, values) of a block from ``iter_blocks``, as ``read_block`` with one weight
    a posting."""
    ids, weights, values = read_block(data)
    if weights is None:
        weights = [1.0] * len(ids)
    elif isinstance(weights, float):
        weights = [weights] * len(ids)
    return ids, weights, values
