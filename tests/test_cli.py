"""The ``mpay`` command line: exit statuses, outputs, and one clear line for bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mpay.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
HAPPY = ROOT / "scenarios" / "happy_path.toml"


def test_run_prints_a_summary_and_writes_the_files(tmp_path: Path, capsys) -> None:
    status = main(["run", str(HAPPY), "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0
    assert "settled 1" in out and "expectations: all met" in out
    assert "invariants: all hold" in out
    assert (tmp_path / "summary.json").exists() and (tmp_path / "trace.jsonl").exists()


def test_run_json_puts_the_summary_on_stdout(tmp_path: Path, capsys) -> None:
    assert main(["run", str(HAPPY), "--out", str(tmp_path), "--json", "--seed", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["seed"] == 3
    assert summary["scenario"] == "happy_path"
    assert summary["transactions"][0]["outcome"] == "settled"
    assert set(summary) >= {"suite", "parties", "invariants", "network", "security", "wall_s"}


def test_run_exits_1_and_says_which_expectation_failed(tmp_path: Path, capsys) -> None:
    scenario = tmp_path / "wrong.toml"
    scenario.write_text(
        HAPPY.read_text().replace("wallet_fen = 24_000", "wallet_fen = 99_999"), encoding="utf-8"
    )
    assert main(["run", str(scenario), "--out", str(tmp_path / "run")]) == 1
    out = capsys.readouterr().out
    assert "shop.wallet_fen: expected 99999, got 24000" in out


BAD_INPUTS = {
    "malformed TOML": ("name = \n", "not valid TOML"),
    "unknown field": (
        'name = "x"\ncolour = "red"\n[[customers]]\nid = "a"\n[[merchants]]\nid = "s"\n'
        '[[orders]]\ncustomer = "a"\nmerchant = "s"\nitems = [{name = "t", quantity = 1, unit_price_fen = 1}]\n',
        "colour",
    ),
    "negative amount": (
        'name = "x"\n[[customers]]\nid = "a"\nwallet_fen = -5\n[[merchants]]\nid = "s"\n'
        '[[orders]]\ncustomer = "a"\nmerchant = "s"\nitems = [{name = "t", quantity = 1, unit_price_fen = 1}]\n',
        "customers.0.wallet_fen",
    ),
    "non-integer amount": (
        'name = "x"\n[[customers]]\nid = "a"\n[[merchants]]\nid = "s"\n'
        '[[orders]]\ncustomer = "a"\nmerchant = "s"\nitems = [{name = "t", quantity = 1, unit_price_fen = 1.5}]\n',
        "unit_price_fen",
    ),
    "unknown party": (
        'name = "x"\n[[customers]]\nid = "a"\n[[merchants]]\nid = "s"\n'
        '[[orders]]\ncustomer = "bob"\nmerchant = "s"\nitems = [{name = "t", quantity = 1, unit_price_fen = 1}]\n',
        "unknown customer 'bob'",
    ),
    "impossible window": (
        'name = "x"\n[windows]\nconfirm_s = 0\n[[customers]]\nid = "a"\n[[merchants]]\nid = "s"\n'
        '[[orders]]\ncustomer = "a"\nmerchant = "s"\nitems = [{name = "t", quantity = 1, unit_price_fen = 1}]\n',
        "windows.confirm_s",
    ),
}


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_naming_file_and_field(
    case: str, command: str, tmp_path: Path, capsys
) -> None:
    text, expected = BAD_INPUTS[case]
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    assert main([command, str(path), *(["--out", str(tmp_path / "o")] if command == "run" else [])]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0] and expected in lines[0]
    assert "Traceback" not in err


def test_missing_file_is_bad_input(tmp_path: Path, capsys) -> None:
    assert main(["validate", str(tmp_path / "nope.toml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_validate_describes_a_good_scenario(capsys) -> None:
    assert main(["validate", str(ROOT / "scenarios" / "workload.toml")]) == 0
    out = capsys.readouterr().out
    assert "ok" in out and "1000 orders" in out and "200 customers" in out


def test_console_script_help_explains_itself() -> None:
    mpay = shutil.which("mpay", path=str(Path(sys.executable).parent))
    assert mpay is not None, "the mpay console script is installed with the package"
    result = subprocess.run([mpay, "--help"], capture_output=True, text=True, check=True)
    assert "run" in result.stdout and "Example:" in result.stdout
    result = subprocess.run([mpay, "run", "--help"], capture_output=True, text=True, check=True)
    assert "--seed" in result.stdout and "Example:" in result.stdout


def test_validate_checks_a_scripts_scenario(tmp_path, capsys) -> None:
    from mpay.cli.main import main

    script = tmp_path / "s.py"
    script.write_text(
        "from mpay.study.api import ScenarioBuilder, item\n"
        "def scenario():\n"
        "    return ScenarioBuilder('s').customer('a').merchant('m').order('a', 'm', item('t', 1, 1)).build()\n",
        encoding="utf-8",
    )
    assert main(["validate", str(script)]) == 0
    assert "ok: scenario 's'" in capsys.readouterr().out
    empty = tmp_path / "e.py"
    empty.write_text("x = 1\n", encoding="utf-8")
    assert main(["validate", str(empty)]) == 2
    assert "defines neither scenario() nor study()" in capsys.readouterr().err


def test_real_time_mode_takes_the_same_path_as_virtual_time(tmp_path: Path, capsys) -> None:
    """--speed paces the same events to the wall clock (live demos): the trace is the same."""
    scenario = ROOT / "scenarios" / "confirm_timeout.toml"  # 30 virtual minutes
    assert main(["run", str(scenario), "--out", str(tmp_path / "virtual"), "--quiet"]) == 0
    assert main(["run", str(scenario), "--out", str(tmp_path / "live"), "--quiet", "--speed", "100000"]) == 0
    virtual = (tmp_path / "virtual" / "trace.jsonl").read_text()
    assert (tmp_path / "live" / "trace.jsonl").read_text() == virtual
    assert main(["run", str(scenario), "--speed", "0"]) == 2
    assert "--speed" in capsys.readouterr().err


def test_ledger_on_aiosqlites_thread_gives_the_same_run(tmp_path: Path) -> None:
    """--ledger-thread moves the SQL to aiosqlite's worker thread: slower, same everything."""
    scenario = ROOT / "scenarios" / "top_up.toml"
    assert main(["run", str(scenario), "--out", str(tmp_path / "inline"), "--quiet"]) == 0
    assert main(["run", str(scenario), "--out", str(tmp_path / "thread"), "--quiet", "--ledger-thread"]) == 0
    inline = (tmp_path / "inline" / "trace.jsonl").read_text()
    assert (tmp_path / "thread" / "trace.jsonl").read_text() == inline
    summaries = [json.loads((tmp_path / d / "summary.json").read_text()) for d in ("inline", "thread")]
    assert summaries[0]["parties"] == summaries[1]["parties"]
