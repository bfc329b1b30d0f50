"""``flask search …``: query as a user would, rebuild, merge segments, verify, drain the queue,
re-extract text."""
from __future__ import annotations

import json
import sys
import time

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import func, select, update

from ..accounts.models import Institution
from ..accounts.services import get_user
from ..archive.models import LIVE_STATES, Document
from ..clitools import fail
from ..errors import XindangError
from ..extensions import db
from .analysis import get_analyzer
from .index import IndexBusy, current_index
from .models import DocumentText, QueueOp, SearchQueue, TextStatus
from .query import SORTS, Filters, search_documents
from .queue import drain, enqueue, queue_length, work_available
from .records import live_document_ids, load_records
from .schema import document_fields

search_cli = AppGroup("search", help="The document search: query, reindex, optimize, verify, drain, extract.")

BULK_SEGMENT_DOCS = 5000


@search_cli.command("query")
@click.argument("text")
@click.option("--user", "username", required=True, help="Search as this user (their scope and rights).")
@click.option("--type", "doctype", help="Document type code.")
@click.option("--stage")
@click.option("--state")
@click.option("--institution", "institution_code", help="Only this institution and those below it.")
@click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]))
@click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]))
@click.option("--sort", type=click.Choice(SORTS), default="relevance")
@click.option("--page", type=int, default=1)
@click.option("--json", "as_json", is_flag=True)
def query_command(text, username, doctype, stage, state, institution_code, date_from, date_to, sort, page, as_json):
    """What USER would see searching for TEXT."""
    user = get_user(username)
    if user is None:
        fail(f"No user {username}.")
    path = None
    if institution_code:
        inst = db.session.execute(select(Institution).where(Institution.code == institution_code)).scalar_one_or_none()
        if inst is None:
            fail(f"No institution {institution_code}.")
        path = inst.path
    filters = Filters(doctype=doctype, stage=stage, state=state, institution_path=path,
                      date_from=date_from.date() if date_from else None, date_to=date_to.date() if date_to else None)
    try:
        results = search_documents(user, text, filters, page=page, sort=sort)
    except XindangError as exc:
        fail(exc.message)
    if results.error:
        if as_json:
            click.echo(json.dumps({"error": results.error}, ensure_ascii=False))
        fail(results.error, 2)
    hits = [{"document_id": h.document.id, "title": str(h.title.striptags()), "state": h.document.state,
             "archive_number": h.document.archive_number, "institution": h.document.institution_code,
             "score": round(h.score, 3), "snippet": str(h.snippet.striptags())} for h in results.hits]
    if as_json:
        click.echo(json.dumps({"query": text, "user": username, "total": results.total, "page": results.page,
                               "pages": results.pages, "facets": {c: n for c, _name, n in results.facets},
                               "notice": results.notice, "ignored": results.ignored, "hits": hits},
                              ensure_ascii=False, indent=2))
        return
    if results.notice:
        click.secho(results.notice, fg="yellow")
    click.echo(f"{results.total} documents (page {results.page} of {results.pages})")
    for code, name, count in results.facets:
        click.echo(f"  {name} ({code}): {count}")
    for hit in hits:
        click.echo(f"#{hit['document_id']} {hit['title']} [{hit['state']}] {hit['archive_number'] or ''}")
        if hit["snippet"]:
            click.echo(f"    {hit['snippet']}")


