"""The contract file itself: every hook says what it returns, is tested and is documented.

A hook added to portal/rules/hookspecs.py without a docstring, without a test under
tests/rules or tests/plugins or without a section in docs/plugins.md fails here.
"""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from portal.rules import defaults, hookspecs

ROOT = Path(__file__).resolve().parents[2]
TESTS = [Path(__file__).resolve().parent, ROOT / "tests" / "plugins"]
DOCS = ROOT / "docs" / "plugins.md"


def hook_names() -> list[str]:
    return sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
                  if hasattr(fn, f"{hookspecs.PROJECT}_spec"))


HOOKS = hook_names()


def test_the_contract_has_hooks():
    # Guards the scan itself: if the marker attribute changed, every test below would pass on nothing.
    assert len(HOOKS) >= 15
    assert "xindang_first_inspection_due" in HOOKS


@pytest.mark.parametrize("name", HOOKS)
def test_docstring_first_line_says_what_it_returns(name):
    doc = inspect.getdoc(getattr(hookspecs, name))
    assert doc, f"{name} has no docstring"
    first = doc.splitlines()[0]
    assert first.startswith("Return"), f"{name}: first line must say what it returns: {first!r}"
    assert first.endswith("."), f"{name}: first line is one sentence: {first!r}"


@pytest.mark.parametrize("name", HOOKS)
def test_firstresult_except_default_settings(name):
    opts = getattr(getattr(hookspecs, name), f"{hookspecs.PROJECT}_spec")
    assert opts["firstresult"] is (name != "xindang_default_settings")


@pytest.mark.parametrize("name", HOOKS)
def test_baseline_answers_every_hook_last(name):
    impl = getattr(defaults, name, None)
    assert impl is not None, f"the baseline does not implement {name}"
    assert getattr(impl, f"{hookspecs.PROJECT}_impl")["trylast"] is True


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_has_a_test(name):
    sources = [p.read_text(encoding="utf-8") for folder in TESTS for p in folder.glob("test_*.py")
               if p != Path(__file__).resolve()]
    pattern = re.compile(rf"\b{name}\b")
    assert any(pattern.search(src) for src in sources), f"no test under tests/rules or tests/plugins names {name}"


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_documented(name):
    text = DOCS.read_text(encoding="utf-8")
    assert re.search(rf"^### `{name}`", text, re.MULTILINE), f"docs/plugins.md has no section for {name}"


def test_docs_name_no_hook_that_does_not_exist():
    text = DOCS.read_text(encoding="utf-8")
    documented = set(re.findall(r"^### `(xindang_\w+)`", text, re.MULTILINE))
    assert documented == set(HOOKS)


def test_docs_table_matches_what_each_plugin_implements():
    from portal.rules.manager import RulesRegistry, available_plugins
    text = DOCS.read_text(encoding="utf-8")
    header = re.search(r"^\| Hook \|(.+)\|$", text, re.MULTILINE)
    assert header, "docs/plugins.md has no hook table"
    columns = [c.strip() for c in header.group(1).split("|")]
    assert columns == ["baseline", *sorted(available_plugins())]
    registry = RulesRegistry()
    for name in HOOKS:
        row = re.search(rf"^\| `{name}` \|(.+)\|$", text, re.MULTILINE)
        assert row, f"{name} missing from the hook table"
        cells = [c.strip() for c in row.group(1).split("|")]
        assert cells[0], f"the baseline answers {name}"
        for plugin, cell in zip(columns[1:], cells[1:]):
            implemented = name in registry.implemented_hooks(plugin)
            assert bool(cell) == implemented, f"table says {plugin} {'does' if cell else 'does not'} implement {name}"
