"""Search fixtures: a fresh index folder and object store per test, and a small archive with a
loan in branch B1 and one in B2 (search_helpers.py builds it)."""
from __future__ import annotations

import pytest

from .search_helpers import make_world


@pytest.fixture(autouse=True)
def _own_index(index_dir):
    """Every test here gets its own search index folder."""
    return index_dir


@pytest.fixture()
def store(local_store):
    return local_store


@pytest.fixture()
def world(app, store):
    """Two branches' documents-to-be, and an index already open and empty, as in a running portal
    (a brand-new index would first queue every document for its rebuild)."""
    created = make_world(app)
    with app.app_context():
        from portal.search.index import current_index
        idx = current_index()
        idx.open()
        idx.rebuild_enqueued()
    return created
