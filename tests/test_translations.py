"""Simplified Chinese first: every string the code and templates mark for translation has a
Chinese translation in portal/translations/zh (run scripts/i18n.sh, then fill the gaps)."""
from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent


def test_every_marked_string_has_a_chinese_translation():
    with open(ROOT / "babel.cfg", encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None,
                "pgettext": ((1, "c"), 2), "npgettext": ((1, "c"), 2, 3)}
    wanted = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=keywords):
        msgid = message if isinstance(message, str) else message[0]
        if msgid:
            wanted.setdefault(msgid, f"{filename}:{lineno}")
    with open(ROOT / "portal/translations/zh/LC_MESSAGES/messages.po", "rb") as f:
        catalogue = read_po(f)
    translated = set()
    for entry in catalogue:
        string = entry.string if isinstance(entry.string, str) else (entry.string or ("",))[0]
        if entry.id and string and not entry.fuzzy:
            translated.add(entry.id if isinstance(entry.id, str) else entry.id[0])
    missing = sorted(f"{where}: {msgid}" for msgid, where in wanted.items() if msgid not in translated)
    assert len(wanted) > 1000
    assert not missing, "untranslated (run scripts/i18n.sh and translate):\n" + "\n".join(missing)
