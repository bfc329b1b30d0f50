"""The index directory: opening, creating, resetting, the writer lock and per-thread searchers.

The index is derived from the database and can always be rebuilt: when it is missing, was
built by another schema version, or cannot be read, ``SearchIndex.open`` creates an empty one
and leaves a ``REBUILD`` marker; the queue's drainer then enqueues every document
(``portal/search/queue.py``) and removes the marker once that is committed. A query against a
corrupt index marks it the same way and reports "being rebuilt" instead of failing.

One writer at a time, across threads and processes: Whoosh's ``WRITELOCK`` file lock (flock).
Searchers are pooled and reused while the index is unchanged; after a commit a new one is opened
(never ``Searcher.refresh()``, which is wrong in whoosh-reloaded 2.7.5, see ``searching``).
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path

from whoosh import index as whoosh_index
from whoosh.filedb.filestore import FileStorage
from whoosh.index import LockError

from .schema import SCHEMA_VERSION, build_schema
from .segment_writer import FastSegmentWriter
from .whoosh_internals import WRITER_LOCK_NAME, index_segments

log = logging.getLogger(__name__)

VERSION_FILE = "XINDANG_SCHEMA"
REBUILD_MARKER = "REBUILD"


class IndexBusy(Exception):
    """Another process or thread holds the writer lock."""


class IndexUnreadable(Exception):
    """The index could not be read; it has been marked for rebuilding."""


class SearchIndex:
    """One index directory. Thread-safe; one instance per process and directory."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._ix = None
        self._open_lock = threading.Lock()
        self._pool: list = []
        self._pool_ix = None

    # -- opening --------------------------------------------------------------------------------

    def _version_ok(self) -> bool:
        marker = self.path / VERSION_FILE
        return marker.exists() and marker.read_text().strip() == SCHEMA_VERSION

    def open(self):
        """The open index, creating (or recreating) it if needed. Never raises for a missing,
        outdated or unreadable index; raises IndexBusy only if it must be recreated while
        another writer holds the lock (try again later)."""
        with self._open_lock:
            if self._ix is not None:
                return self._ix
            self.path.mkdir(parents=True, exist_ok=True)
            try:
                if whoosh_index.exists_in(str(self.path)) and self._version_ok():
                    ix = whoosh_index.open_dir(str(self.path))
                    ix.doc_count_all()  # reads the table of contents and every segment's header
                    self._ix = ix
                    return ix
            except Exception:  # noqa: BLE001 - any failure to read the index means rebuild it
                log.exception("search index at %s is unreadable; recreating it", self.path)
            self._ix = self._recreate()
            return self._ix

    def _recreate(self, *, mark: bool = True):
        storage = FileStorage(str(self.path))
        lock = storage.lock(WRITER_LOCK_NAME)
        if not lock.acquire(blocking=False):
            raise IndexBusy()
        try:
            # Another process may have recreated it while we waited for the lock.
            try:
                if whoosh_index.exists_in(str(self.path)) and self._version_ok():
                    ix = whoosh_index.open_dir(str(self.path))
                    ix.doc_count_all()
                    return ix
            except Exception:  # noqa: BLE001 - unreadable: recreate it below
                pass
            for entry in self.path.iterdir():
                if entry.name == WRITER_LOCK_NAME:
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
            ix = whoosh_index.create_in(str(self.path), build_schema())
            (self.path / VERSION_FILE).write_text(SCHEMA_VERSION)
            if mark:
                (self.path / REBUILD_MARKER).write_text("created empty: every document must be indexed\n")
                log.warning("search index at %s created empty; the queue will rebuild it", self.path)
            return ix
        finally:
            lock.release()

    def forget(self) -> None:
        """Drop the open index and this thread's searcher (after a reset or on corruption)."""
        with self._open_lock:
            self._ix = None
            pool, self._pool = self._pool, []
        for searcher in pool:
            try:
                searcher.close()
            except Exception:  # noqa: BLE001
                pass

    # -- rebuilding -----------------------------------------------------------------------------

    def looks_intact(self) -> bool:
        """A cheap look (no reading): the folder still has its version file and a table of
        contents. Catches a folder removed or emptied under a running process."""
        try:
            return self._version_ok() and any(p.name.endswith(".toc") for p in self.path.iterdir())
        except OSError:
            return False

    @property
    def needs_rebuild(self) -> bool:
        return (self.path / REBUILD_MARKER).exists()

    def mark_for_rebuild(self, reason: str) -> None:
        """Make the next open recreate the index (used when a query finds it unreadable)."""
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / VERSION_FILE).write_text("unreadable: " + reason[:200])
        (self.path / REBUILD_MARKER).write_text(reason[:200] + "\n")
        self.forget()

    def rebuild_enqueued(self) -> None:
        (self.path / REBUILD_MARKER).unlink(missing_ok=True)

    def recreate_now(self) -> None:
        """Empty the index now, without the rebuild marker: the caller (``flask search reindex``)
        adds every document itself. Raises IndexBusy if another writer holds the lock."""
        self.forget()
        (self.path / VERSION_FILE).unlink(missing_ok=True)
        self.path.mkdir(parents=True, exist_ok=True)
        with self._open_lock:
            self._ix = self._recreate(mark=False)
        (self.path / REBUILD_MARKER).unlink(missing_ok=True)

    # -- reading --------------------------------------------------------------------------------

    @contextmanager
    def searching(self):
        """A searcher refreshed to the latest commit, lent to this thread for the block.

        Searchers are pooled, not opened per request: one that is up to date (the index has not
        changed since) is reused at the cost of one look at the table of contents. A Whoosh
        searcher must not be used by two threads at once, hence a pool, not one shared searcher."""
        ix = self.open()
        with self._open_lock:
            searcher = self._pool.pop() if self._pool else None
        if searcher is None or self._pool_ix is not ix or not searcher.up_to_date():
            # Not Searcher.refresh(): in whoosh-reloaded 2.7.5 it reuses segment readers by
            # segment id, so it misses deletions made since, and it adds back segments that a
            # merge replaced (documents counted twice). A new searcher reads the current TOC.
            if searcher is not None:
                searcher.close()
            searcher = ix.searcher()
        try:
            yield searcher
        finally:
            with self._open_lock:
                if self._ix is ix and len(self._pool) < 8:
                    self._pool_ix = ix
                    self._pool.append(searcher)
                else:
                    searcher.close()

    def doc_count(self) -> int:
        with self.searching() as searcher:
            return searcher.doc_count()

    # -- writing --------------------------------------------------------------------------------

    @contextmanager
    def writer(self, timeout: float = 0.0, merge: bool = True):
        """The writer, committed on leaving the block (cancelled on an exception). Raises
        IndexBusy if another writer holds the lock for longer than ``timeout`` seconds.
        ``merge`` False keeps the new segment apart (bulk loading); True merges small ones."""
        ix = self.open()
        try:
            writer = FastSegmentWriter(ix, timeout=timeout, delay=0.05)
        except LockError:
            raise IndexBusy() from None
        except Exception as exc:  # noqa: BLE001 - the folder was removed or damaged under us
            log.exception("search index at %s cannot be written; recreating it", self.path)
            self.mark_for_rebuild(f"{exc.__class__.__name__}: {exc}")
            try:
                writer = FastSegmentWriter(self.open(), timeout=timeout, delay=0.05)
            except LockError:
                raise IndexBusy() from None
        try:
            yield writer
        except BaseException:
            writer.cancel()
            raise
        else:
            writer.commit(merge=merge)

    def optimize(self, timeout: float = 0.0) -> tuple[int, int]:
        """Merge every segment into one, in order (a branch's documents stay in adjacent
        blocks); returns the number of segments before and after. A search costs a fixed
        amount per segment (docs/search.md: a reindex of 50,000 documents leaves 10, and a
        search over them costs 15–20 % more CPU than over one). Holds the writer lock while it
        runs: the queue's drainer waits and goes on after."""
        try:
            writer = FastSegmentWriter(self.open(), timeout=timeout, delay=0.1)
        except LockError:
            raise IndexBusy() from None
        before = len(writer.segments)   # read under the lock
        if before <= 1:
            writer.cancel()
            return before, before
        try:
            writer.commit(optimize=True)
        except BaseException:
            writer.cancel()
            raise
        return before, len(index_segments(self.open()))

    def bulk_add(self, batches: list, build, *, procs: int = 1, init=None, progress=None) -> int:
        """Index ``batches`` (lists of whatever ``build`` turns into field dicts), one new segment
        per batch, in batch order, in ``procs`` processes at once; commit them in one table of
        contents under the writer lock. Returns the number of documents added.

        Children are forked: ``build`` and ``init`` (run first in each child, e.g. to push an
        app context) are inherited, not pickled. A caller using the database must have closed
        its connections before (the children open their own). Used by ``flask search reindex``
        and the benchmark; the queue's drainer adds a few documents at a time instead."""
        ix = self.open()
        try:
            parent = FastSegmentWriter(ix, timeout=60, delay=0.1)
        except LockError:
            raise IndexBusy() from None
        added = 0
        try:
            segments = []
            _BULK.clear()
            _BULK.update(path=str(self.path), build=build, init=init)
            if procs <= 1:
                _bulk_init()
                results = map(_bulk_worker, enumerate(batches))
                pool = None
            else:
                pool = multiprocessing.get_context("fork").Pool(procs, initializer=_bulk_init)
                results = pool.imap(_bulk_worker, enumerate(batches))
            try:
                for _batch_no, segment, count in results:
                    if segment is not None:
                        segments.append(segment)
                    added += count
                    if progress is not None:
                        progress(count)
            finally:
                if pool is not None:
                    pool.close()
                    pool.join()
            parent.commit_toc(parent.segments + segments)
        except BaseException:
            parent.cancel()
            raise
        finally:
            _BULK.clear()
        return added

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())


_BULK: dict = {}


def _bulk_init() -> None:
    if _BULK.get("init") is not None:
        _BULK["init"]()


def _bulk_worker(job):
    """One batch as one finished segment (not yet in the table of contents)."""
    batch_no, items = job
    ix = whoosh_index.open_dir(_BULK["path"])
    writer = FastSegmentWriter(ix, lock=False)
    count = 0
    for fields in _BULK["build"](items):
        writer.add_document(**fields)
        count += 1
    if not count:
        writer.close_segment()
        return batch_no, None, 0
    # The temporary folder is shared with the parent's writer, which removes it when it finishes.
    return batch_no, writer.finalize_segment(), count


_indexes: dict[str, SearchIndex] = {}
_indexes_lock = threading.Lock()


def search_index_for(path: str | os.PathLike) -> SearchIndex:
    key = str(Path(path).resolve())
    with _indexes_lock:
        idx = _indexes.get(key)
        if idx is None:
            idx = _indexes[key] = SearchIndex(key)
        return idx


def current_index() -> SearchIndex:
    from flask import current_app

    path = current_app.config.get("XINDANG_SEARCH_INDEX_DIR") or os.path.join(current_app.instance_path, "search_index")
    return search_index_for(path)
