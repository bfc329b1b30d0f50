"""``portal.search.whoosh_internals`` is the only place touching Whoosh's privates, and they are the
ones it expects: the installed Whoosh is the pinned one, every internal it reads still exists with
the shape it reads, and no other module names one of them.

When this file fails after a change of Whoosh: keep the pin, or port ``whoosh_internals.py`` (and
``w3_postings.py``, whose own tests then say whether the block format moved) to the new version.
"""
from __future__ import annotations

import ast
import importlib.metadata
import inspect
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import whoosh
from whoosh import index as whoosh_index
from whoosh.codec import whoosh3
from whoosh.filedb.filestore import FileStorage
from whoosh.reading import TermNotFound
from whoosh.util.numeric import byte_to_length
from whoosh.writing import SegmentWriter

from portal.search import whoosh_internals as internals
from portal.search.schema import build_schema, document_fields
from portal.search.segment_writer import FastSegmentWriter

from .test_segment_writer import ANALYZER, records

ROOT = Path(__file__).resolve().parents[2]


# -- the version ----------------------------------------------------------------------------------

def test_the_installed_whoosh_is_the_pinned_version():
    pins = [d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
            if d.startswith("whoosh-reloaded")]
    assert pins == [f"whoosh-reloaded=={internals.PINNED_VERSION}"], \
        "pyproject.toml must pin whoosh-reloaded to exactly whoosh_internals.PINNED_VERSION"
    installed = {"whoosh.versionstring()": whoosh.versionstring(),
                 "the whoosh-reloaded distribution": importlib.metadata.version("whoosh-reloaded")}
    assert installed == dict.fromkeys(installed, internals.PINNED_VERSION), (
        f"Whoosh {installed} is installed, but portal/search relies on the internals of "
        f"{internals.PINNED_VERSION}: install the pinned version, or port whoosh_internals.py to this one")


def test_another_version_raises_a_clear_error():
    internals.check_version(internals.PINNED_VERSION)
    pinned = re.escape(internals.PINNED_VERSION)
    with pytest.raises(internals.WhooshVersionError, match=rf"whoosh-reloaded {pinned} exactly, found 2\.8\.0"):
        internals.check_version("2.8.0")


def test_the_search_package_does_not_import_on_another_version():
    script = ("import whoosh; whoosh.__version__ = (2, 8, 0)\n"
              "import portal.search.views")         # as create_app does, to register the search page
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "WhooshVersionError" in run.stderr and "found 2.8.0" in run.stderr


# -- each internal, in its expected shape ---------------------------------------------------------

@pytest.fixture(scope="module")
def whoosh_index_dir(tmp_path_factory):
    """An index of one segment, written by Whoosh's own writer (not ours)."""
    path = tmp_path_factory.mktemp("whoosh_internals")
    ix = whoosh_index.create_in(str(path), build_schema())
    writer = ix.writer()
    for rec in records(40):
        writer.add_document(**document_fields(rec, ANALYZER))
    writer.commit()
    return path


@pytest.fixture()
def seg(whoosh_index_dir):
    with whoosh_index.open_dir(str(whoosh_index_dir)).reader() as reader:
        assert reader.is_atomic()
        yield reader


def _stats(info) -> tuple:
    return (info.weight(), info.doc_frequency(), info.min_length(), info.max_length(), info.max_weight(),
            info.min_id(), info.max_id(), info.extent())


def test_term_info_and_term_infos_read_the_segment_term_table(seg):
    terms = list(seg.all_terms())
    by_term = {term: info for term, info in internals.term_infos(seg)}
    assert terms and set(by_term) == set(terms)
    for fieldname, tbytes in terms:
        public = _stats(seg.term_info(fieldname, tbytes))
        assert _stats(internals.term_info(seg, fieldname, tbytes)) == public
        assert _stats(by_term[(fieldname, tbytes)]) == public
    with pytest.raises(TermNotFound):
        internals.term_info(seg, "borrower", "不存在".encode())


def test_posting_bytes_are_a_terms_w3_blocks(seg):
    fieldname, tbytes = max(seg.all_terms(), key=lambda t: seg.doc_frequency(*t))
    info = internals.term_info(seg, fieldname, tbytes)
    offset, length = info.extent()
    assert isinstance(offset, int) and isinstance(length, (int, tuple))
    data = internals.posting_bytes(seg, info)
    assert data.startswith(whoosh3.WHOOSH3_HEADER_MAGIC)
    assert len(data) == (length[0] if isinstance(length, tuple) else length)


def test_field_length_bytes_are_the_lengths_whoosh_reads(seg):
    assert whoosh3._lenfield("content") == "_content_len"
    for fieldname in ("content", "cjk", "title", "borrower"):
        column = internals.field_length_bytes(seg, fieldname)
        assert column is not None, fieldname
        lengths = [byte_to_length(b) for b in column]
        assert lengths == [seg.doc_field_length(d, fieldname) or 0 for d in range(seg.doc_count_all())]
        assert any(lengths)
    assert internals.field_length_bytes(seg, "cjkpos") is None      # not scorable: no lengths


