"""Faults: crashes of the payment center and the bank at any protocol step, restarts at a
time, and clock skew between parties.

A crash point names a party, the step it is taking and where in the step it dies:

* ``"after"``: once the step is done (state committed, SMS sent) -- the restarted party
  must carry on from its database as if nothing happened;
* ``"before_commit"``: inside the step's SQL transaction, so it rolls back: the SMS that
  started the step is lost with it, and the protocol's timeouts decide;
* ``"before_send"``: after the commit, before the step's SMS go out: the SMS were sealed
  inside the step's transaction and kept in the party's outbox, so the restarted party
  sends them (see docs/threat-model.md).

A step is ``"message:<type>"`` (the party opened an SMS of that type: every handler) or
``"transition:<event>"`` (the payment center's escrow machine took that event, timer
lapses included). The crash is a :class:`SimulatedCrash` raised from a wrapper around the
party's ``StateStore`` (before commit) or ``Transport`` (before send); the party is then
restarted from its database by the world, when the kernel is idle.

Clock skew: :class:`SkewedClock` wraps the kernel (the ``Clock`` port) and adds an offset
to the absolute time a party reads (``now_unix_s``: envelope send times, certificate
validity, the replay window), optionally from some moment on (a clock that jumps).
Timers keep virtual time: skew changes what a party believes the date is, not how long
its timeouts last.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from mpay.actors.ports import SendMeta, StateStore, Transport

if TYPE_CHECKING:
    from mpay.sim.kernel import Kernel
    from mpay.sim.trace import TraceWriter

#: the parties that can crash and restart (they keep their state in a database)
RESTARTABLE = ("mpc", "bank")
#: crash points one plan may hold (a named limit)
MAX_CRASH_POINTS = 1_000
#: largest clock offset a scenario may give a party, seconds (a day)
MAX_CLOCK_SKEW_S = 86_400.0

CrashWhere = Literal["after", "before_commit", "before_send"]


class FaultHost(Protocol):
    """What a fault plan needs of the world it is installed in, and no more: the kernel to
    schedule on, the trace to watch, and the way to reopen a party from its database."""

    kernel: Kernel
    tracer: TraceWriter

    def forget_uncommitted(self, party_id: str) -> None: ...

    async def restart_party(self, party_id: str) -> None: ...


class SimulatedCrash(Exception):
    """A party's process dies here (fault injection); the world restarts it."""


class _QuietCrashes(logging.Filter):
    """Keeps the kernel's log free of the crashes we inject on purpose (they are in the
    trace as ``restarted`` events and in ``summary.security.faults``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, SimulatedCrash)


_QUIET = _QuietCrashes()


class FaultError(Exception):
    """A fault plan that cannot be carried out (an unknown party or step)."""


# --- clock skew ---------------------------------------------------------------------------------


@dataclass
class SkewedClock:
    """The kernel's clock as a party with a wrong watch reads it (implements ``Clock``)."""

    kernel: Kernel
    offset_s: float
    #: virtual time from which the offset applies (None: always)
    from_s: float | None = None

    def now_s(self) -> float:
        return self.kernel.now_s()

    def now_unix_s(self) -> float:
        base = self.kernel.now_unix_s()
        if self.from_s is not None and self.kernel.now_s() < self.from_s:
            return base
        return base + self.offset_s

    def call_at(self, at_s: float, owner: str, name: str) -> None:
        self.kernel.call_at(at_s, owner, name)

    def cancel(self, owner: str, name: str) -> None:
        self.kernel.cancel(owner, name)


# --- crash points -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrashPoint:
    """Crash ``party`` at its ``nth`` step matching ``on``, at ``where`` in that step."""

    party: str
    on: str
    where: CrashWhere = "after"
    nth: int = 1
    #: with ``before_send``: let this many of the step's SMS out first (Python API only)
    sends_first: int = 0

    def __post_init__(self) -> None:
        if self.party not in RESTARTABLE:
            raise FaultError(f"crash: party must be one of {RESTARTABLE}, not {self.party!r}")
        kind, _, name = self.on.partition(":")
        if kind not in ("message", "transition") or not name:
            raise FaultError(f"crash: on must be 'message:<type>' or 'transition:<event>', not {self.on!r}")
        if kind == "transition" and self.party != "mpc":
            raise FaultError("crash: only the payment center has escrow transitions")
        if self.where not in ("after", "before_commit", "before_send"):
            raise FaultError(f"crash: where must be after, before_commit or before_send, not {self.where!r}")
        if self.nth < 1:
            raise FaultError("crash: nth counts from 1")

    def matches(self, event: dict[str, Any]) -> bool:
        if event.get("actor") != self.party:
            return False
        kind, _, name = self.on.partition(":")
        if kind == "message":
            return event["kind"] == "sms_opened" and event.get("type") == name
        return event["kind"] == "transition" and event.get("event") == name


