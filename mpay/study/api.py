"""The public scripting API: build scenarios in Python, run them, collect a study's results.

A scenario script is a Python file run with ``mpay run FILE.py``. It defines one (or both)
of two entry points:

``def scenario() -> Scenario``
    One run, exactly like a TOML scenario: ``mpay run`` writes ``trace.jsonl`` and
    ``summary.json`` into the run directory and exits 0 when every invariant holds and every
    expectation is met, 1 when not. ``mpay validate FILE.py`` builds and checks it.

``def study(out_dir: Path) -> dict``
    Many runs (say, one per cipher suite), results of its own: a :class:`Study` writes
    ``study.json`` and ``study.csv`` into ``out_dir`` and prints a table. ``mpay run`` exits
    1 when the returned dict has a non-empty ``"failures"`` list, 0 otherwise.

When a script defines both, ``mpay run`` runs ``study()``; ``scenario()`` remains what
``mpay validate`` checks (and what other scripts can import). Either function may take
keyword parameters with defaults; ``mpay run FILE.py --param transactions=40`` passes them
(and ``--seed N`` passes ``seed=N`` when the function takes ``seed``).

Everything a script needs is importable from here::

    from mpay.study.api import ScenarioBuilder, Study, item, run

Scenarios built in code are validated by the same schema as TOML files
(``docs/scenarios.md``), with the same one-line errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import csv
import importlib.util
import inspect
import io
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from mpay.present.progress import Progress
from mpay.study.runner import RunResult, format_summary, run_scenario
from mpay.schema.scenario import (
    CustomerBehaviourSpec,
    CustomerSpec,
    ExpectSpec,
    ItemSpec,
    LinkSpec,
    MerchantBehaviourSpec,
    MerchantSpec,
    OrderSpec,
    Scenario,
    ScenarioError,
    WindowsSpec,
    load_scenario,
    parse_scenario,
)

__all__ = [
    "CustomerBehaviourSpec",
    "CustomerSpec",
    "ExpectSpec",
    "ItemSpec",
    "LinkSpec",
    "MerchantBehaviourSpec",
    "MerchantSpec",
    "OrderSpec",
    "RunResult",
    "Scenario",
    "ScenarioBuilder",
    "ScenarioError",
    "ScriptError",
    "Study",
    "call_entry_point",
    "format_summary",
    "format_table",
    "item",
    "load_scenario_file",
    "load_script",
    "parse_params",
    "run",
    "scenario_from_script",
]

#: the entry points ``mpay run`` looks for in a script
SCENARIO_ENTRY = "scenario"
STUDY_ENTRY = "study"
#: at most this many runs in one :class:`Study` (a study is a handful of comparisons)
MAX_STUDY_RUNS = 10_000
#: set this environment variable to see the full traceback of an error inside a script
TRACEBACK_ENV = "MPAY_TRACEBACK"
#: at most this many ``--param`` values
MAX_PARAMS = 32

#: whether :func:`run` and :meth:`Study.run` may draw a progress line (``--quiet`` turns it off)
progress_enabled: contextvars.ContextVar[bool] = contextvars.ContextVar("progress_enabled", default=True)
#: the script being run, named in the errors of scenarios it builds
_current_source: contextvars.ContextVar[str | None] = contextvars.ContextVar("_current_source", default=None)


class ScriptError(ScenarioError):
    """A scenario script that cannot be used: one line naming the file and what to fix."""


# --- building scenarios in code ---------------------------------------------------------------


def item(name: str, quantity: int, unit_price_fen: int, specification: str = "standard") -> dict[str, Any]:
    """One order line: ``item("tea", 2, 12_000)`` is two teas at 120.00 CNY each."""
    return {
        "name": name,
        "quantity": quantity,
        "unit_price_fen": unit_price_fen,
        "specification": specification,
    }


def _plain(value: Any) -> Any:
    """A spec object (pydantic model) or a mapping, as plain data for validation."""
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, Mapping):
        return {key: _plain(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(inner) for inner in value]
    return value


class ScenarioBuilder:
    """Builds a :class:`~mpay.schema.scenario.Scenario` step by step; every method returns ``self``.

    Nothing is checked until :meth:`build`, which validates the whole scenario with the
    TOML schema and raises :class:`~mpay.schema.scenario.ScenarioError` with one line naming the
    field (``customers.0.wallet_fen: ...``). Behaviours, network conditions and windows are
    given as keyword arguments named like the TOML fields, or as the spec objects.
    """

    def __init__(
        self,
        name: str,
        *,
        suite: str = "rsa2048",
        seed: int = 1,
        description: str = "",
        **fields: Any,
    ) -> None:
        self._data: dict[str, Any] = {
            "name": name,
            "suite": suite,
            "seed": seed,
            "description": description,
            **_plain(fields),
        }
        self._data.setdefault("customers", [])
        self._data.setdefault("merchants", [])
        self._data.setdefault("orders", [])

    def customer(
        self,
        id: str,
        *,
        wallet_fen: int = 0,
        card_fen: int = 0,
        behaviour: CustomerBehaviourSpec | Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> ScenarioBuilder:
        """A customer with a phone-fee wallet and a bank card (both in fen)."""
        spec = {"id": id, "wallet_fen": wallet_fen, "card_fen": card_fen, **_plain(fields)}
        if behaviour is not None:
            spec["behaviour"] = _plain(behaviour)
        self._data["customers"].append(spec)
        return self

    def merchant(
        self,
        id: str,
        *,
        wallet_fen: int = 0,
        behaviour: MerchantBehaviourSpec | Mapping[str, Any] | None = None,
    ) -> ScenarioBuilder:
        """A merchant with a wallet at the payment center (in fen)."""
        spec: dict[str, Any] = {"id": id, "wallet_fen": wallet_fen}
        if behaviour is not None:
            spec["behaviour"] = _plain(behaviour)
        self._data["merchants"].append(spec)
        return self

    def order(
        self,
        customer: str,
        merchant: str,
        *items: Mapping[str, Any] | ItemSpec,
        at_s: float = 0.0,
        customer_behaviour: CustomerBehaviourSpec | Mapping[str, Any] | None = None,
        merchant_behaviour: MerchantBehaviourSpec | Mapping[str, Any] | None = None,
    ) -> ScenarioBuilder:
        """``customer`` buys ``items`` (see :func:`item`) from ``merchant`` at ``at_s``
        seconds after initialization; the behaviours, when given, apply to this order only."""
        spec: dict[str, Any] = {
            "customer": customer,
            "merchant": merchant,
            "at_s": at_s,
            "items": [_plain(line) for line in items],
        }
        if customer_behaviour is not None:
            spec["customer_behaviour"] = _plain(customer_behaviour)
        if merchant_behaviour is not None:
            spec["merchant_behaviour"] = _plain(merchant_behaviour)
        self._data["orders"].append(spec)
        return self

    def workload(self, **fields: Any) -> ScenarioBuilder:
        """A generated workload, fields as in the TOML ``[workload]`` section."""
        self._data["workload"] = _plain(fields)
        return self

    def network(self, link: LinkSpec | None = None, **fields: Any) -> ScenarioBuilder:
        """Network conditions: ``latency_s``, ``jitter_mean_s``, ``loss``, ``duplicate``."""
        self._data["network"] = _plain(link) if link is not None else _plain(fields)
        return self

    def windows(self, **fields: Any) -> ScenarioBuilder:
        """Protocol windows in seconds: ``confirm_s``, ``ship_s``, ``accept_s``, ``refund_s``."""
        self._data["windows"] = _plain(fields)
        return self

    def payment_center(self, **fields: Any) -> ScenarioBuilder:
        """``dispute_decision``, ``points_per_yuan``, ``fen_per_100_points``."""
        self._data["payment_center"] = _plain(fields)
        return self

    def expect(self, **fields: Any) -> ScenarioBuilder:
        """What the run must show, fields as in the TOML ``[expect]`` section."""
        self._data["expect"] = _plain(fields)
        return self

    def set(self, **fields: Any) -> ScenarioBuilder:
        """Set top-level fields: ``suite``, ``seed``, ``start_unix_s``, ``description``..."""
        self._data.update(_plain(fields))
        return self

    def data(self) -> dict[str, Any]:
        """The scenario as plain data (what a TOML file would hold)."""
        return copy.deepcopy(self._data)

    def build(self, source: str | None = None) -> Scenario:
        """The validated scenario, or :class:`ScenarioError` naming the field at fault."""
        if source is None:
            source = _current_source.get() or f"scenario {self._data.get('name')!r}"
        return parse_scenario(self.data(), source)


# --- running -------------------------------------------------------------------------------


def run(
    scenario: Scenario,
    out_dir: str | Path | None = None,
    *,
    progress: bool | None = None,
    speed: float | None = None,
    ledger_inline: bool = True,
) -> RunResult:
    """Run ``scenario`` to the end, synchronously (for scripts and notebooks without a loop).

    With ``out_dir`` the run writes ``trace.jsonl`` and ``summary.json`` there, like
    ``mpay run``; without, nothing touches the disk. ``progress`` None shows a progress
    line on a terminal for runs longer than a second (unless ``--quiet``). ``speed`` runs in
    real time, ``speed`` virtual seconds per wall second (live demos). Inside a running
    event loop use ``await mpay.study.runner.run_scenario(...)`` instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            "mpay.study.run() cannot be called from a running event loop;"
            " use `await mpay.study.runner.run_scenario(scenario, run_dir)` there"
        )
    show = progress_enabled.get() if progress is None else progress
    display = Progress(scenario.name, enabled=None if show else False)
    run_dir = Path(out_dir) if out_dir is not None else None
    try:
        return asyncio.run(run_scenario(
            scenario, run_dir, on_world=display.attach, speed=speed, ledger_inline=ledger_inline
        ))
    finally:
        display.close()


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as an aligned plain-text table (numbers right-aligned, floats to 2 places)."""
    if not rows:
        return "(no rows)"
    columns = list(columns) if columns is not None else _columns(rows)

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.2f}"
        return "-" if value is None else str(value)

    cells = [[cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    numeric = [
        all(isinstance(row.get(column), (int, float)) and not isinstance(row.get(column), bool) for row in rows)
        for column in columns
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if is_number else value.ljust(width)
            for value, width, is_number in zip(values, widths, numeric)
        ]
        return "  ".join(parts).rstrip()

    out = [line(columns), line(["-" * width for width in widths])]
    out += [line(values) for values in cells]
    return "\n".join(out)


class Study:
    """A multi-run study: runs scenarios into ``out_dir/runs/<label>``, keeps result rows,
    writes ``study.json`` and ``study.csv`` and prints a table.

    Every run's failed invariants and unmet expectations are collected in ``failures``
    (``"<label>: <failure>"``); ``mpay run`` exits 1 when there are any.
    """

    def __init__(self, name: str, out_dir: str | Path, *, keep_runs: bool = True) -> None:
        self.name = name
        self.out_dir = Path(out_dir)
        self.keep_runs = keep_runs
        self.rows: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self.results: dict[str, RunResult] = {}

    def run(self, scenario: Scenario, label: str | None = None) -> RunResult:
        """Run one scenario of the study (into ``out_dir/runs/<label>`` when keeping runs)."""
        label = label or scenario.name
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,80}", label):
            raise ValueError(f"run label {label!r}: use letters, digits, '_', '-' and '.' only")
        if label in self.results:
            raise ValueError(f"run label {label!r} is used twice in study {self.name!r}")
        if len(self.results) >= MAX_STUDY_RUNS:
            raise ValueError(f"study {self.name!r}: more than {MAX_STUDY_RUNS} runs")
        run_dir = self.out_dir / "runs" / label if self.keep_runs else None
        result = run(scenario, run_dir)
        self.results[label] = result
        self.failures += [f"{label}: {failure}" for failure in result.failures]
        return result

    def add(self, **row: Any) -> dict[str, Any]:
        """One row of results (column name -> value); the first row fixes the columns."""
        self.rows.append(row)
        return row

    def table(self, columns: Sequence[str] | None = None) -> str:
        return format_table(self.rows, columns)

    def save(self, *, extra: Mapping[str, Any] | None = None, print_table: bool = True) -> dict[str, Any]:
        """Write ``study.json`` and ``study.csv``, print the table; return what was written."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        result: dict[str, Any] = {
            "study": self.name,
            "rows": self.rows,
            "runs": {label: str(res.run_dir) if res.run_dir else None for label, res in self.results.items()},
            "failures": self.failures,
            **(dict(extra) if extra else {}),
        }
        (self.out_dir / "study.json").write_text(
            json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        columns = _columns(self.rows)
        with (self.out_dir / "study.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)
        if print_table:
            print(self.table())
            if self.failures:
                print(f"{len(self.failures)} failure(s):")
                for failure in self.failures:
                    print(f"  - {failure}")
            print(f"wrote {self.out_dir / 'study.json'} and {self.out_dir / 'study.csv'}")
        return result


def _columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        for column in row:
            if column not in columns:
                columns.append(column)
    return columns


# --- scripts -------------------------------------------------------------------------------


def _where(exc: BaseException, path: Path) -> str:
    """`` at line N`` of the deepest frame inside the script, when there is one."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f" at line {exc.lineno}"
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if Path(frame.filename) == path]
    return f" at line {frames[-1].lineno}" if frames else ""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_script(path: str | Path) -> ModuleType:
    """Import a scenario script from its path; :class:`ScriptError` (one line) when it cannot be."""
    path = Path(path)
    if not path.is_file():
        raise ScriptError(f"{path}: no such file")
    resolved = path.resolve()
    module_name = "mpay_script_" + re.sub(r"\W", "_", resolved.stem)
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise ScriptError(f"{path}: cannot be imported as a Python file; name it *.py")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(module_name)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except ScenarioError as exc:
        raise ScriptError(f"{path}: while importing: {exc}") from None
    except (Exception, SystemExit) as exc:  # a user's script: any error becomes one line
        if os.environ.get(TRACEBACK_ENV):
            raise
        raise ScriptError(
            f"{path}: error while importing{_where(exc, resolved)}: {_one_line(exc)}; fix the script"
        ) from None
    finally:
        if previous is not None:
            sys.modules[module_name] = previous
        else:
            sys.modules.pop(module_name, None)
    return module


def entry_points(module: ModuleType) -> tuple[Callable[..., Any] | None, Callable[..., Any] | None]:
    """The script's ``scenario`` and ``study`` functions (None when not defined)."""
    scenario_fn = getattr(module, SCENARIO_ENTRY, None)
    study_fn = getattr(module, STUDY_ENTRY, None)
    return (scenario_fn if callable(scenario_fn) else None, study_fn if callable(study_fn) else None)


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """``["transactions=40", "suite=compact"]`` -> ``{"transactions": 40, "suite": "compact"}``.

    Values read as int, then float, then ``true``/``false``, else text.
    """
    if len(pairs) > MAX_PARAMS:
        raise ScriptError(f"--param: at most {MAX_PARAMS} parameters")
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ScriptError(f"--param {pair!r}: write it as NAME=VALUE, e.g. --param transactions=40")
        value: Any = text
        for convert in (int, float):
            try:
                value = convert(text)
                break
            except ValueError:
                continue
        else:
            if text.lower() in ("true", "false"):
                value = text.lower() == "true"
        params[name] = value
    return params


def call_entry_point(
    path: str | Path, function: Callable[..., Any], *args: Any, params: Mapping[str, Any] | None = None
) -> Any:
    """Call a script's entry point; a user error inside it becomes one :class:`ScriptError` line.

    Parameters the function does not take are refused with the list of those it does.
    """
    path = Path(path)
    name = getattr(function, "__name__", "entry point")
    params = dict(params or {})
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        signature = None
    if signature is not None and params:
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
        known = [
            p.name
            for p in signature.parameters.values()
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        ][len(args) :]
        unknown = [key for key in params if key not in known]
        if unknown and not accepts_any:
            takes = ", ".join(known) or "no parameters"
            raise ScriptError(f"{path}: {name}() has no parameter {unknown[0]!r}; it takes: {takes}")
    token = _current_source.set(f"{path}: {name}()")
    try:
        return function(*args, **params)
    except ScenarioError as exc:
        raise ScriptError(str(exc)) from None
    except Exception as exc:  # a user's script: any error becomes one line
        if os.environ.get(TRACEBACK_ENV):
            raise
        raise ScriptError(
            f"{path}: {name}() failed{_where(exc, path.resolve())}: {_one_line(exc)}"
        ) from None
    finally:
        _current_source.reset(token)


def scenario_from_script(
    path: str | Path, module: ModuleType | None = None, params: Mapping[str, Any] | None = None
) -> Scenario:
    """Call the script's ``scenario()`` and check that it returned a :class:`Scenario`."""
    path = Path(path)
    module = module if module is not None else load_script(path)
    scenario_fn, _ = entry_points(module)
    if scenario_fn is None:
        raise ScriptError(
            f"{path}: defines no scenario(); add `def scenario() -> Scenario` (see docs/tutorial.md)"
        )
    scenario = call_entry_point(path, scenario_fn, params=params)
    if not isinstance(scenario, Scenario):
        raise ScriptError(
            f"{path}: scenario() returned {type(scenario).__name__}, not a Scenario;"
            " return ScenarioBuilder(...).build() (see docs/tutorial.md)"
        )
    return scenario


def load_scenario_file(path: str | Path) -> Scenario:
    """A scenario from a ``.toml`` file or from a script's ``scenario()`` (for ``mpay validate``)."""
    path = Path(path)
    if path.suffix == ".py":
        module = load_script(path)
        scenario_fn, study_fn = entry_points(module)
        if scenario_fn is None and study_fn is None:
            raise ScriptError(no_entry_point_message(path))
        if scenario_fn is None:
            raise ScriptError(
                f"{path}: defines study() but no scenario(); run it with `mpay run {path}`"
                " (a study is checked by running it)"
            )
        return scenario_from_script(path, module)
    return load_scenario(path)


def no_entry_point_message(path: str | Path) -> str:
    return f"{path}: defines neither scenario() nor study(); add one (see docs/tutorial.md)"


@contextlib.contextmanager
def quiet() -> Any:
    """Silence a study: no progress lines, and its printed table goes nowhere."""
    token = progress_enabled.set(False)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        progress_enabled.reset(token)