def test_index_segments_lists_the_table_of_contents(whoosh_index_dir):
    ix = whoosh_index.open_dir(str(whoosh_index_dir))
    with ix.reader() as reader:
        assert [s.segment_id() for s in internals.index_segments(ix)] == [reader.segment().segment_id()]


def test_a_field_writer_has_the_postings_file_and_term_table_used(tmp_path):
    ix = whoosh_index.create_in(str(tmp_path), build_schema())
    writer = SegmentWriter(ix)
    try:
        fieldwriter = writer.fieldwriter
        assert type(fieldwriter) is whoosh3.W3FieldWriter
        fieldwriter.start_field("id", ix.schema["id"])
        postfile = internals.postings_file(fieldwriter)
        assert callable(postfile.tell) and callable(postfile.write)
        assert isinstance(fieldwriter._fieldid, int) and callable(fieldwriter._tindex.add)
        assert callable(internals.term_row_adder(fieldwriter))
    finally:
        writer.cancel()


def test_segment_writer_has_the_private_steps_used():
    params = inspect.signature(SegmentWriter.__init__).parameters
    assert params["_lk"].default is True and params["kwargs"].kind is inspect.Parameter.VAR_KEYWORD
    for name, args in {"_check_state": [], "_check_fields": ["schema", "fieldnames"], "_flush_segment": [],
                       "_close_segment": [], "_finalize_segment": [], "_commit_toc": ["segments"],
                       "_finish": []}.items():
        assert list(inspect.signature(getattr(SegmentWriter, name)).parameters)[1:] == args, name
    # commit writes the segment only if _added, through _finalize_segment and so _flush_segment,
    # the step FastSegmentWriter replaces (flush_postings).
    commit = inspect.getsource(SegmentWriter.commit)
    assert "if self._added:" in commit and "self._finalize_segment()" in commit
    assert "self._flush_segment()" in inspect.getsource(SegmentWriter._finalize_segment)
    assert "self._added = False" in inspect.getsource(SegmentWriter.__init__)


def test_the_stand_in_pool_has_what_segment_writer_calls():
    """FastSegmentWriter replaces SegmentWriter.pool (a PostingPool) with its own grouping pool."""
    from portal.search.segment_writer import _GroupingPool

    called = set(re.findall(r"self\.pool\.(\w+)", inspect.getsource(SegmentWriter)))
    assert called == {"add", "iter_postings", "cleanup"}
    assert all(callable(getattr(_GroupingPool, name)) for name in called)


def test_the_lock_name_is_the_lock_a_writer_takes(tmp_path):
    ix = whoosh_index.create_in(str(tmp_path), build_schema())
    lock = FileStorage(str(tmp_path)).lock(internals.WRITER_LOCK_NAME)
    for make_writer in (ix.writer, lambda: FastSegmentWriter(ix)):
        writer = make_writer()
        assert not lock.acquire(blocking=False)
        writer.cancel()
        assert lock.acquire(blocking=False)
        lock.release()
    unlocked = FastSegmentWriter(ix, lock=False)
    assert lock.acquire(blocking=False)
    lock.release()
    unlocked.cancel()


# -- nobody else -----------------------------------------------------------------------------------

ADAPTER = ROOT / "portal" / "search" / "whoosh_internals.py"


def _names(tree: ast.AST):
    """(line, name) of every attribute, imported name, keyword argument, definition and string in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            yield node.lineno, node.attr
        elif isinstance(node, ast.alias):
            yield node.lineno, node.name
        elif isinstance(node, ast.keyword) and node.arg:
            yield node.value.lineno, node.arg
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.lineno, node.name
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def test_the_adapter_lists_every_private_name_it_uses():
    used = {name for _line, name in _names(ast.parse(ADAPTER.read_text()))
            if name.startswith("_") and not name.startswith("__")}
    assert used == internals.PRIVATE_NAMES


def test_no_other_module_names_a_whoosh_private():
    files = [p for folder in ("portal", "plugins", "bench", "tests") for p in sorted((ROOT / folder).rglob("*.py"))
             if p not in (ADAPTER, Path(__file__).resolve())]
    found = [f"{path.relative_to(ROOT)}:{line}: {name}" for path in files
             for line, name in _names(ast.parse(path.read_text(), str(path)))
             if name in internals.PRIVATE_NAMES or internals.WRITER_LOCK_NAME in name]
    assert not found, "Whoosh's private names belong in portal/search/whoosh_internals.py only:\n" + "\n".join(found)


def test_the_search_package_reaches_no_private_name_it_does_not_define():
    """Any ``obj._name`` in portal/search must be a name portal/search defines itself (or a
    documented one of Flask's): a private attribute of Whoosh goes through the adapter."""
    trees = {p: ast.parse(p.read_text(), str(p)) for p in sorted((ROOT / "portal" / "search").glob("*.py"))}
    defined = {"_get_current_object"}     # werkzeug's LocalProxy, documented for current_app
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                defined.add(node.attr)
    found = [f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}" for path, tree in trees.items()
             if path != ADAPTER for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
             and node.attr not in defined]
    assert not found, "private names of another library, outside whoosh_internals.py:\n" + "\n".join(found)
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if path != ADAPTER and isinstance(node, ast.ImportFrom) and (node.module or "").startswith("whoosh"):
                assert not [a.name for a in node.names if a.name.startswith("_")], path
