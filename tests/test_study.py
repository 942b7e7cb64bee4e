"""The scripting API (mpay.study.api), `mpay run FILE.py`, the example studies and the progress line."""

from __future__ import annotations

import asyncio
import io
import json
import textwrap
from pathlib import Path

import pytest

from mpay.cli.main import main
from mpay.present.progress import Progress
from mpay.schema.scenario import ScenarioError, load_scenario
from mpay.study.api import ScenarioBuilder, Study, format_table, item, load_scenario_file, load_script, run

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"

HAPPY_SCRIPT = '''
from mpay.study.api import ScenarioBuilder, item

def scenario():
    return (
        ScenarioBuilder("happy_path", description="built in Python")
        .customer("alice", phone="13800138000", name="Alice Wang", wallet_fen=50_000, card_fen=200_000)
        .merchant("shop")
        .order("alice", "shop", item("tea", 2, 12_000, specification="250 g tin"))
        .expect(outcomes={"settled": 1}, auto_accepted=0, escrow_fen=0,
                parties={"alice": {"wallet_fen": 26_000, "points": 240}, "shop": {"wallet_fen": 24_000}})
        .build()
    )
'''


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


# --- building and running in Python ------------------------------------------------------------


def test_builder_builds_the_same_scenario_as_the_toml_file() -> None:
    toml = load_scenario(SCENARIOS / "happy_path.toml")
    built = (
        ScenarioBuilder("happy_path", description=toml.description)
        .customer("alice", phone="13800138000", name="Alice Wang", wallet_fen=50_000, card_fen=200_000)
        .merchant("shop")
        .order("alice", "shop", item("tea", 2, 12_000, specification="250 g tin"))
        .expect(
            outcomes={"settled": 1},
            auto_accepted=0,
            escrow_fen=0,
            parties={
                "alice": {"wallet_fen": 26_000, "card_fen": 200_000, "points": 240},
                "shop": {"wallet_fen": 24_000},
            },
        )
        .build()
    )
    assert built == toml


def test_builder_errors_name_the_field_in_one_line() -> None:
    builder = ScenarioBuilder("bad").customer("alice", wallet_fen=-5).merchant("shop")
    builder.order("alice", "shop", item("tea", 1, 100))
    with pytest.raises(ScenarioError) as info:
        builder.build()
    message = str(info.value)
    assert "customers.0.wallet_fen" in message and "\n" not in message
    unknown = ScenarioBuilder("bad").customer("alice").merchant("shop").order("bob", "shop", item("tea", 1, 1))
    with pytest.raises(ScenarioError, match="unknown customer 'bob'"):
        unknown.build()


