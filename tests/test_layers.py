"""The architecture's rules, checked on the source (docs/architecture.md): imports point
downwards only, between the layers and between the rooms of ``mpay/``; no module takes part
in an import cycle; ``protocol/`` is sans-IO (no asyncio, no database, no clock reads, no files
or sockets); and every import name is under ``mpay`` (a clean install adds no generic names)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: source folder -> the import name it is installed as (pyproject's package-dir)
FOLDERS = {"protocol": "mpay.protocol", "actors": "mpay.actors", "mpay": "mpay", "bench": "mpay_bench"}

#: the layers and, inside mpay/, the rooms, lowest first: a module may import its own rank or lower
RANKS = {
    "mpay.protocol": 0,
    "mpay.actors": 1,
    "mpay.schema": 2,
    "mpay.keys": 2,
    "mpay.books": 3,
    "mpay.sim": 4,
    "mpay.present": 5,
    "mpay.study": 6,
    "mpay.testing": 7,
    "mpay.sweep": 7,
    "mpay.web": 8,
    "mpay.cli": 9,
    "mpay.__main__": 10,
    "mpay": 10,  # the package's own __init__
    "mpay_bench": 11,
}

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


def _module_name(path: Path) -> str:
    """The installed import name of a source file, e.g. protocol/sms.py -> mpay.protocol.sms."""
    rel = path.relative_to(ROOT)
    parts = [FOLDERS[rel.parts[0]], *rel.parts[1:]]
    parts[-1] = parts[-1].removesuffix(".py")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {_module_name(path): path for folder in FOLDERS for path in sorted((ROOT / folder).rglob("*.py"))}


def _imported_names(tree: ast.AST, module: str = "") -> set[str]:
    """Every module a source names in an import, anywhere in it (TYPE_CHECKING and function-level
    imports included: a cycle through them is still a cycle of the design). Relative imports
    are resolved against ``module``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: -node.level] if module else []
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _rank(name: str) -> int | None:
    best = None
    for prefix, rank in RANKS.items():
        if name == prefix or name.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, rank)
    return None if best is None else best[1]


def _our_imports(sources: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of ours it imports (names that are modules, not attributes)."""
    graph = {}
    for module, path in sources.items():
        named = _imported_names(ast.parse(path.read_text(encoding="utf-8")), module)
        graph[module] = {name for name in named if name in sources and name != module}
    return graph


def test_every_source_file_has_a_room() -> None:
    assert [name for name in _sources() if _rank(name) is None] == []


def test_imports_only_point_downwards() -> None:
    sources = _sources()
    offenders = [
        f"{sources[module].relative_to(ROOT)} imports {name}"
        for module, imported in _our_imports(sources).items()
        for name in sorted(imported)
        if _rank(name) > _rank(module)
    ]
    assert offenders == []


def test_no_generic_top_level_import_names() -> None:
    """`import protocol` / `import actors` would only work from the checkout, never installed."""
    offenders = []
    for module, path in _sources().items():
        for name in _imported_names(ast.parse(path.read_text(encoding="utf-8")), module):
            if name.split(".")[0] in {"protocol", "actors", "scenarios", "bench"}:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    graph = _our_imports(_sources())
    # a package's __init__ re-exporting its own modules is not a cycle of the design
    for module in graph:
        graph[module] = {name for name in graph[module] if not module.startswith(name + ".")}
    assert _cycles(graph) == []


def test_protocol_is_sans_io() -> None:
    offenders = []
    for path in sorted((ROOT / "protocol").rglob("*.py")):
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


def test_the_checks_can_fail() -> None:
    """The checkers themselves must be able to fail (guards against a vacuous test)."""
    tree = ast.parse("from mpay.cli.main import main\nimport mpay.actors.ports\nfrom . import kernel\n")
    assert {"mpay.cli.main", "mpay.actors.ports", "mpay.sim.kernel"} <= _imported_names(tree, "mpay.sim.world")
    assert _rank("mpay.cli.main") > _rank("mpay.sim.world") > _rank("mpay.books.ledger") > _rank("mpay.protocol.sms")
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
