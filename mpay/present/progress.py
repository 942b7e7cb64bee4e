"""A one-line progress display for runs that take longer than about a second.

``mpay run`` shows it on stderr, only when stderr is a terminal and only once a run has
taken more than :data:`SHOW_AFTER_S` of wall time, so short runs, pipes, logs and tests
see nothing. It counts finished transactions by listening to the trace: a ``transition``
of the payment center into a terminal state (settled, refunded, declined) is one more
transaction done. Dependency-free on purpose: one carriage-returned line is all it needs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from mpay.protocol.escrow import TERMINAL_STATES

if TYPE_CHECKING:
    from mpay.sim.world import World

#: wall seconds a run must take before the display appears
SHOW_AFTER_S = 1.0
#: at most this many redraws per wall second
REDRAWS_PER_S = 10
#: width of the bar, in characters
BAR_WIDTH = 30

_TERMINAL = frozenset(str(state) for state in TERMINAL_STATES)


class Progress:
    """Counts finished transactions of one run and redraws a line on ``stream``.

    ``enabled`` None means "when ``stream`` is a terminal". ``clock`` is injectable so
    tests drive it without sleeping.
    """

    def __init__(
        self,
        label: str,
        total: int = 0,
        stream: IO[str] | None = None,
        *,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        show_after_s: float = SHOW_AFTER_S,
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.clock = clock
        self.show_after_s = show_after_s
        self.done = 0
        self.initialized = False
        self.shown = False
        self._started = clock()
        self._last_draw = float("-inf")

    # --- wiring ---------------------------------------------------------------------------

    def attach(self, world: World) -> None:
        """Take the world's number of orders as the total and listen to its trace."""
        self.total = len(world.orders)
        world.tracer.listeners.append(self.on_event)

    def on_event(self, event: dict[str, Any]) -> None:
        """A trace listener: a terminal transition of the payment center is one more done."""
        kind = event.get("kind")
        if kind == "transition" and event.get("after") in _TERMINAL:
            self.advance()
        elif kind == "initialized":
            self.initialized = True
            self.tick()

    # --- counting and drawing -------------------------------------------------------------

    def advance(self, count: int = 1) -> None:
        self.done += count
        self.tick()

    def tick(self) -> None:
        """Redraw when enabled, late enough, and not redrawn within the last tenth of a second."""
        if not self.enabled:
            return
        now = self.clock()
        if now - self._started < self.show_after_s:
            return
        if now - self._last_draw < 1.0 / REDRAWS_PER_S:
            return
        self._last_draw = now
        self.stream.write("\r" + self.line(now) + "\x1b[K")
        self.stream.flush()
        self.shown = True

    def line(self, now: float | None = None) -> str:
        """The text of the display, e.g. ``workload: 412/1000 transactions [#####-----] 41%``."""
        elapsed = (now if now is not None else self.clock()) - self._started
        if not self.initialized and self.done == 0:
            return f"{self.label}: initializing (registering parties, binding cards)  {elapsed:.1f} s"
        total = max(self.total, self.done)
        fraction = self.done / total if total else 1.0
        filled = int(fraction * BAR_WIDTH)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        return (
            f"{self.label}: {self.done}/{total} transactions finished [{bar}] "
            f"{fraction * 100:3.0f}%  {elapsed:.1f} s"
        )

    def close(self) -> None:
        """End the line if anything was drawn, so the next output starts on a fresh line."""
        if self.shown:
            self.stream.write("\r" + self.line() + "\x1b[K\n")
            self.stream.flush()
            self.shown = False
