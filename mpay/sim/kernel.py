"""Virtual time: a discrete-event kernel that moves the clock only when every actor is idle.

Each actor has a bounded mailbox and a handler run on one item at a time. The kernel keeps
two heaps of timed events (network deliveries; timers and scheduled posts) ordered by
``(at_s, sequence number)``. :meth:`Kernel.run` repeats:

1. wait until no mailbox item is in flight (queued, or its handler still running,
   including a handler awaiting ledger I/O in a thread);
2. pop the next event, set the clock to its time, run its callback (which typically puts
   one item in a mailbox);

so a 10-day window costs no wall time, and one event is handled completely before the
next: the same scenario and seed give the same order of everything.

Performance: most handlers finish without ever waiting (a concatenated SMS part that only
goes into the reassembler, a timer that sends one SMS). The kernel therefore starts a
handler's coroutine itself, right after the event that delivered its item, and only when
the coroutine really suspends (ledger I/O in a thread, a lock) does it hand the rest to an
asyncio task, which goes on with the actor's next items when it is done. That saves two
event-loop round trips per SMS part; the order of handling is the same as with one
long-lived task per actor. A handler may also do the whole work in the call and return
``None`` instead of a coroutine (an actor does that for an SMS part that only goes into
its reassembler), and an event nobody will cancel (:meth:`Kernel.fire_at`, every SMS
part's arrival) needs no handle. An event whose only work is one delivery (an SMS part's
arrival: :meth:`Kernel.deliver_last`) calls the handler itself when nothing else is in
flight, instead of leaving the item to the drain that would run right after it.

With ``speed`` set (real-time mode, for live demos) the kernel also sleeps before each
event until the wall clock reaches ``event time / speed``; the order of events, and so
the trace, is the same as in virtual mode. The clock reads the time of the event being
handled, in both modes.

A handler that raises is *reported, not fatal*: the exception is logged and kept in
:attr:`Kernel.errors`, the actor goes on with its next item, and :meth:`Kernel.run`
raises :class:`HandlerFailed` at its end (unless ``raise_errors=False``).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from mpay.actors.ports import TimerFired

__all__ = [
    "DEFAULT_MAILBOX_SIZE",
    "DEFAULT_STALL_TIMEOUT_S",
    "DuplicateActor",
    "EventHandle",
    "HandlerError",
    "HandlerFailed",
    "Kernel",
    "KernelError",
    "KernelStalled",
    "KernelStats",
    "TimerFired",
    "UnknownActor",
]

log = logging.getLogger(__name__)

#: default bound of an actor's mailbox (items)
DEFAULT_MAILBOX_SIZE = 64
#: wall seconds without any handler finishing, while waiting for idle, before giving up
DEFAULT_STALL_TIMEOUT_S = 300.0

_INF = float("inf")

#: an actor's handler: a coroutine to run for the item, or ``None`` when the call itself
#: handled it (most SMS parts only go into a reassembler: no coroutine to create and run)
Handler = Callable[[object], Coroutine[Any, Any, None] | None]


class KernelError(Exception):
    """Base of the kernel's errors (programming errors in wiring a world, or a stall)."""


class UnknownActor(KernelError, KeyError):
    """An item or a timer for an actor id that was never added."""


class DuplicateActor(KernelError):
    """``add_actor`` twice with the same id."""


class KernelStalled(KernelError):
    """Handlers stayed busy for ``stall_timeout_s`` wall seconds without finishing one
    item: most likely a handler awaits something only another actor could provide."""


@dataclass(frozen=True, slots=True)
class HandlerError:
    """One exception raised by an actor's handler."""

    actor_id: str
    item: object
    at_s: float
    exception: BaseException


class HandlerFailed(KernelError):
    """Raised at the end of :meth:`Kernel.run` when handlers raised; ``errors`` has them all."""

    def __init__(self, errors: list[HandlerError]) -> None:
        first = errors[0]
        super().__init__(
            f"{len(errors)} handler error(s); first: actor {first.actor_id!r} at"
            f" t={first.at_s:g}s on {type(first.item).__name__}:"
            f" {type(first.exception).__name__}: {first.exception}"
        )
        self.errors = list(errors)


@dataclass(slots=True)
class KernelStats:
    """Counters of a kernel's life; ``mailbox_full`` items were dropped (overload)."""

    events: int = 0
    delivered: int = 0
    handled: int = 0
    timers_fired: int = 0
    mailbox_full: int = 0
    handler_errors: int = 0


