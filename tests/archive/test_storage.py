"""The object store interface, run against both backends: streaming put with SHA-256, get,
delete, listing, size limits, download links, and the session hooks that remove objects whose
transaction did not commit."""
import hashlib
import io
import urllib.request
from datetime import timedelta

import pytest

from portal.archive.storage import (LocalStore, ObjectMissing, SizeLimitExceeded, StoreUnavailable,
                                    delete_after_commit, track_new_object)
from portal.extensions import db

from tests.helpers.stores import minio_store


class CountingReader(io.RawIOBase):
    """A one-way stream of ``size`` pseudo-random bytes that records its largest single read."""

    def __init__(self, size: int):
        self.left = size
        self.largest = 0
        self.digest = hashlib.sha256()
        self._block = hashlib.sha256(b"seed").digest() * 32768  # 1 MiB

    def readable(self):
        return True

    def read(self, n=-1):
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.largest = max(self.largest, n)
        out = (self._block * (n // len(self._block) + 1))[:n]
        self.left -= n
        self.digest.update(out)
        return out


def test_put_stream_hashes_while_streaming_in_parts(store):
    size = 40 * 1024 * 1024 + 123
    reader = CountingReader(size)
    stored = store.put_stream(reader)  # length unknown: streamed part by part
    assert stored.size == size and stored.sha256 == reader.digest.hexdigest()
    # Never more than one part (16 MiB, plus the byte minio reads ahead) in memory at once.
    assert reader.largest <= 16 * 1024 * 1024 + 1
    assert "/" in stored.key and stored.key.count("/") == 2 and len(stored.key.rsplit("/", 1)[1]) == 32
    assert store.exists(stored.key)
    assert store.hash_object(stored.key) == stored


def test_get_delete_and_list(store):
    a = store.put_stream(io.BytesIO(b"first object"), length=12)
    b = store.put_stream(io.BytesIO(b"second"))
    assert b"".join(store.get_stream(a.key)) == b"first object"
    assert set(store.iter_keys()) == {a.key, b.key}
    store.delete(a.key)
    store.delete(a.key)  # deleting twice is not an error
    assert not store.exists(a.key)
    with pytest.raises(ObjectMissing):
        store.get_stream(a.key)
    assert set(store.iter_keys()) == {b.key}


def test_size_limit_stores_nothing(store):
    with pytest.raises(SizeLimitExceeded):
        store.put_stream(io.BytesIO(b"x" * 5000), max_size=4096)
    assert list(store.iter_keys()) == []


def test_minio_download_link_is_presigned_with_name_and_type(app, s3_server):
    store = minio_store(s3_server.endpoint)
    stored = store.put_stream(io.BytesIO(b"%PDF-1.4 test"), media_type="application/pdf")
    with app.test_request_context():
        url = store.url_for_download(stored.key, filename="借款合同.pdf", media_type="application/pdf", inline=True,
                                     expires=timedelta(minutes=1))
    assert "X-Amz-Signature" in url and "X-Amz-Expires=60" in url
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"%PDF-1.4 test"
        assert response.headers["Content-Type"] == "application/pdf"
        assert "%E5%80%9F%E6%AC%BE" in response.headers["Content-Disposition"]


def test_local_download_link_is_bound_to_its_user_and_expires(app, client, org, local_store, login):
    store = local_store
    stored = store.put_stream(io.BytesIO(b"content"))
    with app.app_context():
        officer_id, other_id = org.user_ids["officer"], org.user_ids["officer2"]
    with app.test_request_context():
        url = store.url_for_download(stored.key, filename="a.pdf", media_type="application/pdf", inline=False,
                                     expires=timedelta(minutes=1), user_id=officer_id)
        expired = store.url_for_download(stored.key, filename="a.pdf", media_type="application/pdf", inline=False,
                                         expires=timedelta(seconds=-1), user_id=officer_id)
        others = store.url_for_download(stored.key, filename="a.pdf", media_type="application/pdf", inline=False,
                                        expires=timedelta(minutes=1), user_id=other_id)
    login(client, "officer")
    response = client.get(url)
    assert response.status_code == 200 and response.data == b"content"
    assert response.headers["Content-Disposition"].startswith("attachment")
    # Stored content runs no script, is framed only by the portal, and is never type-sniffed.
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get(expired).status_code == 404
    assert client.get(others).status_code == 404
    assert client.get(url[:-3] + "abc").status_code == 404  # forged


def test_uncommitted_object_is_deleted_and_doomed_object_waits_for_commit(app, store):
    with app.app_context():
        kept = store.put_stream(io.BytesIO(b"kept"))
        track_new_object(db.session(), store, kept.key)
        db.session.execute(db.text("SELECT 1"))
        db.session.commit()
        assert store.exists(kept.key)

        lost = store.put_stream(io.BytesIO(b"lost"))
        track_new_object(db.session(), store, lost.key)
        db.session.execute(db.text("SELECT 1"))
        db.session.rollback()  # e.g. the INSERT failed
        assert not store.exists(lost.key)

        delete_after_commit(db.session(), store, kept.key)
        db.session.execute(db.text("SELECT 1"))
        db.session.rollback()  # a refused destruction deletes nothing
        assert store.exists(kept.key)
        delete_after_commit(db.session(), store, kept.key)
        db.session.execute(db.text("SELECT 1"))
        db.session.commit()
        assert not store.exists(kept.key)


def test_unreachable_store_says_so(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(StoreUnavailable):
        LocalStore(blocker / "objects").put_stream(io.BytesIO(b"x"))
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    with pytest.raises(StoreUnavailable) as info:
        minio_store(f"127.0.0.1:{dead_port}").put_stream(io.BytesIO(b"x"))
    assert info.value.status == 503