@dataclass(frozen=True)
class TimedRestart:
    """Crash and restart ``party`` ``at_s`` seconds after the orders start (between steps)."""

    party: str
    at_s: float

    def __post_init__(self) -> None:
        if self.party not in RESTARTABLE:
            raise FaultError(f"restart: party must be one of {RESTARTABLE}, not {self.party!r}")


@dataclass(frozen=True)
class ClockSkew:
    """``party``'s clock is ``offset_s`` off (from ``from_s`` after the orders start, or always)."""

    party: str
    offset_s: float
    from_s: float | None = None

    def __post_init__(self) -> None:
        if abs(self.offset_s) > MAX_CLOCK_SKEW_S:
            raise FaultError(f"clock skew of {self.offset_s} s is over the limit of {MAX_CLOCK_SKEW_S} s")


class _Armed:
    """Which party dies at its next store write or send."""

    def __init__(self) -> None:
        self.before_commit: set[str] = set()
        self.before_send: set[str] = set()
        self.sends_first: dict[str, int] = {}
        self.crashed: set[str] = set()


class FaultyStore:
    """A ``StateStore`` that raises :class:`SimulatedCrash` at the first write after the
    plan armed it: inside the step's SQL transaction, which therefore rolls back."""

    def __init__(self, inner: StateStore, party_id: str, armed: _Armed) -> None:
        self.inner = inner
        self.party_id = party_id
        self.armed = armed

    def _crash_if_armed(self, what: str) -> None:
        if self.party_id in self.armed.before_commit:
            self.armed.before_commit.discard(self.party_id)
            self.armed.crashed.add(self.party_id)
            raise SimulatedCrash(f"{self.party_id} crashed before committing ({what})")

    async def put(self, table: str, key: str, value: dict) -> None:
        self._crash_if_armed(f"{table}/{key}")
        await self.inner.put(table, key, value)

    async def put_many(self, items: list[tuple[str, str, dict]]) -> None:
        if items:
            self._crash_if_armed(f"{items[0][0]}/{items[0][1]}")
        await self.inner.put_many(items)

    async def delete(self, table: str, key: str) -> None:
        await self.inner.delete(table, key)

    async def delete_many(self, table: str, keys: list[str]) -> None:
        await self.inner.delete_many(table, keys)

    async def load(self, table: str) -> dict[str, dict]:
        return await self.inner.load(table)

    async def outbox_add(self, entries: list[tuple[int, str, str, str | None, bytes]]) -> None:
        if entries:
            self._crash_if_armed(f"outbox/{entries[0][0]}")
        await self.inner.outbox_add(entries)

    async def outbox_remove(self, seqs: list[int]) -> None:
        await self.inner.outbox_remove(seqs)

    async def outbox_load(self) -> list[tuple[int, str, str, str | None, bytes]]:
        return await self.inner.outbox_load()


class FaultyTransport:
    """A ``Transport`` that raises :class:`SimulatedCrash` at a party's first send after
    the plan armed it (the step committed; this SMS and the rest of the step's are lost)."""

    def __init__(self, inner: Transport, armed: _Armed) -> None:
        self.inner = inner
        self.armed = armed

    def send(self, sender_id: str, recipient_id: str, envelope: bytes, meta: SendMeta) -> None:
        if sender_id in self.armed.before_send and self.armed.sends_first.get(sender_id, 0) > 0:
            self.armed.sends_first[sender_id] -= 1
        elif sender_id in self.armed.before_send:
            self.armed.before_send.discard(sender_id)
            self.armed.crashed.add(sender_id)
            raise SimulatedCrash(f"{sender_id} crashed before sending {meta.message_type}")
        self.inner.send(sender_id, recipient_id, envelope, meta)


