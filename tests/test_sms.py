"""Binary SMS segmentation and reassembly: limits, duplicates, reordering, timeouts, garbage."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpay.protocol.errors import MalformedMessage, MessageTooLarge
from mpay.protocol.sms import (
    MAX_MESSAGE_OCTETS,
    MAX_PARTS,
    PART_PAYLOAD_OCTETS,
    SMS_OCTETS,
    UDH_OCTETS,
    Reassembler,
    parse_part,
    parts_needed,
    segment,
)


def test_constants() -> None:
    assert (SMS_OCTETS, UDH_OCTETS, PART_PAYLOAD_OCTETS, MAX_PARTS) == (140, 6, 134, 255)
    assert MAX_MESSAGE_OCTETS == 134 * 255 == 34_170


def test_140_octets_fit_in_one_sms_without_header() -> None:
    data = bytes(range(140))
    assert segment(data, ref=7) == [data]
    assert parts_needed(140) == 1


def test_141_octets_need_two_parts_with_header() -> None:
    data = bytes(i % 251 for i in range(141))
    parts = segment(data, ref=7)
    assert [len(p) for p in parts] == [140, 6 + 7]
    assert parts[0][:6] == bytes([0x05, 0x00, 0x03, 7, 2, 1])
    assert parts[1][:6] == bytes([0x05, 0x00, 0x03, 7, 2, 2])
    assert parts[0][6:] + parts[1][6:] == data
    assert parts_needed(141) == 2


def test_255_full_parts_are_the_limit() -> None:
    data = random.Random(1).randbytes(MAX_MESSAGE_OCTETS)
    parts = segment(data, ref=255)
    assert len(parts) == 255
    assert all(len(p) == SMS_OCTETS for p in parts)
    r = Reassembler(timeout_s=60)
    results = [r.add("+861", p, 0.0) for p in parts]
    assert results[:-1] == [None] * 254
    assert results[-1] == data


def test_one_octet_more_is_too_large() -> None:
    with pytest.raises(MessageTooLarge):
        segment(bytes(MAX_MESSAGE_OCTETS + 1), ref=0)


def test_reference_must_be_an_octet() -> None:
    with pytest.raises(ValueError):
        segment(b"x" * 200, ref=256)


def test_short_message_that_looks_like_a_header_is_sent_with_one() -> None:
    # Without the TP-UDHI bit, a whole SMS starting 05 00 03 would be misread as a part.
    data = b"\x05\x00\x03\x01\x02\x03hello"
    parts = segment(data, ref=9)
    assert parts == [bytes([5, 0, 3, 9, 1, 1]) + data]
    assert Reassembler(timeout_s=10).add("a", parts[0], 0.0) == data


def test_single_sms_is_returned_as_is() -> None:
    r = Reassembler(timeout_s=10)
    assert r.add("a", b"\xd8\x60hello", 0.0) == b"\xd8\x60hello"
    assert r.counters.completed == 1


def test_reordered_and_duplicated_parts() -> None:
    data = random.Random(2).randbytes(1000)
    parts = segment(data, ref=3)
    order = parts[::-1] + parts[2:4]
    r = Reassembler(timeout_s=10)
    out = [r.add("a", p, 1.0) for p in order]
    assert out.count(data) == 1
    assert r.counters.duplicates == 2
    assert r.pending == 0


def test_duplicate_after_completion_is_not_a_ghost_message() -> None:
    data = bytes(300)
    parts = segment(data, ref=1)
    r = Reassembler(timeout_s=10)
    for p in parts:
        r.add("a", p, 0.0)
    assert r.add("a", parts[0], 1.0) is None
    assert r.pending == 0
    assert r.counters.duplicates == 1
    r.expire(100.0)
    assert r.counters.expired == 0


def test_same_reference_from_two_senders_does_not_mix() -> None:
    a, b = b"A" * 300, b"B" * 300
    pa, pb = segment(a, ref=5), segment(b, ref=5)
    r = Reassembler(timeout_s=10)
    results = [r.add(s, p, 0.0) for p_a, p_b in zip(pa, pb) for s, p in (("x", p_a), ("y", p_b))]
    assert [m for m in results if m is not None] == [a, b]


def test_reference_wraps_after_256_messages() -> None:
    r = Reassembler(timeout_s=1000)
    got = []
    for n in range(300):
        data = n.to_bytes(2, "big") * 100
        for p in segment(data, ref=n % 256):
            got.append(r.add("a", p, float(n)))
    assert [m for m in got if m is not None] == [n.to_bytes(2, "big") * 100 for n in range(300)]


def test_new_message_under_a_remembered_reference_still_drops_old_parts() -> None:
    """After the reference wraps, a message with the key of one completed lately: a part
    equal to that message's part of the same number is a duplicate, even once the new
    message has begun (and so it never completes from the old part)."""
    old = bytes(134) + b"A" * 134 + bytes(134)
    new = b"B" * 134 + b"A" * 134 + b"C" * 134
    r = Reassembler(timeout_s=1000)
    for p in segment(old, ref=7):
        r.add("a", p, 0.0)
    p1, p2, p3 = segment(new, ref=7)
    assert r.add("a", p1, 1.0) is None and r.pending == 1
    assert r.add("a", p2, 1.0) is None
    assert r.counters.duplicates == 1
    assert r.add("a", p3, 1.0) is None and r.pending == 1
    assert r.counters.completed == 1


def test_partial_message_expires_and_is_counted() -> None:
    parts = segment(bytes(500), ref=1)
    r = Reassembler(timeout_s=30)
    r.add("a", parts[0], 0.0)
    assert r.pending == 1
    assert r.expire(29.9) == 0
    assert r.expire(30.0) == 1
    assert r.counters.expired == 1
    # the rest arriving late starts over and never completes the old message
    assert all(r.add("a", p, 31.0) is None for p in parts[1:])


def test_bounded_partials_per_sender_and_total() -> None:
    r = Reassembler(timeout_s=1000, max_pending_per_sender=2, max_pending_total=3)
    for ref in range(4):
        r.add("a", segment(bytes(300), ref=ref)[0], 0.0)
    assert r.pending == 2
    assert r.counters.evicted == 2
    r.add("b", segment(bytes(300), ref=0)[0], 0.0)
    r.add("c", segment(bytes(300), ref=0)[0], 0.0)
    assert r.pending == 3
    assert r.counters.evicted == 3


def test_conflicting_part_keeps_the_first() -> None:
    parts = segment(b"x" * 200, ref=4)
    forged = parts[0][:6] + b"y" * 134
    r = Reassembler(timeout_s=10)
    r.add("a", parts[0], 0.0)
    assert r.add("a", forged, 0.0) is None
    assert r.counters.conflicts == 1
    assert r.add("a", parts[1], 0.0) == b"x" * 200


@pytest.mark.parametrize(
    "sms",
    [
        b"\x05\x00\x03\x01\x02\x01",  # header, no payload
        b"\x05\x00\x03\x01\x00\x01x",  # total 0
        b"\x05\x00\x03\x01\x02\x00x",  # part 0
        b"\x05\x00\x03\x01\x02\x03x",  # part 3 of 2
        b"\x05\x00\x03",  # truncated header
        bytes(141),  # longer than an SMS
    ],
)
def test_malformed_header_is_rejected(sms: bytes) -> None:
    r = Reassembler(timeout_s=10)
    with pytest.raises(MalformedMessage):
        r.add("a", sms, 0.0)
    assert r.counters.malformed == 1


def test_malformed_error_is_parse_parts() -> None:
    for sms in (bytes(141), b"\x05\x00\x03\x01\x02\x03x"):
        with pytest.raises(MalformedMessage) as expected:
            parse_part(sms)
        with pytest.raises(type(expected.value), match=re.escape(str(expected.value))):
            Reassembler(timeout_s=10).add("a", sms, 0.0)


def test_buffers_are_taken_as_bytes_and_copied() -> None:
    data = bytes(range(200))
    first, second = (bytearray(p) for p in segment(data, 9))
    r = Reassembler(timeout_s=10)
    assert r.add("a", memoryview(first), 0.0) is None
    first[-1] ^= 0xFF  # the handset keeps its own copy
    message = r.add("a", second, 1.0)
    assert type(message) is bytes and message == data
    single = bytearray(b"\xd8\x60hello")
    assert type(r.add("a", single, 2.0)) is bytes


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=3000),
    ref=st.integers(0, 255),
    rnd=st.randoms(use_true_random=False),
)
def test_any_permutation_with_duplicates_reassembles(data: bytes, ref: int, rnd: random.Random) -> None:
    parts = segment(data, ref)
    assert all(len(p) <= SMS_OCTETS for p in parts)
    arrived = parts + [rnd.choice(parts) for _ in range(rnd.randint(0, 5))]
    rnd.shuffle(arrived)
    r = Reassembler(timeout_s=10)
    out = [r.add("+8613800000000", p, 0.0) for p in arrived]
    complete = [m for m in out if m is not None]
    if len(parts) > 1:
        assert complete == [data]
    else:  # a single SMS is its own message; each copy is returned (the envelope dedups)
        assert set(complete) == {data}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=160), max_size=20))
def test_random_bytes_never_crash(smss: list[bytes]) -> None:
    r = Reassembler(timeout_s=5, max_pending_per_sender=3, max_pending_total=4)
    for i, sms in enumerate(smss):
        try:
            out = r.add("s" + str(i % 3), sms, float(i))
        except MalformedMessage:
            continue
        assert out is None or isinstance(out, bytes)
        if len(sms) <= SMS_OCTETS and parse_part(sms) is None:
            assert out == sms
    assert r.pending <= 4
