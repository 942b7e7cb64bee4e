"""Scenario files: the TOML schema, validated with pydantic, and its clear errors.

A scenario names the parties (with opening balances), the orders (or a generated
workload), behaviours, network conditions, cipher suite, protocol windows, and the
``expect`` section that ``mpay run`` checks. Every field is documented in
``docs/scenarios.md``. Amounts are integers of fen; times are seconds.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mpay.actors.behaviour import CustomerBehaviour, MerchantBehaviour
from mpay.protocol.messages import MessageType

MAX_PARTIES = 100_000
MAX_ORDERS = 1_000_000
MAX_AMOUNT_FEN = 10**12
#: mirrors mpay.sim.adversary / mpay.sim.network limits (kept here so the schema stands alone)
MAX_EAVESDROP_NUMBERS = 20
MAX_ATTACK_ACTIONS = 1_000_000
MAX_SMS_RETRIES = 16
PartyId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Fen = Annotated[int, Field(ge=0, le=MAX_AMOUNT_FEN, strict=True)]
PositiveFen = Annotated[int, Field(gt=0, le=MAX_AMOUNT_FEN, strict=True)]
Seconds = Annotated[float, Field(ge=0, le=10 * 365 * 86_400)]
Probability = Annotated[float, Field(ge=0, le=1)]


class ScenarioError(Exception):
    """Bad scenario input: one line naming the file, the field, the problem and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CustomerBehaviourSpec(_Strict):
    confirm: Literal["confirm", "decline", "ignore"] = "confirm"
    top_up: bool = True
    on_delivery: Literal["accept", "reject", "ignore"] = "accept"
    reject_reason: Literal["not_as_described", "damaged", "wrong_item", "not_received", "other"] = (
        "not_as_described"
    )
    reject_text: str = Field(default="goods not as described", max_length=140)
    think_s: Seconds = 60.0
    inspect_s: Seconds = 3600.0
    return_transit_s: Seconds = 86_400.0
    rate: bool = True
    p_decline: Probability = 0.0
    p_ignore_confirm: Probability = 0.0
    p_reject: Probability = 0.0
    p_ignore_delivery: Probability = 0.0

    def build(self) -> CustomerBehaviour:
        return CustomerBehaviour(**self.model_dump())


class MerchantBehaviourSpec(_Strict):
    ship: Literal["ship", "never"] = "ship"
    ship_delay_s: Seconds = 3600.0
    transit_s: Seconds = 86_400.0
    refund: Literal["agree", "ignore"] = "agree"
    shipping_method: Literal["surface", "express"] = "express"
    rate: bool = True
    p_never_ship: Probability = 0.0
    p_ignore_refund: Probability = 0.0

    def build(self) -> MerchantBehaviour:
        return MerchantBehaviour(**self.model_dump())


class CustomerSpec(_Strict):
    id: PartyId
    phone: str | None = Field(default=None, pattern=r"^1[3-9][0-9]{9}$")
    name: str = Field(default="", max_length=40)
    wallet_fen: Fen = 0
    card_fen: Fen = 0
    behaviour: CustomerBehaviourSpec = CustomerBehaviourSpec()


class MerchantSpec(_Strict):
    id: PartyId
    wallet_fen: Fen = 0
    behaviour: MerchantBehaviourSpec = MerchantBehaviourSpec()


class ItemSpec(_Strict):
    name: str = Field(min_length=1, max_length=40)
    specification: str = Field(default="standard", max_length=40)
    quantity: int = Field(ge=1, le=999, strict=True)
    unit_price_fen: PositiveFen


class OrderSpec(_Strict):
    customer: PartyId
    merchant: PartyId
    at_s: Seconds = 0.0
    items: list[ItemSpec] = Field(min_length=1, max_length=20)
    customer_behaviour: CustomerBehaviourSpec | None = None
    merchant_behaviour: MerchantBehaviourSpec | None = None

    @property
    def amount_fen(self) -> int:
        return sum(item.quantity * item.unit_price_fen for item in self.items)


class WorkloadSpec(_Strict):
    """A generated workload: many customers and merchants, random orders and behaviours."""

    customers: int = Field(ge=1, le=MAX_PARTIES)
    merchants: int = Field(ge=1, le=MAX_PARTIES)
    transactions: int = Field(ge=1, le=MAX_ORDERS)
    wallet_fen: Fen = 100_000
    card_fen: Fen = 1_000_000
    min_price_fen: PositiveFen = 100
    max_price_fen: PositiveFen = 50_000
    spread_s: Seconds = 86_400.0
    customer_behaviour: CustomerBehaviourSpec = CustomerBehaviourSpec()
    merchant_behaviour: MerchantBehaviourSpec = MerchantBehaviourSpec()

    @model_validator(mode="after")
    def _prices(self) -> "WorkloadSpec":
        if self.min_price_fen > self.max_price_fen:
            raise ValueError("min_price_fen must not exceed max_price_fen")
        return self


