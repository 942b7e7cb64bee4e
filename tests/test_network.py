"""The simulated SMS network: delivery, counters, loss/duplication, taps and the adversary."""

from __future__ import annotations

import random

import pytest

from mpay.actors.ports import SendMeta, SmsArrival, Transport
from mpay.sim.kernel import Kernel
from mpay.sim.network import (
    ANY,
    AirSms,
    LinkConfig,
    NotAnSms,
    NumberInUse,
    SmsNetwork,
    UnknownNumber,
)
from mpay.protocol.errors import MessageTooLarge
from mpay.protocol.sms import MAX_MESSAGE_OCTETS, Reassembler, segment

EPOCH = 1_767_225_600.0
META = SendMeta(message_type="payment_request", contract_no="C-1")


class Handset:
    """A minimal party: reassembles what arrives and logs whole messages."""

    def __init__(self, kernel: Kernel, party_id: str) -> None:
        self.kernel = kernel
        self.party_id = party_id
        self.reassembler = Reassembler(timeout_s=600)
        self.arrivals: list[SmsArrival] = []
        self.messages: list[tuple[float, str, bytes]] = []

    async def handle(self, item: object) -> None:
        assert isinstance(item, SmsArrival)
        self.arrivals.append(item)
        message = self.reassembler.add(item.sender_number, item.data, self.kernel.now_s())
        if message is not None:
            self.messages.append((self.kernel.now_s(), item.sender_number, message))


def world(
    seed: int = 1, link: LinkConfig | None = None, links: dict | None = None
) -> tuple[Kernel, SmsNetwork, dict[str, Handset]]:
    kernel = Kernel(EPOCH)
    network = SmsNetwork(kernel, random.Random(seed), link, links)
    parties = {}
    for n, party_id in enumerate(["alice", "mpc", "shop", "eve"]):
        parties[party_id] = Handset(kernel, party_id)
        kernel.add_actor(party_id, parties[party_id].handle)
        network.attach(party_id, f"+86138000000{n:02d}")
    return kernel, network, parties


def envelope(n: int, size: int = 700) -> bytes:
    return random.Random(n).randbytes(size)


async def test_delivers_a_long_envelope_whole() -> None:
    kernel, network, parties = world()
    assert isinstance(network, Transport)
    env = envelope(1)
    network.send("alice", "mpc", env, META)
    await kernel.run()
    await kernel.close()
    mpc = parties["mpc"]
    assert len(mpc.arrivals) == 6  # 700 octets = 5 full parts + 1
    assert [m for _, _, m in mpc.messages] == [env]
    assert mpc.messages[0][1] == network.number_of("alice")
    # default link: 2 s base latency plus a little jitter
    assert all(2.0 <= a.at_s < 30.0 for a in mpc.arrivals)
    c = network.counters
    assert (c.messages, c.sms_segments, c.bytes, c.delivered) == (1, 6, 700 + 6 * 6, 6)
    assert network.by_contract["C-1"].as_dict() == {"messages": 1, "sms_segments": 6, "bytes": 736}
    assert network.by_type["payment_request"].sms_segments == 6


async def test_short_envelope_is_one_sms_of_its_own_length() -> None:
    kernel, network, parties = world()
    network.send("alice", "mpc", b"\xd8\x60" + bytes(100), SendMeta("rating", None))
    await kernel.run()
    await kernel.close()
    assert network.counters.bytes == 102
    assert network.by_contract == {}
    assert len(parties["mpc"].messages) == 1


async def test_references_advance_per_recipient_and_wrap() -> None:
    kernel, network, parties = world(link=LinkConfig(in_order=True))
    for n in range(300):
        network.send("mpc", "shop", envelope(n, 200), META)
    await kernel.run()
    await kernel.close()
    refs = [a.data[3] for a in parties["shop"].arrivals[::2]]
    assert refs == [n % 256 for n in range(300)]
    assert [m for _, _, m in parties["shop"].messages] == [envelope(n, 200) for n in range(300)]


