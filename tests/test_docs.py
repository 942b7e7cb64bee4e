"""The docs cannot rot: every command they show is run, and every scenario field is documented.

Convention (stated at the top of docs/tutorial.md):

- a command is a line ``$ mpay ...`` inside a ```` ```console ```` block; the lines after it,
  up to the next ``$`` line, are its output;
- the output may end with ``(exit status N)``: the command must exit with N (otherwise 0);
- a fenced block whose info string has ``file=PATH`` (```` ```toml file=my_first.toml ````)
  is written to PATH before the commands that follow it run;
- every document's commands run in order, in a fresh directory where ``scenarios/`` is the
  project's own, so ``--out runs/x`` and files from ``file=`` blocks stay out of the repo.

For the documents listed in :data:`OUTPUT_CHECKED`, every shown output line must appear in
the real output (lines with ``…``, wall-clock times and pytest timings excepted). Commands
that are not ``mpay``/``python`` must be listed in :data:`NOT_RUN` with the reason.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mpay.schema import scenario as schema

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MPAY = Path(sys.executable).parent / "mpay"

#: shown commands that are not run here, and why
NOT_RUN = {
    "make demo": "creates .venv and installs the package first; the work it then does is `mpay demo`, "
    "which tests/test_demo.py runs",
    "make test": "runs this very test suite",
    "make test-long": "the long hypothesis profiles and soak runs; minutes, by design",
}
#: documents whose shown output is compared with the real output
OUTPUT_CHECKED = {"README.md", "tutorial.md", "scenarios.md"}
#: a command's longest run here, in wall seconds (a hung command fails instead of hanging)
COMMAND_TIMEOUT_S = 600
_EXIT = re.compile(r"^\(exit status (\d+)\)$")
_UNCHECKED = re.compile(r"…|wall time|wall_s| passed in |^\s*$")


@dataclass
class Command:
    line: int
    text: str
    output: list[str] = field(default_factory=list)

    @property
    def expected_status(self) -> int:
        for shown in self.output:
            match = _EXIT.match(shown.strip())
            if match:
                return int(match.group(1))
        return 0


@dataclass
class FileBlock:
    line: int
    path: str
    text: str


def parse(doc: Path) -> list[Command | FileBlock]:
    """The steps of a document: files to write and commands to run, in order."""
    steps: list[Command | FileBlock] = []
    lines = doc.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = re.match(r"^(\s*)(```+)(.*)$", line)
        if not fence:
            index += 1
            continue
        ticks, info = fence.group(2), fence.group(3).strip()
        start = index + 1
        end = start
        while end < len(lines) and not lines[end].strip().startswith(ticks):
            end += 1
        body = lines[start:end]
        words = info.split()
        language = words[0] if words else ""
        target = next((word[len("file=") :] for word in words if word.startswith("file=")), None)
        if target:
            steps.append(FileBlock(start, target, "\n".join(body) + "\n"))
        elif language == "console":
            current: Command | None = None
            for offset, text in enumerate(body):
                if text.startswith("$ "):
                    current = Command(start + offset + 1, text[2:].strip())
                    steps.append(current)
                elif current is not None:
                    current.output.append(text)
        else:
            shell_lines = [text for text in body if text.startswith("$ ")]
            assert not shell_lines, (
                f"{doc.name}:{start}: commands belong in ```console blocks (so this test runs them):"
                f" {shell_lines[0]}"
            )
        index = end + 1
    return steps


def run_command(command: Command, cwd: Path, doc: Path) -> subprocess.CompletedProcess[str]:
    for shell_char in ("|", ">", "<", ";", "&&", "`"):
        assert shell_char not in command.text, (
            f"{doc.name}:{command.line}: keep shown commands free of shell syntax ({shell_char!r}): {command.text}"
        )
    argv = shlex.split(command.text)
    if argv[0] == "mpay":
        argv[0] = str(MPAY)
    elif argv[0] == "python":
        argv[0] = sys.executable
    else:
        raise AssertionError(f"{doc.name}:{command.line}: no way to run {command.text!r}; add it to NOT_RUN with a reason")
    env = {**os.environ, "COLUMNS": "80"}  # pytest's and argparse's line widths, as shown
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)


@pytest.mark.parametrize("doc", DOCS, ids=[doc.name for doc in DOCS])
def test_every_command_shown_in_the_docs_runs_as_shown(doc: Path, tmp_path: Path) -> None:
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios", target_is_directory=True)
    for step in parse(doc):
        if isinstance(step, FileBlock):
            target = tmp_path / step.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(step.text, encoding="utf-8")
            continue
        if step.text in NOT_RUN:
            continue
        result = run_command(step, tmp_path, doc)
        where = f"{doc.name}:{step.line}: `{step.text}`"
        assert result.returncode == step.expected_status, (
            f"{where} exited {result.returncode}, the doc says {step.expected_status}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        assert "Traceback" not in result.stderr, f"{where} printed a traceback:\n{result.stderr}"
        if doc.name in OUTPUT_CHECKED:
            actual = {line.rstrip() for line in (result.stdout + result.stderr).splitlines()}
            for shown in step.output:
                if _UNCHECKED.search(shown) or _EXIT.match(shown.strip()):
                    continue
                assert shown.rstrip() in actual, (
                    f"{where}: the doc shows the line\n  {shown}\nbut the command printed:\n"
                    f"{result.stdout}{result.stderr}"
                )


def test_the_quick_start_is_exactly_make_demo_and_make_test() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    commands = [line.strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands == ["make demo", "make test"]
    assert all(command in NOT_RUN for command in commands)


def _models(model: type, seen: dict[str, type]) -> dict[str, type]:
    """Every pydantic model reachable from ``model`` through its fields' annotations."""
    if model.__name__ in seen:
        return seen
    seen[model.__name__] = model
    for info in model.model_fields.values():
        for inner in _types_in(info.annotation):
            _models(inner, seen)
    return seen


def _types_in(annotation: object) -> list[type]:
    from typing import get_args

    from pydantic import BaseModel

    found: list[type] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.append(annotation)
    for arg in get_args(annotation):
        found += _types_in(arg)
    return found


def test_every_scenario_field_is_documented_in_scenarios_md() -> None:
    text = (ROOT / "docs" / "scenarios.md").read_text(encoding="utf-8")
    missing = [
        f"{name}.{field_name}"
        for name, model in _models(schema.Scenario, {}).items()
        for field_name in model.model_fields
        if f"`{field_name}`" not in text
    ]
    assert not missing, f"docs/scenarios.md does not document: {', '.join(missing)} (add a row for each)"
