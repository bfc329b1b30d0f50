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
