"""The run's HTML report: one self-contained page for people, next to the files for programs.

``report.html`` holds a sequence diagram (inline SVG) of the SMS of one transaction per
outcome, the outcome of every transaction, balances before and after, the SMS cost, the
security rejections and the invariants. It is pure HTML with inline CSS and SVG: no script,
no font, no stylesheet or image from elsewhere, so it opens offline and can be mailed.

``write_report(run_dir / "report.html", summary, run_dir / "trace.jsonl")`` after a run.
From the command line (docs/report.md)::

    python -m mpay.present.report RUN_DIR                   # (re)write RUN_DIR/report.html
    python -m mpay.present.report --check DOM [--screenshot PNG]   # check a browser's rendering

The check reads the DOM a browser dumped (``chromium --headless --dump-dom``) and says
what is missing; ``make check-report`` runs it.
"""

from __future__ import annotations

import argparse
import html
import json
import statistics
import struct
import sys
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from mpay.protocol.messages import MessageType
from mpay.protocol.sms import parts_needed

#: at most this many sequence diagrams (the first transaction of each outcome)
MAX_DIAGRAMS = 5
#: at most this many rows (SMS arrows and notes) in one diagram
MAX_DIAGRAM_ROWS = 150
#: at most this many rows in a per-transaction or per-party table
MAX_TABLE_ROWS = 200
#: at most this many rejected SMS listed one by one
MAX_REJECTION_EXAMPLES = 25

#: outcomes in the order their diagrams and rows are shown
OUTCOME_ORDER = ("settled", "refunded", "declined", "disputed", "open")

#: the tables every report has (their ``id``), checked by :func:`check_report_html`
REQUIRED_TABLES = (
    "outcomes",
    "transactions",
    "balances",
    "sms-cost-outcome",
    "sms-cost-type",
    "rejections",
    "invariants",
)

#: what each invariant of ``summary.invariants`` means
INVARIANT_MEANINGS = {
    "balanced_pc": "the payment center's books balance: debits equal credits",
    "balanced_bank": "the bank's books balance: debits equal credits",
    "balances_match_transfers": "every stored balance equals the sum of its transfers",
    "no_overdraft": "no account went below zero",
    "holds_resolved_once": "every hold was settled or refunded at most once",
    "reconciled": "the payment center's bank clearing matches its account at the bank",
    "no_transaction_stuck": "every open transaction has a running timer",
    "only_genuine_messages_acted_upon": "no party acted on an SMS no one sent, or on one SMS twice",
    "eavesdropper_learned_nothing": "no secret (PIN, card number, …) appeared in what the eavesdropper captured",
}

_TYPE_ORDER = {str(t): n for n, t in enumerate(MessageType)}
#: event kinds that concern the whole run, shown in the diagram of a transaction they interrupt
_RUN_WIDE = ("restarted", "revoked")

# --- formatting --------------------------------------------------------------------------------


def yuan(fen: int | None) -> str:
    """``12345`` fen -> ``"123.45"`` (exact: integer arithmetic, never a float)."""
    if fen is None:
        return "–"
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def span(seconds: float) -> str:
    """A duration for people: ``3.2 s``, ``4 min 05 s``, ``2 h 03 min``, ``1 d 02 h 03 min``."""
    s = max(0.0, float(seconds))
    if s < 60:
        return f"{s:.1f} s"
    whole = int(s)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours:02d} h {minutes:02d} min"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


# --- one pass over the trace -------------------------------------------------------------------


@dataclass
class _TypeCost:
    messages: int = 0
    parts: int = 0
    bytes: int = 0
    min_bytes: int = 0
    max_bytes: int = 0

    def add(self, octets: int) -> None:
        if self.messages == 0 or octets < self.min_bytes:
            self.min_bytes = octets
        self.max_bytes = max(self.max_bytes, octets)
        self.messages += 1
        self.parts += parts_needed(octets)
        self.bytes += octets


@dataclass
class _Diagram:
    txn: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Digest:
    """What the report needs from the trace, gathered in one pass (the trace may be large)."""

    diagrams: list[_Diagram]
    by_type: dict[str, _TypeCost] = field(default_factory=dict)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    rejected_total: int = 0
    rejected_by_actor: Counter = field(default_factory=Counter)
    #: restarts and revocations: not tied to one transaction, drawn in any diagram they fall in
    run_wide: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0


