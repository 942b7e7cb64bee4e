"""``mpay scenarios``: list the shipped scenarios; ``mpay scenarios copy NAME DIR`` copies one
out to edit. Any command that takes a scenario also takes a shipped scenario's name."""

from __future__ import annotations

import argparse
import ast
import tomllib
from pathlib import Path

from mpay.cli.main import UsageError
from mpay.schema.scenario import ScenarioError
from mpay.schema.shipped import copy_shipped, shipped_scenarios


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "scenarios",
        help="list the shipped scenarios, or copy one out to edit",
        description=(
            "List the scenarios shipped with mpay (run any of them by name: `mpay run happy_path`), "
            "or copy one into a folder to edit: `mpay scenarios copy NAME DIR`."
        ),
        epilog="Example: mpay scenarios copy attacks/tamper my-scenarios/",
    )
    parser.add_argument("action", nargs="?", choices=["list", "copy"], default="list")
    parser.add_argument("name", nargs="?", help="copy: the shipped scenario's name")
    parser.add_argument("dest", nargs="?", type=Path, help="copy: the folder to copy it into")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.action == "copy":
        if args.name is None or args.dest is None:
            raise UsageError("copy: needs NAME and DIR, e.g. `mpay scenarios copy happy_path my-scenarios/`")
        try:
            target = copy_shipped(args.name, args.dest)
        except ScenarioError as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            raise UsageError(f"{args.dest}: cannot write: {exc.strerror or exc}") from None
        print(f"copied {args.name} to {target}")
        return 0
    if args.name is not None:
        raise UsageError(f"list: takes no name (did you mean `mpay scenarios copy {args.name} DIR`?)")
    for name, path in shipped_scenarios().items():
        print(f"{name:<40} {_first_line(path)}")
    return 0


def _first_line(path: Path) -> str:
    """The scenario's one-line summary: the first line of its `description` or docstring."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        description = str(tomllib.loads(text).get("description", ""))
    else:
        description = ast.get_docstring(ast.parse(text)) or ""
    lines = [line.strip() for line in description.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""
