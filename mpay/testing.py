"""Hypothesis strategies for property tests written against mpay's public API.

Every strategy draws values the scenario schema accepts (``docs/scenarios.md``), so a
property fails only because the simulator misbehaves, never because the input was invalid.
Scenarios are kept small by default (a few parties, a few orders) because every run does
real cryptography and real SQLite.

Needs hypothesis (``pip install -e '.[test]'``). A property test::

    from hypothesis import given, settings
    from mpay.study.api import run
    from mpay.testing import scenarios

    @settings(max_examples=5, deadline=None)
    @given(scenarios())
    def test_no_money_is_created(scenario):
        result = run(scenario)
        assert all(result.summary["invariants"].values())
        assert user_money_fen(result.summary) == opening_money_fen(result.summary)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - hypothesis is a test dependency
    raise ImportError(
        "mpay.testing needs hypothesis; install the test extras: pip install -e '.[test]'"
    ) from exc

from mpay.schema.scenario import (
    CustomerBehaviourSpec,
    CustomerSpec,
    ItemSpec,
    LinkSpec,
    MerchantBehaviourSpec,
    MerchantSpec,
    OrderSpec,
    Scenario,
)

__all__ = [
    "amounts_fen",
    "customer_behaviours",
    "customers",
    "items",
    "merchant_behaviours",
    "merchants",
    "network_conditions",
    "opening_money_fen",
    "orders",
    "scenarios",
    "user_money_fen",
]

#: suites :func:`scenarios` draws from by default (pass ``suites=`` for others)
DEFAULT_SUITES = ("rsa2048", "compact")
#: protocol-relevant choices a customer or merchant can make
_CONFIRM = ("confirm", "decline", "ignore")
_DELIVERY = ("accept", "reject", "ignore")
_REASONS = ("not_as_described", "damaged", "wrong_item", "not_received", "other")

#: short human think times keep runs' virtual time (and so timer counts) modest
_think_s = st.sampled_from([0.0, 5.0, 60.0, 600.0])
_probability = st.sampled_from([0.0, 0.1, 0.5, 1.0])


def amounts_fen(min_fen: int = 1, max_fen: int = 100_000) -> st.SearchStrategy[int]:
    """Amounts of money in fen (integers; 100 fen = 1.00 CNY)."""
    return st.integers(min_value=min_fen, max_value=max_fen)


def items(max_quantity: int = 3, max_unit_price_fen: int = 20_000) -> st.SearchStrategy[ItemSpec]:
    """One order line: a name, a quantity and a unit price in fen."""
    return st.builds(
        ItemSpec,
        name=st.sampled_from(["tea", "book", "phone case", "茶叶", "umbrella"]),
        specification=st.sampled_from(["standard", "250 g tin", "red"]),
        quantity=st.integers(min_value=1, max_value=max_quantity),
        unit_price_fen=amounts_fen(1, max_unit_price_fen),
    )


def customer_behaviours(*, random_choices: bool = True) -> st.SearchStrategy[CustomerBehaviourSpec]:
    """Customer behaviours: confirm/decline/ignore, top up or not, accept/reject/ignore the
    goods, think times, and (with ``random_choices``) the ``p_*`` probabilities."""
    probabilities: dict[str, Any] = {}
    if random_choices:
        probabilities = dict(
            p_decline=_probability,
            p_ignore_confirm=st.sampled_from([0.0, 0.1, 0.5]),
            p_reject=_probability,
            p_ignore_delivery=st.sampled_from([0.0, 0.1, 0.5]),
        )
    return st.builds(
        CustomerBehaviourSpec,
        confirm=st.sampled_from(_CONFIRM),
        top_up=st.booleans(),
        on_delivery=st.sampled_from(_DELIVERY),
        reject_reason=st.sampled_from(_REASONS),
        think_s=_think_s,
        inspect_s=_think_s,
        return_transit_s=st.sampled_from([0.0, 3600.0, 86_400.0]),
        rate=st.booleans(),
        **probabilities,
    ).filter(lambda spec: spec.p_decline + spec.p_ignore_confirm <= 1 and spec.p_reject + spec.p_ignore_delivery <= 1)


def merchant_behaviours(*, random_choices: bool = True) -> st.SearchStrategy[MerchantBehaviourSpec]:
    """Merchant behaviours: ship or never, delays, agree or ignore refunds, and the ``p_*``."""
    probabilities: dict[str, Any] = {}
    if random_choices:
        probabilities = dict(p_never_ship=_probability, p_ignore_refund=_probability)
    return st.builds(
        MerchantBehaviourSpec,
        ship=st.sampled_from(["ship", "never"]),
        ship_delay_s=_think_s,
        transit_s=st.sampled_from([0.0, 3600.0, 86_400.0]),
        refund=st.sampled_from(["agree", "ignore"]),
        shipping_method=st.sampled_from(["surface", "express"]),
        rate=st.booleans(),
        **probabilities,
    )


def network_conditions(
    *, max_latency_s: float = 30.0, max_loss: float = 0.1, max_duplicate: float = 0.2
) -> st.SearchStrategy[LinkSpec]:
    """SMS link conditions: latency and jitter in seconds, loss and duplication probabilities.

    A lost SMS part loses its whole message; the protocol's windows then decide the
    transaction (declined, refunded, or accepted automatically), and an order whose first
    SMS is lost stays ``open``. Pass ``max_loss=0`` for properties about complete runs.
    """
    return st.builds(
        LinkSpec,
        latency_s=st.floats(min_value=0.0, max_value=max_latency_s, allow_nan=False),
        jitter_mean_s=st.floats(min_value=0.0, max_value=max_latency_s / 4, allow_nan=False),
        loss=st.floats(min_value=0.0, max_value=max_loss, allow_nan=False),
        duplicate=st.floats(min_value=0.0, max_value=max_duplicate, allow_nan=False),
    )


def customers(
    ids: Sequence[str], *, behaviours: st.SearchStrategy[CustomerBehaviourSpec] | None = None
) -> st.SearchStrategy[list[CustomerSpec]]:
    """One customer per id, with wallet and card balances in fen and a behaviour."""
    behaviours = behaviours if behaviours is not None else customer_behaviours()
    return st.tuples(
        *(
            st.builds(
                CustomerSpec,
                id=st.just(party_id),
                wallet_fen=amounts_fen(0, 200_000),
                card_fen=amounts_fen(0, 500_000),
                behaviour=behaviours,
            )
            for party_id in ids
        )
    ).map(list)


def merchants(
    ids: Sequence[str], *, behaviours: st.SearchStrategy[MerchantBehaviourSpec] | None = None
) -> st.SearchStrategy[list[MerchantSpec]]:
    """One merchant per id, with a wallet in fen and a behaviour."""
    behaviours = behaviours if behaviours is not None else merchant_behaviours()
    return st.tuples(
        *(
            st.builds(MerchantSpec, id=st.just(party_id), wallet_fen=amounts_fen(0, 50_000), behaviour=behaviours)
            for party_id in ids
        )
    ).map(list)


def orders(
    customer_ids: Sequence[str],
    merchant_ids: Sequence[str],
    *,
    max_items: int = 2,
    max_at_s: float = 7 * 86_400.0,
    per_order_behaviours: bool = True,
) -> st.SearchStrategy[OrderSpec]:
    """One order of a customer at a merchant: items, a time ``at_s`` in seconds after
    initialization and (with ``per_order_behaviours``) sometimes behaviours of its own."""
    optional_customer = st.none() | customer_behaviours() if per_order_behaviours else st.none()
    optional_merchant = st.none() | merchant_behaviours() if per_order_behaviours else st.none()
    return st.builds(
        OrderSpec,
        customer=st.sampled_from(list(customer_ids)),
        merchant=st.sampled_from(list(merchant_ids)),
        at_s=st.floats(min_value=0.0, max_value=max_at_s, allow_nan=False).map(lambda t: round(t, 3)),
        items=st.lists(items(), min_size=1, max_size=max_items),
        customer_behaviour=optional_customer,
        merchant_behaviour=optional_merchant,
    )


@st.composite
def scenarios(
    draw: st.DrawFn,
    *,
    max_customers: int = 2,
    max_merchants: int = 2,
    max_orders: int = 3,
    suites: Sequence[str] = DEFAULT_SUITES,
    network: st.SearchStrategy[LinkSpec] | None = None,
) -> Scenario:
    """Whole valid scenarios: parties with balances and behaviours, orders, a network, a
    suite and a seed. The ``expect`` section asks only that the invariants hold."""
    customer_ids = [f"c{n}" for n in range(draw(st.integers(1, max_customers)))]
    merchant_ids = [f"m{n}" for n in range(draw(st.integers(1, max_merchants)))]
    return Scenario(
        name="generated",
        seed=draw(st.integers(min_value=0, max_value=2**32)),
        suite=draw(st.sampled_from(list(suites))),
        network=draw(network if network is not None else network_conditions()),
        customers=draw(customers(customer_ids)),
        merchants=draw(merchants(merchant_ids)),
        orders=draw(st.lists(orders(customer_ids, merchant_ids), min_size=1, max_size=max_orders)),
    )


# --- the money a property test compares ----------------------------------------------------------


def user_money_fen(summary: dict[str, Any]) -> int:
    """Money of the users at the end of a run: customers' wallets and cards, merchants' wallets."""
    total = 0
    for party in summary["parties"].values():
        if party["role"] in ("customer", "merchant"):
            total += (party["wallet"] or 0) + (party["bank_account"] or 0)
    return total


def opening_money_fen(summary: dict[str, Any]) -> int:
    """The same money at the start of the run (the summary's ``opening`` balances)."""
    return sum((opening["wallet"] or 0) + (opening["bank_account"] or 0) for opening in summary["opening"].values())
