"""The run's report.html: one self-contained page with a sequence diagram of one transaction
per outcome (one arrow per SMS), the outcomes, balances before and after, the SMS cost,
security rejections and invariants. The page is parsed here as HTML; `make check-report`
renders it in headless Chromium as well (docs/report.md)."""

from __future__ import annotations

import json
import re
import struct
import tomllib
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mpay.present import report
from mpay.present.report import check_png, check_report_html, render_report, span, write_report, yuan
from mpay.study.runner import run_scenario
from mpay.schema.scenario import load_scenario, parse_scenario
from mpay.protocol.sms import parts_needed

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


class Page(HTMLParser):
    """What a reader sees: tables (id -> rows of cell texts), diagrams, loading tags."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.diagrams: list[dict] = []
        self.captions: list[str] = []
        self.loading_tags: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_thead = False
        self._arrow: dict | None = None
        self._note: list[str] | None = None
        self._caption: list[str] | None = None
        self._svg_text: list[str] | None = None
        self._in_title = False  # an arrow's tooltip, not its label
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag in ("script", "link", "img", "iframe", "object", "embed") or "src" in a or "href" in a:
            self.loading_tags.append(tag)
        if tag == "table":
            self._table = a.get("id", "")
            self.tables[self._table] = []
        elif tag == "thead":
            self._in_thead = True
        elif tag == "tr" and self._table is not None and not self._in_thead:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "svg" and "sequence" in classes:
            self.diagrams.append({"declared": int(a["data-sms"]), "arrows": [], "notes": [], "heads": []})
        elif tag == "g" and "sms-arrow" in classes:
            self._arrow = {"type": a.get("data-type"), "lost": "lost" in classes, "label": []}
            self.diagrams[-1]["arrows"].append(self._arrow)
        elif tag == "g" and "note" in classes:
            self._note = []
            self.diagrams[-1]["notes"].append(self._note)
        elif tag == "g" and "lifeline" in classes:
            self._svg_text = []
            self.diagrams[-1]["heads"].append(self._svg_text)
        elif tag == "figcaption":
            self._caption = []
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag == "thead":
            self._in_thead = False
        elif tag == "td" and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "g":
            self._arrow = self._note = self._svg_text = None
        elif tag == "title":
            self._in_title = False
        elif tag == "figcaption" and self._caption is not None:
            self.captions.append("".join(self._caption))
            self._caption = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            return
        for sink in (self._cell, self._note, self._svg_text, self._caption):
            if sink is not None:
                sink.append(data)
        if self._arrow is not None:
            self._arrow["label"].append(data)

    def row(self, table: str, first: str) -> list[str]:
        return next(row for row in self.tables[table] if row[0] == first)


async def _run(scenario, run_dir: Path) -> tuple[dict, list[dict], Page, str]:
    result = await run_scenario(scenario, run_dir)
    path = write_report(run_dir / "report.html", result.summary, run_dir / "trace.jsonl")
    text = path.read_text(encoding="utf-8")
    events = [json.loads(line) for line in (run_dir / "trace.jsonl").read_text().splitlines()]
    return result.summary, events, Page(text), text


def _sms_of(txn: dict, events: list[dict]) -> list[dict]:
    keys = {txn["id"], txn["order_ref"]}
    return [e for e in events if e["kind"] == "sms_sent" and e.get("contract_no") in keys]


def _small_workload():
    data = tomllib.loads((SCENARIOS / "workload.toml").read_text(encoding="utf-8"))
    data["name"] = "small_workload"
    data["workload"].update(customers=12, merchants=3, transactions=25, spread_s=3600)
    data["workload"]["customer_behaviour"].update(p_decline=0.15, p_reject=0.2, p_ignore_confirm=0.1)
    data["expect"] = {}
    return parse_scenario(data, "small_workload")


# --- a whole run's report ------------------------------------------------------------------------


async def test_happy_path_report_draws_every_sms_and_shows_the_money(tmp_path: Path) -> None:
    summary, events, page, text = await _run(load_scenario(SCENARIOS / "happy_path.toml"), tmp_path)
    (txn,) = summary["transactions"]

    # self-contained: nothing is fetched from anywhere, so it opens offline
    assert check_report_html(text) == []
    assert page.loading_tags == []
    assert "://" not in text

    # one diagram, one arrow per SMS of the transaction, in the order they were sent
    (diagram,) = page.diagrams
    sent = _sms_of(txn, events)
    assert [arrow["type"] for arrow in diagram["arrows"]] == [e["type"] for e in sent]
    assert diagram["declared"] == len(sent) == txn["messages"]
    assert not any(arrow["lost"] for arrow in diagram["arrows"])
    labels = ["".join(arrow["label"]) for arrow in diagram["arrows"]]
    assert labels[0] == f"purchase_request · {parts_needed(sent[0]['bytes'])} SMS · {sent[0]['bytes']:,} B"
    shown_sms = sum(int(re.search(r"· (\d+) SMS ·", label).group(1)) for label in labels)
    assert shown_sms == txn["sms_segments"]  # the network's own count
    heads = [" ".join(t.strip() for t in head if t.strip()) for head in diagram["heads"]]
    assert heads == ["customer alice", "merchant shop", "payment center mpc", "bank bank"]
    notes = ["".join(note) for note in diagram["notes"]]
    assert "ledger hold 240.00" in notes
    assert "ledger settle 240.00, 240 points" in notes
    assert "awaiting_acceptance → settled" in notes
    assert page.captions == [f"settled: {txn['id']}"]

    # outcomes and balances before and after, in yuan
    assert page.row("outcomes", "settled")[1:3] == ["1", "240.00"]
    assert page.row("transactions", txn["id"])[4:6] == ["240.00", "settled"]
    assert page.row("balances", "alice")[2:8] == ["500.00", "260.00", "-240.00", "2,000.00", "2,000.00", "0.00"]
    assert page.row("balances", "shop")[2:5] == ["0.00", "240.00", "+240.00"]
    assert page.row("balances", "alice")[8] == "240"  # points

    # SMS cost: per outcome from the summary, per message type from the trace
    assert page.row("sms-cost-outcome", "settled")[1:5] == ["1", "13.0", "13", "13"]
    by_type = page.tables["sms-cost-type"]
    all_sent = [e for e in events if e["kind"] == "sms_sent"]
    for row in by_type[:-1]:
        of_type = [e for e in all_sent if e["type"] == row[0]]
        assert int(row[1]) == len(of_type)
        assert int(row[2].replace(",", "")) == sum(parts_needed(e["bytes"]) for e in of_type)
    assert by_type[-1][0] == "all"
    assert int(by_type[-1][2].replace(",", "")) == summary["network"]["sms_segments"]

    # security and invariants
    assert page.tables["rejections"][0][0].startswith("none")
    assert {row[0]: row[1] for row in page.tables["invariants"]} == {
        name: "PASS" for name in summary["invariants"]
    }


async def test_tampered_sms_show_as_never_opened_and_rejected_by_reason(tmp_path: Path) -> None:
    summary, events, page, text = await _run(load_scenario(SCENARIOS / "attacks" / "tamper.toml"), tmp_path)
    assert check_report_html(text) == []
    rejected = summary["security"]["rejected"]
    assert rejected  # the attack flips octets of SMS to the payment center
    for reason, count in rejected.items():
        assert page.row("rejections", reason)[1] == f"{count:,}"
    details = {e["detail"] for e in events if e["kind"] == "rejected"}
    assert {row[4] for row in page.tables["rejection-list"]} == details
    assert page.row("attacks", "tamper")[1] == "tamper"
    (diagram,) = page.diagrams
    lost = [arrow for arrow in diagram["arrows"] if arrow["lost"]]
    assert [arrow["type"] for arrow in lost] == ["payment_request"]
    assert "".join(lost[0]["label"]).endswith("not opened")


async def test_a_lapsed_window_is_a_note_in_the_diagram(tmp_path: Path) -> None:
    summary, _, page, _ = await _run(load_scenario(SCENARIOS / "confirm_timeout.toml"), tmp_path)
    (txn,) = summary["transactions"]
    assert page.captions == [f"{txn['outcome']}: {txn['id']}"]
    notes = ["".join(note) for note in page.diagrams[0]["notes"]]
    assert "confirm window lapsed" in notes


async def test_a_bigger_run_draws_one_transaction_per_outcome_and_caps_its_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "MAX_TABLE_ROWS", 10)
    summary, events, page, text = await _run(_small_workload(), tmp_path)
    assert check_report_html(text) == []
    txns = summary["transactions"]
    first: dict[str, dict] = {}
    for txn in txns:
        first.setdefault(txn["outcome"], txn)
    assert len(first) >= 3  # the mixed behaviours give several outcomes
    order = [o for o in report.OUTCOME_ORDER if o in first]
    assert page.captions == [f"{outcome}: {first[outcome]['id']}" for outcome in order]
    for outcome, diagram in zip(order, page.diagrams):
        assert [a["type"] for a in diagram["arrows"]] == [e["type"] for e in _sms_of(first[outcome], events)]
    # capped tables say how much they leave out
    assert len(page.tables["transactions"]) == 10
    assert f"{len(txns) - 10} more transactions are left out" in text
    assert f"{16 - 10} more parties are left out" in text  # 12 customers, 3 merchants, mpc
    # per-outcome SMS cost, from the summary's own counts
    for outcome, group in ((o, [t for t in txns if t["outcome"] == o]) for o in order):
        messages = [t["messages"] for t in group]
        row = page.row("sms-cost-outcome", outcome)
        assert row[1:5] == [
            str(len(group)), f"{sum(messages) / len(messages):,.1f}", str(min(messages)), str(max(messages))
        ]


async def test_a_summary_without_opening_balances_still_renders(tmp_path: Path) -> None:
    result = await run_scenario(load_scenario(SCENARIOS / "happy_path.toml"), tmp_path)
    summary = {k: v for k, v in result.summary.items() if k != "opening"}
    text = render_report(summary, iter(()))  # and without a trace
    page = Page(text)
    assert page.row("balances", "alice")[2:5] == ["–", "260.00", "–"]
    assert "no opening balances" in text
    assert page.diagrams[0]["arrows"] == []
    # no trace, no arrows: the browser check would say so
    assert "diagram 1 has no SMS arrow (g.sms-arrow)" in check_report_html(text)


# --- the checker used on the browser's DOM --------------------------------------------------------


async def test_the_checker_names_what_is_missing_or_loaded_from_elsewhere(tmp_path: Path) -> None:
    _, _, _, text = await _run(load_scenario(SCENARIOS / "happy_path.toml"), tmp_path)
    assert check_report_html(text) == []
    one_arrow_less = re.sub(r'<g class="sms-arrow".*?</g>', "", text, count=1, flags=re.S)
    assert check_report_html(one_arrow_less) == ["diagram 1 shows 12 SMS arrows, not the 13 it declares"]
    with_cdn = text.replace("</head>", '<script src="https://cdn.example.org/chart.js"></script></head>')
    assert check_report_html(with_cdn) == [
        "loads something from elsewhere: <script src='https://cdn.example.org/chart.js'>"
    ]
    without_invariants = text.replace('id="invariants"', 'id="other"')
    assert "table #invariants is missing" in check_report_html(without_invariants)
    assert check_report_html("<html><body><p>hello</p></body></html>")[0] == "no SVG sequence diagram (svg.sequence)"


def _png(width: int, height: int, pixel) -> bytes:
    """An 8-bit RGB PNG whose pixel (x, y) is ``pixel(x, y)``."""
    raw = b"".join(b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_the_screenshot_check_refuses_a_blank_page() -> None:
    assert check_png(_png(40, 30, lambda x, y: (255, 255, 255))) == ["the screenshot is blank (a flat colour)"]
    assert check_png(_png(40, 30, lambda x, y: (x * 6, y * 8, (x + y) % 256))) == []
    assert check_png(b"<html>") == ["the screenshot is not a PNG file"]


async def test_the_command_line_writes_and_checks_a_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "run"
    await run_scenario(load_scenario(SCENARIOS / "happy_path.toml"), run_dir)
    assert report.main([str(run_dir)]) == 0
    assert (run_dir / "report.html").exists()
    assert report.main(["--check", str(run_dir / "report.html")]) == 0
    assert "report check: ok: 1 sequence diagram(s) with 13 SMS arrows" in capsys.readouterr().out
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body></body></html>")
    assert report.main(["--check", str(broken)]) == 1
    assert "no SVG sequence diagram" in capsys.readouterr().err
    assert report.main([str(tmp_path / "nowhere")]) == 2
    assert "run `mpay run` first" in capsys.readouterr().err


def test_amounts_are_yuan_with_two_decimals_and_durations_read_easily() -> None:
    assert yuan(24_000) == "240.00"
    assert yuan(-5) == "-0.05"
    assert yuan(123_456_789) == "1,234,567.89"
    assert yuan(None) == "–"
    assert span(3.21) == "3.2 s"
    assert span(245) == "4 min 05 s"
    assert span(3725) == "1 h 02 min"
    assert span(93_678) == "1 d 02 h 01 min"



async def test_a_restart_during_the_transaction_shows_in_its_diagram(tmp_path: Path) -> None:
    data = tomllib.loads((SCENARIOS / "happy_path.toml").read_text(encoding="utf-8"))
    data["faults"] = {"restarts": [{"party": "mpc", "at_s": 1800}]}  # while the goods travel
    summary, _, page, text = await _run(parse_scenario(data, "happy_path_restart"), tmp_path)
    assert summary["restarts"] == 1
    assert "1 restart(s)" in text
    notes = ["".join(note) for note in page.diagrams[0]["notes"]]
    assert notes.count("crashed and restarted from its database") == 1
    assert summary["transactions"][0]["outcome"] == "settled"
