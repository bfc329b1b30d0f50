"""What a user types in the search box, as a query over the index, and the page of results.

The syntax (docs/search.md has the user's version):

- words separated by spaces must all occur (AND); ``OR`` between two words accepts either;
  a leading ``-`` excludes a word;
- a run of Chinese characters typed without quotes is split into words by the segmenter (a
  one-character word joined to its neighbour), and each piece must occur verbatim; in double
  quotes the whole run must occur verbatim (``"贷后检查发现挪用"``);
- an identifier (letters and digits, with ``- _ / . · : #``) matches contract numbers, archive
  numbers and ID numbers whole or any part of three characters or more, and the same string in
  the text;
- a single Chinese character on its own is too short to search and is left out (with a notice).

A Chinese word or phrase becomes a *phrase node*: its character bigrams at consecutive
positions of the text (``cjkpos``), the title or the borrower's name, which is exactly "occurs
verbatim"; the segmented words rank (``content``, BM25). The user's scope and the filters are
required nodes of the same plan (``portal/search/engine.py``), so counts, pages and highlights
are computed only over documents the user may see.
"""
from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache

from flask import current_app
from flask_babel import gettext as _
from markupsafe import Markup, escape
from sqlalchemy import select
from whoosh.util.times import datetime_to_long

from ..accounts.models import Institution
from ..accounts.scope import can, check, is_global
from ..archive.labels import doc_type_names
from ..archive.models import LIVE_STATES, DocState, Document, Lending, LendingState, lending_item
from ..archive.services import reads_directly
from ..extensions import db
from ..loans.models import Borrower, Loan
from ..timeutil import local_today
from . import engine
from .analysis import Analyzer, bigrams, get_analyzer, normalize, normalize_identifier, query_runs
from .index import IndexBusy, current_index
from .models import DocumentText
from .queue import pending_document_ids, queue_length

MAX_QUERY_CHARS = 200
MAX_CLAUSES = 16


def N_(message: str) -> str:
    """Marks a message for the translation catalogue; it is translated where it is shown."""
    return message


class QuerySyntaxError(ValueError):
    """The query cannot be understood; ``str(exc)`` is the English msgid, shown through gettext."""


# -- parsing ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Clause:
    """One thing to look for: a verbatim Chinese phrase (``cjk``) or an identifier (``ident``)."""

    kind: str
    text: str


@dataclass
class Group:
    """Clauses of which at least one must match (``a OR b``); a group of one is a plain term."""

    alternatives: list[list[Clause]]
    negated: bool = False


@dataclass
class ParsedQuery:
    groups: list[Group]
    ignored: list[str] = field(default_factory=list)   # single characters left out
    runs: list[str] = field(default_factory=list)      # Chinese runs as typed (highlighted whole)

    @property
    def positive(self) -> list[Group]:
        return [g for g in self.groups if not g.negated]

    def highlight_terms(self) -> list[str]:
        """Every string that a match shows verbatim, longest first."""
        seen: set[str] = set(self.runs)
        for group in self.positive:
            for alt in group.alternatives:
                for clause in alt:
                    seen.add(clause.text)
        return sorted(seen, key=len, reverse=True)


_TOKEN = re.compile(r'"([^"]*)"|(\S+)')


