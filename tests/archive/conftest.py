"""Archive fixtures: a real S3 server (``rclone serve s3``, started once per session on a free
loopback port), the ``store`` fixture that runs a test against both backends, and a small
credit-file setup with users of every role the lifecycle needs (archive_helpers.py builds it).
"""
from __future__ import annotations

import pytest

from portal.archive.storage import LocalStore

from tests.helpers.stores import minio_store, start_s3_server, use_store

from .archive_helpers import make_archive_setup


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    server = start_s3_server(tmp_path_factory.mktemp("s3") / "data")
    yield server
    server.stop()


@pytest.fixture(params=["local", "minio"])
def store(request, app, tmp_path):
    """The app's object store for this test: a fresh local folder, or a fresh bucket on the S3 server."""
    if request.param == "local":
        chosen = LocalStore(tmp_path / "objects")
    else:
        chosen = minio_store(request.getfixturevalue("s3_server").endpoint)
    previous = use_store(app, chosen)
    yield chosen
    app.extensions["xindang_storage"] = previous


@pytest.fixture()
def setup(app):
    return make_archive_setup(app)
