"""Configuration: defaults with nothing set, environment overrides, the README table."""
import re
from pathlib import Path

from config import SETTINGS, Config, DevelopmentConfig

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_use_sqlite_and_a_generated_secret(tmp_path, monkeypatch):
    for s in SETTINGS:
        monkeypatch.delenv(s.env, raising=False)
    monkeypatch.setenv("XINDANG_INSTANCE_DIR", str(tmp_path))
    first = DevelopmentConfig()
    assert first.SQLALCHEMY_DATABASE_URI == f"sqlite:///{tmp_path / 'xindang.db'}"
    key_file = tmp_path / "secret_key"
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert first.SECRET_KEY == key_file.read_text().strip() and len(first.SECRET_KEY) >= 64
    assert DevelopmentConfig().SECRET_KEY == first.SECRET_KEY  # kept, not regenerated


def test_environment_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("XINDANG_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("XINDANG_DATABASE_URL", "postgresql://u@db/xd")
    monkeypatch.setenv("XINDANG_SECRET_KEY", "from-env")
    monkeypatch.setenv("XINDANG_PAGE_SIZE", "20")
    monkeypatch.setenv("XINDANG_SECURE_COOKIES", "true")
    cfg = Config()
    assert cfg.SQLALCHEMY_DATABASE_URI == "postgresql+psycopg://u@db/xd"
    assert cfg.SECRET_KEY == "from-env" and not (tmp_path / "secret_key").exists()
    assert cfg.XINDANG_PAGE_SIZE == 20 and cfg.SESSION_COOKIE_SECURE is True


def test_no_secret_constant_in_code():
    source = (ROOT / "config.py").read_text()
    assert not re.search(r"SECRET_KEY\s*=\s*['\"]", source)


def test_readme_lists_every_setting():
    readme = (ROOT / "README.md").read_text()
    for setting in SETTINGS:
        assert f"`{setting.env}`" in readme, f"{setting.env} missing from the README settings table"


def test_gunicorn_configuration_is_sync_workers_three_per_core_and_loads_the_app(tmp_path, monkeypatch):
    """gunicorn.conf.py, which gunicorn reads from the working directory: sync workers (first
    come, first served; bench/load.md), three per core unless WEB_CONCURRENCY says otherwise;
    and gunicorn accepts it with the production app."""
    import os
    import runpy
    import subprocess
    import sys

    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert settings["worker_class"] == "sync" and settings["workers"] == 3 * len(os.sched_getaffinity(0))
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["workers"] == 2
    env = {**os.environ, "XINDANG_CONFIG": "production", "XINDANG_INSTANCE_DIR": str(tmp_path),
           "XINDANG_DATABASE_URL": f"sqlite:///{tmp_path / 'xindang.db'}"}
    checked = subprocess.run([str(Path(sys.executable).parent / "gunicorn"), "--check-config", "wsgi:app"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
