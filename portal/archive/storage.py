"""Object storage of the credit archive: one small interface, two backends.

Lives here: ``ObjectStore`` (the interface the archive services use), ``LocalStore`` (a folder,
the embedded default), ``MinioStore`` (any S3 server, through the ``minio`` client), building
the configured store, and the session hooks that keep objects and database rows in step:

- an object written during a transaction that does not commit is deleted again, so a failed
  insert never leaves an object no row claims (write the object first, the row after);
- an object whose row was destroyed is deleted only after the commit, so a refused or failed
  destruction never loses content (change the row first, delete the object after).

Does not live here: documents, states and scope (``models.py``, ``services.py``). Object keys are
generated (``yyyy/mm/<uuid4 hex>``) and never contain a user's file name. The SHA-256 of the
content is computed while streaming, in parts, so a 200 MB scan never sits whole in memory; an
S3 ETag is not used as a checksum (it is not one for multipart objects).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from flask import current_app, url_for
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import Session

from ..errors import ServiceUnavailable
from ..timeutil import utcnow
from ..web import content_disposition

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024                 # read and hash 1 MiB at a time
DEFAULT_PART_SIZE = 16 * 1024 * 1024  # S3 multipart part size (≥ 5 MiB)
KEY_RE = re.compile(r"^\d{4}/\d{2}/[0-9a-f]{32}$")


class StoreUnavailable(ServiceUnavailable):
    """The object store cannot be reached or refused the operation; nothing was stored."""


class ObjectMissing(LookupError):
    """No object under this key."""


class SizeLimitExceeded(Exception):
    """The stream was longer than the allowed size; nothing was stored."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


@dataclass(frozen=True)
class StoredObject:
    key: str
    sha256: str
    size: int


def new_key() -> str:
    now = utcnow()
    return f"{now:%Y}/{now:%m}/{uuid.uuid4().hex}"


def check_key(key: str) -> str:
    if not KEY_RE.match(key or ""):
        raise ObjectMissing(key)
    return key


class HashingReader:
    """A read-only stream over ``raw`` that hashes and counts what passes through, and stops
    with ``SizeLimitExceeded`` as soon as more than ``max_size`` bytes have been read."""

    def __init__(self, raw: BinaryIO, max_size: int | None = None) -> None:
        self._raw = raw
        self._max = max_size
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self.size += len(data)
            if self._max is not None and self.size > self._max:
                raise SizeLimitExceeded(self._max)
            self._hash.update(data)
        return data

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


class ObjectStore(ABC):
    """Where archive files live. Every method raises ``StoreUnavailable`` when the store cannot
    be reached; reading a key that is not there raises ``ObjectMissing``."""

    backend: str = ""

    @abstractmethod
    def put_stream(self, fileobj: BinaryIO, *, length: int | None = None,
                   media_type: str = "application/octet-stream",
                   max_size: int | None = None) -> StoredObject:
        """Store the stream under a new key, hashing it on the way; return key, SHA-256, size."""

    @abstractmethod
    def get_stream(self, key: str) -> Iterator[bytes]:
        """The object's content in chunks. Raises ObjectMissing before the first chunk."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""

    @abstractmethod
    def iter_keys(self) -> Iterator[str]:
        """Every key in the store."""

    @abstractmethod
    def url_for_download(self, key: str, *, filename: str, media_type: str, inline: bool,
                         expires: timedelta, user_id: int | None = None) -> str:
        """A time-limited URL that serves the object with this name and media type."""

    @abstractmethod
    def check(self) -> str:
        """Reach the store (creating the bucket if needed); a line describing it, or StoreUnavailable."""

    def content_origin(self) -> str | None:
        """An origin other than the portal's that download URLs point at (for the page's CSP)."""
        return None

    def hash_object(self, key: str) -> StoredObject:
        """Re-read the object and hash it, streaming."""
        digest, size = hashlib.sha256(), 0
        for chunk in self.get_stream(key):
            digest.update(chunk)
            size += len(chunk)
        return StoredObject(key, digest.hexdigest(), size)

    def read_bytes(self, key: str) -> bytes:
        """The whole object; only for small things (list PDFs), never for scans."""
        return b"".join(self.get_stream(key))


# --- local folder -----------------------------------------------------------------------

def _unavailable(exc: BaseException) -> StoreUnavailable:
    log.warning("object store unavailable: %r", exc)
    return StoreUnavailable(_("The archive's file store cannot be reached right now, so nothing was "
                              "stored or changed. Please try again later or tell your administrator."))


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


class LocalStore(ObjectStore):
    """Objects as files under ``root``; written to a hidden temporary file, synced and renamed,
    so a key never shows a half-written object. Download URLs are portal URLs signed with the
    app's secret, bound to the user they were made for, and expiring."""

    backend = "local"
    SALT = "xindang-archive-object"

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_stream(self, fileobj, *, length=None, media_type="application/octet-stream", max_size=None):
        key = new_key()
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.part")
        reader = HashingReader(fileobj, max_size)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as out:
                while chunk := reader.read(CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except SizeLimitExceeded:
            _remove(tmp)
            raise
        except OSError as exc:
            _remove(tmp)
            raise _unavailable(exc) from exc
        return StoredObject(key, reader.sha256, reader.size)

    def get_stream(self, key):
        try:
            fh = open(self._path(key), "rb")
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        except OSError as exc:
            raise _unavailable(exc) from exc

        def chunks() -> Iterator[bytes]:
            with fh:
                while chunk := fh.read(CHUNK):
                    yield chunk
        return chunks()

    def delete(self, key):
        try:
            self._path(key).unlink(missing_ok=True)
        except ObjectMissing:
            return
        except OSError as exc:
            raise _unavailable(exc) from exc

    def exists(self, key):
        try:
            return self._path(key).is_file()
        except ObjectMissing:
            return False

    def iter_keys(self):
        if not self.root.is_dir():
            return
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                key = os.path.relpath(os.path.join(dirpath, name), self.root).replace(os.sep, "/")
                if KEY_RE.match(key):
                    yield key
                elif not name.startswith("."):
                    yield key  # a stray file is reported by verify as an orphan

    def _serializer(self) -> URLSafeSerializer:
        return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=self.SALT)

    def url_for_download(self, key, *, filename, media_type, inline, expires, user_id=None):
        token = self._serializer().dumps({
            "k": check_key(key), "n": filename, "t": media_type, "i": bool(inline), "u": user_id,
            "x": int(time.time() + expires.total_seconds()),
        })
        return url_for("archive.object_download", token=token)

    def read_token(self, token: str, user_id: int | None) -> dict[str, Any] | None:
        """The signed download's fields, or None if forged, expired or made for someone else."""
        try:
            data = self._serializer().loads(token)
        except BadSignature:
            return None
        if not isinstance(data, dict) or data.get("x", 0) < time.time() or data.get("u") != user_id:
            return None
        return data

    def check(self):
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise _unavailable(exc) from exc
        return f"local folder {self.root}"