def test_run_returns_the_summary_and_writes_files_only_when_asked(tmp_path: Path) -> None:
    scenario = (
        ScenarioBuilder("two_orders", suite="rsa2048")
        .customer("alice", wallet_fen=100_000)
        .merchant("shop", behaviour={"ship": "never"})
        .order("alice", "shop", item("tea", 1, 5_000))
        .order("alice", "shop", item("book", 1, 7_000), at_s=60, merchant_behaviour={"ship": "ship"})
        .build()
    )
    result = run(scenario)
    assert result.ok and result.run_dir is None
    outcomes = sorted(txn["outcome"] for txn in result.summary["transactions"])
    assert outcomes == ["refunded", "settled"]  # the shop never ships the first, ships the second
    assert result.summary["parties"]["shop"]["wallet"] == 7_000
    on_disk = run(scenario, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["scenario"] == "two_orders"
    assert (tmp_path / "out" / "trace.jsonl").exists() and on_disk.run_dir == tmp_path / "out"


async def test_run_inside_an_event_loop_says_what_to_use_instead() -> None:
    scenario = ScenarioBuilder("x").customer("a").merchant("s").order("a", "s", item("t", 1, 1)).build()
    with pytest.raises(RuntimeError, match="await mpay.study.runner.run_scenario"):
        run(scenario)
    await asyncio.sleep(0)


def test_format_table_aligns_columns() -> None:
    table = format_table([{"suite": "rsa2048", "sms": 85.0}, {"suite": "compact", "sms": 4.5}])
    assert table.splitlines() == [
        "suite      sms",
        "-------  -----",
        "rsa2048  85.00",
        "compact   4.50",
    ]


def test_study_collects_rows_failures_and_writes_json_and_csv(tmp_path: Path, capsys) -> None:
    study = Study("demo", tmp_path)
    good = ScenarioBuilder("good").customer("a", wallet_fen=1_000).merchant("s").order("a", "s", item("t", 1, 100))
    study.run(good.build(), label="good")
    wrong = good.expect(outcomes={"refunded": 1}).build()
    study.run(wrong, label="wrong")
    study.add(label="good", settled=1)
    study.add(label="wrong", settled=1)
    saved = study.save()
    assert saved["failures"] == ["wrong: expected 1 refunded transaction(s), got 0"]
    assert json.loads((tmp_path / "study.json").read_text())["rows"][1] == {"label": "wrong", "settled": 1}
    assert (tmp_path / "study.csv").read_text().splitlines()[0] == "label,settled"
    assert (tmp_path / "runs" / "good" / "summary.json").exists()
    out = capsys.readouterr().out
    assert "1 failure(s)" in out and "label" in out


# --- `mpay run FILE.py` and `mpay validate FILE.py` ---------------------------------------------------


def test_a_scenario_script_gives_the_same_outputs_as_the_toml_file(tmp_path: Path, capsys) -> None:
    script = write(tmp_path, "happy.py", HAPPY_SCRIPT)
    assert main(["run", str(script), "--out", str(tmp_path / "py")]) == 0
    assert "expectations: all met" in capsys.readouterr().out
    assert main(["run", str(SCENARIOS / "happy_path.toml"), "--out", str(tmp_path / "toml")]) == 0
    capsys.readouterr()
    # the same scenario and seed give the same trace, byte for byte, whichever way it was written
    assert (tmp_path / "py" / "trace.jsonl").read_bytes() == (tmp_path / "toml" / "trace.jsonl").read_bytes()
    py_summary = json.loads((tmp_path / "py" / "summary.json").read_text())
    toml_summary = json.loads((tmp_path / "toml" / "summary.json").read_text())
    for summary in (py_summary, toml_summary):
        summary.pop("wall_s")
    assert py_summary == toml_summary


def test_a_script_scenario_validates_and_takes_seed_and_params(tmp_path: Path, capsys) -> None:
    script = write(
        tmp_path,
        "sized.py",
        '''
        from mpay.study.api import ScenarioBuilder, item

        def scenario(orders: int = 1):
            builder = ScenarioBuilder("sized").customer("a", wallet_fen=100_000).merchant("s")
            for n in range(orders):
                builder.order("a", "s", item("tea", 1, 1_000), at_s=60 * n)
            return builder.expect(outcomes={"settled": orders}).build()
        ''',
    )
    assert load_scenario_file(script).name == "sized"
    assert main(["run", str(script), "--out", str(tmp_path / "o"), "--param", "orders=3", "--seed", "9", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert len(summary["transactions"]) == 3 and summary["seed"] == 9
    assert main(["run", str(script), "--out", str(tmp_path / "o"), "--param", "colour=red"]) == 2
    line = one_error_line(capsys)
    assert str(script) in line and "no parameter 'colour'" in line and "orders" in line


def test_a_script_without_an_entry_point_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    script = write(tmp_path, "empty.py", "x = 1\n")
    assert main(["run", str(script)]) == 2
    line = one_error_line(capsys)
    assert line == f"mpay run: {script}: defines neither scenario() nor study(); add one (see docs/tutorial.md)"
    with pytest.raises(ScenarioError, match="defines neither"):
        load_scenario_file(script)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("import no_such_module_anywhere\n", "at line 1: ModuleNotFoundError"),
        ("def scenario(:\n    pass\n", "at line 1: SyntaxError"),
        ("\n\nraise ValueError('bad setting')\n", "at line 3: ValueError: bad setting"),
    ],
)
def test_a_script_that_fails_to_import_exits_2_with_file_line_and_error(
    text: str, expected: str, tmp_path: Path, capsys
) -> None:
    script = write(tmp_path, "broken.py", text)
    assert main(["run", str(script), "--out", str(tmp_path / "o")]) == 2
    line = one_error_line(capsys)
    assert str(script) in line and expected in line


def test_scenario_errors_inside_a_script_name_the_file_and_the_field(tmp_path: Path, capsys) -> None:
    script = write(
        tmp_path,
        "negative.py",
        '''
        from mpay.study.api import ScenarioBuilder, item

        def scenario():
            b = ScenarioBuilder("neg").customer("a").merchant("s")
            return b.order("a", "s", item("tea", 1, -100)).build()
        ''',
    )
    assert main(["run", str(script), "--out", str(tmp_path / "o")]) == 2
    line = one_error_line(capsys)
    assert f"{script}: scenario()" in line and "orders.0.items.0.unit_price_fen" in line
    wrong_type = write(tmp_path, "wrong.py", "def scenario():\n    return {'name': 'x'}\n")
    assert main(["run", str(wrong_type)]) == 2
    assert "returned dict, not a Scenario" in one_error_line(capsys)
    crashing = write(tmp_path, "crash.py", "def scenario():\n    return 1 / 0\n")
    assert main(["run", str(crashing)]) == 2
    assert "scenario() failed at line 2: ZeroDivisionError" in one_error_line(capsys)


def test_param_is_refused_for_toml_files(capsys) -> None:
    assert main(["run", str(SCENARIOS / "happy_path.toml"), "--param", "x=1"]) == 2
    assert "only Python scripts take parameters" in one_error_line(capsys)


STUDY_SCRIPT = '''
from mpay.study.api import ScenarioBuilder, Study, item

def study(out_dir, price_fen: int = 1_000, expect_refund: bool = False):
    results = Study("tiny", out_dir)
    builder = ScenarioBuilder("tiny").customer("a", wallet_fen=10_000).merchant("s")
    builder.order("a", "s", item("tea", 1, price_fen))
    if expect_refund:
        builder.expect(outcomes={"refunded": 1})
    run = results.run(builder.build(), label="only")
    results.add(price_fen=price_fen, wallet_fen=run.summary["parties"]["a"]["wallet"])
    return results.save()
'''


def test_a_study_script_writes_its_results_and_prints_a_table(tmp_path: Path, capsys) -> None:
    script = write(tmp_path, "tiny.py", STUDY_SCRIPT)
    assert main(["run", str(script), "--out", str(tmp_path / "o"), "--param", "price_fen=2500"]) == 0
    out = capsys.readouterr().out
    assert "price_fen  wallet_fen" in out and "2500        7500" in out
    assert json.loads((tmp_path / "o" / "study.json").read_text())["rows"] == [{"price_fen": 2500, "wallet_fen": 7500}]
    assert (tmp_path / "o" / "study.csv").read_text().splitlines() == ["price_fen,wallet_fen", "2500,7500"]
    # --json: only the results on stdout; --quiet: nothing at all
    assert main(["run", str(script), "--out", str(tmp_path / "o"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"][0]["wallet_fen"] == 9000
    assert main(["run", str(script), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    # an unmet expectation in any run of the study: exit status 1
    assert main(["run", str(script), "--out", str(tmp_path / "o"), "--param", "expect_refund=true"]) == 1
    assert "expected 1 refunded transaction(s), got 0" in capsys.readouterr().out


def test_a_study_that_returns_no_dict_is_bad_input(tmp_path: Path, capsys) -> None:
    script = write(tmp_path, "nodict.py", "def study(out_dir):\n    return 42\n")
    assert main(["run", str(script), "--out", str(tmp_path / "o")]) == 2
    assert "study() returned int, not a dict" in one_error_line(capsys)
    with pytest.raises(ScenarioError, match=r"defines study\(\) but no scenario\(\)"):
        load_scenario_file(script)


def test_load_script_does_not_leave_the_module_behind(tmp_path: Path) -> None:
    import sys

    script = write(tmp_path, "plain.py", "VALUE = 41 + 1\n")
    module = load_script(script)
    assert module.VALUE == 42
    assert not [name for name in sys.modules if name.startswith("mpay_script_plain")]


# --- the shipped example studies -----------------------------------------------------------


def test_suite_cost_study_bigger_rsa_keys_cost_more_sms(tmp_path: Path, capsys) -> None:
    assert main(["run", str(SCENARIOS / "suite_cost_study.py"), "--out", str(tmp_path), "--param", "transactions=2", "--json"]) in (0, 1)
    results = json.loads(capsys.readouterr().out)
    rows = {row["suite"]: row for row in results["rows"]}
    assert set(rows) == {"rsa2048", "rsa3072", "compact"}
    assert rows["rsa2048"]["transactions"] == 2
    assert rows["rsa2048"]["msgs_per_txn"] == rows["rsa3072"]["msgs_per_txn"] >= 11
    assert rows["rsa3072"]["sms_per_txn"] > rows["rsa2048"]["sms_per_txn"] > rows["rsa2048"]["msgs_per_txn"]
    assert rows["rsa3072"]["bytes_per_txn"] > rows["rsa2048"]["bytes_per_txn"]
    assert not [f for f in results["failures"] if not f.startswith("compact:")]
    assert (tmp_path / "study.csv").exists() and (tmp_path / "runs" / "rsa3072" / "trace.jsonl").exists()


def test_suite_cost_study_compact_settles_with_the_fewest_sms(tmp_path: Path, capsys) -> None:
    assert main(["run", str(SCENARIOS / "suite_cost_study.py"), "--out", str(tmp_path), "--param", "transactions=2", "--json"]) == 0
    rows = {row["suite"]: row for row in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["compact"]["sms_per_txn"] < rows["rsa2048"]["sms_per_txn"]


def test_credit_study_scores_honest_merchants_above_misbehaving_ones(tmp_path: Path, capsys) -> None:
    assert main(["run", str(SCENARIOS / "credit_study.py"), "--out", str(tmp_path), "--param", "transactions=90", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    rows = {row["group"]: row for row in results["rows"]}
    assert set(rows) == {"honest", "no_ship", "no_refund", "customers"}
    assert rows["customers"]["transactions"] == 90 and results["failures"] == []
    assert rows["honest"]["disputed"] == 0 and rows["no_refund"]["refunded"] == 0
    for group in ("no_ship", "no_refund"):
        assert rows["honest"]["mean_score"] > rows[group]["mean_score"] + 100
        assert rows["honest"]["mean_integrity"] > rows[group]["mean_integrity"]


def test_the_example_studies_define_a_scenario_that_validates() -> None:
    assert load_scenario_file(SCENARIOS / "suite_cost_study.py").suite == "rsa2048"
    assert len(load_scenario_file(SCENARIOS / "credit_study.py").orders) == 300


# --- the progress line ---------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_appears_only_after_a_second_and_counts_finished_transactions() -> None:
    clock, stream = FakeClock(), io.StringIO()
    progress = Progress("workload", total=4, stream=stream, enabled=True, clock=clock)
    progress.on_event({"kind": "initialized"})
    progress.on_event({"kind": "transition", "after": "settled"})
    assert stream.getvalue() == ""  # a short run shows nothing
    clock.now = 1.5
    progress.on_event({"kind": "transition", "after": "awaiting_shipment"})  # not finished
    progress.on_event({"kind": "transition", "after": "refunded"})
    assert "workload: 2/4 transactions finished" in stream.getvalue() and "50%" in stream.getvalue()
    clock.now = 3.0
    progress.close()
    assert stream.getvalue().endswith("\n")


def test_progress_stays_silent_when_stderr_is_not_a_terminal() -> None:
    stream = io.StringIO()  # isatty() is False, as in pipes, logs and tests
    clock = FakeClock()
    progress = Progress("x", total=1, stream=stream, clock=clock)
    clock.now = 10.0
    progress.advance()
    progress.close()
    assert not progress.enabled and stream.getvalue() == ""
