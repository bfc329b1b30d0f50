"""Text analysis for the search index: normalisation, Chinese word segmentation with the domain
dictionary, character bigrams, and identifier parts.

Everything here works on plain strings and returns plain values (term → positions), so the index
writer, the query builder, the highlighter and the benchmark share one definition of a "term".
No Flask, no database, no Whoosh.

How a text becomes terms (``analyze_text``):

- The text is normalised: NFKC (full-width letters and digits become ASCII) and whitespace between
  two Chinese characters is dropped (OCR output and PDF line breaks split words that are whole on
  paper).
- It is cut into *runs*: a run of Chinese characters, or an identifier (letters and digits joined
  by ``- _ / . · : #``, such as ``XY2024-001`` or ``J012-XD·2024-D30-HN0101-0001``); anything else
  (punctuation, spaces) separates runs.
- **Words** (field ``content``, for ranking, with counts): rjieba segments the text with the
  domain dictionary (``portal/data/search_dictionary.txt``, plus the union's extra file) added to
  its vocabulary with ``add_word``; its search mode also yields the dictionary words inside each
  word (贷后 and 检查 inside 贷后检查), so they count for their parent's occurrences. Single
  Chinese characters are not words here (the bigrams cover them). Identifiers are indexed whole
  (lower case) and by their parts (split on separators and between letters and digits).
- **Bigrams** (field ``cjk``, the recall guarantee): every pair of adjacent characters of every
  Chinese run, at the position of its first character. A phrase of n ≥ 2 Chinese characters
  occurs in a text exactly when its bigrams occur at consecutive positions, whatever rjieba did
  with the text; the query side (``portal/search/query.py``) asks for exactly that.
"""
from __future__ import annotations

import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import rjieba

# CJK unified ideographs (basic, extension A, compatibility, extensions B–F) and 〇.
CJK_CHARS = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
CJK_RUN = re.compile(f"[{CJK_CHARS}]+")
_CJK_START = re.compile(f"[{CJK_CHARS}]")
_CJK_GAP = re.compile(f"(?<=[{CJK_CHARS}])\\s+(?=[{CJK_CHARS}])")
IDENT_SEPARATORS = "-_/.·:#"
_RUNS = re.compile(
    f"(?P<cjk>[{CJK_CHARS}]+)|(?P<ident>[0-9a-z]+(?:[{re.escape(IDENT_SEPARATORS)}]+[0-9a-z]+)*)",
    re.IGNORECASE)
_IDENT = re.compile(f"[0-9a-z]+(?:[{re.escape(IDENT_SEPARATORS)}]+[0-9a-z]+)*", re.IGNORECASE)
_SEPARATOR_SPLIT = re.compile(f"[{re.escape(IDENT_SEPARATORS)}]+")
_LETTER_DIGIT = re.compile(r"[a-z]+|[0-9]+")

DEFAULT_DICTIONARY = Path(__file__).resolve().parent.parent / "data" / "search_dictionary.txt"


def normalize(text: str) -> str:
    """NFKC, and no whitespace between two Chinese characters. Offsets into the result are
    what the highlighter uses, so both sides always normalise the same way."""
    if not text:
        return ""
    if not unicodedata.is_normalized("NFKC", text):   # the quick check is several times cheaper
        text = unicodedata.normalize("NFKC", text)
    return _CJK_GAP.sub("", text)


def is_cjk(text: str) -> bool:
    return bool(text) and CJK_RUN.fullmatch(text) is not None


def bigrams(run: str) -> list[str]:
    return [run[i:i + 2] for i in range(len(run) - 1)]


def grams(text: str, n: int) -> list[str]:
    return [text[i:i + n] for i in range(len(text) - n + 1)]


def ident_parts(token: str) -> list[str]:
    """``XY2024-001`` → ``xy2024-001``, ``xy2024``, ``001``, ``xy``, ``2024`` (whole first)."""
    return list(_ident_parts(token))


@lru_cache(maxsize=65536)
def _ident_parts(token: str) -> tuple[str, ...]:
    # Cached: amounts, dates and years recur in every text of a corpus.
    whole = token.lower()
    parts = [whole]
    seen = {whole}
    for piece in _SEPARATOR_SPLIT.split(whole):
        for sub in [piece, *_LETTER_DIGIT.findall(piece)]:
            if sub and sub not in seen:
                seen.add(sub)
                parts.append(sub)
    return tuple(parts)