# --- S3 / MinIO ---------------------------------------------------------------------------

class MinioStore(ObjectStore):
    """Objects in one bucket of an S3 server. Uploads are multipart in ``part_size`` parts (the
    whole file is never in memory); download URLs are presigned GETs carrying the file name and
    media type, valid for the given time."""

    backend = "minio"

    def __init__(self, endpoint: str, access_key: str, secret_key: str, bucket: str, *,
                 region: str = "us-east-1", secure: bool = False, public_endpoint: str = "",
                 part_size: int = DEFAULT_PART_SIZE, connect_timeout: float = 3.0) -> None:
        import urllib3
        from minio import Minio

        self.endpoint = endpoint
        self.bucket = bucket
        self.region = region
        self.secure = secure
        self.part_size = part_size
        self.public_endpoint = public_endpoint or endpoint
        # Few, quick retries: when the store is down the user should hear so in seconds.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=120),
            maxsize=8, cert_reqs="CERT_REQUIRED" if secure else "CERT_NONE",
            retries=urllib3.Retry(total=2, connect=1, backoff_factor=0.2,
                                  status_forcelist=[500, 502, 503, 504]))
        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure,
                            region=region, http_client=http)
        # Presigning makes no request; a second client signs for the address browsers use.
        self.presigner = self.client if self.public_endpoint == endpoint else Minio(
            self.public_endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region)
        self._bucket_ready = False
        self._lock = threading.Lock()

    # Errors: anything from the transport, or an S3 answer other than "no such key", means the
    # store cannot do what was asked.
    @staticmethod
    def _is_missing(exc: BaseException) -> bool:
        from minio.error import InvalidResponseError, S3Error
        if isinstance(exc, S3Error):
            return exc.code in ("NoSuchKey", "NoSuchObject", "NotFound")
        if isinstance(exc, InvalidResponseError):
            return getattr(exc, "_code", None) == 404  # a server answering text/xml (rclone)
        return False

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with self._lock:
            if self._bucket_ready:
                return
            try:
                if not self.client.bucket_exists(self.bucket):
                    try:
                        self.client.make_bucket(self.bucket, location=self.region)
                    except Exception:  # noqa: BLE001 - created meanwhile by another worker?
                        if not self.client.bucket_exists(self.bucket):
                            raise
            except Exception as exc:  # noqa: BLE001
                raise _unavailable(exc) from exc
            self._bucket_ready = True

    def put_stream(self, fileobj, *, length=None, media_type="application/octet-stream", max_size=None):
        self._ensure_bucket()
        key = new_key()
        reader = HashingReader(fileobj, max_size)
        try:
            self.client.put_object(self.bucket, key, reader, length=-1 if length is None else length,
                                   part_size=self.part_size, content_type=media_type)
        except SizeLimitExceeded:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _unavailable(exc) from exc
        if length is not None and reader.size != length:  # pragma: no cover - client checks this too
            self.delete(key)
            raise _unavailable(IOError(f"short read: {reader.size} of {length} bytes"))
        return StoredObject(key, reader.sha256, reader.size)

    def get_stream(self, key):
        self._ensure_bucket()
        try:
            response = self.client.get_object(self.bucket, check_key(key))
        except ObjectMissing:
            raise
        except Exception as exc:  # noqa: BLE001
            if self._is_missing(exc):
                raise ObjectMissing(key) from None
            raise _unavailable(exc) from exc

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.stream(CHUNK)
            except Exception as exc:  # noqa: BLE001 - the store went away mid-read
                raise _unavailable(exc) from exc
            finally:
                response.close()
                response.release_conn()
        return chunks()

    def delete(self, key):
        self._ensure_bucket()
        try:
            self.client.remove_object(self.bucket, key)
        except Exception as exc:  # noqa: BLE001
            if not self._is_missing(exc):
                raise _unavailable(exc) from exc

    def exists(self, key):
        self._ensure_bucket()
        try:
            self.client.stat_object(self.bucket, key)
            return True
        except Exception as exc:  # noqa: BLE001
            if self._is_missing(exc):
                return False
            raise _unavailable(exc) from exc

    def iter_keys(self):
        self._ensure_bucket()
        try:
            for obj in self.client.list_objects(self.bucket, recursive=True):
                if not obj.is_dir:
                    yield obj.object_name
        except Exception as exc:  # noqa: BLE001
            raise _unavailable(exc) from exc

    def url_for_download(self, key, *, filename, media_type, inline, expires, user_id=None):
        return self.presigner.presigned_get_object(
            self.bucket, check_key(key), expires=expires,
            response_headers={"response-content-disposition": content_disposition(filename, inline),
                              "response-content-type": media_type})

    def check(self):
        self._bucket_ready = False
        self._ensure_bucket()
        return f"S3 {'https' if self.secure else 'http'}://{self.endpoint}/{self.bucket} (region {self.region})"

    def content_origin(self):
        return f"{'https' if self.secure else 'http'}://{self.public_endpoint}"


