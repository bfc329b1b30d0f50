"""Queries over an index built from plain records (no database): Chinese phrases, identifiers,
scope, filters, sorting, paging, and recall checked against a plain substring scan."""
from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import pytest

from portal.search import engine
from portal.search.analysis import get_analyzer, normalize
from portal.search.index import SearchIndex
from portal.search.query import Filters, QuerySyntaxError, build_plan, highlight, parse_query
from portal.search.schema import IndexRecord, document_fields

from .search_helpers import search_as

ANALYZER = get_analyzer()


def record(i: int, text: str, *, path: str = "/P/C1/B1/", doctype: str = "loan_contract", title: str = "文件",
           borrower: str = "王建国", contract: str = "XY2024-001", archive: str = "", id_number: str = "",
           day: date = date(2024, 3, 1), state: str = "archived") -> IndexRecord:
    return IndexRecord(id=i, title=title, doctype=doctype, stage="disbursement", state=state, institution_path=path,
                       doc_date=day, added=datetime(day.year, day.month, day.day, 9), text=text, borrower=borrower,
                       contract_no=contract, archive_no=archive, id_number=id_number, text_stamp="t")


def build(tmp_path, records, *, segments: int = 1) -> SearchIndex:
    idx = SearchIndex(tmp_path / "ix")
    idx.recreate_now()
    chunk = max(1, -(-len(records) // segments))
    for start in range(0, len(records), chunk):
        with idx.writer(merge=False) as writer:
            for rec in records[start:start + chunk]:
                writer.add_document(**document_fields(rec, ANALYZER))
    return idx


def ids(idx: SearchIndex, text: str, *, scope: str | None = None, filters: Filters | None = None,
        id_numbers: bool = False, sort: str = "relevance", limit: int = 1000, offset: int = 0):
    plan = build_plan(parse_query(text, ANALYZER), scope_path=scope, filters=filters or Filters(), analyzer=ANALYZER,
                      id_numbers=id_numbers)
    with idx.searching() as searcher:
        result = engine.execute(searcher, plan, sort=sort, offset=offset, limit=limit)
        found = [int(searcher.stored_fields(d)["id"]) for d, _s in result.hits]
    return result.total, found, result.facets


def test_a_word_inside_a_run_of_chinese_is_found(tmp_path):
    idx = build(tmp_path, [record(1, "农村信用社借款合同编号XY2024-001"), record(2, "贷后检查报告", contract="Q-1")])
    assert ids(idx, "借款合同")[1] == [1]


def test_a_verbatim_phrase_is_found_however_the_segmenter_cut_it(tmp_path):
    text = "农村信用社借款合同编号XY2024-001，借款人王建国于二〇二四年三月挪用贷款资金"
    idx = build(tmp_path, [record(1, text), record(2, "合同的编写规范，社会上的借款")])
    words = ANALYZER.query_words(normalize(text))
    assert "社借" not in words and "同编" not in words      # the phrases below cross word boundaries
    for phrase in ("社借款", "同编", "款合同编", "人王建", "月挪用贷", "二〇二四"):
        assert ids(idx, f'"{phrase}"')[1] == [1], phrase
        assert 1 in ids(idx, phrase)[1], phrase


def test_a_quoted_phrase_must_be_adjacent(tmp_path):
    idx = build(tmp_path, [record(1, "借款人已签订合同"), record(2, "借款合同已签订")])
    assert ids(idx, '"借款合同"')[1] == [2]
    assert sorted(ids(idx, "借款 合同")[1]) == [1, 2]


def test_contract_archive_and_id_numbers_whole_and_in_part(tmp_path):
    idx = build(tmp_path, [
        record(1, "借据", contract="XY2024-001", archive="J012-XD·2024-D30-HN0101-0001", id_number="430101198001011234"),
        record(2, "借据", contract="HX2023-778", archive="J012-XD·2023-D30-HN0102-0002", id_number="430102199002025678"),
    ])
    for query in ("XY2024-001", "xy2024-001", "XY2024", "2024-001", "Y202", "J012-XD·2024-D30-HN0101-0001",
                  "HN0101", "HN0101-0001", "D30-HN0101"):
        assert ids(idx, query)[1] == [1], query
    assert ids(idx, "430101198001011234")[1] == [1]           # a whole ID number: anyone
    assert ids(idx, "1234")[1] == []                          # a part: only who may see ID numbers
    assert ids(idx, "1234", id_numbers=True)[1] == [1]
    assert ids(idx, "19800101", id_numbers=True)[1] == [1]


def test_borrower_names_are_found_even_when_unknown_to_the_segmenter(tmp_path):
    idx = build(tmp_path, [record(1, "借据", borrower="覃柱月"), record(2, "借据", borrower="覃月")])
    assert ids(idx, "覃柱月")[1] == [1]
    assert ids(idx, "柱月")[1] == [1]


def test_scope_is_part_of_the_query_counts_included(tmp_path):
    idx = build(tmp_path, [record(1, "挪用贷款", path="/P/C1/B1/"), record(2, "挪用贷款", path="/P/C1/B2/", doctype="x"),
                           record(3, "挪用贷款", path="/Q/D1/E1/")])
    assert ids(idx, "挪用")[0] == 3
    total, found, facets = ids(idx, "挪用", scope="/P/C1/B1/")
    assert (total, found, dict(facets)) == (1, [1], {"loan_contract": 1})
    assert sorted(ids(idx, "挪用", scope="/P/C1/")[1]) == [1, 2]
    # A filter to another subtree cannot widen the scope.
    assert ids(idx, "挪用", scope="/P/C1/B1/", filters=Filters(institution_path="/P/C1/B2/"))[0] == 0


def test_filters_dates_sorting_and_pages(tmp_path):
    records = [record(i, f"贷后检查第{i}次", day=date(2024, 1, 1) + timedelta(days=i), state="archived" if i % 2 else "filed",
                      doctype="inspection_report" if i < 30 else "loan_contract") for i in range(1, 41)]
    idx = build(tmp_path, records, segments=3)
    total, newest, facets = ids(idx, "贷后检查", sort="date_desc", limit=10)
    assert total == 40 and newest == list(range(40, 30, -1))
    assert dict(facets) == {"inspection_report": 29, "loan_contract": 11}
    assert ids(idx, "贷后检查", sort="date_asc", limit=5)[1] == [1, 2, 3, 4, 5]
    page1 = ids(idx, "贷后检查", limit=15)[1]
    page2 = ids(idx, "贷后检查", limit=15, offset=15)[1]
    assert len(page1) == 15 and len(page2) == 15 and not set(page1) & set(page2)
    assert ids(idx, "贷后检查", filters=Filters(state="filed"))[0] == 20
    assert ids(idx, "贷后检查", filters=Filters(doctype="loan_contract"))[0] == 11
    window = Filters(date_from=date(2024, 1, 5), date_to=date(2024, 1, 9))
    assert sorted(ids(idx, "贷后检查", filters=window)[1]) == [4, 5, 6, 7, 8]
    assert ids(idx, "", filters=Filters(doctype="loan_contract"))[0] == 11   # filters alone browse


def test_or_and_exclusion(tmp_path):
    idx = build(tmp_path, [record(1, "借款人挪用资金"), record(2, "借款人失联"), record(3, "借款人正常还款")])
    assert sorted(ids(idx, "挪用 OR 失联")[1]) == [1, 2]
    assert sorted(ids(idx, "借款人 -挪用")[1]) == [2, 3]
    assert ids(idx, '借款人 -"正常还款" -失联')[1] == [1]


def test_title_and_borrower_matches_rank_first(tmp_path):
    idx = build(tmp_path, [record(1, "结清证明 结清证明", title="借据"), record(2, "借据一份", title="结清证明")])
    assert ids(idx, "结清证明")[1][0] == 2


@pytest.mark.parametrize("query, message", [
    ('"借款合同', "A quotation mark is not closed."),
    ("-挪用", "Add at least one word to look for; a search cannot only exclude."),
    ("OR 挪用", "OR must stand between two words."),
    ("挪用 OR", "OR must stand between two words."),
    ("借" * 201, "The search is too long; use at most 200 characters."),
])
def test_malformed_queries_are_refused_with_a_message(query, message):
    with pytest.raises(QuerySyntaxError) as exc:
        parse_query(query, ANALYZER)
    assert str(exc.value) == message


def test_highlights_escape_everything_but_the_marks():
    marked = highlight("<b>借款合同</b>编号XY2024-001", ["借款合同", "xy2024-001"])
    assert str(marked) == "&lt;b&gt;<mark>借款合同</mark>&lt;/b&gt;编号<mark>XY2024-001</mark>"


def test_recall_and_precision_against_a_substring_scan(tmp_path):
    """Random verbatim phrases of 2–7 characters from a varied corpus: the search finds exactly
    the documents that contain them, over several segments and after updates."""
    rng = random.Random(11)
    pieces = ["借款人", "王建国", "覃柱月", "挪用", "贷款资金", "贷后检查", "发现", "五级分类", "关注", "农户联保", "他项权证",
              "已收回", "经营正常", "还款来源", "稳定", "村民", "种植", "柑橘", "生猪", "养殖", "逾期", "欠息", "催收", "结清",
              "，", "。", "2024年", "XY-9"]
    texts = {i: "".join(rng.choice(pieces) for _ in range(rng.randint(5, 40))) for i in range(1, 151)}
    records = [record(i, t, contract=f"C-{i}") for i, t in texts.items()]
    idx = build(tmp_path, records, segments=3)
    # Update a tenth of them (deletions in old segments, new versions in a fourth).
    with idx.writer() as writer:
        for i in range(1, 151, 10):
            texts[i] = "".join(rng.choice(pieces) for _ in range(20))
            writer.delete_by_term("id", str(i))
            writer.add_document(**document_fields(record(i, texts[i], contract=f"C-{i}"), ANALYZER))
    cjk_texts = {i: normalize(t) for i, t in texts.items()}
    checked = 0
    for _ in range(120):
        source = cjk_texts[rng.randint(1, 150)]
        runs = [r for r in __import__("re").findall(r"[\u4e00-\u9fff]{2,}", source)]
        if not runs:
            continue
        run = rng.choice(runs)
        length = rng.randint(2, min(7, len(run)))
        start = rng.randint(0, len(run) - length)
        phrase = run[start:start + length]
        expected = sorted(i for i, t in cjk_texts.items() if phrase in t)
        total, found, _f = ids(idx, f'"{phrase}"')
        assert sorted(found) == expected and total == len(expected), phrase
        assert set(expected) <= set(ids(idx, phrase)[1]), phrase      # unquoted: at least those
        checked += 1
    assert checked > 100


# -- the engine's arrays and caches: exact totals, counts and pages, cold or warm ---------------

SYLLABLES = "贷款借合同检查挪用资金生产经营正常保证人还能力"


def brute_force(records, phrase: str, scope: str, doctype: str | None = None):
    """The documents a quoted phrase must find: substring of text, title or borrower, in scope."""
    return [r for r in records if r.institution_path.startswith(scope) and (doctype is None or r.doctype == doctype)
            and any(phrase in normalize(v) for v in (r.text, r.title, r.borrower))]


def test_totals_counts_and_pages_equal_a_substring_scan_with_and_without_the_cache(tmp_path, monkeypatch):
    """Several segments, deletions, scopes, a type filter, both sort orders, paging: every total,
    count per type and page equals what a plain scan gives; the same with the posting cache
    emptied before each query, and with caches so small that they evict all the time."""
    rng = random.Random(7)
    paths = ["/P/C1/B1/", "/P/C1/B2/", "/P/C2/B3/"]
    records = [record(i, "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(20, 400))),
                      path=paths[i % 3], doctype=("loan_contract", "inspection_report")[i % 2], title=f"文件{i}",
                      contract=f"XY2024-{i:03d}", day=date(2024, 1, 1) + timedelta(days=i % 50))
               for i in range(1, 301)]
    idx = build(tmp_path, records, segments=3)
    with idx.writer() as writer:
        for gone in (5, 150, 299):
            writer.delete_by_term("id", str(gone))
    live = [r for r in records if r.id not in (5, 150, 299)]
    phrases = ["贷款", "挪用资金", "生产经营", "检查挪用", "能力保证", "同检查贷款"]
    for mode in ("warm", "cold", "tiny"):
        if mode == "tiny":
            monkeypatch.setattr(engine, "POSTINGS", engine.PostingsCache(20_000))
            monkeypatch.setattr(engine, "MAX_FREQUENCIES", 5)   # the kept document frequencies too
            engine.CACHES.clear()
        for phrase in phrases:
            for scope in ("/P/", "/P/C1/", "/P/C2/B3/"):
                for doctype in (None, "inspection_report"):
                    truth = brute_force(live, phrase, scope, doctype)
                    if mode == "cold":
                        engine.forget_terms()
                    total, found, facets = ids(idx, f'"{phrase}"', scope=scope, filters=Filters(doctype=doctype),
                                               sort="date_desc", limit=10, offset=10)
                    assert total == len(truth), (mode, phrase, scope, doctype)
                    assert dict(facets) == {t: n for t, n in
                                            ((t, sum(r.doctype == t for r in truth))
                                             for t in ("loan_contract", "inspection_report")) if n}
                    expected = sorted(truth, key=lambda r: (r.doc_date, r.added), reverse=True)
                    # Same date and time: the later document first (the engine's tie-break).
                    assert [r.doc_date for r in expected[10:20]] == [
                        next(r.doc_date for r in truth if r.id == i) for i in found]
                    total, found, _f = ids(idx, f'"{phrase}"', scope=scope, filters=Filters(doctype=doctype))
                    assert sorted(found) == sorted(r.id for r in truth)
        if mode == "tiny":
            assert engine.POSTINGS.bytes <= 20_000 or len(engine.POSTINGS._entries) == 1
            kept = [len(cache.frequencies) for cache in engine.CACHES.snapshot()]
            assert kept and max(kept) <= 5 and min(kept) >= 1


def test_the_posting_cache_stays_within_its_bound(tmp_path, monkeypatch):
    rng = random.Random(3)
    records = [record(i, "".join(rng.choice(SYLLABLES) for _ in range(300))) for i in range(1, 201)]
    idx = build(tmp_path, records)
    cache = engine.PostingsCache(50_000)
    monkeypatch.setattr(engine, "POSTINGS", cache)
    for a, b in zip(SYLLABLES, SYLLABLES[1:]):
        ids(idx, f'"{a}{b}"')
        assert cache.bytes <= 50_000 or len(cache._entries) == 1
    assert cache.bytes == sum(cache._sizes.values()) and len(cache._entries) > 1


def test_an_empty_index_answers_nothing_found_and_stays_trusted(app, world):
    """A portal whose archive holds no document yet: the search says so; the index is not
    taken for broken (it would be marked for rebuilding on every search)."""
    from portal.search.index import current_index

    total, ids, page = search_as(app, "officer", "借款合同")
    assert (total, ids, page["error"]) == (0, [], None)
    with app.app_context():
        assert not current_index().needs_rebuild
