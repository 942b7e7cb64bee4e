"""trace.jsonl and summary.json match their documented schema (docs/trace.md), load directly
into pandas and polars, and the doc's analysis examples run verbatim on a fresh run."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import tomllib
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from mpay.study.runner import run_scenario
from mpay.schema.scenario import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
DOC = ROOT / "docs" / "trace.md"
#: the run directory the doc's examples name; the test puts a fresh run's directory there
DOC_RUN_DIR = 'Path("runs/happy_path")'


def _small_workload():
    """scenarios/workload.toml cut down: 25 orders among 12 customers and 3 merchants, with
    the same mixed behaviours (declines, ignored confirmations, rejections, lapses)."""
    data = tomllib.loads((SCENARIOS / "workload.toml").read_text(encoding="utf-8"))
    data["name"] = "small_workload"
    data["workload"].update(customers=12, merchants=3, transactions=25, spread_s=3600)
    data["workload"]["customer_behaviour"].update(p_decline=0.15, p_reject=0.2, p_ignore_confirm=0.1)
    data["expect"] = {}
    return parse_scenario(data, "small_workload")


def _with_restart():
    """The happy path with the payment center restarting mid-transaction (a ``restarted`` event)."""
    data = tomllib.loads((SCENARIOS / "happy_path.toml").read_text(encoding="utf-8"))
    data["name"] = "happy_path_restart"
    data["faults"] = {"restarts": [{"party": "mpc", "at_s": 1800}]}
    data["expect"] = {}
    return parse_scenario(data, "happy_path_restart")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run directories of scenarios that between them produce every kind of event a
    scenario can produce today (attacks: rejections with checks, plain-text SMS)."""
    scenarios = {
        "happy_path": load_scenario(SCENARIOS / "happy_path.toml"),
        "dispute": load_scenario(SCENARIOS / "dispute.toml"),
        "top_up": load_scenario(SCENARIOS / "top_up.toml"),
        "confirm_timeout": load_scenario(SCENARIOS / "confirm_timeout.toml"),
        "tamper": load_scenario(SCENARIOS / "attacks" / "tamper.toml"),
        "sim_clone": load_scenario(SCENARIOS / "attacks" / "sim_clone.toml"),
        "small_workload": _small_workload(),
        "restart": _with_restart(),
    }
    dirs = {}
    for name, scenario in scenarios.items():
        run_dir = tmp_path_factory.mktemp(name)
        asyncio.run(run_scenario(scenario, run_dir))
        dirs[name] = run_dir
    return dirs


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "trace.jsonl").read_text(encoding="utf-8").splitlines()]


# --- the doc, parsed --------------------------------------------------------------------------