# --- building the configured store --------------------------------------------------------

def store_from_config(config: Any, instance_path: str) -> ObjectStore:
    backend = (config.get("XINDANG_STORAGE_BACKEND") or "local").strip().lower()
    if backend == "local":
        return LocalStore(config.get("XINDANG_STORAGE_DIR") or Path(instance_path) / "objects")
    if backend in ("minio", "s3"):
        return MinioStore(
            config["XINDANG_MINIO_ENDPOINT"], config["XINDANG_MINIO_ACCESS_KEY"],
            config["XINDANG_MINIO_SECRET_KEY"], config["XINDANG_MINIO_BUCKET"],
            region=config["XINDANG_MINIO_REGION"], secure=config["XINDANG_MINIO_SECURE"],
            public_endpoint=config.get("XINDANG_MINIO_PUBLIC_ENDPOINT") or "")
    raise ValueError(f"XINDANG_STORAGE_BACKEND={backend!r}: use 'local' or 'minio'")


def current_store() -> ObjectStore:
    return current_app.extensions["xindang_storage"]


# --- keeping objects and rows in step -----------------------------------------------------

_WRITTEN = "xindang_objects_written"
_DOOMED = "xindang_objects_to_delete"


def track_new_object(session: Session, store: ObjectStore, key: str) -> None:
    """This transaction wrote ``key``; if it does not commit, the object is deleted."""
    session.info.setdefault(_WRITTEN, []).append((store, key))


def untrack_new_object(session: Session, key: str) -> None:
    session.info[_WRITTEN] = [(s, k) for s, k in session.info.get(_WRITTEN, []) if k != key]


def delete_after_commit(session: Session, store: ObjectStore, key: str) -> None:
    """Delete ``key`` once this transaction has committed (never if it rolls back)."""
    session.info.setdefault(_DOOMED, []).append((store, key))


def _delete_quietly(store: ObjectStore, key: str, why: str) -> None:
    try:
        store.delete(key)
    except Exception:  # noqa: BLE001 - `flask archive verify` reports what is left behind
        log.exception("could not delete object %s (%s); `flask archive verify` will list it", key, why)


def settle_objects_after_commit(session: Session) -> None:
    session.info.pop(_WRITTEN, None)  # their rows are committed: the objects are claimed
    for store, key in session.info.pop(_DOOMED, []):
        _delete_quietly(store, key, "row destroyed")


def remove_unclaimed_objects(session: Session, transaction) -> None:
    if transaction.parent is not None:
        return
    # Reached only when the outermost transaction ended without committing (after_commit
    # cleared the lists otherwise): its new objects have no rows, its doomed objects stay.
    session.info.pop(_DOOMED, None)
    for store, key in session.info.pop(_WRITTEN, []):
        _delete_quietly(store, key, "transaction rolled back")