def parse_query(text: str, analyzer: Analyzer) -> ParsedQuery:
    """Parse the search box; raise QuerySyntaxError with a message for the user."""
    text = (text or "").replace("\u201c", '"').replace("\u201d", '"').replace("\uff02", '"')
    if len(text) > MAX_QUERY_CHARS:
        raise QuerySyntaxError(N_("The search is too long; use at most 200 characters."))
    if text.count('"') % 2:
        raise QuerySyntaxError(N_("A quotation mark is not closed."))
    tokens: list[tuple[str, bool]] = []   # (text, quoted)
    for m in _TOKEN.finditer(text):
        if m.group(1) is not None:
            tokens.append((m.group(1), True))
        else:
            tokens.append((m.group(2), False))

    groups: list[Group] = []
    ignored: list[str] = []
    runs: list[str] = []
    pending_or = False
    for raw, quoted in tokens:
        if not quoted and raw in ("OR", "|"):
            if not groups or pending_or or groups[-1].negated:
                raise QuerySyntaxError(N_("OR must stand between two words."))
            pending_or = True
            continue
        negated = False
        if not quoted and raw.startswith("-") and len(raw) > 1:
            negated, raw = True, raw[1:]
            if raw.startswith('"'):
                raw = raw.strip('"')
                quoted = True
        clauses = _clauses(raw, quoted, analyzer, ignored)
        if not negated:
            runs.extend(run for kind, run in query_runs(raw) if kind == "cjk" and len(run) > 1)
        if not clauses:
            if pending_or:
                raise QuerySyntaxError(N_("OR must stand between two words."))
            continue
        if pending_or:
            if negated:
                raise QuerySyntaxError(N_("OR must stand between two words."))
            groups[-1].alternatives.append(clauses)
            pending_or = False
        else:
            groups.append(Group([clauses], negated=negated))
    if pending_or:
        raise QuerySyntaxError(N_("OR must stand between two words."))
    if sum(len(alt) for g in groups for alt in g.alternatives) > MAX_CLAUSES:
        raise QuerySyntaxError(N_("The search has too many words; use at most 16."))
    parsed = ParsedQuery(groups, ignored, runs)
    if groups and not parsed.positive:
        raise QuerySyntaxError(N_("Add at least one word to look for; a search cannot only exclude."))
    return parsed


def query_pieces(run: str, analyzer: Analyzer) -> list[str]:
    """A Chinese run typed without quotes, as the pieces that must each occur verbatim: its
    words, with a one-character word joined to the word after it (the one before, at the end):
    刘|建国 → 刘建国, 对|该户|的|跟踪|管理 → 对该户, 的跟踪, 管理. Every piece is a substring of the
    run, so a document holding the run holds every piece (recall), and no piece is a lone
    character that would match almost anything (precision)."""
    pieces: list[str] = []
    carry = ""
    for word in analyzer.query_words(run):
        word = carry + word
        carry = ""
        if len(word) == 1:
            carry = word
        else:
            pieces.append(word)
    if carry:
        if pieces:
            pieces[-1] += carry
        else:
            pieces.append(carry)
    return pieces


def _clauses(raw: str, quoted: bool, analyzer: Analyzer, ignored: list[str]) -> list[Clause]:
    out: list[Clause] = []
    for kind, run in query_runs(raw):
        if kind == "ident":
            out.append(Clause("ident", normalize_identifier(run)))
            continue
        if len(run) < 2:
            ignored.append(run)
            continue
        if quoted:
            out.append(Clause("cjk", run))
            continue
        out.extend(Clause("cjk", piece) for piece in dict.fromkeys(query_pieces(run, analyzer)))
    return out


# -- the plan for the engine --------------------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    doctype: str | None = None
    stage: str | None = None
    state: str | None = None
    institution_path: str | None = None     # a subtree, intersected with the user's scope
    date_from: date | None = None
    date_to: date | None = None


TITLE_POINTS = 4.0
BORROWER_POINTS = 4.0
IDENT_POINTS = 6.0


def _in_content(node, readable):
    """A match in the text counts only where the user may read the text (``readable``)."""
    return node if readable is None else engine.AllOf((node, readable))


def _cjk_node(text: str, analyzer: Analyzer, readable) -> engine.AnyOf:
    words = analyzer.query_words(text)
    proof = ("content", text) if words == [text] else None
    return engine.AnyOf((
        _in_content(engine.Phrase("cjkpos", text, 2, set_field="cjk", proof=proof), readable),
        engine.Phrase("title", text, 2),
        engine.Phrase("borrower", text, 2),
    ))


def _ident_node(ident: str, id_numbers: bool, readable) -> engine.AnyOf:
    nodes: list = [_in_content(engine.Terms("content", ident), readable), engine.Terms("title", ident),
                   engine.Terms("ids", ident), engine.Terms("idno", ident)]
    if len(ident) >= 3:
        nodes.append(engine.Phrase("idgram", ident, 3))
        if id_numbers:
            nodes.append(engine.Phrase("idnogram", ident, 3))
    return engine.AnyOf(tuple(nodes))


