"""Security fixtures: a fresh object store and search index per test, PDFs made quickly, and
the world of world.py (the same objects in three places)."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _own_index(index_dir):
    """Every test here gets its own search index folder."""
    return index_dir


@pytest.fixture()
def store(local_store):
    return local_store


@pytest.fixture()
def fast_pdfs(monkeypatch):
    """PDFs as a small fixed document instead of WeasyPrint's (about a second each): the matrix
    asks who may get a PDF, not what it looks like. The HTML each PDF is made of is still
    rendered, and kept in the returned list, so a PDF's content can be checked for leaks."""
    import sys

    from flask import render_template

    from portal.reports import pdf

    from tests.helpers.files import pdf_bytes

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
