"""Security fixtures: a fresh object store and search index per test, English messages.

This directory is a package (``__init__.py``) so that this conftest does not shadow the
top-level ``conftest`` module that test files import helpers from.
"""
from __future__ import annotations

import pytest

from portal.archive.storage import LocalStore


@pytest.fixture(autouse=True)
def english(request, monkeypatch):
    """Messages are asserted in English (the msgids), whatever the Chinese catalogue says."""
    if "app" in request.fixturenames or "app_ctx" in request.fixturenames:
        monkeypatch.setitem(request.getfixturevalue("app").config, "BABEL_DEFAULT_LOCALE", "en")


@pytest.fixture(autouse=True)
def index_dir(request, tmp_path, monkeypatch):
    """Each test gets its own search index folder (the app is shared by the whole session)."""
    path = tmp_path / "search_index"
    if "app" in request.fixturenames or "app_ctx" in request.fixturenames:
        monkeypatch.setitem(request.getfixturevalue("app").config, "XINDANG_SEARCH_INDEX_DIR", str(path))
    return path


@pytest.fixture()
def store(app, tmp_path):
    """A fresh local object store for the test (the backend does not matter here)."""
    chosen = LocalStore(tmp_path / "objects")
    previous = app.extensions["xindang_storage"]
    app.extensions["xindang_storage"] = chosen
    yield chosen
    app.extensions["xindang_storage"] = previous


@pytest.fixture()
def fast_pdfs(monkeypatch):
    """PDFs as a small fixed document instead of WeasyPrint's (about a second each): the matrix
    asks who may get a PDF, not what it looks like. The HTML each PDF is made of is still
    rendered, and kept in the returned list, so a PDF's content can be checked for leaks."""
    import sys

    from flask import render_template

    from portal.reports import pdf

    from .world import pdf_bytes

    original = pdf.render_pdf
    rendered: list[str] = []

    def quick_pdf(template, *, title, institution_name, **context):
        rendered.append(render_template(template, title=title, institution_name=institution_name,
                                        generated_at="", cjk_fonts=pdf.CJK_FONTS, **context))
        return pdf_bytes(f"{template} {title} {len(rendered)}")

    for name, module in list(sys.modules.items()):
        if name.startswith("portal") and getattr(module, "render_pdf", None) is original:
            monkeypatch.setattr(module, "render_pdf", quick_pdf)
    return rendered


@pytest.fixture()
def world(app, store, fast_pdfs):
    """The three places' objects (see world.py), with the search index up to date."""
    from .world import build_world, index_everything

    built = build_world(app)
    index_everything(app)
    return built