def _chosen_transactions(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The first transaction of each outcome, in :data:`OUTCOME_ORDER`, at most MAX_DIAGRAMS."""
    first: dict[str, dict[str, Any]] = {}
    for txn in summary.get("transactions", []):
        first.setdefault(txn.get("outcome", "open"), txn)
    ordered = sorted(first, key=lambda o: (OUTCOME_ORDER.index(o) if o in OUTCOME_ORDER else 99, o))
    return [first[o] for o in ordered][:MAX_DIAGRAMS]


def _digest(summary: dict[str, Any], events: Iterable[dict[str, Any]]) -> _Digest:
    digest = _Digest(diagrams=[_Diagram(txn) for txn in _chosen_transactions(summary)])
    by_key: dict[str, _Diagram] = {}
    for diagram in digest.diagrams:
        for key in (diagram.txn.get("id"), diagram.txn.get("order_ref")):
            if key:
                by_key[key] = diagram
    # (sender, recipient, seq) of a chosen transaction's SMS -> its row, to mark it opened
    awaiting_open: dict[tuple[str, str, int], dict[str, Any]] = {}
    for event in events:
        digest.events += 1
        kind = event.get("kind")
        if kind == "sms_sent":
            cost = digest.by_type.get(event["type"])
            if cost is None:
                cost = digest.by_type[event["type"]] = _TypeCost()
            cost.add(int(event["bytes"]))
        elif kind == "rejected":
            digest.rejected_total += 1
            digest.rejected_by_actor[(event.get("reason"), event.get("actor"))] += 1
            if len(digest.rejections) < MAX_REJECTION_EXAMPLES:
                digest.rejections.append(event)
        elif kind in _RUN_WIDE and len(digest.run_wide) < MAX_DIAGRAM_ROWS:
            digest.run_wide.append(event)
        elif kind == "sms_opened":
            row = awaiting_open.pop((event.get("sender"), event.get("actor"), event.get("seq")), None)
            if row is not None:
                row["opened_t_s"] = event["t_s"]
            continue
        diagram = by_key.get(event.get("contract_no"))  # type: ignore[arg-type]
        if diagram is None:
            continue
        row = dict(event)
        diagram.events.append(row)
        if kind == "sms_sent":
            awaiting_open[(event["actor"], event["to"], event["seq"])] = row
    for diagram in digest.diagrams:  # a restart or revocation while the transaction ran
        if diagram.events:
            first_i, last_i = diagram.events[0]["i"], diagram.events[-1]["i"]
            inside = [ev for ev in digest.run_wide if first_i < ev["i"] < last_i]
            diagram.events = sorted(diagram.events + inside, key=lambda ev: ev["i"])
    return digest


# --- the sequence diagram ------------------------------------------------------------------------

_LEFT = 118  # the time column
_COL_W = 215  # between lifelines
_HEAD = 58  # lifeline heads
_ROW_H = 30
_CHAR_W = 6.4  # mean width of one 11-px character, to size the note boxes


def _lifelines(summary: dict[str, Any], txn: dict[str, Any]) -> list[tuple[str, str]]:
    """(party id, role) of the four lifelines: customer, merchant, payment center, bank."""
    parties = summary.get("parties", {})

    def of_role(role: str, default: str) -> str:
        return next((pid for pid, p in parties.items() if p.get("role") == role), default)

    return [
        (txn.get("customer", "customer"), "customer"),
        (txn.get("merchant", "merchant"), "merchant"),
        (of_role("payment_center", "mpc"), "payment center"),
        (of_role("bank", "bank"), "bank"),
    ]


def _rows(diagram: _Diagram, roles: dict[str, str]) -> list[dict[str, Any]]:
    """The diagram's rows: ``arrow`` (an SMS), ``parcel`` (goods) or ``note``."""
    rows: list[dict[str, Any]] = []
    for ev in diagram.events:
        kind = ev["kind"]
        actor = ev.get("actor", "")
        t_s = ev["t_s"]
        if kind == "sms_sent":
            octets = int(ev["bytes"])
            opened = ev.get("opened_t_s")
            rows.append(
                {
                    "row": "arrow",
                    "t_s": t_s,
                    "from": actor,
                    "to": ev["to"],
                    "type": ev["type"],
                    "parts": parts_needed(octets),
                    "bytes": octets,
                    "seq": ev.get("seq"),
                    "opened_s": None if opened is None else opened - t_s,
                }
            )
        elif kind == "parcel_sent":
            rows.append(
                {
                    "row": "parcel",
                    "t_s": t_s,
                    "from": actor,
                    "to": ev.get("to", ""),
                    "label": f"parcel (goods), transit {span(ev.get('transit_s', 0))}",
                }
            )
        elif kind == "revoked":  # drawn on the revoked party's lifeline
            rows.append(
                {"row": "note", "t_s": t_s, "at": ev.get("party", actor), "text": "certificates revoked", "css": "reject"}
            )
        else:
            text, css = _note(ev, roles.get(actor, ""))
            if text:
                rows.append({"row": "note", "t_s": t_s, "at": actor, "text": text, "css": css})
    return rows


def _note(ev: dict[str, Any], role: str) -> tuple[str, str]:
    kind = ev["kind"]
    if kind == "timer":
        if role == "payment_center":
            if ev.get("timer") == "dispute":
                return "dispute review ends", "lapse"
            return f"{ev.get('timer')} window lapsed", "lapse"
        return f"{ev.get('timer')} timer fires", "timer"
    if kind == "transition":
        if ev.get("before") == ev.get("after"):
            return f"{ev.get('event')} (stays {ev.get('after')})", "state"
        return f"{ev.get('before')} → {ev.get('after')}", "state"
    if kind == "ledger":
        points = f", {ev['points']} points" if ev.get("points") else ""
        return f"ledger {ev.get('op')} {yuan(ev.get('amount_fen'))}{points}", "ledger"
    if kind == "txn_opened":
        return f"transaction opened, {yuan(ev.get('amount_fen'))} {ev.get('currency', '')}", "state"
    if kind == "goods_arrived":
        return f"goods from {ev.get('sender')} arrive", "timer"
    if kind == "rating":
        return f"rating {ev.get('rater')} → {ev.get('ratee')}: {ev.get('stars')} ★", "ledger"
    if kind == "rejected":
        return f"rejected: {ev.get('reason')}", "reject"
    if kind == "restarted":
        return "crashed and restarted from its database", "lapse"
    return f"{kind}", "state"


def render_diagram(summary: dict[str, Any], diagram: _Diagram, number: int) -> str:
    """One transaction's SMS as an SVG sequence diagram (one ``g.sms-arrow`` per SMS sent)."""
    txn = diagram.txn
    lifelines = _lifelines(summary, txn)
    roles = {pid: str(p.get("role", "")) for pid, p in summary.get("parties", {}).items()}
    rows = _rows(diagram, roles)
    column = {pid: n for n, (pid, _) in enumerate(lifelines)}
    for row in rows:  # an unexpected party gets a lifeline of its own
        for pid in (row.get("from"), row.get("to"), row.get("at")):
            if pid and pid not in column:
                column[pid] = len(lifelines)
                lifelines.append((pid, roles.get(pid, "party")))
    shown = rows[:MAX_DIAGRAM_ROWS]
    arrows = sum(1 for row in shown if row["row"] == "arrow")
    width = _LEFT + _COL_W * len(lifelines) + 10
    height = _HEAD + _ROW_H * (len(shown) + 1) + 8
    start_s = rows[0]["t_s"] if rows else 0.0

    def x(pid: str) -> float:
        return _LEFT + _COL_W * column[pid] + _COL_W / 2

    out = [
        f'<svg class="sequence" id="diagram-{number}" data-sms="{arrows}" width="{width}"'
        f' height="{height}" viewBox="0 0 {width} {height}" role="img"'
        f' aria-label="SMS sequence of transaction {_e(txn.get("id"))}">',
        f"<title>SMS of transaction {_e(txn.get('id'))} ({_e(txn.get('outcome'))})</title>",
    ]
    bottom = height - 4
    for pid, role in lifelines:
        cx = x(pid)
        out.append(
            f'<g class="lifeline"><line x1="{cx}" y1="{_HEAD - 6}" x2="{cx}" y2="{bottom}"/>'
            f'<rect x="{cx - 80}" y="6" width="160" height="{_HEAD - 14}" rx="4"/>'
            f'<text x="{cx}" y="24" class="role">{_e(role)}</text>'
            f'<text x="{cx}" y="40" class="pid">{_e(pid)}</text></g>'
        )
    for n, row in enumerate(shown):
        y = _HEAD + _ROW_H * (n + 1) - 6
        out.append(f'<text x="6" y="{y + 4}" class="time">+{_e(span(row["t_s"] - start_s))}</text>')
        if row["row"] == "note":
            cx = x(row["at"])
            w = min(_COL_W * 1.7, len(row["text"]) * _CHAR_W + 14)
            out.append(
                f'<g class="note {row["css"]}"><rect x="{cx - w / 2:.1f}" y="{y - 11}"'
                f' width="{w:.1f}" height="20" rx="3"/>'
                f'<text x="{cx}" y="{y + 3}">{_e(row["text"])}</text></g>'
            )
            continue
        x1, x2 = x(row["from"]), x(row["to"])
        direction = 1 if x2 >= x1 else -1
        head = f"{x2},{y} {x2 - 9 * direction},{y - 4.5} {x2 - 9 * direction},{y + 4.5}"
        mid = (x1 + x2) / 2
        if row["row"] == "parcel":
            out.append(
                f'<g class="parcel"><line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}"/>'
                f'<polygon points="{head}"/><text x="{mid}" y="{y - 5}">{_e(row["label"])}</text></g>'
            )
            continue
        opened = row["opened_s"]
        lost = opened is None
        label = f"{row['type']} · {row['parts']} SMS · {row['bytes']:,} B" + (
            " · not opened" if lost else ""
        )
        tip = (
            f"{row['from']} → {row['to']}: {row['type']}, seq {row['seq']}, {row['parts']} SMS, "
            f"{row['bytes']} bytes; "
            + ("never opened by the recipient" if lost else f"opened {opened:.1f} s after sending")
        )
        out.append(
            f'<g class="sms-arrow{" lost" if lost else ""}" data-type="{_e(row["type"])}">'
            f"<title>{_e(tip)}</title>"
            f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}"/><polygon points="{head}"/>'
            f'<text x="{mid}" y="{y - 5}">{_e(label)}</text></g>'
        )
    out.append("</svg>")
    left_out = len(rows) - len(shown)
    caption = (
        f"<p class='caption'>Transaction <b>{_e(txn.get('id'))}</b> (order {_e(txn.get('order_ref'))}):"
        f" {_e(txn.get('customer'))} buys from {_e(txn.get('merchant'))} for"
        f" {yuan(txn.get('amount'))} {_e(txn.get('currency', ''))}; outcome <b>{_e(txn.get('outcome'))}</b>,"
        f" {len([r for r in rows if r['row'] == 'arrow'])} messages,"
        f" {sum(r['parts'] for r in rows if r['row'] == 'arrow')} SMS. Arrows are SMS messages"
        f" (type · SMS parts · envelope bytes), red dashed ones were never opened; boxes are"
        f" timers, window lapses, state changes and ledger entries; time runs down from the first SMS."
    )
    if left_out > 0:
        caption += f" The last {left_out} rows are left out (at most {MAX_DIAGRAM_ROWS} are drawn)."
    caption += "</p>"
    return (
        f'<figure><figcaption>{_e(txn.get("outcome"))}: {_e(txn.get("id"))}</figcaption>'
        + "".join(out)
        + caption
        + "</figure>"
    )


