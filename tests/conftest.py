"""Shared fixtures: cached keys, an authority and a handful of identities per cipher suite.

RSA key generation is slow, so every identity takes its key from the on-disk key cache
(``$MPAY_KEY_CACHE`` or ``~/.cache/mpay/keys``; the first run fills it, later runs load).
Worlds are session-scoped and never mutated: tests that revoke use their own trust store
(``world.trust()``) or their own authority.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest
from hypothesis import settings

from mpay.keys.keycache import KeyCache
from mpay.protocol.pki import Authority, Identity, TrustStore
from mpay.protocol.suites import get_suite

#: ``make test-long`` sets MPAY_LONG=1: the "long" hypothesis profile, and property tests
#: that scale their own example counts read :data:`LONG` (see docs/testing.md)
LONG = os.environ.get("MPAY_LONG") == "1"
# "fast" (make test): hypothesis' default example counts, no per-example deadline (a world
# build is slow on a loaded machine), and the reproduction blob printed with any failure.
settings.register_profile("fast", deadline=None, print_blob=True)
# "long" (make test-long): ten times the examples for every test that does not set its own.
settings.register_profile("long", deadline=None, print_blob=True, max_examples=1_000)
settings.load_profile("long" if LONG else "fast")


def examples(fast: int, long: int) -> int:
    """A property test's example count under the current profile."""
    return long if LONG else fast


#: the tests' "now": 2026-01-01T00:00:00Z
T0 = 1_767_225_600
DAY_S = 86_400
#: validity of every test certificate: T0 - 1 day .. T0 + 365 days
CERT_NOT_BEFORE = T0 - DAY_S
CERT_NOT_AFTER = T0 + 365 * DAY_S

#: party id -> (role, key-pool index, phone); the first four match protocol.samples
TEST_PARTIES: dict[str, tuple[str, int, str | None]] = {
    "alice": ("customer", 0, "+8613800138000"),
    "shop": ("merchant", 1, None),
    "mpc": ("payment_center", 2, None),
    "bank": ("bank", 3, None),
    "bob": ("customer", 4, "+8613900139000"),
    "mall": ("merchant", 5, None),
}


@dataclass
class World:
    """An authority and its parties for one suite."""

    suite: str
    authority: Authority
    parties: dict[str, Identity] = field(default_factory=dict)

    def __getitem__(self, party_id: str) -> Identity:
        return self.parties[party_id]

    def trust(self, *, exclude: tuple[str, ...] = ()) -> TrustStore:
        """A fresh trust store knowing every party's certificates except ``exclude``."""
        store = TrustStore(self.authority.certificate)
        for party_id, ident in self.parties.items():
            if party_id not in exclude:
                for cert in ident.certificates:
                    store.add(cert)
        return store


@pytest.fixture(scope="session")
def key_cache() -> KeyCache:
    return KeyCache()


def _make_world(cache: KeyCache, suite_name: str) -> World:
    suite = get_suite(suite_name)
    authority = Authority.create(
        cache.authority_key(suite),
        not_before_unix_s=T0 - 30 * DAY_S,
        not_after_unix_s=T0 + 3650 * DAY_S,
        name=f"test authority {suite_name}",
    )
    world = World(suite=suite_name, authority=authority)
    for party_id, (role, index, phone) in TEST_PARTIES.items():
        world.parties[party_id] = authority.issue_identity(
            party_id, role, suite, cache.keys(suite, index), CERT_NOT_BEFORE, CERT_NOT_AFTER, phone=phone
        )
    return world


@pytest.fixture(scope="session")
def worlds(key_cache: KeyCache) -> dict[str, World]:
    """Suite name -> World, for rsa2048 and compact (the suites most tests run against)."""
    return {name: _make_world(key_cache, name) for name in ("rsa2048", "compact")}


@pytest.fixture(scope="session")
def rsa_world(worlds: dict[str, World]) -> World:
    return worlds["rsa2048"]


@pytest.fixture(scope="session")
def compact_world(worlds: dict[str, World]) -> World:
    return worlds["compact"]


@pytest.fixture(scope="session", params=["rsa2048", "compact"])
def world(request: pytest.FixtureRequest, worlds: dict[str, World]) -> World:
    """Each of the two main suites in turn."""
    return worlds[request.param]


class ManualClock:
    """A virtual clock the test moves by hand (``clock.now = …``), for ledgers and books."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def clock() -> ManualClock:
    return ManualClock()
