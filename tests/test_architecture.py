"""The import rule of docs/architecture.md: a module imports only from its own layer's package or
from layers below it, domains only from domains listed below them, and nothing imports
``portal/__init__.py``; an import inside a function says why on its line."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PORTAL = ROOT / "portal"

# Top to bottom. A module may import from its own unit and from any unit listed after its own,
# never from one listed before it. Each unit is a package or a module of ``portal``.
LAYERS: list[tuple[str, list[str]]] = [
    ("entry", ["__init__", "cli", "session_events"]),
    # Domains, each above the ones after it: the demo uses everything; the home page shows loans
    # and dashboards' panels; backup copies the archive and marks the search index; auditors
    # read post-loan work and the archive; search indexes the archive; post-loan work files its
    # reports into the archive; the archive keeps the files of loans.
    ("domains", ["demo", "backup", "main", "auditing", "search", "postloan", "archive", "loans"]),
    ("shared", ["rules", "kept"]),
    ("accounts", ["accounts"]),
    ("infrastructure", ["web", "routing", "clitools", "labels", "reports", "audit_trail", "readonly", "errors",
                        "extensions", "timeutil", "data"]),
]
RANK: dict[str, int] = {}
for _layer, _units in LAYERS:
    for _unit in _units:
        RANK[_unit] = len(RANK)
# Units of one layer that are not ordered among themselves (any may import any other of them).
PEERS = {frozenset(["rules", "kept"]),
         frozenset(["web", "routing", "clitools", "labels", "reports", "audit_trail", "readonly", "errors",
                    "extensions", "timeutil", "data"])}


def unit_of(module: str) -> str:
    """``portal.archive.views`` → ``archive``; ``portal`` → ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path):
    """(line, imported module, inside a function, the line's text) for each import of portal."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    source = path.read_text(encoding="utf-8").splitlines()
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for child in ast.walk(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    inside.add(id(child))
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
                targets = [stem] if node.module else [f"{stem}.{alias.name}" for alias in node.names]
            else:
                targets = [node.module or ""]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        for target in targets:
            if target == "portal" or target.startswith("portal."):
                yield node.lineno, target, id(node) in inside, source[node.lineno - 1]


def allowed(importer: str, imported: str) -> bool:
    a, b = unit_of(importer), unit_of(imported)
    if a == b:
        return True
    if b == "__init__":
        return False
    if any(a in group and b in group for group in PEERS):
        return True
    return RANK[b] > RANK[a]


def portal_modules() -> list[Path]:
    return sorted(PORTAL.rglob("*.py"))


def test_every_unit_has_a_place():
    units = {unit_of(module_name(path)) for path in portal_modules()}
    assert units - set(RANK) == set(), "add the new package or module to LAYERS (and docs/architecture.md)"


def test_imports_follow_the_layers():
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {target}"
             for path in portal_modules() for line, target, _inside, _text in imports_of(path)
             if not allowed(module_name(path), target)]
    assert wrong == []


def test_an_import_inside_a_function_says_why():
    silent = [f"{path.relative_to(ROOT)}:{line}: {text.strip()}"
              for path in portal_modules() for line, _target, inside, text in imports_of(path)
              if inside and "#" not in text]
    assert silent == []


@pytest.mark.parametrize("importer, imported, expected", [
    ("portal.archive.views", "portal.loans.models", True),
    ("portal.loans.models", "portal.archive.models", False),
    ("portal.accounts.scope", "portal.rules.lookup", False),
    ("portal.rules.lookup", "portal.accounts.models", True),
    ("portal.kept", "portal.rules.manager", True),
    ("portal.timeutil", "portal.accounts.models", False),
    ("portal.archive.views", "portal", False),
])
def test_the_rule_itself(importer, imported, expected):
    assert allowed(importer, imported) is expected