# --- the tables ----------------------------------------------------------------------------------


def _table(table_id: str, head: list[str], rows: list[list[str]], *, numeric_from: int = 1) -> str:
    """An HTML table; cells are already escaped; columns from ``numeric_from`` align right."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = []
    for row in rows:
        cells = "".join(
            f"<td class='n'>{cell}</td>" if i >= numeric_from else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f'<table id="{table_id}"><thead><tr>{th}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _left_out(shown: int, total: int, what: str, where: str) -> str:
    if total <= shown:
        return ""
    return f"<p class='note'>{total - shown} more {what} are left out here (at most {shown} rows); see {where}.</p>"


def _outcome_key(outcome: str) -> tuple[int, str]:
    return (OUTCOME_ORDER.index(outcome) if outcome in OUTCOME_ORDER else 99, outcome)


def _outcome_tables(summary: dict[str, Any]) -> str:
    txns = summary.get("transactions", [])
    by_outcome: dict[str, list[dict[str, Any]]] = {}
    for txn in txns:
        by_outcome.setdefault(txn.get("outcome", "open"), []).append(txn)
    currency = txns[0].get("currency", "") if txns else ""
    rows = [
        [
            f"<span class='outcome {_e(outcome)}'>{_e(outcome)}</span>",
            f"{len(group):,}",
            yuan(sum(t.get("amount", 0) for t in group)),
            f"{sum(1 for t in group if t.get('auto_accepted')):,}",
        ]
        for outcome, group in sorted(by_outcome.items(), key=lambda kv: _outcome_key(kv[0]))
    ]
    rows.append(
        [
            "<b>all</b>",
            f"<b>{len(txns):,}</b>",
            f"<b>{yuan(sum(t.get('amount', 0) for t in txns))}</b>",
            f"<b>{sum(1 for t in txns if t.get('auto_accepted')):,}</b>",
        ]
    )
    parts = [
        "<h2 id='outcomes-h'>Outcomes</h2>",
        _table("outcomes", ["outcome", "transactions", f"amount ({_e(currency)})", "auto-accepted"], rows),
        "<h3>Every transaction</h3>",
    ]
    shown = txns[:MAX_TABLE_ROWS]
    parts.append(
        _table(
            "transactions",
            ["contract", "order", "customer", "merchant", f"amount ({_e(currency)})", "outcome",
             "state", "messages", "SMS", "bytes", "duration"],
            [
                [
                    _e(t.get("id")),
                    _e(t.get("order_ref")),
                    _e(t.get("customer")),
                    _e(t.get("merchant")),
                    yuan(t.get("amount")),
                    f"<span class='outcome {_e(t.get('outcome'))}'>{_e(t.get('outcome'))}</span>"
                    + (" (auto-accepted)" if t.get("auto_accepted") else ""),
                    _e(t.get("state")),
                    f"{t.get('messages', 0):,}",
                    f"{t.get('sms_segments', 0):,}",
                    f"{t.get('bytes', 0):,}",
                    _e(span(t.get("duration_s", 0.0))),
                ]
                for t in shown
            ],
            numeric_from=4,
        )
    )
    parts.append(_left_out(len(shown), len(txns), "transactions", "summary.json"))
    return "".join(parts)


def _balance_tables(summary: dict[str, Any]) -> str:
    opening = summary.get("opening")
    parties = [
        (pid, p)
        for pid, p in summary.get("parties", {}).items()
        if p.get("role") in ("customer", "merchant", "payment_center")
    ]
    shown = parties[:MAX_TABLE_ROWS]

    def before(pid: str, key: str) -> int | None:
        if not opening or pid not in opening:
            return None
        return opening[pid].get(key)

    def change(old: int | None, new: int | None) -> str:
        if old is None or new is None:
            return "–"
        diff = new - old
        css = "up" if diff > 0 else "down" if diff < 0 else "same"
        return f"<span class='{css}'>{'+' if diff > 0 else ''}{yuan(diff)}</span>"

    rows = []
    for pid, p in shown:
        w0, w1 = before(pid, "wallet"), p.get("wallet")
        b0, b1 = before(pid, "bank_account"), p.get("bank_account")
        score = p.get("credit_score")
        rows.append(
            [
                _e(pid),
                _e(p.get("role", "").replace("_", " ")),
                yuan(w0), yuan(w1), change(w0, w1),
                yuan(b0), yuan(b1), change(b0, b1),
                "–" if p.get("points") is None else f"{p['points']:,}",
                "–" if score is None else f"{score:g}",
            ]
        )
    trading = [(pid, p) for pid, p in summary.get("parties", {}).items() if p.get("role") in ("customer", "merchant")]
    if opening:
        total_before = sum(int(opening.get(pid, {}).get("wallet") or 0) for pid, _ in trading)
        total_after = sum(int(p.get("wallet") or 0) for _, p in trading)
        rows.append(
            [
                "<b>all customers and merchants</b>", "",
                f"<b>{yuan(total_before)}</b>", f"<b>{yuan(total_after)}</b>",
                change(total_before, total_after), "", "", "", "", "",
            ]
        )
    parts = [
        "<h2 id='balances-h'>Balances before and after</h2>",
        "<p>Wallet: the phone-fee balance at the payment center; card: the bank account (for the"
        " payment center, its settlement account at the bank). Amounts in yuan.",
        f" Money held in escrow at the end: <b>{yuan(summary.get('escrow_fen'))}</b>.</p>",
    ]
    if not opening:
        parts.append("<p class='note'>This summary carries no opening balances, so 'before' is not shown.</p>")
    parts.append(
        _table(
            "balances",
            ["party", "role", "wallet before", "wallet after", "change", "card before",
             "card after", "change", "points", "credit score"],
            rows,
            numeric_from=2,
        )
    )
    parts.append(_left_out(len(shown), len(parties), "parties", "summary.json"))
    return "".join(parts)


def _stats(values: list[int]) -> list[str]:
    if not values:
        return ["–", "–", "–"]
    return [f"{statistics.fmean(values):,.1f}", f"{min(values):,}", f"{max(values):,}"]


def _cost_tables(summary: dict[str, Any], digest: _Digest) -> str:
    by_outcome: dict[str, list[dict[str, Any]]] = {}
    txns = summary.get("transactions", [])
    for txn in txns:
        by_outcome.setdefault(txn.get("outcome", "open"), []).append(txn)
    groups = sorted(by_outcome.items(), key=lambda kv: _outcome_key(kv[0])) + [("all", txns)]
    outcome_rows = []
    for outcome, group in groups:
        label = "<b>all</b>" if outcome == "all" else f"<span class='outcome {_e(outcome)}'>{_e(outcome)}</span>"
        outcome_rows.append(
            [label, f"{len(group):,}"]
            + _stats([t.get("messages", 0) for t in group])
            + _stats([t.get("sms_segments", 0) for t in group])
            + _stats([t.get("bytes", 0) for t in group])
        )
    stat_heads = ["mean", "min", "max"]
    head = (
        ["outcome", "transactions"]
        + [f"messages {h}" for h in stat_heads]
        + [f"SMS {h}" for h in stat_heads]
        + [f"bytes {h}" for h in stat_heads]
    )
    types = sorted(digest.by_type.items(), key=lambda kv: (_TYPE_ORDER.get(kv[0], 999), kv[0]))
    type_rows = [
        [
            _e(name),
            f"{c.messages:,}",
            f"{c.parts:,}",
            f"{c.parts / c.messages:,.1f}",
            f"{c.bytes:,}",
            f"{c.bytes / c.messages:,.0f}",
            f"{c.min_bytes:,}",
            f"{c.max_bytes:,}",
        ]
        for name, c in types
    ]
    total = _TypeCost()
    for _, c in types:
        total.messages += c.messages
        total.parts += c.parts
        total.bytes += c.bytes
    if total.messages:
        type_rows.append(
            [
                "<b>all</b>",
                f"<b>{total.messages:,}</b>",
                f"<b>{total.parts:,}</b>",
                f"{total.parts / total.messages:,.1f}",
                f"<b>{total.bytes:,}</b>",
                f"{total.bytes / total.messages:,.0f}",
                f"{min(c.min_bytes for _, c in types):,}",
                f"{max(c.max_bytes for _, c in types):,}",
            ]
        )
    net = summary.get("network", {})
    return "".join(
        [
            "<h2 id='cost-h'>SMS cost</h2>",
            "<p>An SMS carries 140 octets; a longer envelope goes as concatenated SMS of 134 octets"
            " each. Whole network: "
            f"<b>{net.get('messages', 0):,}</b> messages, <b>{net.get('sms_segments', 0):,}</b> SMS,"
            f" <b>{net.get('bytes', 0):,}</b> bytes; {net.get('dropped', 0):,} SMS dropped,"
            f" {net.get('duplicated', 0):,} duplicated, {net.get('delivered', 0):,} delivered.</p>",
            "<h3>Per transaction, by outcome</h3>",
            _table("sms-cost-outcome", head, outcome_rows, numeric_from=1),
            "<h3>Per message type</h3><p>Every SMS sent in the run (initialization included),"
            " from trace.jsonl; bytes are the sealed envelope's.</p>",
            _table(
                "sms-cost-type",
                ["message type", "messages", "SMS", "SMS per message", "bytes",
                 "bytes per message", "bytes min", "bytes max"],
                type_rows,
            ),
        ]
    )


def _security_tables(summary: dict[str, Any], digest: _Digest) -> str:
    security: dict[str, Any] = summary.get("security", {})
    rejected: dict[str, int] = security.get("rejected", {})
    by_reason_actor: dict[str, list[str]] = {}
    for (reason, actor), count in sorted(digest.rejected_by_actor.items(), key=lambda kv: str(kv[0])):
        by_reason_actor.setdefault(str(reason), []).append(f"{actor} {count:,}")
    if rejected:
        rows = [
            [_e(reason), f"{count:,}", _e(", ".join(by_reason_actor.get(reason, [])) or "–")]
            for reason, count in sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        rows.append(["<b>all</b>", f"<b>{sum(rejected.values()):,}</b>", ""])
    else:
        rows = [["none: no SMS or request was rejected", "0", ""]]
    parts = [
        "<h2 id='security-h'>Security rejections</h2>",
        "<p>Every SMS or request a party refused, by reason (bad signature, unknown certificate,"
        " replay, …); rejections are counted, never swallowed.</p>",
        _table("rejections", ["reason", "count", "by party"], rows, numeric_from=1),
    ]
    untrusted = security.get("untrusted_sms")
    if untrusted is not None:
        parts.append(
            f"<p>Plain-text SMS received (shown to the user, never acted upon): <b>{int(untrusted):,}</b>.</p>"
        )
    not_genuine = security.get("not_genuine") or []
    if not_genuine:
        parts.append(
            "<p class='fail'>Messages acted upon that no party sent, or acted upon twice:</p><ul class='problems'>"
            + "".join(f"<li>{_e(line)}</li>" for line in not_genuine)
            + "</ul>"
        )
    attacks = security.get("attacks") or {}
    if attacks:
        parts.append("<h3>Attacks</h3>")
        parts.append(
            _table(
                "attacks",
                ["attack", "kind", "what it did"],
                [
                    [
                        _e(name),
                        _e(report.get("kind", "") if isinstance(report, dict) else ""),
                        _e(_plain(report, skip=("kind",))),
                    ]
                    for name, report in attacks.items()
                ],
                numeric_from=9,
            )
        )
    for key, title in (("eavesdropped", "Eavesdropping"), ("faults", "Faults")):
        if security.get(key):
            parts.append(f"<h3>{title}</h3><p>{_e(_plain(security[key]))}</p>")
    if digest.rejections:
        example_rows = [
            [
                _e(span(ev.get("t_s", 0.0))),
                _e(ev.get("actor")),
                _e(ev.get("reason")),
                _e(ev.get("contract_no") or ev.get("message_type") or ev.get("sender_number") or "–"),
                _e(ev.get("detail", "")),
            ]
            for ev in digest.rejections
        ]
        parts.append("<h3>Rejected, one by one</h3>")
        parts.append(
            _table("rejection-list", ["time", "party", "reason", "about", "detail"], example_rows, numeric_from=9)
        )
        parts.append(
            _left_out(len(digest.rejections), digest.rejected_total, "rejections", "trace.jsonl (kind \"rejected\")")
        )
    return "".join(parts)


def _plain(value: Any, skip: tuple[str, ...] = ()) -> str:
    """A nested summary value as one readable line: ``a 1, b: [c 2]``."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items() if k not in skip) or "–"
    if isinstance(value, list):
        return "[" + "; ".join(_plain(v) for v in value) + "]"
    return str(value)


