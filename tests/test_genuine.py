"""The world's genuineness check (``only_genuine_messages_acted_upon``) in its compact form
decides every trace exactly as the plain sets of (sender, recipient, seq) it replaced."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mpay.sim.genuine import GenuineCheck

PARTIES = ["mpc", "c1", "c2", "m1"]


class SetModel:
    """The reference: what the world did before, with two sets of tuples."""

    def __init__(self) -> None:
        self.sent: set[tuple[str, str, int]] = set()
        self.opened: set[tuple[str, str, int]] = set()
        self.not_genuine: list[str] = []
        self.handling: dict[str, tuple[str, str, int] | None] = {}

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["kind"]
        if kind == "sms_sent":
            self.sent.add((event["actor"], event["to"], event["seq"]))
        elif kind == "sms_opened":
            key = (event["sender"], event["actor"], event["seq"])
            if key not in self.sent:
                self.not_genuine.append(f"{event['actor']} acted on {event['type']} seq {event['seq']} that {event['sender']} never sent")
            elif key in self.opened:
                self.not_genuine.append(f"{event['actor']} acted twice on {event['type']} seq {event['seq']} of {event['sender']}")
            self.opened.add(key)
            self.handling[event["actor"]] = key
        elif kind in ("timer", "goods_arrived"):
            self.handling[event["actor"]] = None

    def forget_uncommitted(self, party_id: str) -> None:
        key = self.handling.pop(party_id, None)
        if key is not None:
            self.opened.discard(key)


# sequence numbers mostly small and dense (often the same one for two recipients), sometimes
# far away, zero or negative
seqs = st.one_of(st.integers(1, 2), st.integers(1, 40), st.sampled_from([0, -3, 70_000, 2**40]))
keys = st.tuples(st.sampled_from(PARTIES[:2]), st.sampled_from(PARTIES), seqs)


@st.composite
def plans(draw: st.DrawFn) -> list[tuple[str, tuple[str, str, int]]]:
    """Steps over a few (sender, recipient, seq): so sends, opens, replays, crashes and
    opens before sends of the same SMS meet often."""
    pool = draw(st.lists(keys, min_size=1, max_size=6))
    step = st.tuples(st.sampled_from(["sent", "opened", "opened", "timer", "crash"]), st.sampled_from(pool))
    return draw(st.lists(step, max_size=40))


def _play(listener: Any, plan: list[tuple[str, tuple[str, str, int]]]) -> list[str]:
    for what, (sender, recipient, seq) in plan:
        if what == "sent":
            listener.on_event({"kind": "sms_sent", "actor": sender, "to": recipient, "seq": seq})
        elif what == "opened":
            listener.on_event({"kind": "sms_opened", "actor": recipient, "sender": sender, "seq": seq, "type": "rating"})
        elif what == "timer":
            listener.on_event({"kind": "timer", "actor": recipient})
        else:
            listener.forget_uncommitted(recipient)
    return listener.not_genuine


@settings(max_examples=500, deadline=None)
@given(plans())
def test_the_compact_check_decides_as_the_sets_did(plan: Any) -> None:
    assert _play(GenuineCheck(), plan) == _play(SetModel(), plan)


def test_a_long_genuine_run_is_clean_and_a_replay_or_forgery_is_named() -> None:
    check = GenuineCheck()
    for seq in range(1, 200_001):  # one busy sender, numbers in order, two recipients
        recipient = "c1" if seq % 2 else "c2"
        check.on_event({"kind": "sms_sent", "actor": "mpc", "to": recipient, "seq": seq})
        check.on_event({"kind": "sms_opened", "actor": recipient, "sender": "mpc", "seq": seq, "type": "rating"})
    assert check.not_genuine == []
    check.on_event({"kind": "sms_opened", "actor": "c1", "sender": "mpc", "seq": 199_999, "type": "rating"})
    check.on_event({"kind": "sms_opened", "actor": "c1", "sender": "mpc", "seq": 200_000, "type": "rating"})
    check.on_event({"kind": "sms_opened", "actor": "c1", "sender": "mpc", "seq": 200_001, "type": "rating"})
    assert check.not_genuine == [
        "c1 acted twice on rating seq 199999 of mpc",
        "c1 acted on rating seq 200000 that mpc never sent",  # it went to c2
        "c1 acted on rating seq 200001 that mpc never sent",
    ]