#: an entry of the kernel's heap: ``[at_s, seq, callback or None (cancelled), args]``; a
#: list, so that cancelling can change it in place (it stays in the heap, lazily)
_Event = list

_AT_S, _CALLBACK, _ARGS = 0, 2, 3


class EventHandle:
    """A scheduled event; :meth:`cancel` makes it a no-op (it stays in the heap, lazily)."""

    __slots__ = ("_event",)

    def __init__(self, event: _Event) -> None:
        self._event = event

    @property
    def at_s(self) -> float:
        return self._event[_AT_S]

    @property
    def callback(self) -> Callable[..., None] | None:
        return self._event[_CALLBACK]

    @property
    def args(self) -> tuple:
        return self._event[_ARGS]

    def cancel(self) -> None:
        self._event[_CALLBACK] = None
        self._event[_ARGS] = ()

    @property
    def cancelled(self) -> bool:
        return self._event[_CALLBACK] is None


class _Actor:
    __slots__ = (
        "actor_id", "handler", "mailbox", "mailbox_size", "task", "mailbox_full", "ready", "started"
    )

    def __init__(self, actor_id: str, handler: Handler, mailbox_size: int) -> None:
        self.actor_id = actor_id
        self.handler = handler
        #: a bounded FIFO with one reader (the actor); cheaper than asyncio.Queue
        self.mailbox: deque[object] = deque()
        self.mailbox_size = mailbox_size
        #: the task finishing a handler that suspended (None: the actor is not waiting)
        self.task: asyncio.Task[None] | None = None
        self.mailbox_full = 0
        #: in the kernel's ready queue
        self.ready = False
        #: the coroutine :meth:`Kernel.deliver_last`'s call of the handler returned for the
        #: item at the head of the mailbox: the drain starts it instead of calling the handler
        self.started: Coroutine[Any, Any, None] | None = None