@dataclass
class FaultPlan:
    """Every fault of a run; :meth:`install` wires it into a world being built."""

    crashes: Sequence[CrashPoint] = ()
    restarts: Sequence[TimedRestart] = ()
    skews: Sequence[ClockSkew] = ()
    #: crashes carried out, as (party, on, where, virtual time)
    log: list[tuple[str, str, str, float]] = field(default_factory=list)
    _armed: _Armed = field(default_factory=_Armed, repr=False)
    _counts: dict[CrashPoint, int] = field(default_factory=dict, repr=False)
    _world: FaultHost | None = field(default=None, repr=False)
    _skewed: list[tuple[SkewedClock, ClockSkew]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if len(self.crashes) > MAX_CRASH_POINTS:
            raise FaultError(f"at most {MAX_CRASH_POINTS} crash points")
        self.crashes = tuple(self.crashes)
        self.restarts = tuple(self.restarts)
        self.skews = tuple(self.skews)

    @property
    def empty(self) -> bool:
        return not (self.crashes or self.restarts or self.skews)

    # --- used by World.build -------------------------------------------------------------

    def clock_for(self, party_id: str, kernel: Kernel) -> Any:
        """The party's clock: the kernel, or a skewed view of it. ``from_s`` counts from the
        start until the world knows when the orders start (see :meth:`start_orders`)."""
        for skew in self.skews:
            if skew.party == party_id:
                clock = SkewedClock(kernel, skew.offset_s, skew.from_s)
                self._skewed.append((clock, skew))
                return clock
        return kernel

    def store_for(self, party_id: str, store: StateStore) -> StateStore:
        if any(c.party == party_id for c in self.crashes):
            return FaultyStore(store, party_id, self._armed)
        return store

    def transport_for(self, party_id: str, transport: Transport) -> Transport:
        if any(c.party == party_id for c in self.crashes):
            return FaultyTransport(transport, self._armed)
        return transport

    def install(self, world: FaultHost) -> None:
        """Watch the trace for the crash points (once every party exists)."""
        self._world = world
        if self.crashes:
            world.tracer.listeners.append(self._on_event)
            logging.getLogger("mpay.sim.kernel").addFilter(_QUIET)

    def start_orders(self, origin_s: float) -> None:
        """The orders start now: schedule the timed restarts, anchor the clock jumps."""
        world = self._world
        assert world is not None
        for clock, skew in self._skewed:
            if skew.from_s is not None:
                clock.from_s = origin_s + skew.from_s
        for restart in self.restarts:
            world.kernel.schedule(origin_s + restart.at_s, self._restart_now, restart.party, "at_time", "restart")

    # --- the crash machinery -------------------------------------------------------------

    def _on_event(self, event: dict[str, Any]) -> None:
        for point in self.crashes:
            if not point.matches(event):
                continue
            count = self._counts.get(point, 0) + 1
            self._counts[point] = count
            if count != point.nth:
                continue
            if point.where == "before_commit":
                self._armed.before_commit.add(point.party)
            elif point.where == "before_send":
                self._armed.before_send.add(point.party)
                self._armed.sends_first[point.party] = point.sends_first
            world = self._world
            assert world is not None
            # runs once the kernel is idle: after the step finished (or died)
            world.kernel.schedule(world.kernel.now_s(), self._restart_now, point.party, point.on, point.where)

    def _restart_now(self, party: str, on: str, where: str) -> None:
        world = self._world
        assert world is not None
        armed = self._armed
        died = party in armed.crashed or where in ("after", "restart")
        armed.before_commit.discard(party)
        armed.before_send.discard(party)
        armed.crashed.discard(party)
        if not died:  # the step ended without writing or sending: nothing to crash in
            self.log.append((party, on, f"{where} (not reached)", world.kernel.now_s()))
            return
        self.log.append((party, on, where, world.kernel.now_s()))
        if where == "before_commit":
            world.forget_uncommitted(party)
        world.kernel.spawn(world.restart_party(party), owner=party)

    def report(self) -> dict[str, Any]:
        return {
            "crashes": [
                {"party": party, "on": on, "where": where, "t_s": round(t_s, 3)}
                for party, on, where, t_s in self.log
            ],
            "clock_skew_s": {skew.party: skew.offset_s for skew in self.skews},
        }


def is_simulated_crash(exc: BaseException) -> bool:
    return isinstance(exc, SimulatedCrash)


__all__ = [
    "MAX_CLOCK_SKEW_S",
    "RESTARTABLE",
    "ClockSkew",
    "CrashPoint",
    "FaultError",
    "FaultPlan",
    "FaultyStore",
    "FaultyTransport",
    "SimulatedCrash",
    "SkewedClock",
    "TimedRestart",
    "is_simulated_crash",
]