def build_plan(parsed: ParsedQuery, *, scope_path: str | None, filters: Filters, analyzer: Analyzer,
               id_numbers: bool = False, readable=None) -> engine.Plan:
    """The engine's plan: clauses, the user's scope and the filters are all required nodes, so a
    document outside the scope is in no set that is counted, ranked or shown.

    ``scope_path`` None means no restriction (the deployment's administrator only).
    ``id_numbers``: whether parts of ID numbers may match (users allowed to see them).
    ``readable``: a node of the documents whose text the user may read, or None for all; the
    text of other documents is not searched (a match would reveal what they say), their
    title, borrower and numbers are.
    """
    plan = engine.Plan(text_ranking_scope=readable)
    for group in parsed.groups:
        alternatives = []
        for alt in group.alternatives:
            nodes = []
            for clause in alt:
                if clause.kind == "cjk":
                    nodes.append(_cjk_node(clause.text, analyzer, readable))
                    if not group.negated:
                        _rank_cjk(plan, clause.text, analyzer)
                else:
                    nodes.append(_ident_node(clause.text, id_numbers, readable))
                    if not group.negated:
                        plan.ranking.append(("content", clause.text, 1.0))
                        plan.bonus.append((engine.AnyOf((engine.Terms("ids", clause.text),
                                                         engine.Terms("idno", clause.text))), IDENT_POINTS))
            alternatives.append(nodes[0] if len(nodes) == 1 else engine.AllOf(tuple(nodes)))
        node = alternatives[0] if len(alternatives) == 1 else engine.AnyOf(tuple(alternatives))
        (plan.excluded if group.negated else plan.required).append(node)
    if scope_path is not None:
        plan.required.append(engine.Terms("scope", scope_path))
    if filters.institution_path:
        plan.required.append(engine.Terms("scope", filters.institution_path))
    for name in ("doctype", "stage", "state"):
        value = getattr(filters, name)
        if value:
            plan.required.append(engine.Terms(name, value))
    if filters.date_from or filters.date_to:
        low = _column_value(datetime.combine(filters.date_from, datetime.min.time())) if filters.date_from else None
        high = (_column_value(datetime.combine(filters.date_to + timedelta(days=1), datetime.min.time())) - 1
                if filters.date_to else None)
        plan.required.append(engine.DateRange("doc_date", low, high))
    return plan


def _rank_cjk(plan: engine.Plan, text: str, analyzer: Analyzer) -> None:
    words = [w for w in analyzer.query_words(text) if len(w) > 1]
    for word in words:
        plan.ranking.append(("content", word, 1.0))
    if not words:
        # A name or a phrase the segmenter cut into single characters: rank on its bigrams.
        for gram in dict.fromkeys(bigrams(text)):
            plan.ranking.append(("cjk", gram, 0.5))
    plan.bonus.append((engine.Phrase("title", text, 2), TITLE_POINTS))
    plan.bonus.append((engine.Phrase("borrower", text, 2), BORROWER_POINTS))


def _column_value(value: datetime) -> int:
    """A datetime as the DATETIME column stores it (Whoosh's sortable integer)."""
    return datetime_to_long(value)


# -- highlighting -------------------------------------------------------------------------------

def highlight(text: str, terms: list[str], *, fragments: int = 3, width: int = 40, whole: bool = False) -> Markup:
    """``text`` with every matched string in <mark>: the whole text if ``whole``, else up to
    ``fragments`` passages around the first matches (empty if nothing matches).

    Works on the normalised text with case-insensitive matching, as the index sees it. Returns
    safe HTML: everything else is escaped. Matching stops once the passages are found."""
    norm = normalize(text or "")
    terms = [t for t in terms if t]
    if not norm or not terms:
        return _marked(norm, [], 0, len(norm)) if whole else Markup("")
    matches = _pattern(tuple(terms)).finditer(norm)
    if whole:
        return _marked(norm, [m.span() for m in matches], 0, len(norm))
    spans: list[tuple[int, int]] = []
    passages: list[tuple[int, int]] = []
    for m in matches:
        start, end = m.span()
        if passages and start >= passages[-1][1] and len(passages) >= fragments:
            break
        spans.append((start, end))
        if passages and start < passages[-1][1]:
            continue
        passages.append((max(0, start - width), min(len(norm), end + width)))
    if not passages:
        return Markup("")
    out = []
    for p_start, p_end in passages:
        prefix = "…" if p_start > 0 else ""
        suffix = "…" if p_end < len(norm) else ""
        out.append(prefix + _marked(norm, spans, p_start, p_end) + suffix)
    return Markup(" ".join(out))


