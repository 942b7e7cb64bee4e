"""The scenarios shipped with mpay: package data of ``mpay.scenarios`` (the repository's
``scenarios/`` folder), found by name from any folder after a plain ``pip install``."""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

from mpay.schema.scenario import ScenarioError

#: what a shipped scenario can be: a TOML scenario or a Python scenario/study script
SCENARIO_SUFFIXES = (".toml", ".py")


def shipped_root() -> Path:
    """The folder holding the shipped scenarios (inside the installed package)."""
    return Path(str(files("mpay.scenarios")))


def shipped_scenarios() -> dict[str, Path]:
    """Every shipped scenario by name (``happy_path``, ``attacks/tamper``), sorted by name."""
    root = shipped_root()
    found = {}
    for path in root.rglob("*"):
        if path.suffix in SCENARIO_SUFFIXES and path.is_file() and not path.name.startswith("_"):
            found[path.relative_to(root).with_suffix("").as_posix()] = path
    return dict(sorted(found.items()))


def resolve_scenario(argument: str | Path) -> Path:
    """A scenario argument as a path: an existing file as given, else a shipped scenario's name
    (with or without its suffix), else a one-line error that says where to look."""
    path = Path(argument)
    if path.exists():
        return path
    name = path.as_posix().removeprefix("scenarios/")
    for suffix in SCENARIO_SUFFIXES:
        name = name.removesuffix(suffix)
    shipped = shipped_scenarios()
    if name in shipped:
        return shipped[name]
    raise ScenarioError(
        f"{argument}: no such file, and no shipped scenario is called {name!r}; "
        "`mpay scenarios` lists the shipped ones"
    )


def copy_shipped(name: str, dest_dir: Path) -> Path:
    """Copy one shipped scenario into ``dest_dir`` (created) to edit; refuses to overwrite."""
    source = resolve_shipped_name(name)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / source.name
    if target.exists():
        raise ScenarioError(f"{target}: already exists; remove it or copy into another folder")
    shutil.copyfile(source, target)
    return target


def resolve_shipped_name(name: str) -> Path:
    """A shipped scenario by name only (never a local file)."""
    key = name.removeprefix("scenarios/")
    for suffix in SCENARIO_SUFFIXES:
        key = key.removesuffix(suffix)
    shipped = shipped_scenarios()
    if key not in shipped:
        raise ScenarioError(f"{name}: no shipped scenario of that name; `mpay scenarios` lists them")
    return shipped[key]
