"""The fast segment writer writes what Whoosh's own writer writes, posting for posting, and its
segments merge and search like any other."""
from __future__ import annotations

from datetime import date, datetime

from whoosh import index as whoosh_index
from whoosh import query as wq

from portal.search.analysis import get_analyzer
from portal.search.schema import IndexRecord, build_schema, document_fields
from portal.search.segment_writer import FastSegmentWriter
from portal.search.whoosh_internals import index_segments

ANALYZER = get_analyzer()
TEXTS = ["农村信用社借款合同编号XY2024-001，借款人王建国", "贷后检查发现借款人挪用贷款资金" * 30,
         "五级分类认定为关注类。他项权证已收回。", "结清证明：借款已全部结清", "" ]


def records(n: int) -> list[IndexRecord]:
    return [IndexRecord(id=i, title=f"文件{i}", doctype="t%d" % (i % 3), stage="post_loan", state="archived",
                        institution_path=f"/P/C{i % 2}/B{i % 5}/", doc_date=date(2024, 1, 1 + i % 28),
                        added=datetime(2024, 2, 1), text=TEXTS[i % len(TEXTS)] + f"第{i}号",
                        borrower="王建国" if i % 2 else "覃柱月", contract_no=f"XY2024-{i:03d}",
                        archive_no=f"J012-XD·2024-D30-HN0101-{i:04d}", id_number=f"43010119800101{i:04d}")
            for i in range(1, n + 1)]


def postings(reader) -> dict:
    out = {}
    for fieldname, term in reader.all_terms():
        m = reader.postings(fieldname, term)
        rows = []
        while m.is_active():
            rows.append((m.id(), m.weight(), m.value(), m.block_max_weight(), m.block_min_length(),
                         m.block_max_length()))
            m.next()
        info = reader.term_info(fieldname, term)
        out[(fieldname, term)] = (rows, info.weight(), info.doc_frequency(), info.min_length(), info.max_length(),
                                  info.max_weight(), info.min_id(), info.max_id())
    return out


def both_writers(tmp_path, docs):
    """The same documents written by FastSegmentWriter ("ours") and by Whoosh's own writer."""
    indexes = []
    for name, make_writer in (("ours", FastSegmentWriter), ("theirs", lambda ix: ix.writer())):
        (tmp_path / name).mkdir()
        ix = whoosh_index.create_in(str(tmp_path / name), build_schema())
        writer = make_writer(ix)
        for fields in docs:
            writer.add_document(**fields)
        writer.commit()
        indexes.append(ix)
    return tuple(indexes)


def test_same_postings_as_whooshs_writer(tmp_path):
    docs = [document_fields(r, ANALYZER) for r in records(300)]   # more than a block (128) per common term
    ours, theirs = both_writers(tmp_path, docs)
    with ours.reader() as a, theirs.reader() as b:
        assert postings(a) == postings(b)
        assert [a.field_length(f) for f in a.schema.names()] == [b.field_length(f) for f in b.schema.names()]
        assert list(a.all_stored_fields()) == list(b.all_stored_fields())


def test_segments_merge_and_keep_deletions(tmp_path):
    (tmp_path / "ix").mkdir()
    ix = whoosh_index.create_in(str(tmp_path / "ix"), build_schema())
    recs = records(90)
    for start in range(0, 90, 30):
        writer = FastSegmentWriter(ix)
        for rec in recs[start:start + 30]:
            writer.add_document(**document_fields(rec, ANALYZER))
        writer.commit(merge=False)
    assert len(index_segments(ix)) == 3
    writer = FastSegmentWriter(ix)
    writer.delete_by_term("id", "5")
    writer.commit(optimize=True)
    assert len(index_segments(ix)) == 1
    with ix.searcher() as searcher:
        assert searcher.doc_count() == 89
        found = {int(searcher.stored_fields(d)["id"]) for d in searcher.docs_for_query(wq.Term("borrower", "柱月"))}
        assert found == {r.id for r in recs if r.borrower == "覃柱月"} - {5}


def test_a_merge_writes_what_a_single_commit_writes(tmp_path):
    recs = records(200)
    (tmp_path / "one").mkdir()
    (tmp_path / "merged").mkdir()
    one = whoosh_index.create_in(str(tmp_path / "one"), build_schema())
    merged = whoosh_index.create_in(str(tmp_path / "merged"), build_schema())
    writer = FastSegmentWriter(one)
    for rec in recs:
        writer.add_document(**document_fields(rec, ANALYZER))
    writer.commit()
    for start in range(0, 200, 70):
        writer = FastSegmentWriter(merged)
        for rec in recs[start:start + 70]:
            writer.add_document(**document_fields(rec, ANALYZER))
        writer.commit(merge=False)
    FastSegmentWriter(merged).commit(optimize=True)
    assert len(index_segments(merged)) == 1
    with one.reader() as a, merged.reader() as b:
        assert postings(a) == postings(b)


def test_a_text_longer_than_65536_characters_same_postings_and_phrases_found(tmp_path):
    """Positions past 65,535 take 32 bits: the array path of the analysis and the writer fall
    back to them, and a phrase at the end of such a text is still found."""
    from portal.search import engine
    from portal.search.analysis import normalize
    from portal.search.query import Filters, build_plan, parse_query

    long_text = "借款人经营正常，" * 9000 + "末尾发现挪用贷款资金"          # 72,010 characters
    recs = records(3)
    recs[1].text = long_text
    grams = ANALYZER.analyze(normalize(long_text)).bigrams
    plain: dict[str, list[int]] = {}
    norm = normalize(long_text)
    for i in range(len(norm) - 1):
        if "\u4e00" <= norm[i] <= "\u9fff" and "\u4e00" <= norm[i + 1] <= "\u9fff":
            plain.setdefault(norm[i:i + 2], []).append(i)
    assert dict(grams.items()) == plain and grams["挪用"] == [len(norm) - 6]
    docs = [document_fields(r, ANALYZER) for r in recs]
    ours, theirs = both_writers(tmp_path, docs)
    with ours.reader() as a, theirs.reader() as b:
        assert postings(a) == postings(b)
    engine.forget_terms()
    plan = build_plan(parse_query('"末尾发现挪用"', ANALYZER), scope_path=None, filters=Filters(), analyzer=ANALYZER)
    with ours.searcher() as searcher:
        result = engine.execute(searcher, plan)
        assert [int(searcher.stored_fields(d)["id"]) for d, _s in result.hits] == [recs[1].id]