async def test_too_large_is_refused_before_anything_is_sent() -> None:
    kernel, network, _ = world()
    with pytest.raises(MessageTooLarge):
        network.send("alice", "mpc", bytes(MAX_MESSAGE_OCTETS + 1), META)
    assert network.counters.messages == 0
    await kernel.close()


async def test_wiring_errors() -> None:
    kernel, network, _ = world()
    with pytest.raises(UnknownNumber):
        network.send("alice", "nobody", b"x", META)
    with pytest.raises(NumberInUse):
        network.attach("zed", network.number_of("alice"))
    with pytest.raises(NumberInUse):
        network.attach("alice", "+1")
    with pytest.raises(ValueError):
        LinkConfig(loss=1.5)
    await kernel.close()


async def _lossy_run(seed: int) -> tuple[SmsNetwork, dict[str, Handset]]:
    link = LinkConfig(loss=0.1, duplicate=0.05, jitter="lognormal", jitter_mean_s=3.0)
    kernel, network, parties = world(seed, link)
    for n in range(400):  # 5 parts each, one message every 10 s
        kernel.schedule(n * 10.0, network.send, "alice", "mpc", envelope(n, 134 * 5), META)
    await kernel.run()
    await kernel.close()
    return network, parties


async def test_loss_and_duplication_roughly_as_configured() -> None:
    network, parties = await _lossy_run(7)
    c = network.counters
    assert c.sms_segments == 2000
    assert 0.07 < c.dropped / 2000 < 0.13
    assert 0.03 < c.duplicated / (2000 - c.dropped) < 0.07
    assert c.delivered == 2000 - c.dropped + c.duplicated
    # a message survives only if all its 5 parts do: about 0.9 ** 5 = 59 %
    whole = len(parties["mpc"].messages)
    assert 0.5 < whole / 400 < 0.68
    assert parties["mpc"].reassembler.counters.duplicates > 0


async def test_same_seed_same_arrivals() -> None:
    first, p1 = await _lossy_run(11)
    second, p2 = await _lossy_run(11)
    assert p1["mpc"].arrivals == p2["mpc"].arrivals
    assert first.counters == second.counters
    _, p3 = await _lossy_run(12)
    assert p3["mpc"].arrivals != p1["mpc"].arrivals


async def test_parts_can_arrive_out_of_order_unless_in_order() -> None:
    for in_order in (False, True):
        kernel, network, parties = world(3, LinkConfig(jitter_mean_s=5.0, in_order=in_order))
        for n in range(20):
            network.send("alice", "mpc", envelope(n), META)
        await kernel.run()
        await kernel.close()
        seqs = [(a.data[3], a.data[5]) for a in parties["mpc"].arrivals]
        assert (seqs == sorted(seqs)) is in_order
        assert len(parties["mpc"].messages) == 20


async def test_per_link_configuration_with_wildcards() -> None:
    links = {("alice", ANY): LinkConfig(loss=1.0), (ANY, "shop"): LinkConfig(latency_s=60.0, jitter="none")}
    kernel, network, parties = world(links=links)
    network.send("alice", "mpc", b"lost", META)
    network.send("mpc", "shop", b"slow", META)
    network.send("mpc", "alice", b"fine", META)
    await kernel.run()
    await kernel.close()
    assert parties["mpc"].messages == []
    assert parties["shop"].messages == [(60.0, network.number_of("mpc"), b"slow")]
    assert len(parties["alice"].messages) == 1
    assert network.counters.dropped == 1


async def test_taps_see_every_sms_on_the_air_and_no_meta() -> None:
    kernel, network, _ = world(link=LinkConfig(loss=1.0))
    heard: list[AirSms] = []
    network.add_tap(heard.append)
    env = envelope(5, 300)
    network.send("alice", "mpc", env, META)
    await kernel.run()
    await kernel.close()
    assert [s.data for s in heard] == segment(env, 0)  # heard even though the link lost them
    assert {(s.sender_number, s.recipient_number) for s in heard} == {
        (network.number_of("alice"), network.number_of("mpc"))
    }
    assert all(set(AirSms.__slots__) == {"at_s", "sender_number", "recipient_number", "data"} for s in heard)
    assert all(b"C-1" not in s.data and b"payment_request" not in s.data for s in heard)


