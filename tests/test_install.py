"""A clean install, as a user gets it: the wheel is built from this checkout and installed with
a plain `pip install` into a fresh virtual environment in a temporary folder; from another
folder, `mpay demo` and `mpay run happy_path` work, the shipped scenarios are there, and no
generically named top-level module (`protocol`, `actors`, ...) was installed."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(argv: list[str], cwd: Path, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env["NO_COLOR"] = "1"
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bin/` folder of a fresh virtual environment holding the wheel built from ROOT."""
    base = tmp_path_factory.mktemp("clean-install")
    wheels = base / "wheels"
    built = _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(ROOT)], base)
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("mpay-*.whl")
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = _run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet",
                "--disable-pip-version-check", str(wheel)], base)
    assert pip.returncode == 0, pip.stderr
    return env_dir / "bin"


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder with nothing of the checkout in it."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def test_only_names_of_the_project_are_installed(installed: Path, elsewhere: Path) -> None:
    probe = ("import importlib.util as u; "
             "print(*[n for n in ('protocol', 'actors', 'scenarios', 'bench', 'mpay', 'mpay.protocol', "
             "'mpay.actors', 'mpay_bench') if u.find_spec(n)])")
    found = _run([str(installed / "python"), "-c", probe], elsewhere)
    assert found.stdout.split() == ["mpay", "mpay.protocol", "mpay.actors", "mpay_bench"]


def test_demo_runs_from_any_folder(installed: Path, elsewhere: Path) -> None:
    demo = _run([str(installed / "mpay"), "demo"], elsewhere)
    assert demo.returncode == 0, demo.stderr
    assert "settle" in demo.stdout.lower()
    assert "alice" in demo.stdout and "shop" in demo.stdout


def test_a_shipped_scenario_runs_by_name(installed: Path, elsewhere: Path) -> None:
    run = _run([str(installed / "mpay"), "run", "happy_path", "--out", "runs/happy"], elsewhere)
    assert run.returncode == 0, run.stderr
    assert "expectations: all met" in run.stdout
    assert (elsewhere / "runs" / "happy" / "trace.jsonl").stat().st_size > 0


def test_shipped_scenarios_are_listed_and_copied_out(installed: Path, elsewhere: Path) -> None:
    listed = _run([str(installed / "mpay"), "scenarios"], elsewhere)
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert {"happy_path", "workload", "attacks/tamper", "credit_study"} <= set(names)
    copied = _run([str(installed / "mpay"), "scenarios", "copy", "attacks/tamper", "mine"], elsewhere)
    assert copied.returncode == 0, copied.stderr
    assert (elsewhere / "mine" / "tamper.toml").read_text(encoding="utf-8").startswith('name = "tamper"')
    again = _run([str(installed / "mpay"), "scenarios", "copy", "attacks/tamper", "mine"], elsewhere)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_version_module_entry_and_the_bench_plugin(installed: Path, elsewhere: Path) -> None:
    version = _run([str(installed / "python"), "-m", "mpay", "--version"], elsewhere)
    assert version.stdout.strip() == "mpay 0.1.0"
    bare = _run([str(installed / "mpay")], elsewhere)
    assert bare.returncode == 0 and "COMMAND" in bare.stdout and "bench" in bare.stdout
