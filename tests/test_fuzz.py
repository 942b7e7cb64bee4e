"""Fuzzing the receive path: SMS reassembly, CBOR/COSE decoding, message validation and a
handset's whole receive path, fed random and mutated bytes.

The only acceptable outcome is a defined rejection (a ``ProtocolError`` with its reason),
never another exception, a hang or unbounded memory. Hypothesis drives it (atheris is not
a dependency); ``make test-long`` runs many more examples.
"""

from __future__ import annotations

import tracemalloc

import pytest
from conftest import T0, World, examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpay.actors.base import plain_text_of
from mpay.protocol.envelope import MAX_ENVELOPE_BYTES, open_envelope, seal
from mpay.protocol.errors import ProtocolError
from mpay.protocol.messages import MESSAGE_MODELS, MessageType, decode_message
from mpay.protocol.samples import sample_message
from mpay.protocol.sms import SMS_OCTETS, Reassembler

FUZZ = settings(
    max_examples=examples(150, 3_000),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: a refusal must not allocate more than this while it decides (bytes)
MAX_REFUSAL_MEMORY = 8 * 1024 * 1024


def _sealed(world: World, message_type: MessageType = MessageType.CONFIRMATION) -> bytes:
    return seal(
        sample_message(message_type), sender=world["alice"], recipient_cert=world["mpc"].agreement_cert,
        seq=7, sent_unix_s=T0,
    )


def _open(world: World, data: bytes, trust) -> None:
    open_envelope(data, recipient=world["mpc"], trust=trust, now_unix_s=T0)


# --- SMS reassembly ---------------------------------------------------------------------------------

sms_bytes = st.one_of(
    st.binary(max_size=SMS_OCTETS + 20),
    st.builds(
        lambda ref, total, seq, body: bytes((5, 0, 3, ref, total, seq)) + body,
        st.integers(0, 3), st.integers(0, 4), st.integers(0, 5), st.binary(max_size=140),
    ),
)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), sms_bytes, st.floats(0, 2_000)), max_size=60))
def test_reassembly_only_ever_refuses_with_a_protocol_error(stream: list[tuple[str, bytes, float]]) -> None:
    reassembler = Reassembler(600.0, max_pending_per_sender=4, max_pending_total=6)
    now_s = 0.0
    for sender, sms, step_s in stream:
        now_s += step_s
        try:
            whole = reassembler.add(sender, sms, now_s)
        except ProtocolError as exc:
            assert exc.reason in ("malformed", "too_large")
            continue
        if whole is not None:
            assert len(whole) <= 255 * 134
        assert reassembler.pending <= 6  # bounded memory, whatever arrives


# --- envelopes --------------------------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=2_000))
def test_random_bytes_never_open(rsa_world: World, data: bytes) -> None:
    with pytest.raises(ProtocolError):
        _open(rsa_world, data, rsa_world.trust())


mutations = st.lists(
    st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]), st.integers(0, 10**6), st.integers(1, 255)),
    min_size=1, max_size=4,
)


def _mutate(data: bytes, steps: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for op, where, value in steps:
        i = where % max(1, len(buf))
        if op == "flip" and buf:
            buf[i] ^= value
        elif op == "insert":
            buf[i:i] = bytes([value])
        elif op == "delete" and buf:
            del buf[i]
        elif op == "truncate":
            del buf[i:]
        elif op == "splice":  # a well-formed CBOR header claiming a huge length
            buf[i:i] = bytes([0x5B]) + b"\xff" * 8
    return bytes(buf)


@FUZZ
@given(steps=mutations, which=st.sampled_from(["rsa2048", "compact"]))
def test_mutated_envelopes_are_refused_by_reason(worlds: dict[str, World], steps, which: str) -> None:
    world = worlds[which]
    original = _sealed(world)
    mutated = _mutate(original, steps)
    if mutated == original:
        return
    with pytest.raises(ProtocolError) as info:
        _open(world, mutated, world.trust())
    assert info.value.reason in {
        "malformed", "too_large", "unsupported_algorithm", "decrypt_failed", "bad_signature",
        "unknown_certificate", "header_mismatch",
    }


@pytest.mark.parametrize(
    "data",
    [
        b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff",  # a byte string of 2**64-1 octets
        b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff",  # an array of 2**64-1 items
        b"\xd8\x60\x84" + b"\x81" * 10_000 + b"\x00",  # deep nesting
        b"\xd8\x60" + b"\xbf" * 5_000,  # indefinite maps
        b"\x00" * (MAX_ENVELOPE_BYTES + 1),
    ],
    ids=["huge-bstr", "huge-array", "deep", "indefinite", "oversize"],
)
def test_hostile_lengths_are_refused_without_unbounded_memory(rsa_world: World, data: bytes) -> None:
    trust = rsa_world.trust()
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError):
            _open(rsa_world, data, trust)
        with pytest.raises(ProtocolError):
            decode_message(MessageType.CONFIRMATION, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_REFUSAL_MEMORY + len(data) * 4


# --- message validation -----------------------------------------------------------------------------


@FUZZ
@given(message_type=st.sampled_from(sorted(MESSAGE_MODELS)), payload=st.binary(max_size=600))
def test_random_payloads_never_validate_by_accident(message_type: MessageType, payload: bytes) -> None:
    try:
        message = decode_message(message_type, payload)
    except ProtocolError as exc:
        assert exc.reason in ("malformed", "too_large")
    else:  # a valid message, by chance: then it is exactly its canonical encoding
        from mpay.protocol.messages import encode_message

        assert encode_message(message) == payload


@FUZZ
@given(data=st.binary(max_size=300))
def test_plain_text_detection_never_claims_an_envelope(data: bytes) -> None:
    text = plain_text_of(data)
    if data.startswith(b"\xd8\x60"):
        assert text is None
    if text is not None:
        assert text.encode("utf-8") == data


# --- a handset's whole receive path -------------------------------------------------------------------


@settings(max_examples=examples(6, 60), deadline=None)
@given(junk=st.lists(st.tuples(st.binary(min_size=1, max_size=SMS_OCTETS), st.integers(0, 3)), min_size=1, max_size=25))
def test_junk_on_the_air_is_refused_and_the_honest_purchase_completes(junk, tmp_path_factory) -> None:
    """Random SMS from random numbers to every party during a real purchase: every one is
    refused by reason or dropped while reassembling; the purchase settles."""
    import asyncio
    from pathlib import Path

    from mpay.schema.scenario import load_scenario
    from mpay.sim.world import World as SimWorld

    scenario = load_scenario(Path(__file__).resolve().parent.parent / "scenarios" / "happy_path.toml")

    async def run() -> dict:
        world = await SimWorld.build(scenario, None)
        numbers = [actor.number for actor in world.actors()]
        for i, (data, to) in enumerate(junk):
            world.network.inject(f"1700000{i:04d}", numbers[to], data, at_s=1.0 + i)
        try:
            return await world.run()
        finally:
            await world.close()

    summary = asyncio.run(run())
    assert summary["transactions"][0]["outcome"] == "settled"
    assert all(summary["invariants"].values())
    assert sum(summary["security"]["rejected"].values()) <= len(junk)
    assert set(summary["security"]["rejected"]) <= {
        "malformed", "too_large", "unauthenticated", "unsupported_algorithm", "decrypt_failed",
    }
