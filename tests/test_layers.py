"""The architecture's rules, checked on the source: imports point downwards only, and
``protocol/`` is sans-IO (no asyncio, no database, no clock reads, no files or sockets)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"protocol": 0, "actors": 1, "mpay": 2}

#: modules protocol/ must never import
PROTOCOL_FORBIDDEN_MODULES = {"asyncio", "aiosqlite", "sqlite3", "socket", "time", "pathlib", "io"}
#: calls protocol/ must never make (clock reads, file opens)
PROTOCOL_FORBIDDEN_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "monotonic"),
    ("time", "perf_counter"),
}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imported_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_imports_only_point_downwards(package: str) -> None:
    offenders = []
    for path in _modules(package):
        for name in _imported_names(ast.parse(path.read_text(encoding="utf-8"))):
            top = name.split(".")[0]
            if top in LAYERS and LAYERS[top] > LAYERS[package]:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_protocol_is_sans_io() -> None:
    offenders = []
    for path in _modules("protocol"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name in _imported_names(tree):
            if name.split(".")[0] in PROTOCOL_FORBIDDEN_MODULES:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id == "open":
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} calls open()")
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                    if (func.value.id, func.attr) in PROTOCOL_FORBIDDEN_CALLS:
                        offenders.append(
                            f"{path.relative_to(ROOT)}:{node.lineno} calls {func.value.id}.{func.attr}()"
                        )
    assert offenders == []


def test_the_layer_check_detects_an_upward_import(tmp_path: Path) -> None:
    """The checker itself must be able to fail (guards against a vacuous test)."""
    tree = ast.parse("from mpay.cli import main\nimport actors.ports\n")
    assert _imported_names(tree) == {"mpay.cli", "actors.ports"}