def _invariant_tables(summary: dict[str, Any]) -> str:
    invariants: dict[str, bool] = summary.get("invariants", {})
    rows = [
        [
            _e(name),
            "<span class='pass'>PASS</span>" if holds else "<span class='fail'>FAIL</span>",
            _e(INVARIANT_MEANINGS.get(name, "")),
        ]
        for name, holds in invariants.items()
    ]
    parts = [
        "<h2 id='invariants-h'>Invariants</h2>",
        _table("invariants", ["invariant", "result", "meaning"], rows, numeric_from=9),
    ]
    messages = summary.get("invariant_messages") or []
    if messages:
        parts.append("<ul class='problems'>" + "".join(f"<li>{_e(msg)}</li>" for msg in messages) + "</ul>")
    expectations = summary.get("expectations")
    if expectations is not None:
        if expectations.get("met"):
            parts.append("<p>Expectations of the scenario: <span class='pass'>all met</span>.</p>")
        else:
            parts.append(
                "<p>Expectations of the scenario: <span class='fail'>NOT met</span>:</p><ul class='problems'>"
                + "".join(f"<li>{_e(f)}</li>" for f in expectations.get("failures", []))
                + "</ul>"
            )
    return "".join(parts)


_CSS = """
body{font:14px/1.45 "DejaVu Sans","Liberation Sans",Arial,sans-serif;color:#1d2430;margin:24px auto;max-width:1280px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid #d6dbe3;padding-bottom:3px}
h3{font-size:15px;margin:18px 0 6px}.meta{color:#4d5666}.note{color:#6a4a00}
table{border-collapse:collapse;margin:6px 0 10px}th,td{border:1px solid #d6dbe3;padding:3px 8px}
th{background:#eef1f5;text-align:left;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#f8f9fb}
.pass{color:#0a6b2d;font-weight:700}.fail{color:#b3141b;font-weight:700}
.up{color:#0a6b2d}.down{color:#b3141b}.outcome{font-weight:600}
.settled{color:#0a6b2d}.refunded{color:#1b55a8}.declined{color:#6b6b6b}.disputed{color:#a8551b}.open{color:#b3141b}
figure{margin:12px 0 26px;overflow-x:auto}figcaption{font-weight:700;font-size:15px;margin-bottom:4px}
.caption{color:#4d5666;font-size:12.5px;max-width:1000px}
svg.sequence{background:#fff;border:1px solid #d6dbe3}
svg.sequence text{font:11px "DejaVu Sans","Liberation Sans",Arial,sans-serif;text-anchor:middle;fill:#1d2430}
svg.sequence .lifeline line{stroke:#9aa3b2;stroke-dasharray:4 4}
svg.sequence .lifeline rect{fill:#eef1f5;stroke:#7b8596}
svg.sequence .lifeline .role{font-weight:700;font-size:12px}svg.sequence .lifeline .pid{fill:#4d5666}
svg.sequence text.time{text-anchor:start;fill:#6b7383}
svg.sequence .sms-arrow line{stroke:#1b55a8;stroke-width:1.6}svg.sequence .sms-arrow polygon{fill:#1b55a8}
svg.sequence .sms-arrow.lost line{stroke:#b3141b;stroke-dasharray:6 4}svg.sequence .sms-arrow.lost polygon{fill:#b3141b}
svg.sequence .parcel line{stroke:#8a6d3b;stroke-width:1.4;stroke-dasharray:2 3}svg.sequence .parcel polygon{fill:#8a6d3b}
svg.sequence .note rect{fill:#f4f4f4;stroke:#b9bec8}
svg.sequence .note.timer rect{fill:#fff7d6;stroke:#d9b84a}svg.sequence .note.lapse rect{fill:#ffe3c2;stroke:#d98a2b}
svg.sequence .note.ledger rect{fill:#e3f4e6;stroke:#6fb27c}svg.sequence .note.reject rect{fill:#ffd9db;stroke:#cc4b52}
svg.sequence .note.state rect{fill:#eaf0fb;stroke:#8ea6d2}
"""


