"""``flask search query | reindex | optimize | verify | extract``."""
from __future__ import annotations

import json

from sqlalchemy import text

from portal.extensions import db

from tests.helpers.files import docx_bytes

from .search_helpers import add_document, drain_all


def test_query_shows_what_the_user_would_see(app, world, runner):
    b1 = add_document(app, world, docx_bytes("借款人挪用贷款资金"), "检查.docx", doc_type="inspection_report")
    add_document(app, world, docx_bytes("借款人挪用贷款资金"), "检查.docx", branch="B2", doc_type="inspection_report")
    drain_all(app)
    result = runner.invoke(args=["search", "query", "挪用", "--user", "officer", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["total"] == 1 and [h["document_id"] for h in data["hits"]] == [b1]
    assert data["facets"] == {"inspection_report": 1} and "<mark>挪用</mark>" not in data["hits"][0]["snippet"]
    result = runner.invoke(args=["search", "query", "挪用", "--user", "county_archivist"])
    assert result.exit_code == 0 and result.output.startswith("2 documents")
    result = runner.invoke(args=["search", "query", '"挪用', "--user", "officer"])
    assert result.exit_code == 2 and "A quotation mark is not closed." in result.output


def test_reindex_and_verify_find_and_close_every_gap(app, world, runner):
    docs = [add_document(app, world, docx_bytes(f"第{i}份贷后检查报告"), f"{i}.docx", doc_type="inspection_report")
            for i in range(3)]
    drain_all(app)
    assert runner.invoke(args=["search", "verify"]).exit_code == 0
    with app.app_context():
        # Behind the portal's back (no session, no queue): a stale entry and an orphan.
        db.session.execute(text("UPDATE archive_document SET shelf_location = 'X', doc_type = 'loan_receipt' "
                                "WHERE id = :id"), {"id": docs[0]})
        db.session.execute(text("UPDATE archive_document SET state = 'discarded' WHERE id = :id"), {"id": docs[1]})
        db.session.commit()
    result = runner.invoke(args=["search", "verify", "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 1
    assert report["stale"] == [docs[0]] and report["orphans"] == [docs[1]] and report["missing"] == []
    result = runner.invoke(args=["search", "reindex"])
    assert result.exit_code == 0, result.output
    assert "Indexing documents" in result.output and "2 documents indexed" in result.output
    assert runner.invoke(args=["search", "verify"]).exit_code == 0


def test_reindex_in_two_processes(app, world, runner):
    from .search_helpers import search_as

    docs = [add_document(app, world, docx_bytes(f"第{i}份他项权证"), f"{i}.docx", branch="B1" if i % 2 else "B2",
                         doc_type="collateral_certificate") for i in range(5)]
    drain_all(app)
    import portal.search.cli as search_cli
    original = search_cli.BULK_SEGMENT_DOCS
    search_cli.BULK_SEGMENT_DOCS = 2            # three batches, so both processes get work
    try:
        result = runner.invoke(args=["search", "reindex", "--procs", "2", "--no-optimize"])
    finally:
        search_cli.BULK_SEGMENT_DOCS = original
    assert result.exit_code == 0, result.output
    assert "5 documents indexed" in result.output
    assert runner.invoke(args=["search", "verify"]).exit_code == 0
    found = search_as(app, "county_archivist", "他项权证")
    assert sorted(found[1]) == sorted(docs)
    # Three segments merged into one: the same answers, in the same order.
    result = runner.invoke(args=["search", "optimize"])
    assert result.exit_code == 0 and "Merged 3 segments into 1" in result.output, result.output
    assert search_as(app, "county_archivist", "他项权证")[:2] == found[:2]
    assert runner.invoke(args=["search", "verify"]).exit_code == 0
    result = runner.invoke(args=["search", "optimize"])
    assert result.exit_code == 0 and "The index has 1 segment; nothing to merge." in result.output
    search_cli.BULK_SEGMENT_DOCS = 2
    try:
        result = runner.invoke(args=["search", "reindex"])       # merges at its end by default
    finally:
        search_cli.BULK_SEGMENT_DOCS = original
    assert result.exit_code == 0 and "Merged 3 segments into 1" in result.output, result.output
    assert search_as(app, "county_archivist", "他项权证")[:2] == found[:2]


def test_extract_retry_failed_reextracts(app, world, runner, monkeypatch):
    import portal.search.extract as extract

    doc = add_document(app, world, docx_bytes("结清证明"), "结清.docx", doc_type="settlement_certificate")
    original = extract._docx
    monkeypatch.setattr(extract, "_docx", lambda data: (_ for _ in ()).throw(OSError("disk")))
    drain_all(app)
    monkeypatch.setattr(extract, "_docx", original)
    result = runner.invoke(args=["search", "extract", "--retry-failed"])
    assert result.exit_code == 0 and "1 documents queued" in result.output and "extracted 1" in result.output
    result = runner.invoke(args=["search", "query", "结清证明", "--user", "archivist", "--json"])
    assert [h["document_id"] for h in json.loads(result.output)["hits"]] == [doc]