@pytest.mark.parametrize("jitter", ["none", "exponential", "lognormal"])
def test_delays_of_a_message_are_the_draws_of_its_parts_one_by_one(jitter: str) -> None:
    link = LinkConfig(jitter=jitter, jitter_mean_s=1.5)
    one_by_one, at_once = random.Random(5), random.Random(5)
    assert [link.delay_s(one_by_one) for _ in range(7)] == link.delays_s(at_once, 7)
    assert one_by_one.random() == at_once.random()  # and the generator is left the same


async def _arrivals(listen: str) -> tuple[list[SmsArrival], dict[str, int]]:
    """Three messages over the default link; ``listen``: nobody, a tap or a passive adversary."""
    kernel, network, parties = world(9)
    if listen == "tap":
        network.add_tap(lambda sms: None)
    elif listen == "adversary":
        network.set_adversary(Scripted(lambda sms, net: [(0.0, sms)]))
    for n in range(3):
        kernel.schedule(n * 1.5, network.send, "alice", "mpc", envelope(n), META)
        kernel.schedule(n * 1.5, network.send, "shop", "mpc", envelope(n, 90), META)
    await kernel.run()
    await kernel.close()
    return parties["mpc"].arrivals, network.counters.as_dict()


async def test_listening_on_the_air_changes_no_arrival() -> None:
    """Without taps and adversary the network takes a shorter way; the arrivals (times,
    order, octets) and counters are the same as when someone listens."""
    alone = await _arrivals("nobody")
    assert len(alone[0]) == 3 * 7 and alone[1]["delivered"] == 21
    assert await _arrivals("tap") == alone
    assert await _arrivals("adversary") == alone


class Scripted:
    """An adversary that applies ``rule`` to every SMS and keeps what it saw."""

    def __init__(self, rule) -> None:
        self.rule = rule
        self.seen: list[AirSms] = []

    def on_air(self, sms: AirSms, network: SmsNetwork) -> list[tuple[float, AirSms]]:
        self.seen.append(sms)
        return self.rule(sms, network)


async def run_with(rule, data: bytes = b"\xd8\x60hello") -> tuple[SmsNetwork, dict[str, Handset], Scripted]:
    kernel, network, parties = world(link=LinkConfig(jitter="none"))
    adversary = Scripted(rule)
    network.set_adversary(adversary)
    network.send("alice", "mpc", data, META)
    await kernel.run()
    await kernel.close()
    return network, parties, adversary


async def test_adversary_drops() -> None:
    network, parties, adversary = await run_with(lambda sms, net: [])
    assert parties["mpc"].arrivals == []
    assert len(adversary.seen) == 1
    assert network.counters.adversary_dropped == 1


async def test_adversary_delays_and_duplicates() -> None:
    network, parties, _ = await run_with(lambda sms, net: [(0.0, sms), (3600.0, sms)])
    assert [a.at_s for a in parties["mpc"].arrivals] == [2.0, 3602.0]
    assert network.counters.adversary_altered == 1


async def test_adversary_tampers_and_redirects() -> None:
    def rule(sms: AirSms, net: SmsNetwork) -> list[tuple[float, AirSms]]:
        tampered = AirSms(sms.at_s, sms.sender_number, net.number_of("eve"), sms.data[:-1] + b"!")
        return [(0.0, tampered)]

    network, parties, _ = await run_with(rule)
    assert parties["mpc"].arrivals == []
    assert [m for _, _, m in parties["eve"].messages] == [b"\xd8\x60hell!"]


async def test_adversary_redirect_to_unknown_number_is_undeliverable() -> None:
    network, parties, _ = await run_with(
        lambda sms, net: [(0.0, AirSms(sms.at_s, sms.sender_number, "+999", sms.data))]
    )
    assert network.counters.undeliverable == 1


