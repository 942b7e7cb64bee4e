"""The virtual-time kernel: jumps over idle time, waits for busy actors, stays deterministic."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpay.actors.ports import Clock, TimerFired
from mpay.sim.kernel import (
    DuplicateActor,
    HandlerFailed,
    Kernel,
    KernelStalled,
    UnknownActor,
)

EPOCH = 1_767_225_600.0
TEN_DAYS_S = 10 * 86_400.0


def recorder(kernel: Kernel, log: list, actor_id: str):
    async def handle(item: object) -> None:
        log.append((kernel.now_s(), actor_id, item))

    return handle


async def test_kernel_is_a_clock() -> None:
    kernel = Kernel(EPOCH)
    assert isinstance(kernel, Clock)
    assert kernel.now_s() == 0.0
    assert kernel.now_unix_s() == EPOCH


async def test_ten_day_timer_costs_no_waiting() -> None:
    log: list = []
    async with Kernel(EPOCH) as kernel:
        kernel.add_actor("mpc", recorder(kernel, log, "mpc"))
        kernel.call_at(TEN_DAYS_S, "mpc", "accept:C1")
        end = await kernel.run()
    assert end == TEN_DAYS_S
    assert kernel.now_unix_s() == EPOCH + TEN_DAYS_S
    assert log == [(TEN_DAYS_S, "mpc", TimerFired("mpc", "accept:C1", TEN_DAYS_S))]


async def test_timer_replaced_and_cancelled() -> None:
    log: list = []
    async with Kernel(EPOCH) as kernel:
        kernel.add_actor("a", recorder(kernel, log, "a"))
        kernel.call_at(100.0, "a", "t")
        kernel.call_at(50.0, "a", "t")  # replaces the first
        kernel.call_at(70.0, "a", "u")
        assert kernel.timer_pending("a", "u")
        kernel.cancel("a", "u")
        kernel.cancel("a", "never-set")
        await kernel.run()
    assert [(t, item.name) for t, _, item in log] == [(50.0, "t")]
    assert not kernel.timer_pending("a", "t")


async def test_clock_waits_for_an_actor_awaiting_slow_io() -> None:
    """The clock must not jump to the next event while a handler still awaits I/O."""
    log: list = []
    kernel = Kernel(EPOCH)

    async def slow(item: object) -> None:
        before = kernel.now_s()
        await asyncio.to_thread(sum, range(200_000))  # ledger-like I/O in a thread
        await asyncio.sleep(0.01)
        assert kernel.now_s() == before
        log.append(("slow done", kernel.now_s()))
        kernel.call_later(1.0, kernel.deliver, "b", "from slow")

    kernel.add_actor("a", slow)
    kernel.add_actor("b", recorder(kernel, log, "b"))
    kernel.post("a", "go", at_s=10.0)
    kernel.post("b", "later", at_s=12.0)
    await kernel.run()
    await kernel.close()
    assert log == [("slow done", 10.0), (11.0, "b", "from slow"), (12.0, "b", "later")]


async def test_handler_can_set_timers_in_a_chain() -> None:
    kernel = Kernel(EPOCH)
    fired: list[float] = []

    async def tick(item: object) -> None:
        assert isinstance(item, TimerFired)
        fired.append(kernel.now_s())
        if len(fired) < 5:
            kernel.call_at(kernel.now_s() + 3600.0, "a", "tick")

    kernel.add_actor("a", tick)
    kernel.call_at(0.0, "a", "tick")
    await kernel.run()
    await kernel.close()
    assert fired == [0.0, 3600.0, 7200.0, 10800.0, 14400.0]


async def test_run_until_stops_the_clock_and_can_go_on() -> None:
    log: list = []
    kernel = Kernel(EPOCH)
    kernel.add_actor("a", recorder(kernel, log, "a"))
    for t in (5.0, 15.0, 25.0):
        kernel.post("a", t, at_s=t)
    assert await kernel.run(until_s=15.0) == 15.0
    assert [item for _, _, item in log] == [5.0, 15.0]
    assert kernel.next_event_s() == 25.0
    assert await kernel.run(until_s=100.0) == 100.0
    assert [item for _, _, item in log] == [5.0, 15.0, 25.0]
    await kernel.close()


async def test_stop_predicate() -> None:
    log: list = []
    kernel = Kernel(EPOCH)
    kernel.add_actor("a", recorder(kernel, log, "a"))
    for t in range(10):
        kernel.post("a", t, at_s=float(t))
    await kernel.run(stop=lambda: len(log) >= 3)
    await kernel.close()
    assert len(log) == 3
    assert kernel.now_s() == 2.0


async def _random_world(seed: int) -> list[tuple[float, str, object]]:
    """Three actors ping each other with random delays; returns the event log."""
    rng = random.Random(seed)
    kernel = Kernel(EPOCH)
    log: list[tuple[float, str, object]] = []
    names = ["a", "b", "c"]

    def make(name: str):
        async def handle(item: object) -> None:
            log.append((kernel.now_s(), name, item))
            if rng.random() < 0.5:
                await asyncio.sleep(0)  # interleaving point
            if len(log) < 200:
                for _ in range(rng.randint(1, 2)):
                    kernel.call_later(rng.choice([0.0, 1.0, rng.random()]), kernel.deliver,
                                      rng.choice(names), len(log))
            if rng.random() < 0.2:
                kernel.call_at(kernel.now_s() + rng.random() * 10, name, "t")

        return handle

    for name in names:
        kernel.add_actor(name, make(name))
    for name in names:
        kernel.post(name, "start")
    await kernel.run()
    await kernel.close()
    return log


async def test_same_seed_same_event_log() -> None:
    first = await _random_world(42)
    second = await _random_world(42)
    assert len(first) > 50
    assert first == second
    assert await _random_world(43) != first


async def test_equal_times_keep_scheduling_order() -> None:
    log: list = []
    kernel = Kernel(EPOCH)
    kernel.add_actor("a", recorder(kernel, log, "a"))
    for n in range(20):
        kernel.post("a", n, at_s=7.0)
    await kernel.run()
    await kernel.close()
    assert [item for _, _, item in log] == list(range(20))


async def test_handler_error_is_reported_not_fatal() -> None:
    log: list = []
    kernel = Kernel(EPOCH)

    async def fragile(item: object) -> None:
        if item == "bad":
            raise RuntimeError("boom")
        log.append(item)

    kernel.add_actor("a", fragile)
    kernel.post("a", "ok1", at_s=1.0)
    kernel.post("a", "bad", at_s=2.0)
    kernel.post("a", "ok2", at_s=3.0)
    with pytest.raises(HandlerFailed) as info:
        await kernel.run()
    assert log == ["ok1", "ok2"]  # the actor went on after the error
    assert len(kernel.errors) == 1
    error = kernel.errors[0]
    assert (error.actor_id, error.item, error.at_s) == ("a", "bad", 2.0)
    assert isinstance(info.value.errors[0].exception, RuntimeError)
    await kernel.close()


async def test_handler_errors_can_be_left_in_the_list() -> None:
    kernel = Kernel(EPOCH)

    async def boom(item: object) -> None:
        raise ValueError(item)

    kernel.add_actor("a", boom)
    kernel.post("a", 1)
    await kernel.run(raise_errors=False)
    await kernel.close()
    assert kernel.stats.handler_errors == 1


async def test_full_mailbox_drops_and_counts() -> None:
    log: list = []
    kernel = Kernel(EPOCH)
    kernel.add_actor("a", recorder(kernel, log, "a"), mailbox_size=2)

    def burst() -> None:
        for n in range(5):
            kernel.deliver("a", n)

    kernel.schedule(1.0, burst)
    await kernel.run()
    await kernel.close()
    assert [item for _, _, item in log] == [0, 1]
    assert kernel.stats.mailbox_full == 3
    assert kernel.mailbox_full_count("a") == 3


async def test_spawned_background_work_holds_the_clock() -> None:
    log: list = []
    kernel = Kernel(EPOCH)

    async def background() -> None:
        await asyncio.sleep(0.01)
        log.append(("background", kernel.now_s()))

    async def handle(item: object) -> None:
        log.append((item, kernel.now_s()))
        if item == "go":
            kernel.spawn(background(), owner="a")

    kernel.add_actor("a", handle)
    kernel.post("a", "go", at_s=1.0)
    kernel.post("a", "next", at_s=2.0)
    await kernel.run()
    await kernel.close()
    assert log == [("go", 1.0), ("background", 1.0), ("next", 2.0)]


async def test_stalled_handler_is_detected() -> None:
    kernel = Kernel(EPOCH, stall_timeout_s=0.05)
    never = asyncio.get_running_loop().create_future()

    async def stuck(item: object) -> None:
        await never

    kernel.add_actor("a", stuck)
    kernel.post("a", "x")
    with pytest.raises(KernelStalled, match="busy: a"):
        await kernel.run()
    await kernel.close()


async def test_real_time_mode_gives_the_same_order() -> None:
    log_virtual: list = []
    log_real: list = []
    for kernel, log in ((Kernel(EPOCH), log_virtual), (Kernel(EPOCH, speed=1e5), log_real)):
        kernel.add_actor("a", recorder(kernel, log, "a"))
        kernel.call_at(300.0, "a", "t1")
        kernel.post("a", "p", at_s=100.0)
        await kernel.run()
        await kernel.close()
    assert log_virtual == log_real
    assert [t for t, _, _ in log_real] == [100.0, 300.0]


async def test_wiring_errors() -> None:
    kernel = Kernel(EPOCH)
    kernel.add_actor("a", recorder(kernel, [], "a"))
    with pytest.raises(DuplicateActor):
        kernel.add_actor("a", recorder(kernel, [], "a"))
    with pytest.raises(UnknownActor):
        kernel.deliver("nobody", 1)
    with pytest.raises(UnknownActor):
        kernel.call_at(1.0, "nobody", "t")
    with pytest.raises(ValueError):
        Kernel(EPOCH, speed=0)
    with pytest.raises(ValueError):
        kernel.schedule(float("nan"), print)
    await kernel.close()


async def test_handler_may_handle_an_item_in_the_call() -> None:
    """A handler returning ``None`` did the work itself; mixed with coroutines, the order of
    handling and the in-flight bookkeeping are the same."""
    log: list = []
    kernel = Kernel(EPOCH)

    def handle(item: object):
        if item == "bad":
            raise RuntimeError("boom")
        if isinstance(item, int):
            log.append(("sync", kernel.now_s(), item))
            return None
        return recorder(kernel, log, "a")(item)

    kernel.add_actor("a", handle)
    for n, item in enumerate([1, "two", 3, "bad", "five", 6]):
        kernel.post("a", item, at_s=float(n))
    await kernel.run(raise_errors=False)
    await kernel.close()
    assert log == [
        ("sync", 0.0, 1), (1.0, "a", "two"), ("sync", 2.0, 3), (4.0, "a", "five"), ("sync", 5.0, 6)
    ]
    assert kernel.in_flight == 0
    assert (kernel.stats.handled, kernel.stats.handler_errors) == (6, 1)


async def test_fire_at_runs_like_schedule_in_one_order() -> None:
    kernel = Kernel(EPOCH)
    ran: list = []
    kernel.schedule(5.0, ran.append, "scheduled first")
    kernel.fire_at(5.0, ran.append, "fired second")
    kernel.fire_at(2.0, ran.append, "fired early")
    cancelled = kernel.schedule(3.0, ran.append, "cancelled")
    cancelled.cancel()
    assert cancelled.cancelled and cancelled.at_s == 3.0
    kernel.fire_at(-1.0, ran.append, "past: now")
    with pytest.raises(ValueError):
        kernel.fire_at(float("nan"), ran.append, "never")
    assert kernel.next_event_s() == 0.0
    await kernel.run()
    await kernel.close()
    assert ran == ["past: now", "fired early", "scheduled first", "fired second"]
    assert kernel.stats.events == 4


async def _handling_log(deliver_name: str) -> tuple[list, object, list]:
    """Items of every kind (handled in the call, by a coroutine, by one that suspends, or
    raising), each delivered by an event of its own with ``Kernel.<deliver_name>``."""
    log: list = []
    kernel = Kernel(EPOCH)

    async def slow(item: object) -> None:
        log.append(("start", kernel.now_s(), item, kernel.in_flight))
        await asyncio.sleep(0)
        if item == "slow bad":
            raise RuntimeError("late boom")
        log.append(("end", kernel.now_s(), item))

    def handle(item: object):
        if item == "bad":
            raise RuntimeError("boom")
        if isinstance(item, int):
            log.append(("sync", kernel.now_s(), item, kernel.in_flight, kernel.stats.delivered))
            return None
        return slow(item)

    kernel.add_actor("a", handle)
    kernel.add_actor("b", handle)
    deliver = getattr(kernel, deliver_name)
    items = [1, "two", 3, "bad", "slow bad", 6, 7, "eight", 9]
    for n, item in enumerate(items):
        kernel.fire_at(float(n // 2), deliver, "ab"[n % 2], item)  # two per instant
    await kernel.run(raise_errors=False)
    await kernel.close()
    errors = [(e.actor_id, e.item, e.at_s, str(e.exception)) for e in kernel.errors]
    return log, kernel.stats, errors


async def test_deliver_last_handles_in_the_same_order_as_deliver() -> None:
    """``deliver_last`` may call the handler inside the event: the order of handling, what a
    handler sees, the statistics and the errors are those of ``deliver``."""
    assert await _handling_log("deliver_last") == await _handling_log("deliver")


async def test_deliver_last_keeps_the_mailbox_rules() -> None:
    log: list = []
    kernel = Kernel(EPOCH)
    kernel.add_actor("a", recorder(kernel, log, "a"), mailbox_size=2)
    kernel.deliver_last("a", "before run")  # no event running: an ordinary delivery
    assert kernel.in_flight == 1 and not log

    def burst() -> None:  # the coroutine's item stays in the mailbox: the third is dropped
        kernel.deliver_last("a", 0)
        kernel.deliver("a", 1)
        kernel.deliver("a", 2)

    kernel.schedule(1.0, burst)
    await kernel.run()
    await kernel.close()
    assert [item for _, _, item in log] == ["before run", 0, 1]
    assert (kernel.stats.mailbox_full, kernel.stats.delivered, kernel.stats.handled) == (1, 3, 3)
    with pytest.raises(UnknownActor):
        kernel.deliver_last("nobody", 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["schedule", "fire_at", "cancelled"]), st.integers(0, 6)), max_size=40))
def test_timers_and_arrivals_run_in_one_time_order(plan: list[tuple[str, int]]) -> None:
    """Cancellable events and fire_at's arrivals wait in separate heaps; what runs is still
    every live event by time, and in scheduling order at equal times."""

    async def main() -> list[int]:
        kernel = Kernel(EPOCH)
        ran: list[int] = []
        for n, (how, at_s) in enumerate(plan):
            if how == "fire_at":
                kernel.fire_at(float(at_s), ran.append, n)
            else:
                handle = kernel.schedule(float(at_s), ran.append, n)
                if how == "cancelled":
                    handle.cancel()
        live = [(at_s, n) for n, (how, at_s) in enumerate(plan) if how != "cancelled"]
        assert kernel.next_event_s() == (min(live)[0] if live else None)
        await kernel.run()
        await kernel.close()
        return ran

    ran = asyncio.run(main())
    assert ran == [n for _, n in sorted((at_s, n) for n, (how, at_s) in enumerate(plan) if how != "cancelled")]