def normalize_identifier(value: str) -> str:
    """An identifier as the index keeps it: NFKC, lower case, no spaces."""
    return "".join(unicodedata.normalize("NFKC", value or "").lower().split())


def load_dictionary(paths: Iterable[Path | str]) -> list[tuple[str, int | None]]:
    """Words (with an optional frequency) from dictionary files; ``#`` starts a comment.
    A missing extra file is an error the caller reports; the shipped file must exist."""
    words: dict[str, int | None] = {}
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            word, _, freq = line.partition(" ")
            word = normalize(word.strip())
            words[word] = int(freq) if freq.strip().isdigit() else None
    return list(words.items())


# A bigram as one integer: (first code point << 21) | second (code points fit in 21 bits). Integer
# order is the order of the bigrams' UTF-8 bytes, the order in which the index keeps its terms.
GRAM_SHIFT = 21
_GRAM_MASK = (1 << GRAM_SHIFT) - 1


def gram_code(gram: str) -> int:
    return (ord(gram[0]) << GRAM_SHIFT) | ord(gram[1])


def gram_text(code: int) -> str:
    return chr(code >> GRAM_SHIFT) + chr(code & _GRAM_MASK)


def _cjk_mask(points: np.ndarray) -> np.ndarray:
    """Which code points are Chinese characters (the ranges of ``CJK_CHARS``)."""
    return ((points == 0x3007) | ((points >= 0x3400) & (points <= 0x4DBF)) | ((points >= 0x4E00) & (points <= 0x9FFF))
            | ((points >= 0xF900) & (points <= 0xFAFF)) | ((points >= 0x20000) & (points <= 0x2FFFF)))


class GramPostings(Mapping):
    """The bigrams of a text with their positions, as arrays: ``codes`` (``gram_code``, sorted,
    distinct), ``counts`` (occurrences of each) and ``positions`` (each bigram's positions,
    ascending, one bigram after another in the order of ``codes``). Computed with numpy in a
    few array operations; the index writer takes the arrays as they are. As a mapping it reads
    like ``{bigram: [positions]}``."""

    __slots__ = ("codes", "counts", "positions", "_starts")

    def __init__(self, text: str) -> None:
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        cjk = _cjk_mask(points)
        starts = np.flatnonzero(cjk[:-1] & cjk[1:])            # a bigram starts where two CJK meet
        codes = (points[starts].astype(np.int64) << GRAM_SHIFT) | points[starts + 1]
        order = np.argsort(codes, kind="stable")                # positions stay ascending per bigram
        codes = codes[order]
        self.positions = starts[order]
        first = np.ones(len(codes), dtype=bool)
        first[1:] = codes[1:] != codes[:-1]
        self._starts = np.flatnonzero(first)
        self.codes = codes[self._starts]
        self.counts = np.diff(np.append(self._starts, len(codes)))

    def __len__(self) -> int:
        return len(self.codes)

    def __iter__(self) -> Iterator[str]:
        return map(gram_text, self.codes.tolist())

    def __getitem__(self, gram: str) -> list[int]:
        if len(gram) != 2:
            raise KeyError(gram)
        i = int(np.searchsorted(self.codes, gram_code(gram)))
        if i == len(self.codes) or self.codes[i] != gram_code(gram):
            raise KeyError(gram)
        start = self._starts[i]
        return self.positions[start:start + self.counts[i]].tolist()

    def items(self):
        positions = self.positions.tolist()
        ends = np.cumsum(self.counts).tolist()
        return zip(map(gram_text, self.codes.tolist()), map(positions.__getitem__, map(slice, [0, *ends[:-1]], ends)))

    def count_view(self) -> GramCounts:
        return GramCounts(self)


class GramCounts(Mapping):
    """The same bigrams as ``{bigram: count}`` (the ``cjk`` field), without copying."""

    __slots__ = ("grams",)

    def __init__(self, grams: GramPostings) -> None:
        self.grams = grams

    def __len__(self) -> int:
        return len(self.grams)

    def __iter__(self) -> Iterator[str]:
        return iter(self.grams)

    def __getitem__(self, gram: str) -> int:
        return len(self.grams[gram])

    def items(self):
        return zip(self.grams, self.grams.counts.tolist())


@dataclass(frozen=True)
class AnalyzedText:
    """Terms of one text."""

    words: dict[str, int]             # term → count
    bigrams: GramPostings             # bigram → character positions


