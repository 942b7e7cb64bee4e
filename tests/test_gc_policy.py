"""The collector settings of a long run: in force inside the block, put back after it."""

from __future__ import annotations

import gc
import weakref

from mpay.sim.gc_policy import OLD_THRESHOLD, YOUNG_THRESHOLD, long_run_gc


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_settings_hold_inside_the_block_and_come_back_after() -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with long_run_gc():
        assert gc.get_freeze_count() > 0  # what existed at the start is frozen
        assert gc.get_threshold()[0] == max(YOUNG_THRESHOLD, before[0])
        assert gc.get_threshold()[1] == before[1]
        assert gc.get_threshold()[2] == max(OLD_THRESHOLD, before[2])  # full collections rarer
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_settings_come_back_when_the_block_raises() -> None:
    before = gc.get_threshold()
    try:
        with long_run_gc():
            raise RuntimeError("a handler failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_cycles_made_during_the_run_are_still_collected() -> None:
    with long_run_gc():
        ref = weakref.ref(_Node())
        gc.collect()
        assert ref() is None


def test_an_inner_block_leaves_the_outer_settings_alone() -> None:
    with long_run_gc(young_threshold=20_000):
        frozen = gc.get_freeze_count()
        with long_run_gc(young_threshold=5_000):
            assert gc.get_threshold()[0] == 20_000
        assert gc.get_threshold()[0] == 20_000
        assert gc.get_freeze_count() == frozen
    assert gc.get_freeze_count() == 0