class WindowsSpec(_Strict):
    confirm_s: Annotated[float, Field(gt=0, le=30 * 86_400)] = 30 * 60.0
    ship_s: Annotated[float, Field(gt=0, le=365 * 86_400)] = 72 * 3600.0
    accept_s: Annotated[float, Field(gt=0, le=365 * 86_400)] = 10 * 86_400.0
    refund_s: Annotated[float, Field(gt=0, le=365 * 86_400)] = 7 * 86_400.0


class LinkSpec(_Strict):
    latency_s: Seconds = 2.0
    jitter_mean_s: Seconds = 0.5
    loss: Probability = 0.0
    duplicate: Probability = 0.0
    #: SMS-centre store and forward: a lost SMS is tried again this much later ...
    retry_interval_s: Annotated[float, Field(gt=0, le=86_400)] = 60.0
    #: ... at most this many times (mpay.sim.network.MAX_SMS_RETRIES)
    max_retries: int = Field(default=0, ge=0, le=MAX_SMS_RETRIES, strict=True)


# --- attacks and faults (docs/threat-model.md) -------------------------------------------------

#: a party id or a phone number
Target = Annotated[str, Field(pattern=r"^([a-z][a-z0-9_]{0,31}|[0-9]{3,15})$")]
MessageName = Literal[tuple(str(t) for t in MessageType)]  # type: ignore[valid-type]


class _AttackSpec(_Strict):
    targets: list[Target] = Field(default=[], max_length=MAX_EAVESDROP_NUMBERS)
    direction: Literal["both", "from", "to"] = "both"
    probability: Probability = 1.0
    skip: int = Field(default=0, ge=0, le=MAX_ORDERS)
    max_count: int = Field(default=MAX_ATTACK_ACTIONS, ge=0, le=MAX_ATTACK_ACTIONS)
    from_s: Seconds | None = None
    until_s: Seconds | None = None


class EavesdropSpec(_AttackSpec):
    kind: Literal["eavesdrop"]
    targets: list[Target] = Field(min_length=1, max_length=MAX_EAVESDROP_NUMBERS)


class DropSpec(_AttackSpec):
    kind: Literal["drop"]


class DelaySpec(_AttackSpec):
    kind: Literal["delay"]
    delay_s: Seconds = 3600.0


class DuplicateSpec(_AttackSpec):
    kind: Literal["duplicate"]
    copies: int = Field(default=1, ge=1, le=10)
    gap_s: Seconds = 1.0


class ReplaySpec(_AttackSpec):
    kind: Literal["replay"]
    delay_s: Seconds = 3600.0
    mode: Literal["later", "substitute"] = "later"


class TamperSpec(_AttackSpec):
    kind: Literal["tamper"]
    position: Literal["last", "random"] = "last"


class RedirectSpec(_AttackSpec):
    kind: Literal["redirect"]
    to: Target


class InjectSpec(_AttackSpec):
    kind: Literal["inject"]
    to: Target
    claim: PartyId
    message: MessageName = "acceptance"
    contract_no: str | None = Field(default=None, min_length=1, max_length=64)
    key: Literal["own_ca", "victim_kid"] = "own_ca"
    at_s: list[Seconds] = Field(default=[0.0], min_length=1, max_length=1000)
    from_number: str | None = Field(default=None, pattern=r"^[0-9]{3,15}$")


class SimCloneSpec(_AttackSpec):
    kind: Literal["sim_clone"]
    victim: PartyId
    to: Target
    message: MessageName | Literal["text"] = "text"
    text: str = Field(default="I confirm the order, please pay the merchant now.", max_length=140)
    contract_no: str | None = Field(default=None, min_length=1, max_length=64)
    key: Literal["own_ca", "victim_kid"] = "own_ca"
    at_s: list[Seconds] = Field(default=[0.0], min_length=1, max_length=1000)


class PhishSpec(_AttackSpec):
    kind: Literal["phish"]
    targets: list[Target] = Field(min_length=1, max_length=MAX_EAVESDROP_NUMBERS)
    text: str | None = Field(default=None, min_length=1, max_length=140)
    from_number: str | None = Field(default=None, pattern=r"^[0-9]{3,15}$")
    at_s: list[Seconds] = Field(default=[0.0], min_length=1, max_length=1000)


AttackSpec = Annotated[
    EavesdropSpec | DropSpec | DelaySpec | DuplicateSpec | ReplaySpec | TamperSpec | RedirectSpec
    | InjectSpec | SimCloneSpec | PhishSpec,
    Field(discriminator="kind"),
]
RestartableParty = Literal["mpc", "bank"]


class CrashSpec(_Strict):
    """Crash a restartable party at a protocol step (see mpay/sim/faults.py)."""

    party: RestartableParty
    on: str = Field(pattern=r"^(message|transition):[a-z_]{1,64}$")
    where: Literal["after", "before_commit", "before_send"] = "after"
    nth: int = Field(default=1, ge=1, le=MAX_ORDERS)


class RestartSpec(_Strict):
    party: RestartableParty
    at_s: Seconds


class ClockSkewSpec(_Strict):
    party: PartyId
    offset_s: Annotated[float, Field(ge=-86_400, le=86_400)]
    from_s: Seconds | None = None


