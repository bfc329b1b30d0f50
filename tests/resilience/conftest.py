"""Resilience fixtures: stores (a local folder, or an S3 server of the test's own that the test
may kill and restart), a credit file with its people, and whole deployments; what they are
made of is in resilience_helpers.py.
"""
from __future__ import annotations

import uuid

import pytest

from tests.archive.archive_helpers import make_archive_setup
from tests.helpers.stores import use_store

from .resilience_helpers import Deployments, KillableS3, free_port


@pytest.fixture()
def killable_s3(tmp_path):
    s3 = KillableS3(tmp_path / "s3-data", free_port())
    s3.start()
    yield s3
    s3.kill()


@pytest.fixture()
def s3_store(app, killable_s3):
    """The app's store is a bucket on this test's own S3 server."""
    chosen = killable_s3.store(f"xd-{uuid.uuid4().hex[:16]}")
    previous = use_store(app, chosen)
    yield chosen
    app.extensions["xindang_storage"] = previous


@pytest.fixture()
def setup(app):
    return make_archive_setup(app)


@pytest.fixture()
def deployments(tmp_path):
    made = Deployments(tmp_path)
    yield made
    made.close()