class _Resume:
    """Awaitable that goes on with a coroutine the kernel already started and that
    suspended on ``first`` (what ``yield from`` would do, in a task of its own)."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, None], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Any:
        coro = self.coro
        value = self.first
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # cancellation and friends go to the handler
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


class Kernel:
    """The discrete-event kernel; implements ``actors.ports.Clock``.

    ``epoch_unix_s`` is the absolute time of virtual second 0. ``speed`` is ``None`` for
    pure virtual time, or virtual seconds per wall second (real-time mode, e.g. 1.0 or
    60.0). ``stall_timeout_s`` (wall seconds, ``None`` to disable) guards against a
    handler that never returns.
    """

    def __init__(
        self,
        epoch_unix_s: float,
        speed: float | None = None,
        *,
        stall_timeout_s: float | None = DEFAULT_STALL_TIMEOUT_S,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ValueError("speed must be positive (virtual seconds per wall second) or None")
        self.epoch_unix_s = float(epoch_unix_s)
        self.speed = speed
        self.stall_timeout_s = stall_timeout_s
        self.stats = KernelStats()
        #: every exception a handler raised, in order
        self.errors: list[HandlerError] = []
        self._now_s = 0.0
        #: events that may be cancelled (timers, posts), often hours ahead: three or so per
        #: open transaction
        self._heap: list[_Event] = []
        #: events nobody cancels (:meth:`fire_at`: SMS parts in flight), seconds ahead: a
        #: handful at any time. Kept apart so that the ~120 arrivals per transaction push
        #: and pop on a heap of tens, not one that grows with the open transactions; the
        #: shared sequence number keeps one order over both
        self._near: list[_Event] = []
        self._seq = 0
        self._actors: dict[str, _Actor] = {}
        self._timers: dict[tuple[str, str], EventHandle] = {}
        self._in_flight = 0
        self._ready: deque[_Actor] = deque()
        self._in_event = False  # inside run()'s event callback: it drains the ready queue
        self._drain_handle: asyncio.Handle | None = None
        self._idle: asyncio.Future[None] | None = None
        self._running = False
        self._closed = False

    # --- Clock port --------------------------------------------------------------------

    def now_s(self) -> float:
        """Virtual seconds since the run started (the time of the event being handled)."""
        return self._now_s

    def now_unix_s(self) -> float:
        """``epoch_unix_s + now_s()``."""
        return self.epoch_unix_s + self._now_s

    def call_at(self, at_s: float, owner: str, name: str) -> None:
        """Deliver ``TimerFired(owner, name, at_s)`` to ``owner`` at ``at_s``; replaces a
        pending timer of the same owner and name. A time in the past fires at once (after
        the events already due now)."""
        if owner not in self._actors:
            raise UnknownActor(owner)
        key = (owner, name)
        old = self._timers.get(key)
        if old is not None:
            old.cancel()
        self._timers[key] = self.schedule(at_s, self._fire_timer, owner, name, at_s)

    def cancel(self, owner: str, name: str) -> None:
        """Cancel the pending timer ``name`` of ``owner``; no error if there is none."""
        handle = self._timers.pop((owner, name), None)
        if handle is not None:
            handle.cancel()

    def timer_pending(self, owner: str, name: str) -> bool:
        """Whether the timer ``name`` of ``owner`` is set and has not fired."""
        return (owner, name) in self._timers

    def _fire_timer(self, owner: str, name: str, at_s: float) -> None:
        del self._timers[(owner, name)]
        self.stats.timers_fired += 1
        self.deliver(owner, TimerFired(owner, name, at_s))

    # --- actors ------------------------------------------------------------------------

    def add_actor(
        self, actor_id: str, handler: Handler, mailbox_size: int = DEFAULT_MAILBOX_SIZE
    ) -> None:
        """Register an actor: ``handler(item)`` is called for each mailbox item, one at a
        time; what it returns, a coroutine, is run to its end before the next item (``None``:
        the call handled the item itself)."""
        if actor_id in self._actors:
            raise DuplicateActor(f"actor {actor_id!r} added twice")
        if mailbox_size < 1:
            raise ValueError("mailbox_size must be at least 1")
        self._actors[actor_id] = _Actor(actor_id, handler, mailbox_size)

    def replace_handler(self, actor_id: str, handler: Handler) -> None:
        """A restarted actor: later items go to ``handler``; its pending timers are dropped
        (a crashed process forgets them; the restarted one re-arms what it stored)."""
        actor = self._actors.get(actor_id)
        if actor is None:
            raise UnknownActor(actor_id)
        actor.handler = handler
        for key in [key for key in self._timers if key[0] == actor_id]:
            self._timers.pop(key).cancel()

    def has_actor(self, actor_id: str) -> bool:
        return actor_id in self._actors

    def mailbox_full_count(self, actor_id: str) -> int:
        """Items dropped because ``actor_id``'s mailbox was full."""
        return self._actors[actor_id].mailbox_full

    def deliver(self, actor_id: str, item: object) -> bool:
        """Put ``item`` in the actor's mailbox now. Returns ``False`` (and counts
        ``mailbox_full``) if the mailbox is full: the item is dropped, as an overloaded
        handset would. For use by event callbacks (network, timers); to start something
        deterministically from outside, use :meth:`post`."""
        actor = self._actors.get(actor_id)
        if actor is None:
            raise UnknownActor(actor_id)
        mailbox = actor.mailbox
        if len(mailbox) >= actor.mailbox_size:
            actor.mailbox_full += 1
            self.stats.mailbox_full += 1
            return False
        mailbox.append(item)
        self._in_flight += 1
        self.stats.delivered += 1
        if actor.task is None and not actor.ready:
            actor.ready = True
            self._ready.append(actor)
            if self._running and not self._in_event and self._drain_handle is None:
                self._drain_handle = asyncio.get_running_loop().call_soon(self._drain)
        return True

    def deliver_last(self, actor_id: str, item: object) -> bool:
        """:meth:`deliver` for an event callback that delivers nothing else (the network's
        SMS arrivals). When nothing else is in flight, the handler is called on ``item`` at
        once instead of after the callback, from run()'s drain: the same order of work
        without the round trip through the mailbox (empty, so never full). If the handler
        returns a coroutine, the item waits in the mailbox and the drain starts it."""
        if not self._in_event or self._in_flight:
            return self.deliver(actor_id, item)
        actor = self._actors.get(actor_id)
        if actor is None:
            raise UnknownActor(actor_id)
        stats = self.stats
        stats.delivered += 1
        self._in_flight += 1
        self._in_event = False  # the handler runs as it would from run()'s drain
        try:
            coro = actor.handler(item)
        except Exception as exc:  # reported, never fatal for the kernel
            self._report(actor_id, item, exc)
            coro = None
        finally:
            self._in_event = True
        if coro is None:  # handled: _finished, less its wake-up (run() is not waiting)
            self._in_flight -= 1
            stats.handled += 1
            return True
        actor.mailbox.append(item)
        actor.started = coro
        actor.ready = True
        self._ready.append(actor)
        return True

    def post(self, actor_id: str, item: object, at_s: float | None = None) -> EventHandle:
        """Schedule ``item`` for the actor's mailbox at ``at_s`` (default: now), in the
        event order: the deterministic way to kick an actor off."""
        if actor_id not in self._actors:
            raise UnknownActor(actor_id)
        return self.schedule(self._now_s if at_s is None else at_s, self.deliver, actor_id, item)

    def spawn(self, coro: Coroutine[Any, Any, None], owner: str = "") -> asyncio.Task[None]:
        """Run ``coro`` as a task that counts as in flight (the clock waits for it) and
        whose exception is reported like a handler's. For work an actor starts in the
        background; a handler that simply awaits needs nothing of this."""
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(coro)

        def done(t: asyncio.Task[None]) -> None:
            if not t.cancelled() and t.exception() is not None:
                self._report(owner, coro, t.exception())  # type: ignore[arg-type]
            self._finished()

        task.add_done_callback(done)
        return task

    # --- events ------------------------------------------------------------------------

    def schedule(self, at_s: float, callback: Callable[..., None], *args: Any) -> EventHandle:
        """Call ``callback(*args)`` at virtual time ``at_s`` (not before now). Events at
        equal times run in the order they were scheduled. The callback runs in the kernel
        loop; it must not block or await (put items in mailboxes with :meth:`deliver`)."""
        return EventHandle(self._push(at_s, callback, args))

    def fire_at(self, at_s: float, callback: Callable[..., None], *args: Any) -> None:
        """:meth:`schedule` for an event nobody will cancel: no handle to make (the network
        schedules every SMS part's arrival this way). :meth:`_push`, inlined."""
        if at_s < self._now_s:
            at_s = self._now_s
        elif not at_s < _INF:  # NaN or infinity would corrupt the heap
            raise ValueError(f"event time {at_s} is not a finite number of seconds")
        self._seq += 1
        heapq.heappush(self._near, [at_s, self._seq, callback, args])

    def _push(self, at_s: float, callback: Callable[..., None], args: tuple) -> _Event:
        if at_s < self._now_s:
            at_s = self._now_s
        elif not at_s < _INF:  # NaN or infinity would corrupt the heap
            raise ValueError(f"event time {at_s} is not a finite number of seconds")
        self._seq += 1
        event = [at_s, self._seq, callback, args]
        heapq.heappush(self._heap, event)
        return event

    def call_later(self, delay_s: float, callback: Callable[..., None], *args: Any) -> EventHandle:
        """:meth:`schedule` at ``now_s() + delay_s``."""
        return self.schedule(self._now_s + delay_s, callback, *args)

    def next_event_s(self) -> float | None:
        """Time of the next live event, or ``None`` if there is none."""
        heap, near = self._heap, self._near
        while heap and heap[0][_CALLBACK] is None:
            heapq.heappop(heap)
        if near and (not heap or near[0] < heap[0]):
            return near[0][_AT_S]
        return heap[0][_AT_S] if heap else None

    @property
    def in_flight(self) -> int:
        """Mailbox items queued or being handled (plus spawned tasks running)."""
        return self._in_flight

    async def run(
        self,
        until_s: float | None = None,
        stop: Callable[[], bool] | None = None,
        *,
        raise_errors: bool = True,
    ) -> float:
        """Process events until none is left, the next is after ``until_s`` (the clock
        then stops at ``until_s``), or ``stop()`` is true at an idle point. Returns the
        clock. Raises :class:`HandlerFailed` if handlers raised (all are in
        :attr:`errors`; ``raise_errors=False`` leaves them there), :class:`KernelStalled`
        if a handler never finishes. May be called again to go on."""
        if self._closed:
            raise KernelError("the kernel is closed")
        if self._running:
            raise KernelError("run() is already running")
        loop = asyncio.get_running_loop()
        self._running = True
        errors_before = len(self.errors)
        self._drain()  # items delivered before run()
        watchdog = None
        if self.stall_timeout_s is not None:
            watchdog = loop.create_task(self._watchdog(self.stall_timeout_s))
        heap, near = self._heap, self._near
        heappop = heapq.heappop
        stats = self.stats
        speed = self.speed
        wall_origin = loop.time() - self._now_s / speed if speed else 0.0
        try:
            while True:
                if self._in_flight:
                    self._idle = loop.create_future()
                    await self._idle
                    self._idle = None
                if stop is not None and stop():
                    break
                # the earlier of the two heaps' first events ((time, sequence number) is
                # unique, so the lists compare on those two)
                if near:
                    source = heap if heap and heap[0] < near[0] else near
                elif heap:
                    source = heap
                else:
                    break
                at_s, _, callback, args = source[0]
                if callback is None:  # cancelled
                    heappop(source)
                    continue
                if until_s is not None and at_s > until_s:
                    break
                if speed:
                    delay = wall_origin + at_s / speed - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                        continue  # an actor may not have changed anything, but re-check
                heappop(source)
                self._now_s = at_s
                stats.events += 1
                self._in_event = True
                try:
                    callback(*args)
                finally:
                    self._in_event = False
                if self._ready:
                    self._drain()
            if until_s is not None and until_s > self._now_s and (stop is None or not stop()):
                self._now_s = until_s
        finally:
            self._running = False
            self._idle = None
            if self._drain_handle is not None:
                self._drain_handle.cancel()
                self._drain_handle = None
            if watchdog is not None:
                watchdog.cancel()
        if raise_errors and len(self.errors) > errors_before:
            raise HandlerFailed(self.errors[errors_before:])
        return self._now_s

    async def close(self) -> None:
        """Cancel the actor tasks and wait for them to end; the kernel cannot run again."""
        self._closed = True
        tasks = [a.task for a in self._actors.values() if a.task is not None]
        for actor in self._actors.values():
            if actor.started is not None:  # never started: close it, no "never awaited"
                actor.started.close()
                actor.started = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> "Kernel":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- internals ---------------------------------------------------------------------

    def _drain(self) -> None:
        """Handle the items of every ready actor (see the module's "Performance" note)."""
        self._drain_handle = None
        ready = self._ready
        while ready:
            actor = ready.popleft()
            actor.ready = False
            self._run_actor(actor)

    def _run_actor(self, actor: _Actor) -> None:
        """Run the actor's handler on its items, one at a time, until the mailbox is empty
        or a handler suspends (its rest then runs in a task that goes on from there)."""
        items = actor.mailbox
        while items and actor.task is None:
            item = items.popleft()
            try:
                coro = actor.started
                if coro is not None:  # deliver_last called the handler on this item
                    actor.started = None
                else:
                    coro = actor.handler(item)
                    if coro is None:  # handled by the call itself
                        self._finished()
                        continue
                first = coro.send(None)
            except StopIteration:
                self._finished()
                continue
            except Exception as exc:  # reported, never fatal for the kernel
                self._report(actor.actor_id, item, exc)
                self._finished()
                continue
            actor.task = asyncio.get_running_loop().create_task(
                self._resume(actor, item, coro, first), name=f"actor:{actor.actor_id}"
            )

    async def _resume(self, actor: _Actor, item: object, coro: Coroutine[Any, Any, None], first: Any) -> None:
        try:
            await _Resume(coro, first)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # reported, never fatal for the kernel
            self._report(actor.actor_id, item, exc)
        finally:
            actor.task = None
            self._finished()
        if not self._closed:
            self._run_actor(actor)

    def _finished(self) -> None:
        """One mailbox item (or spawned task) is done; wake run() when none is in flight."""
        self._in_flight -= 1
        self.stats.handled += 1
        if self._in_flight == 0:
            idle = self._idle
            if idle is not None and not idle.done():
                idle.set_result(None)

    def _report(self, actor_id: str, item: object, exc: BaseException) -> None:
        self.stats.handler_errors += 1
        self.errors.append(HandlerError(actor_id, item, self._now_s, exc))
        log.error(
            "actor %s raised on %s at t=%gs", actor_id, type(item).__name__, self._now_s,
            exc_info=exc,
        )

    async def _watchdog(self, timeout_s: float) -> None:
        seen = -1
        while True:
            await asyncio.sleep(timeout_s)
            idle = self._idle
            if idle is not None and not idle.done() and self.stats.handled == seen:
                busy = sorted(a.actor_id for a in self._actors.values() if a.task is not None)
                idle.set_exception(
                    KernelStalled(
                        f"no handler finished for {timeout_s:g} wall seconds at"
                        f" t={self._now_s:g}s; busy: {', '.join(busy) or 'spawned tasks'}"
                    )
                )
            seen = self.stats.handled