class FaultsSpec(_Strict):
    crashes: list[CrashSpec] = Field(default=[], max_length=1000)
    restarts: list[RestartSpec] = Field(default=[], max_length=1000)
    clock_skew: list[ClockSkewSpec] = Field(default=[], max_length=MAX_PARTIES)


class PaymentCenterSpec(_Strict):
    dispute_decision: Literal["refund", "settle"] = "refund"
    points_per_yuan: int = Field(default=1, ge=0, le=1000)
    fen_per_100_points: int = Field(default=100, ge=0, le=100_000)


class RevocationSpec(_Strict):
    """The authority revokes every certificate of ``party`` at ``at_s`` (seconds after the
    orders start, like an order's ``at_s``): its later messages are refused everywhere."""

    party: PartyId
    at_s: Seconds = 0.0


class PartyExpect(_Strict):
    wallet_fen: Fen | None = None
    card_fen: Fen | None = None
    points: int | None = Field(default=None, ge=0)
    min_credit_score: float | None = Field(default=None, ge=0, le=1000)
    max_credit_score: float | None = Field(default=None, ge=0, le=1000)


class ExpectSpec(_Strict):
    invariants: bool = True
    outcomes: dict[Literal["settled", "refunded", "declined", "disputed", "open"], int] = {}
    auto_accepted: int | None = Field(default=None, ge=0)
    escrow_fen: Fen | None = None
    min_duration_s: Seconds | None = None
    parties: dict[PartyId, PartyExpect] = {}
    rejected: dict[str, int] = {}


class Scenario(_Strict):
    name: str = Field(min_length=1, max_length=80)
    description: str = Field(default="", max_length=2000)
    seed: int = Field(default=1, ge=0, le=2**63 - 1)
    suite: Literal["rsa2048", "rsa3072", "compact"] = "rsa2048"
    currency: Literal["CNY"] = "CNY"
    start_unix_s: int = Field(default=1_767_225_600, ge=0)  # 2026-01-01T00:00:00Z
    windows: WindowsSpec = WindowsSpec()
    network: LinkSpec = LinkSpec()
    payment_center: PaymentCenterSpec = PaymentCenterSpec()
    customers: list[CustomerSpec] = Field(default=[], max_length=MAX_PARTIES)
    merchants: list[MerchantSpec] = Field(default=[], max_length=MAX_PARTIES)
    orders: list[OrderSpec] = Field(default=[], max_length=MAX_ORDERS)
    workload: WorkloadSpec | None = None
    attacks: list[AttackSpec] = Field(default=[], max_length=100)
    faults: FaultsSpec = FaultsSpec()
    revocations: list[RevocationSpec] = Field(default=[], max_length=1000)
    expect: ExpectSpec = ExpectSpec()

    @model_validator(mode="after")
    def _references(self) -> "Scenario":
        ids = [c.id for c in self.customers] + [m.id for m in self.merchants]
        seen: set[str] = set()
        for party_id in ids:
            if party_id in seen:
                raise ValueError(f"party id {party_id!r} is used twice; give every party its own id")
            seen.add(party_id)
        reserved = {"mpc", "bank", "ca"} & seen
        if reserved:
            raise ValueError(f"party id {sorted(reserved)[0]!r} is reserved for an institution")
        customers = {c.id for c in self.customers}
        merchants = {m.id for m in self.merchants}
        for index, order in enumerate(self.orders):
            if order.customer not in customers:
                raise ValueError(
                    f"orders[{index}].customer: unknown customer {order.customer!r};"
                    f" declare it under [[customers]]"
                )
            if order.merchant not in merchants:
                raise ValueError(
                    f"orders[{index}].merchant: unknown merchant {order.merchant!r};"
                    f" declare it under [[merchants]]"
                )
        known = seen | {"mpc", "bank"}
        for index, revocation in enumerate(self.revocations):
            if revocation.party not in known and self.workload is None:
                raise ValueError(
                    f"revocations[{index}].party: unknown party {revocation.party!r};"
                    f" use a declared party id, mpc or bank"
                )
        if self.workload is None:
            for index, attack in enumerate(self.attacks):
                names = list(attack.targets)
                names += [getattr(attack, f) for f in ("to", "claim", "victim") if getattr(attack, f, None)]
                for name in names:
                    if not name.isdigit() and name not in known:
                        raise ValueError(
                            f"attacks[{index}]: unknown party {name!r}; use a declared party id or a phone number"
                        )
            for index, skew in enumerate(self.faults.clock_skew):
                if skew.party not in known:
                    raise ValueError(f"faults.clock_skew[{index}].party: unknown party {skew.party!r}")
        if not self.orders and self.workload is None:
            raise ValueError("no orders: add [[orders]] or a [workload] section")
        return self


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    hints = {
        "extra_forbidden": "remove it or check its spelling against docs/scenarios.md",
        "missing": "add it",
    }
    hint = hints.get(first["type"], "see docs/scenarios.md")
    return f"{field}: {message} ({hint})"


def parse_scenario(data: dict, source: str = "<scenario>") -> Scenario:
    """Validate a scenario mapping; raise :class:`ScenarioError` with one clear line."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"{source}: {_describe(exc)}") from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a TOML scenario file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    return parse_scenario(data, str(path))