async def test_inject_and_replay() -> None:
    kernel, network, parties = world(link=LinkConfig(jitter="none"))
    heard: list[AirSms] = []
    network.add_tap(heard.append)
    network.send("alice", "mpc", b"\xd8\x60pay", META)
    await kernel.run()
    # replay what was heard, an hour later, and a forged SMS "from the bank"
    network.inject(heard[0].sender_number, heard[0].recipient_number, heard[0].data, at_s=3600.0)
    network.inject("+95588", network.number_of("alice"), b"call 3888", at_s=3700.0)
    await kernel.run()
    await kernel.close()
    assert [(t, m) for t, _, m in parties["mpc"].messages] == [(2.0, b"\xd8\x60pay"), (3600.0, b"\xd8\x60pay")]
    assert parties["alice"].messages == [(3700.0, "+95588", b"call 3888")]
    assert network.counters.injected == 2
    assert len(heard) == 3  # the taps hear injected SMS too
    with pytest.raises(NotAnSms):
        network.inject("+1", "+2", bytes(141))


async def test_adversary_cannot_put_oversize_sms_on_the_air() -> None:
    def rule(sms: AirSms, net: SmsNetwork) -> list[tuple[float, AirSms]]:
        return [(0.0, AirSms(sms.at_s, sms.sender_number, sms.recipient_number, bytes(141)))]

    with pytest.raises(NotAnSms):
        await run_with(rule)


async def test_full_mailbox_is_counted() -> None:
    kernel = Kernel(EPOCH)
    network = SmsNetwork(kernel, random.Random(1), LinkConfig(jitter="none"))
    got: list = []

    async def handle(item: object) -> None:
        got.append(item)

    kernel.add_actor("a", handle)
    kernel.add_actor("b", handle, mailbox_size=1)
    network.attach("a", "+1")
    network.attach("b", "+2")

    def burst() -> None:  # two SMS arriving in the same instant at a one-slot mailbox
        network._arrive(AirSms(0.0, "+1", "+2", b"x"))
        network._arrive(AirSms(0.0, "+1", "+2", b"y"))

    kernel.schedule(1.0, burst)
    await kernel.run()
    await kernel.close()
    assert len(got) == 1
    assert network.counters.mailbox_full == 1


class PartHandset(Handset):
    """Like an actor: a part that only goes into the reassembler is handled in the call
    (``None``), a whole message by a coroutine."""

    def handle(self, item: object):  # type: ignore[override]
        assert isinstance(item, SmsArrival)
        self.arrivals.append(item)
        message = self.reassembler.add(item.sender_number, item.data, self.kernel.now_s())
        if message is None:
            return None
        return self._whole(item.sender_number, message)

    async def _whole(self, sender_number: str, message: bytes) -> None:
        self.messages.append((self.kernel.now_s(), sender_number, message))


async def _part_log(listen: bool) -> tuple:
    kernel = Kernel(EPOCH)
    network = SmsNetwork(kernel, random.Random(4))
    mpc = PartHandset(kernel, "mpc")
    kernel.add_actor("mpc", mpc.handle)
    for n, party_id in enumerate(["alice", "shop"]):
        kernel.add_actor(party_id, Handset(kernel, party_id).handle)
        network.attach(party_id, f"+861380000001{n}")
    network.attach("mpc", "+8613800000000")
    if listen:
        network.add_tap(lambda sms: None)
    for n in range(4):
        kernel.schedule(n * 0.7, network.send, "alice", "mpc", envelope(n), META)
        kernel.schedule(n * 0.7, network.send, "shop", "mpc", envelope(n, 300), META)
    await kernel.run()
    await kernel.close()
    return mpc.arrivals, mpc.messages, kernel.stats, network.counters.as_dict()


async def test_parts_handled_in_their_arrival_event_change_nothing() -> None:
    """Without listeners each part's arrival event hands it to the handler at once
    (``Kernel.deliver_last``); with a tap it goes through the mailbox: the same arrivals,
    messages, kernel statistics and counters."""
    direct = await _part_log(listen=False)
    assert len(direct[1]) == 8 and direct[3]["delivered"] == 4 * 6 + 4 * 3
    assert await _part_log(listen=True) == direct