class Analyzer:
    """rjieba with the domain dictionary. Thread-safe for reading (rjieba's segmenter is)."""

    def __init__(self, dictionary: list[tuple[str, int | None]]) -> None:
        self.jieba = rjieba.Jieba()
        self.dictionary_size = len(dictionary)
        for word, freq in dictionary:
            # Without a frequency, rjieba suggests one just high enough to keep the word whole.
            self.jieba.add_word(word, freq, None)

    # -- segmentation ---------------------------------------------------------------------------

    def segment(self, run: str) -> list[tuple[str, int, int]]:
        """Words of a Chinese run as (word, start, end), rjieba's default mode."""
        return self.jieba.tokenize(run)

    def query_words(self, run: str) -> list[str]:
        """How a Chinese run typed in the search box splits into words (default mode)."""
        return [w for w, _s, _e in self.segment(run)]

    # -- indexing -------------------------------------------------------------------------------

    def analyze(self, text: str) -> AnalyzedText:
        """Words (with counts) and bigrams (with positions) of a text. ``text`` must be normalised.

        Words come from one search-mode pass over the whole text, which yields each word and,
        before it, the dictionary words inside it; counting them all gives the sub-words the same
        weight as their parent. Identifiers come from our own pattern, whole and by parts.
        """
        words = Counter(self.jieba.cut_for_search(text))
        for term in [t for t in words if len(t) < 2 or not _CJK_START.match(t)]:
            del words[term]
        for ident in _IDENT.findall(text):
            for part in _ident_parts(ident):
                words[part] += 1
        return AnalyzedText(dict(words), GramPostings(text))


def short_text_terms(text: str) -> dict[str, list[int]]:
    """Terms of a short text (a title, a borrower's name): the bigrams of its Chinese runs and
    the parts of its identifiers, all at character offsets (a single Chinese character, as in a
    one-character title, is kept as it is). ``text`` must be normalised."""
    postings: dict[str, list[int]] = {}
    for match in _RUNS.finditer(text):
        run, base = match.group(), match.start()
        if match.lastgroup == "cjk":
            if len(run) == 1:
                postings.setdefault(run, []).append(base)
            for i in range(len(run) - 1):
                postings.setdefault(run[i:i + 2], []).append(base + i)
        else:
            for part in ident_parts(run):
                plist = postings.setdefault(part, [])
                if not plist or plist[-1] != base:
                    plist.append(base)
    return postings


def identifier_grams(values: Iterable[str], n: int = 3) -> dict[str, list[int]]:
    """Character n-grams of identifiers at consecutive positions, identifiers kept apart by a gap,
    so any substring of at least ``n`` characters is a run of consecutive grams."""
    postings: dict[str, list[int]] = {}
    base = 0
    for value in values:
        value = normalize_identifier(value)
        for i in range(len(value) - n + 1):
            postings.setdefault(value[i:i + n], []).append(base + i)
        base += len(value) + n + 1
    return postings


def identifier_terms(values: Iterable[str]) -> dict[str, list[int]]:
    """Identifiers whole and by parts (``ident_parts``), for exact matches."""
    postings: dict[str, list[int]] = {}
    for pos, value in enumerate(values):
        value = normalize_identifier(value)
        if value:
            for part in ident_parts(value):
                postings.setdefault(part, [pos])
    return postings


def query_runs(text: str) -> list[tuple[str, str]]:
    """A query chunk as ("cjk" | "ident", run) pairs; punctuation and spaces are dropped."""
    return [(m.lastgroup or "", m.group()) for m in _RUNS.finditer(normalize(text))]


# -- the process-wide analyzer ------------------------------------------------------------------

_lock = threading.Lock()
_analyzers: dict[tuple, Analyzer] = {}


def get_analyzer(extra: str | None = None) -> Analyzer:
    """The analyzer for the shipped dictionary plus ``extra`` (a union's file), built once per
    process and rebuilt when the extra file changes."""
    paths: list[Path] = [DEFAULT_DICTIONARY]
    stamp: tuple = (str(DEFAULT_DICTIONARY), DEFAULT_DICTIONARY.stat().st_mtime_ns)
    if extra:
        extra_path = Path(extra)
        paths.append(extra_path)
        stamp += (str(extra_path), extra_path.stat().st_mtime_ns)
    with _lock:
        analyzer = _analyzers.get(stamp)
        if analyzer is None:
            analyzer = Analyzer(load_dictionary(paths))
            _analyzers.clear()
            _analyzers[stamp] = analyzer
        return analyzer