def _rows(section: str) -> dict[str, tuple[str, bool]]:
    """field -> (type, optional) from the markdown tables of one doc section."""
    fields: dict[str, tuple[str, bool]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        for name in re.findall(r"`([^`]+)`", cells[0]):
            fields[name] = (cells[1], "*optional*" in line)
    return fields


def _doc_schema() -> tuple[dict[str, tuple[str, bool]], dict[str, dict[str, tuple[str, bool]]]]:
    """(fields every event has, kind -> its own fields), from docs/trace.md."""
    text = DOC.read_text(encoding="utf-8")
    trace_part = text.split("## `trace.jsonl`", 1)[1].split("## `summary.json`", 1)[0]
    common_part, *kind_parts = re.split(r"^### ", trace_part, flags=re.M)
    kinds = {}
    for part in kind_parts:
        heading, _, body = part.partition("\n")
        kinds[heading.strip().strip("`")] = _rows(body)
    return _rows(common_part), kinds


def _summary_tables() -> list[dict[str, tuple[str, bool]]]:
    """The summary section's tables: top level, a transaction, a party."""
    text = DOC.read_text(encoding="utf-8").split("## `summary.json`", 1)[1].split("\n## ", 1)[0]
    tables = re.split(r"\n(?=A transaction:|A party)", text)
    return [_rows(table) for table in tables]


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def _type_ok(value: object, documented: str) -> bool:
    if value is None:
        return "null" in documented
    base = documented.replace(" or null", "").strip()
    if base == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if base == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base == "str":
        return isinstance(value, str)
    if base == "bool":
        return isinstance(value, bool)
    if base == "object":
        return isinstance(value, dict)
    if base == "list of str":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if base == "list of objects":
        return isinstance(value, list) and all(isinstance(item, dict) for item in value)
    raise AssertionError(f"docs/trace.md uses a type this test does not know: {documented!r}")


# --- the tests ----------------------------------------------------------------------------------


def test_every_event_kind_and_field_in_a_trace_is_documented_with_its_type(runs: dict[str, Path]) -> None:
    common, kinds = _doc_schema()
    assert {"i", "t_s", "kind"} <= set(common)
    seen_kinds: set[str] = set()
    problems: set[str] = set()
    for name, run_dir in runs.items():
        for number, event in enumerate(_events(run_dir)):
            assert event["i"] == number, f"{name}: event {number} has i={event['i']}"
            kind = event["kind"]
            seen_kinds.add(kind)
            if kind not in kinds:
                problems.add(f"event kind {kind!r} is not documented (add a ### `{kind}` section)")
                continue
            schema = {**common, **kinds[kind]}
            for field_name, value in event.items():
                if field_name not in schema:
                    problems.add(f"{kind}.{field_name} is not documented")
                elif not _type_ok(value, schema[field_name][0]):
                    problems.add(f"{kind}.{field_name} = {value!r} is not a {schema[field_name][0]}")
            for field_name, (_, optional) in schema.items():
                if not optional and field_name not in event:
                    problems.add(f"{kind}.{field_name} is documented as always present but is missing")
    assert not problems, "docs/trace.md and the trace disagree:\n" + "\n".join(sorted(problems))
    # the runs really cover the ground (SMS, money, escrow, timers, goods, attacks)
    assert {"sms_sent", "sms_opened", "rejected", "transition", "ledger", "timer", "parcel_sent",
            "goods_arrived", "rating", "txn_opened", "initialized", "untrusted_sms", "restarted"} <= seen_kinds


def test_summary_json_fields_are_the_documented_ones(runs: dict[str, Path]) -> None:
    top, transaction, party = _summary_tables()
    for name, run_dir in runs.items():
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        assert set(summary) == set(top), f"{name}: summary.json keys differ from docs/trace.md"
        for txn in summary["transactions"]:
            assert set(txn) == set(transaction), f"{name}: a transaction's keys differ from the doc"
            for field_name, value in txn.items():
                assert _type_ok(value, transaction[field_name][0]), f"{name}: transaction {field_name}={value!r}"
        for party_id, fields in summary["parties"].items():
            assert set(fields) == set(party), f"{name}: party {party_id}'s keys differ from the doc"
            for field_name, value in fields.items():
                assert _type_ok(value, party[field_name][0]), f"{name}: {party_id}.{field_name}={value!r}"


def test_the_trace_loads_into_pandas_with_every_line_and_field(runs: dict[str, Path]) -> None:
    for name, run_dir in runs.items():
        events = _events(run_dir)
        frame = pd.read_json(run_dir / "trace.jsonl", lines=True, dtype={"sender_number": "str"})
        assert len(frame) == len(events), name
        assert set(frame.columns) == {key for event in events for key in event}, name
        assert frame["i"].tolist() == list(range(len(events)))
        numbers = [e["sender_number"] for e in events if "sender_number" in e]
        if numbers:  # phone numbers stay strings
            assert frame["sender_number"].dropna().tolist() == numbers


def test_the_trace_loads_into_polars_with_every_line_and_field(runs: dict[str, Path]) -> None:
    for name, run_dir in runs.items():
        events = _events(run_dir)
        frame = pl.read_ndjson(run_dir / "trace.jsonl", infer_schema_length=None)
        assert frame.height == len(events), name
        assert set(frame.columns) == {key for event in events for key in event}, name
        sent = frame.filter(pl.col("kind") == "sms_sent")
        assert sent["bytes"].to_list() == [e["bytes"] for e in events if e["kind"] == "sms_sent"]
        assert frame.schema["checks"] == pl.List(pl.Struct({"name": pl.String, "ok": pl.Boolean, "detail": pl.String}))


def test_the_docs_analysis_examples_run_verbatim(runs: dict[str, Path]) -> None:
    blocks = _python_blocks()
    assert len(blocks) >= 2  # pandas and polars
    assert any("pd.read_json" in block for block in blocks)
    assert any("pl.read_ndjson" in block for block in blocks)
    for name in ("happy_path", "small_workload", "tamper"):
        for block in blocks:
            assert DOC_RUN_DIR in block, f"every example reads {DOC_RUN_DIR}, so this test can point it at a run"
            code = block.replace(DOC_RUN_DIR, f"Path({str(runs[name])!r})")
            with contextlib.redirect_stdout(io.StringIO()) as printed:
                exec(compile(code, f"docs/trace.md ({name})", "exec"), {"__name__": "docs_example"})
            assert printed.getvalue().strip(), "each example prints its result"
