"""Configuration classes for Xindang.

Every setting can be overridden by an environment variable named ``XINDANG_<NAME>``; the
README's settings table lists them all and ``tests/test_config.py`` checks that the table
and the ``SETTINGS`` list below agree. Nothing secret is a constant here: with no
``XINDANG_SECRET_KEY`` the key is generated on first start and kept in ``instance/``.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

BASE_DIR = Path(__file__).resolve().parent


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Setting:
    """One configurable value: its Flask config key, its type, its default and its meaning."""

    key: str
    cast: Callable[[str], Any]
    default: Any
    help: str

    @property
    def env(self) -> str:
        return f"XINDANG_{self.key}"


# The single list of settings. Defaults of None are filled in by Config.finalise().
SETTINGS: list[Setting] = [
    Setting("DATABASE_URL", str, None,
            "SQLAlchemy URL. Default: SQLite file `instance/xindang.db`. Production: "
            "`postgresql+psycopg://user@host/db`."),
    Setting("SECRET_KEY", str, None,
            "Signs sessions and download links. Default: generated once and kept in "
            "`instance/secret_key`."),
    Setting("INSTANCE_DIR", str, None,
            "Folder for the SQLite file, the secret key, the local object store and the search "
            "index. Default: `instance/` beside `config.py`."),
    Setting("SECURE_COOKIES", _bool, False,
            "Send session cookies only over HTTPS (`true` in production behind TLS)."),
    Setting("SESSION_HOURS", int, 8, "Hours before an idle session expires."),
    Setting("LOGIN_MAX_FAILURES", int, 5, "Failed logins before an account is locked."),
    Setting("LOGIN_LOCK_MINUTES", int, 15, "Minutes an account stays locked."),
    Setting("LOGIN_RATE_LIMIT", str, "20 per 5 minutes",
            "Sign-in attempts allowed per client address (Flask-Limiter syntax)."),
    Setting("RATELIMIT_STORAGE_URI", str, "memory://",
            "Where sign-in attempt counts are kept; with several gunicorn workers use a shared store, "
            "e.g. `redis://127.0.0.1:6379`."),
    Setting("DEFAULT_LOCALE", str, "zh", "Interface language when the user chose none (`zh` or `en`)."),
    Setting("PAGE_SIZE", int, 50, "Rows per page in lists."),
    Setting("PG_PREPARED_STATEMENTS", _bool, True,
            "PostgreSQL: keep the statements psycopg prepares (read-only requests commit; "
            "`portal/readonly.py`). `false` behind PgBouncer in transaction mode: nothing is "
            "prepared then."),
    Setting("DASHBOARD_CACHE_SECONDS", int, 600,
            "Longest time a dashboard panel is shown from the panel cache, in seconds, when no change "
            "to its data was seen; `0` builds every panel on every view."),
    Setting("IMPORT_MAX_ROWS", int, 200_000, "Largest loan file `loans import` accepts, in rows."),
    Setting("UPLOAD_MAX_MB", int, 256, "Largest request body, in MB (uploads, imports)."),
    # --- credit archive storage (docs/archive.md) ---
    Setting("STORAGE_BACKEND", str, "local",
            "Where archive files are kept: `local` (a folder, the embedded default) or `minio` "
            "(an S3 server such as MinIO)."),
    Setting("STORAGE_DIR", str, None,
            "Folder of the `local` backend. Default: `instance/objects`."),
    Setting("MINIO_ENDPOINT", str, "127.0.0.1:9000", "`host:port` of the S3 server (`minio` backend)."),
    Setting("MINIO_PUBLIC_ENDPOINT", str, "",
            "`host:port` browsers use for download links, if it differs from `MINIO_ENDPOINT`."),
    Setting("MINIO_ACCESS_KEY", str, "", "Access key of the S3 server."),
    Setting("MINIO_SECRET_KEY", str, "", "Secret key of the S3 server."),
    Setting("MINIO_BUCKET", str, "xindang-archive", "Bucket of archive files; created if missing."),
    Setting("MINIO_REGION", str, "us-east-1", "Region of the bucket (S3 signatures need one)."),
    Setting("MINIO_SECURE", _bool, False, "Reach the S3 server over HTTPS."),
    Setting("DOWNLOAD_LINK_MINUTES", int, 10, "Minutes a download link of an archive file stays valid."),
    Setting("ARCHIVE_MAX_FILE_MB", int, 200, "Largest archive file accepted, in MB (upload and ingest)."),
    # --- search (docs/search.md) ---
    Setting("SEARCH_INDEX_DIR", str, None,
            "Folder of the search index, derived from the database and rebuilt if missing. "
            "Default: `instance/search_index`."),
    Setting("SEARCH_DICTIONARY_EXTRA", str, "",
            "A union's extra words for Chinese segmentation: a UTF-8 file, one word per line, added to "
            "`portal/data/search_dictionary.txt`."),
    Setting("SEARCH_DRAIN_IN_PORTAL", _bool, True,
            "Each portal process indexes queued changes itself in a background thread; `false` when "
            "`flask search drain --forever` runs as a separate worker."),
    Setting("SEARCH_DRAIN_INTERVAL", float, 2.0,
            "Seconds between the portal's looks at the search queue (a change is picked up at once "
            "after the request that made it)."),
    Setting("SEARCH_PAGE_SIZE", int, 20, "Results per page of the search."),
    Setting("OCR_LANG", str, "chi_sim", "Tesseract language(s) for reading scans, e.g. `chi_sim+eng`."),
    Setting("OCR_TIMEOUT", int, 120, "Seconds OCR may take for one file before its extraction is recorded as failed."),
]


class Config:
    """Base configuration: read every setting from the environment, else its default."""

    TESTING = False
    DEBUG = False
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {"pool_pre_ping": True}
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    WTF_CSRF_TIME_LIMIT = None  # tied to the session instead of a wall clock
    BOOTSTRAP_SERVE_LOCAL = True  # no CDN: the portal runs inside a bank's closed network
    BABEL_TRANSLATION_DIRECTORIES = str(BASE_DIR / "portal" / "translations")

    def __init__(self, **overrides: Any) -> None:
        for setting in SETTINGS:
            raw = os.environ.get(setting.env)
            value = setting.cast(raw) if raw not in (None, "") else setting.default
            setattr(self, f"XINDANG_{setting.key}", value)
        for key, value in overrides.items():
            setattr(self, key, value)
        self.finalise()

    def finalise(self) -> None:
        instance = Path(getattr(self, "XINDANG_INSTANCE_DIR") or BASE_DIR / "instance")
        instance.mkdir(parents=True, exist_ok=True)
        self.XINDANG_INSTANCE_DIR = str(instance)
        url = self.XINDANG_DATABASE_URL or f"sqlite:///{instance / 'xindang.db'}"
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        self.SQLALCHEMY_DATABASE_URI = url
        if url.startswith("postgresql") and not self.XINDANG_PG_PREPARED_STATEMENTS:
            # A pooler that hands each transaction another server connection cannot keep them.
            self.SQLALCHEMY_ENGINE_OPTIONS = {**self.SQLALCHEMY_ENGINE_OPTIONS,
                                              "connect_args": {"prepare_threshold": None}}
        self.SECRET_KEY = self.XINDANG_SECRET_KEY or _instance_secret(instance)
        self.SESSION_COOKIE_SECURE = self.XINDANG_SECURE_COOKIES
        self.REMEMBER_COOKIE_SECURE = self.XINDANG_SECURE_COOKIES
        self.PERMANENT_SESSION_LIFETIME = self.XINDANG_SESSION_HOURS * 3600
        self.MAX_CONTENT_LENGTH = self.XINDANG_UPLOAD_MAX_MB * 1024 * 1024
        self.BABEL_DEFAULT_LOCALE = self.XINDANG_DEFAULT_LOCALE
        self.RATELIMIT_STORAGE_URI = self.XINDANG_RATELIMIT_STORAGE_URI
        self.RATELIMIT_HEADERS_ENABLED = True

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in dir(self) if k.isupper()}


class DevelopmentConfig(Config):
    DEBUG = False  # the debugger is never on by default; `flask run --debug` turns it on


class TestingConfig(Config):
    TESTING = True
    WTF_CSRF_ENABLED = True  # tests fetch a token; CSRF is part of what they check


class ProductionConfig(Config):
    def finalise(self) -> None:
        super().finalise()
        self.SESSION_COOKIE_SECURE = _bool(os.environ.get("XINDANG_SECURE_COOKIES", "true"))
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE


def _instance_secret(instance: Path) -> str:
    """Return the key kept in instance/secret_key, creating it (mode 600) on first start."""
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker won the race; use its key
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}