@search_cli.command("reindex")
@click.option("--procs", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Processes analysing and writing at once (one per core is enough).")
@click.option("--optimize/--no-optimize", default=True, show_default=True,
              help="Merge the new segments (one per 5,000 documents) into one at the end.")
def reindex_command(procs: int, optimize: bool):
    """Rebuild the index from the database (the text already extracted is reused), then merge
    its segments into one. Searches see an index that fills up while it runs."""
    idx = current_index()
    try:
        idx.recreate_now()
    except IndexBusy:
        fail("Another process is writing the index; try again when it is done.")
    extra = current_app.config.get("XINDANG_SEARCH_DICTIONARY_EXTRA")
    batches = list(live_document_ids(batch=BULK_SEGMENT_DOCS))   # institution order
    total = sum(len(b) for b in batches)
    without_text = list(db.session.execute(
        select(Document.id).where(Document.state.in_(LIVE_STATES),
                                  ~select(DocumentText.document_id).where(DocumentText.document_id == Document.id)
                                  .exists())).scalars())
    app = current_app._get_current_object()
    # The children open their own connections: none may be shared across the fork.
    db.session.remove()
    db.engine.dispose()

    def child_init():
        app.app_context().push()

    def build(ids):
        analyzer = get_analyzer(extra)
        records = load_records(ids)
        for document_id in ids:
            if document_id in records:
                yield document_fields(records[document_id], analyzer)
        db.session.remove()

    started = time.monotonic()
    with click.progressbar(length=total, label="Indexing documents", show_pos=True) as bar:
        try:
            done = idx.bulk_add(batches, build, procs=procs, init=child_init if procs > 1 else None,
                                progress=bar.update)
        except IndexBusy:
            fail("Another process is writing the index; try again when it is done.")
    if without_text:
        enqueue(without_text, QueueOp.EXTRACT.value)
        db.session.commit()
    seconds = time.monotonic() - started
    click.echo(f"{done} documents indexed in {seconds:.1f} s"
               + (f"; {len(without_text)} have no extracted text yet and are queued for extraction."
                  if without_text else "."))
    if optimize:
        _merge(wait=60, rebuilt=True)


def _merge(wait: float, rebuilt: bool = False) -> None:
    started = time.monotonic()
    try:
        before, after = current_index().optimize(timeout=wait)
    except IndexBusy:
        if rebuilt:   # the index is whole; only the merge waits for another day
            click.secho("The index is rebuilt, but another process kept writing it, so its segments were not "
                        "merged; run `flask search optimize` later.", fg="yellow", err=True)
            return
        fail("Another process is writing the index; try again when it is done.")
    except Exception as exc:  # noqa: BLE001 - a missing or damaged folder: say so, no traceback
        fail(f"The index could not be merged ({exc.__class__.__name__}: {exc}); "
              "`flask search verify` tells what it holds, `flask search reindex` rebuilds it.")
    if before == after:
        click.echo(f"The index has {before} segment{'s' if before != 1 else ''}; nothing to merge.")
    else:
        click.echo(f"Merged {before} segments into {after} in {time.monotonic() - started:.1f} s.")


@search_cli.command("optimize")
@click.option("--wait", type=click.FloatRange(0, 3600), default=60, show_default=True,
              help="Seconds to wait for another writer (the drainer) to finish.")
def optimize_command(wait: float):
    """Merge the index's segments into one (``reindex`` does it at its end): after a
    ``reindex --no-optimize``, or at a quiet hour once the queue has added many small segments.
    Searches go on meanwhile; indexing waits."""
    _merge(wait)


@search_cli.command("verify")
@click.option("--json", "as_json", is_flag=True)
def verify_command(as_json: bool):
    """Compare the index with the database; exit 0 only when they are in step."""
    report = verify_index()
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        click.echo(f"{report['documents']} live documents, {report['indexed']} index entries, "
                   f"{report['queued']} queued changes ({report['failing']} failing).")
        for key, text in (("missing", "in the database, not in the index"),
                          ("orphans", "in the index, not a live document"),
                          ("stale", "indexed with values the database no longer has")):
            if report[key]:
                click.secho(f"  {len(report[key])} {text}: {', '.join(map(str, report[key][:20]))}"
                            + (" …" if len(report[key]) > 20 else ""), fg="red")
        if report["text_problems"]:
            click.echo(f"  text extraction: {report['text_problems']}")
        if report["ok"]:
            click.secho("Index in step with the database.", fg="green")
    if not report["ok"]:
        sys.exit(1)


def verify_index() -> dict:
    idx = current_index()
    expected: dict[int, str] = {}
    for ids in live_document_ids():
        for document_id, record in load_records(ids, with_text=False).items():
            expected[document_id] = record.fingerprint()
        db.session.expunge_all()
    indexed: dict[int, str] = {}
    duplicates: list[int] = []
    with idx.searching() as searcher:
        for stored in searcher.all_stored_fields():
            document_id = int(stored["id"])
            if document_id in indexed:
                duplicates.append(document_id)
            indexed[document_id] = stored.get("fp", "")
    missing = sorted(set(expected) - set(indexed))
    orphans = sorted(set(indexed) - set(expected))
    stale = sorted({i for i in set(expected) & set(indexed) if expected[i] != indexed[i]} | set(duplicates))
    text_problems = dict(db.session.execute(
        select(DocumentText.status, func.count()).where(DocumentText.status != TextStatus.OK.value)
        .group_by(DocumentText.status)).all())
    failing = db.session.execute(select(func.count()).select_from(SearchQueue)
                                 .where(SearchQueue.attempts > 0)).scalar_one()
    return {"ok": not (missing or orphans or stale), "documents": len(expected), "indexed": len(indexed),
            "missing": missing, "orphans": orphans, "stale": stale, "queued": queue_length(),
            "failing": failing, "rebuild_pending": idx.needs_rebuild, "text_problems": text_problems}


@search_cli.command("drain")
@click.option("--forever", is_flag=True, help="Keep draining (the production worker); Ctrl-C stops.")
@click.option("--interval", type=float, default=2.0, show_default=True, help="Seconds between looks at the queue.")
@click.option("--wait-lock", type=float, default=30.0, show_default=True,
              help="Seconds to wait for another writer before giving up this round.")
def drain_command(forever: bool, interval: float, wait_lock: float):
    """Do the queued index work: extract text, index, remove; once, or --forever."""
    while True:
        result = drain(lock_timeout=wait_lock)
        db.session.remove()
        if result.done or result.extracted or result.failed or not forever:
            click.echo(f"indexed {result.indexed}, removed {result.removed}, extracted {result.extracted}, "
                       f"failed {result.failed}{' (index busy: another writer)' if result.busy else ''}; "
                       f"{queue_length()} left in the queue.")
            db.session.remove()
            for error in result.errors[:10]:
                click.secho(f"  {error}", fg="red")
        if not forever:
            if result.failed or result.busy:
                sys.exit(1)
            return
        work_available.wait(timeout=interval)
        work_available.clear()


@search_cli.command("extract")
@click.option("--retry-failed", is_flag=True, help="Documents whose extraction failed or lacked OCR.")
@click.option("--all", "everything", is_flag=True, help="Every live document.")
@click.option("--document", "document_ids", type=int, multiple=True, help="This document (repeatable).")
def extract_command(retry_failed: bool, everything: bool, document_ids: tuple[int, ...]):
    """Extract text again, then drain the queue."""
    ids: list[int] = list(document_ids)
    if retry_failed:
        ids += list(db.session.execute(select(DocumentText.document_id)
                                       .where(DocumentText.status != TextStatus.OK.value)).scalars())
        # Rows that failed for another reason (the store was down) are retried now, not later.
        db.session.execute(update(SearchQueue).where(SearchQueue.attempts > 0).values(not_before=None))
    if everything:
        for batch in live_document_ids():
            ids += batch
    if not ids and not retry_failed:
        fail("Say which documents: --retry-failed, --all or --document ID.", 2)
    queued = enqueue(ids, QueueOp.EXTRACT.value)
    db.session.commit()
    click.echo(f"{queued} documents queued for extraction.")
    result = drain(lock_timeout=30)
    click.echo(f"extracted {result.extracted}, indexed {result.indexed}, failed {result.failed}.")
    for error in result.errors[:10]:
        click.secho(f"  {error}", fg="red")
    if result.failed:
        sys.exit(1)
