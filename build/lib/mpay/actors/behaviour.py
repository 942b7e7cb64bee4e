"""How customers and merchants behave: pluggable strategies chosen by the scenario.

A behaviour answers the questions the protocol leaves to a person — confirm or decline,
accept or reject, ship or not, agree a refund or not — and how long each takes. Choices
that are probabilities draw from the run's seeded generator, so a run stays reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

ConfirmChoice = Literal["confirm", "decline", "ignore"]
DeliveryChoice = Literal["accept", "reject", "ignore"]
ShipChoice = Literal["ship", "never"]
RefundChoice = Literal["agree", "ignore"]
RejectReason = Literal["not_as_described", "damaged", "wrong_item", "not_received", "other"]


@dataclass(frozen=True, slots=True)
class CustomerBehaviour:
    """What a customer does at each decision point of the protocol.

    ``p_*`` fields, when set, turn a fixed choice into a random one: with probability
    ``p_decline`` the customer declines instead of confirming, and so on.
    """

    confirm: ConfirmChoice = "confirm"
    top_up: bool = True
    on_delivery: DeliveryChoice = "accept"
    reject_reason: RejectReason = "not_as_described"
    reject_text: str = "goods not as described"
    think_s: float = 60.0
    inspect_s: float = 3600.0
    return_transit_s: float = 86_400.0
    rate: bool = True
    stars_when_settled: int = 5
    stars_when_refunded: int = 2
    p_decline: float = 0.0
    p_ignore_confirm: float = 0.0
    p_reject: float = 0.0
    p_ignore_delivery: float = 0.0

    def decide_confirm(self, rng: random.Random) -> ConfirmChoice:
        if self.p_decline or self.p_ignore_confirm:
            roll = rng.random()
            if roll < self.p_decline:
                return "decline"
            if roll < self.p_decline + self.p_ignore_confirm:
                return "ignore"
            return "confirm"
        return self.confirm

    def decide_delivery(self, rng: random.Random) -> DeliveryChoice:
        if self.p_reject or self.p_ignore_delivery:
            roll = rng.random()
            if roll < self.p_reject:
                return "reject"
            if roll < self.p_reject + self.p_ignore_delivery:
                return "ignore"
            return "accept"
        return self.on_delivery


@dataclass(frozen=True, slots=True)
class MerchantBehaviour:
    """What a merchant does: ships (and how fast), agrees refunds, rates customers."""

    ship: ShipChoice = "ship"
    ship_delay_s: float = 3600.0
    transit_s: float = 86_400.0
    refund: RefundChoice = "agree"
    shipping_method: Literal["surface", "express"] = "express"
    rate: bool = True
    stars_when_settled: int = 5
    stars_when_refunded: int = 3
    p_never_ship: float = 0.0
    p_ignore_refund: float = 0.0

    def decide_ship(self, rng: random.Random) -> ShipChoice:
        if self.p_never_ship:
            return "never" if rng.random() < self.p_never_ship else "ship"
        return self.ship

    def decide_refund(self, rng: random.Random) -> RefundChoice:
        if self.p_ignore_refund:
            return "ignore" if rng.random() < self.p_ignore_refund else "agree"
        return self.refund