@lru_cache(maxsize=256)
def _pattern(terms: tuple[str, ...]) -> re.Pattern:
    return re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE)


def _marked(text: str, spans: list[tuple[int, int]], start: int, end: int) -> Markup:
    """text[start:end], escaped, with the spans inside it in <mark>."""
    pieces, cursor = [], start
    for s_start, s_end in spans[bisect_left(spans, (start, start)):]:
        if s_start >= end:
            break
        if s_end > end:
            continue
        pieces.append(escape(text[cursor:s_start]))
        pieces.append("<mark>")
        pieces.append(escape(text[s_start:s_end]))
        pieces.append("</mark>")
        cursor = s_end
    pieces.append(escape(text[cursor:end]))
    return Markup("".join(pieces))


# -- the search service -------------------------------------------------------------------------

SORTS = ("relevance", "date_desc", "date_asc")
PENDING_EXCLUSION_LIMIT = 500


@dataclass(frozen=True, slots=True)
class HitDocument:
    """What a hit shows of its document: columns, not the mapped objects (building a Document,
    its loan, borrower and institution for 20 hits was a third of a search page's CPU)."""
    id: int
    doc_type: str
    state: str
    archive_number: str | None
    created_at: object          # datetime, UTC
    borrower_name: str
    contract_no: str | None     # None: a document of the whole credit file
    institution_code: str
    institution_name: str


@dataclass
class SearchHit:
    document: HitDocument
    score: float
    title: Markup
    snippet: Markup


@dataclass
class SearchPage:
    text: str
    filters: Filters
    sort: str
    page: int = 1
    per_page: int = 20
    total: int = 0
    hits: list[SearchHit] = field(default_factory=list)
    facets: list[tuple[str, str, int]] = field(default_factory=list)   # (code, name, count)
    error: str | None = None          # the query could not be understood (translated)
    notice: str | None = None         # results may be incomplete (translated)
    ignored: list[str] = field(default_factory=list)
    searched: bool = False

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def lent_document_ids(user) -> list[int]:
    """Documents ``user`` may read through an issued, not yet due, digital lending (the
    condition of ``portal.archive.services.active_lending_for``), in one query."""

    lent = db.session.execute(
        select(lending_item.c.document_id).join(Lending, Lending.id == lending_item.c.lending_id)
        .where(Lending.requester_id == user.id, Lending.state == LendingState.ISSUED.value,
               Lending.medium == "digital", Lending.due_on >= local_today())).scalars()
    return list(dict.fromkeys(lent))


def readable_node(user, lent: list[int] | None = None):
    """The documents whose text ``user`` may read (``portal.archive.services.reads_directly``,
    plus their issued digital lendings, ``lent`` if already read), as a node; None when that is
    every document in scope."""

    if can(user, "archive.read"):
        return None
    nodes: list = []
    if can(user, "archive.upload"):
        nodes.extend(engine.Terms("state", s) for s in (DocState.COLLECTED.value, DocState.SORTED.value,
                                                         DocState.FILED.value))
    if lent is None:
        lent = lent_document_ids(user)
    nodes.extend(engine.Terms("id", str(i)) for i in lent)
    return engine.AnyOf(tuple(nodes))


