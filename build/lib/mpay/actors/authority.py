"""The authority (权威认证机构): enrols every party and revokes certificates.

Seed init 1: customer, merchant, payment center (and here the bank) each obtain a key pair's
certificate from the authority. Init 5 (checking certificates with the authority) happens in
every receiver's ``TrustStore``, which shares the authority's live revocation list, so a
revocation takes effect for every later message at once. The authority sends no SMS; a
scheduled revocation arrives in its mailbox as a timer.
"""

from __future__ import annotations

from typing import Any

from mpay.actors.ports import Clock, TimerFired, Tracer
from mpay.protocol.pki import Authority, Identity
from mpay.protocol.suites import PartyKeys, Suite


class AuthorityActor:
    """Enrolment (certificate issuing) and revocation, as the kernel's actor ``party_id``."""

    role = "authority"

    def __init__(
        self,
        *,
        party_id: str,
        authority: Authority,
        suite: Suite,
        clock: Clock,
        tracer: Tracer,
        validity_s: int,
    ) -> None:
        self.party_id = party_id
        self.authority = authority
        self.suite = suite
        self.clock = clock
        self.tracer = tracer
        self.validity_s = validity_s
        self.enrolled: dict[str, Identity] = {}
        self.rejections: dict[str, int] = {}
        self.opened_log: list[Any] | None = None

    def enrol(self, party_id: str, role: str, keys: PartyKeys, phone: str | None = None) -> Identity:
        """Init 1: issue the party's certificate(s), valid from a day before now."""
        not_before = int(self.clock.now_unix_s()) - 86_400
        identity = self.authority.issue_identity(
            party_id, role, self.suite, keys, not_before, not_before + self.validity_s, phone=phone
        )
        self.enrolled[party_id] = identity
        return identity

    def revoke_at(self, party_id: str, at_s: float) -> None:
        """Schedule the revocation of every certificate of ``party_id`` at virtual ``at_s``."""
        self.clock.call_at(at_s, self.party_id, f"revoke:{party_id}")

    def revoke(self, party_id: str) -> None:
        """Revoke now: every receiver refuses the party's later messages."""
        identity = self.enrolled[party_id]
        now_unix_s = int(self.clock.now_unix_s())
        for cert in identity.certificates:
            self.authority.revoke(cert, now_unix_s)
        self.tracer.record("revoked", actor=self.party_id, party=party_id)

    async def handle(self, item: object) -> None:
        if isinstance(item, TimerFired) and item.name.startswith("revoke:"):
            self.revoke(item.name.partition(":")[2])
            return
        raise TypeError(f"the authority takes no {item!r}")
