"""The replay guard: repeated sequence numbers and stale send times are refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpay.protocol.errors import Replay
from mpay.protocol.replay import ReplayGuard, SequenceCounter

NOW = 1_767_225_600


def test_a_repeated_sequence_number_is_refused() -> None:
    guard = ReplayGuard(window_s=600, seq_window=64)
    guard.check_and_record("alice", 1, NOW, NOW)
    with pytest.raises(Replay, match="already seen"):
        guard.check_and_record("alice", 1, NOW, NOW + 5)
    guard.check_and_record("bob", 1, NOW, NOW)  # senders are independent


def test_reordered_messages_inside_the_window_are_accepted_once() -> None:
    guard = ReplayGuard(window_s=600, seq_window=8)
    for seq in (5, 3, 4, 10, 9, 6):
        guard.check_and_record("alice", seq, NOW, NOW)
    for seq in (3, 5, 10):
        with pytest.raises(Replay):
            guard.check_and_record("alice", seq, NOW, NOW)
    guard.check_and_record("alice", 7, NOW, NOW)  # never seen, still inside 3..10
    with pytest.raises(Replay, match="below the window"):
        guard.check_and_record("alice", 2, NOW, NOW)  # 10 - 2 >= 8


def test_a_send_time_outside_the_window_is_refused_either_way() -> None:
    guard = ReplayGuard(window_s=600, seq_window=64)
    with pytest.raises(Replay, match="old"):
        guard.check("alice", 1, NOW - 601, NOW)
    with pytest.raises(Replay, match="future"):
        guard.check("alice", 1, NOW + 601, NOW)
    guard.check("alice", 1, NOW - 600, NOW)  # clock skew and delay within the window
    guard.check("alice", 1, NOW + 600, NOW)


def test_check_records_nothing() -> None:
    guard = ReplayGuard(window_s=60, seq_window=64)
    guard.check("alice", 1, NOW, NOW)
    guard.check("alice", 1, NOW, NOW)
    assert guard.highest_seq("alice") is None
    guard.check_and_record("alice", 1, NOW, NOW)
    assert guard.highest_seq("alice") == 1


def test_the_guard_survives_a_restart_through_json() -> None:
    guard = ReplayGuard(window_s=600, seq_window=128)
    for seq in (1, 2, 50, 49, 200):
        guard.check_and_record("alice", seq, NOW, NOW)
    restored = ReplayGuard.from_dict(json.loads(json.dumps(guard.to_dict())))
    with pytest.raises(Replay):
        restored.check("alice", 200, NOW, NOW)
    restored.check("alice", 100, NOW, NOW)  # 200 - 100 < 128 and never seen
    with pytest.raises(Replay):
        restored.check("alice", 50, NOW, NOW)  # below the window now (200 - 50 >= 128)
    assert restored.to_dict() == guard.to_dict()
    with pytest.raises(ValueError):
        ReplayGuard.from_dict({"window_s": 1})


def test_limits_are_enforced() -> None:
    with pytest.raises(ValueError):
        ReplayGuard(window_s=0)
    with pytest.raises(ValueError):
        ReplayGuard(window_s=1, seq_window=0)
    with pytest.raises(Replay):
        ReplayGuard(window_s=1).check("alice", -1, NOW, NOW)


def test_a_sender_counter_counts_and_persists() -> None:
    counter = SequenceCounter()
    assert [counter.next() for _ in range(3)] == [1, 2, 3]
    again = SequenceCounter.from_dict(json.loads(json.dumps(counter.to_dict())))
    assert again.next() == 4
    with pytest.raises(OverflowError):
        SequenceCounter(last=2**63 - 1).next()


@settings(max_examples=150, deadline=None)
@given(
    seqs=st.lists(st.integers(0, 80), max_size=60),
    seq_window=st.integers(1, 32),
)
def test_the_bitmap_window_agrees_with_a_plain_set(seqs: list[int], seq_window: int) -> None:
    """Accepted iff never seen and not below (highest seen - seq_window + 1)."""
    guard = ReplayGuard(window_s=60, seq_window=seq_window)
    seen: set[int] = set()
    for seq in seqs:
        expected_ok = seq not in seen and (not seen or seq > max(seen) - seq_window)
        try:
            guard.check_and_record("alice", seq, NOW, NOW)
            ok = True
        except Replay:
            ok = False
        assert ok == expected_ok, (seq, sorted(seen))
        if ok:
            seen.add(seq)


def test_one_senders_window_survives_export_and_import() -> None:
    """A receiver persists only the window a message changed; restored, it refuses the same."""
    guard = ReplayGuard(window_s=600, seq_window=64)
    for seq in (1, 2, 5):
        guard.check_and_record("alice", seq, 1000, 1000)
    guard.check_and_record("bob", 7, 1000, 1000)
    restored = ReplayGuard(window_s=600, seq_window=64)
    restored.import_sender("alice", guard.export_sender("alice"))
    with pytest.raises(Replay):
        restored.check("alice", 5, 1000, 1000)
    restored.check("alice", 3, 1000, 1000)  # a gap, never seen: still acceptable
    restored.check("bob", 7, 1000, 1000)  # bob's window was not imported
    assert guard.export_sender("carol") is None
    with pytest.raises(ValueError):
        restored.import_sender("alice", [3, "f" * 40])  # bitmap wider than the window