def search_documents(user, text: str, filters: Filters | None = None, *, page: int = 1, per_page: int = 20,
                     sort: str = "relevance") -> SearchPage:
    """What ``user`` finds for ``text`` with ``filters``: one page of hits with highlights, the
    total and the counts per document type, all within the user's institution subtree.
    A query that cannot be understood comes back with ``error`` set, never an exception."""


    check(user, "search.use")
    filters = filters or Filters()
    sort = sort if sort in SORTS else "relevance"
    page = max(1, page)
    result = SearchPage(text=text or "", filters=filters, sort=sort, page=page, per_page=per_page)
    analyzer = get_analyzer(current_app.config.get("XINDANG_SEARCH_DICTIONARY_EXTRA"))
    try:
        parsed = parse_query(text or "", analyzer)
    except QuerySyntaxError as exc:
        result.error = _(str(exc))
        return result
    result.ignored = parsed.ignored
    has_filter = any(getattr(filters, f) for f in ("doctype", "stage", "state", "institution_path",
                                                    "date_from", "date_to"))
    if not parsed.groups:
        if parsed.ignored and not has_filter:
            result.error = _("A single Chinese character is too short to search for; type at least two.")
            return result
        if not has_filter:
            return result
    result.searched = True
    reads_all = can(user, "archive.read")
    lent = [] if reads_all else lent_document_ids(user)
    plan = build_plan(parsed, scope_path=None if is_global(user) else user.institution.path, filters=filters,
                      analyzer=analyzer, id_numbers=can(user, "borrower.view_id_number"),
                      readable=readable_node(user, lent))
    # Documents whose change is not indexed yet are left out rather than shown as they were
    # (a document transferred away must not be counted where it was).
    pending = pending_document_ids(PENDING_EXCLUSION_LIMIT)
    if pending:
        plan.excluded.append(engine.AnyOf(tuple(engine.Terms("id", str(i)) for i in pending)))
    idx = current_index()
    try:
        with idx.searching() as searcher:
            found = engine.execute(searcher, plan, sort=sort, offset=(page - 1) * per_page, limit=per_page)
            hit_ids = [(int(searcher.stored_fields(docnum)["id"]), score) for docnum, score in found.hits]
    except IndexBusy:
        result.notice = _("The search index is being rebuilt; please try again in a moment.")
        return result
    except Exception as exc:  # noqa: BLE001 - an unreadable index is rebuilt, never a 500
        current_app.logger.exception("search index unreadable; marking it for rebuild")
        idx.mark_for_rebuild(f"{exc.__class__.__name__}: {exc}")
        result.notice = _("The search index could not be read and is being rebuilt from the database; "
                          "please try again in a moment.")
        return result
    if idx.needs_rebuild or (pending is None and queue_length() > PENDING_EXCLUSION_LIMIT):
        result.notice = _("The search index is being rebuilt; results may be incomplete for a while.")
    result.total = found.total
    names = doc_type_names(user.institution)
    result.facets = sorted(((code, names.get(code, code), count) for code, count in found.facets.items()),
                           key=lambda f: (-f[2], f[0]))
    ids = [i for i, _s in hit_ids]
    if ids:
        result.hits = _hits(user, hit_ids, parsed.highlight_terms(), names, set(lent))
    return result


def _hits(user, hit_ids: list[tuple[int, float]], terms: list[str], names: dict[str, str],
          lent: set[int]) -> list[SearchHit]:
    """The page's hits with their highlights, in two queries whatever the page size: the documents
    with their borrower, loan and institution (checked against the user's scope again: the index
    may lag behind a transfer), and the texts of those whose content the user may read."""

    stmt = (select(Document.id, Document.doc_type, Document.state, Document.archive_number, Document.created_at,
                   Borrower.name, Loan.contract_no, Institution.code, Institution.name)
            .join(Institution, Institution.id == Document.institution_id)
            .join(Borrower, Borrower.id == Document.borrower_id)
            .outerjoin(Loan, Loan.id == Document.loan_id)
            .where(Document.id.in_([i for i, _s in hit_ids]), Document.state.in_(LIVE_STATES)))
    if not is_global(user):
        stmt = stmt.where(Institution.path.startswith(user.institution.path, autoescape=True))
    docs = {row[0]: HitDocument(*row) for row in db.session.execute(stmt)}
    # What content_access() decides per document, without a query per document.
    readable = {i for i, d in docs.items() if reads_directly(user, d) or i in lent}   # all are live (above)
    texts = dict(db.session.execute(select(DocumentText.document_id, DocumentText.text)
                                    .where(DocumentText.document_id.in_(sorted(readable)))).all()) if readable else {}
    hits = []
    for doc_id, score in hit_ids:
        doc = docs.get(doc_id)
        if doc is None:
            continue   # changed since it was indexed; its queued update will fix the index
        title = f"{names.get(doc.doc_type, doc.doc_type)} · {doc.borrower_name}"
        hits.append(SearchHit(document=doc, score=score, title=highlight(title, terms, whole=True),
                              snippet=highlight(texts.get(doc_id, ""), terms) if doc_id in readable else Markup("")))
    return hits