def render_report(summary: dict[str, Any], events: Iterable[dict[str, Any]]) -> str:
    """The report page for a run's ``summary`` (summary.json) and its trace ``events``.

    ``events`` is read once, in order (a generator over a large trace.jsonl is fine)."""
    digest = _digest(summary, events)
    txns = summary.get("transactions", [])
    name = summary.get("scenario", "run")
    expectations = summary.get("expectations") or {}
    broken = [n for n, holds in summary.get("invariants", {}).items() if not holds]
    verdict = (
        "<span class='fail'>invariants broken: " + _e(", ".join(broken)) + "</span>"
        if broken
        else "<span class='pass'>all invariants hold</span>"
    )
    if expectations and not expectations.get("met", True):
        verdict += "; <span class='fail'>expectations not met</span>"
    diagrams = [render_diagram(summary, d, n + 1) for n, d in enumerate(digest.diagrams)]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>mpay report: {_e(name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>mpay run report: {_e(name)}</h1>",
        f"<p class='meta'>seed {_e(summary.get('seed'))} · cipher suite {_e(summary.get('suite'))} ·"
        f" {len(txns):,} transactions · virtual time {_e(span(summary.get('virtual_s', 0.0)))} ·"
        f" wall time {summary.get('wall_s', 0.0):.2f} s · {digest.events:,} trace events"
        + (f" · {summary['restarts']} restart(s)" if summary.get("restarts") else "")
        + f" · {verdict}</p>",
        "<h2 id='sequence-h'>SMS sequence</h2>",
        f"<p>The first transaction of each outcome (at most {MAX_DIAGRAMS} diagrams).</p>",
        "".join(diagrams) if diagrams else "<p class='note'>No transaction to draw.</p>",
        _outcome_tables(summary),
        _balance_tables(summary),
        _cost_tables(summary, digest),
        _security_tables(summary, digest),
        _invariant_tables(summary),
        "<p class='meta'>Written by mpay from summary.json and trace.jsonl (schemas in docs/trace.md).</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def read_trace(trace_path: Path) -> Iterator[dict[str, Any]]:
    """The events of a trace.jsonl, one at a time (nothing if the file does not exist)."""
    if not trace_path.exists():
        return
    with trace_path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def write_report(path: Path | str, summary: dict[str, Any], trace_path: Path | str) -> Path:
    """Write the report of a run to ``path`` (usually RUN_DIR/report.html); returns ``path``."""
    path = Path(path)
    path.write_text(render_report(summary, read_trace(Path(trace_path))), encoding="utf-8")
    return path


# --- checking a rendered report ------------------------------------------------------------------


class _ReportParser(HTMLParser):
    """Collects what :func:`check_report_html` checks: diagrams, arrows, tables, references."""

    #: attributes that would load something
    LOADING = ("src", "href", "xlink:href", "action", "poster", "data", "srcset", "background")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.diagrams: list[dict[str, Any]] = []  # {"declared": int|None, "arrows": int, "types": []}
        self.tables: dict[str, int] = {}  # id -> body rows
        self.invariant_results: list[str] = []
        self.external: list[str] = []
        self._svg_depth = 0
        self._table: str | None = None
        self._in_thead = False
        self._in_style = False
        self._in_invariants_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        for name in self.LOADING:
            value = a.get(name)
            if value is not None and not value.startswith(("#", "data:")):
                self.external.append(f"<{tag} {name}={value!r}>")
        if tag in ("link", "iframe", "object", "embed"):
            self.external.append(f"<{tag}>")
        if tag == "svg":
            if self._svg_depth == 0 and "sequence" in classes:
                declared = a.get("data-sms")
                self.diagrams.append(
                    {"declared": int(declared) if declared and declared.isdigit() else None, "arrows": 0, "types": []}
                )
                self._svg_depth = 1
            elif self._svg_depth:
                self._svg_depth += 1
        elif self._svg_depth and tag == "g" and "sms-arrow" in classes:
            self.diagrams[-1]["arrows"] += 1
            self.diagrams[-1]["types"].append(a.get("data-type"))
        elif tag == "table":
            self._table = a.get("id") or ""
            self.tables[self._table] = 0
        elif tag == "thead":
            self._in_thead = True
        elif tag == "tr" and self._table is not None and not self._in_thead:
            self.tables[self._table] += 1
        elif tag == "span" and self._table == "invariants" and ("pass" in classes or "fail" in classes):
            self.invariant_results.append("pass" if "pass" in classes else "fail")
        elif tag == "style":
            self._in_style = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg" and self._svg_depth:
            self._svg_depth -= 1
        elif tag == "table":
            self._table = None
        elif tag == "thead":
            self._in_thead = False
        elif tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            lowered = data.lower()
            if "@import" in lowered:
                self.external.append("@import in a style")
            for chunk in lowered.split("url(")[1:]:
                if not chunk.lstrip("'\" ").startswith(("data:", "#")):
                    self.external.append("url(...) in a style")


def parse_report_html(text: str) -> _ReportParser:
    """Parse a report page (as written, or as a browser dumped its DOM)."""
    parser = _ReportParser()
    parser.feed(text)
    parser.close()
    return parser


def check_report_html(text: str) -> list[str]:
    """What is wrong with a report page: no diagram, a diagram without its arrows, a missing
    or empty table, no invariant result, anything loaded from elsewhere. Empty when fine."""
    found = parse_report_html(text)
    problems = []
    if not found.diagrams:
        problems.append("no SVG sequence diagram (svg.sequence)")
    for n, diagram in enumerate(found.diagrams, 1):
        if diagram["arrows"] == 0:
            problems.append(f"diagram {n} has no SMS arrow (g.sms-arrow)")
        elif diagram["declared"] is not None and diagram["arrows"] != diagram["declared"]:
            problems.append(f"diagram {n} shows {diagram['arrows']} SMS arrows, not the {diagram['declared']} it declares")
    for table_id in REQUIRED_TABLES:
        if table_id not in found.tables:
            problems.append(f"table #{table_id} is missing")
        elif found.tables[table_id] == 0:
            problems.append(f"table #{table_id} has no rows")
    if not found.invariant_results:
        problems.append("no invariant result (PASS/FAIL) in table #invariants")
    problems += [f"loads something from elsewhere: {ref}" for ref in found.external]
    return problems


def check_png(data: bytes) -> list[str]:
    """What is wrong with a screenshot: not a PNG, no size, or one flat colour."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or len(data) < 33:
        return ["the screenshot is not a PNG file"]
    width, height = struct.unpack(">II", data[16:24])
    problems = [] if width and height else [f"the screenshot is {width}x{height} pixels"]
    idat = bytearray()
    pos = 8
    while pos + 8 <= len(data):
        length, chunk = struct.unpack(">I4s", data[pos : pos + 8])
        if chunk == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    try:
        pixels = zlib.decompress(bytes(idat))
    except zlib.error:
        return problems + ["the screenshot's pixel data is damaged"]
    if len(set(pixels)) < 4:  # filter-type bytes and one colour: nothing was drawn
        problems.append("the screenshot is blank (a flat colour)")
    return problems


# --- command line ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mpay.present.report",
        description="Write a run directory's report.html, or check a browser's rendering of one.",
    )
    parser.add_argument("run_dir", nargs="?", type=Path, help="run directory with summary.json and trace.jsonl")
    parser.add_argument("--check", type=Path, metavar="DOM", help="a DOM dumped by chromium --dump-dom")
    parser.add_argument("--screenshot", type=Path, metavar="PNG", help="with --check: the screenshot to check")
    args = parser.parse_args(argv)
    if args.check is not None:
        try:
            problems = check_report_html(args.check.read_text(encoding="utf-8"))
            if args.screenshot is not None:
                problems += check_png(args.screenshot.read_bytes())
        except OSError as exc:
            print(f"mpay.present.report: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
            return 2
        found = parse_report_html(args.check.read_text(encoding="utf-8"))
        for problem in problems:
            print(f"report check: {problem}", file=sys.stderr)
        if problems:
            return 1
        arrows = sum(d["arrows"] for d in found.diagrams)
        print(
            f"report check: ok: {len(found.diagrams)} sequence diagram(s) with {arrows} SMS arrows,"
            f" {len(found.tables)} tables, invariants {', '.join(found.invariant_results)}"
        )
        return 0
    if args.run_dir is None:
        parser.print_usage(sys.stderr)
        print("mpay.present.report: give a run directory, or --check DOM", file=sys.stderr)
        return 2
    summary_path = args.run_dir / "summary.json"
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except OSError as exc:
        print(f"mpay.present.report: cannot read {summary_path}: {exc.strerror} (run `mpay run` first)", file=sys.stderr)
        return 2
    except json.JSONDecodeError as exc:
        print(f"mpay.present.report: {summary_path} is not JSON: {exc}", file=sys.stderr)
        return 2
    path = write_report(args.run_dir / "report.html", summary, args.run_dir / "trace.jsonl")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
