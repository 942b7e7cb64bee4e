"""mpay.testing: the hypothesis strategies users build property tests from.

The first test is the example property test of docs/tutorial.md, word for word.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mpay.schema.scenario import LinkSpec, OrderSpec, Scenario, parse_scenario
from mpay.study.api import run
from mpay.testing import (
    amounts_fen,
    customer_behaviours,
    merchant_behaviours,
    network_conditions,
    opening_money_fen,
    orders,
    scenarios,
    user_money_fen,
)


# --- the tutorial's example property test ------------------------------------------------------
@settings(max_examples=8, deadline=None)
@given(scenarios(max_customers=2, max_merchants=2, max_orders=3))
def test_every_invariant_holds_and_no_money_is_created(scenario):
    result = run(scenario)
    assert all(result.summary["invariants"].values()), result.summary["invariant_messages"]
    assert result.summary["escrow_fen"] == 0
    assert user_money_fen(result.summary) == opening_money_fen(result.summary)
# --- end of the example --------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(scenarios(max_customers=3, max_merchants=3, max_orders=5))
def test_generated_scenarios_are_valid_scenario_files(scenario: Scenario) -> None:
    # what a strategy draws survives a round trip through the schema (as a TOML file would)
    assert parse_scenario(scenario.model_dump(), "generated") == scenario
    ids = {c.id for c in scenario.customers} | {m.id for m in scenario.merchants}
    assert all(order.customer in ids and order.merchant in ids for order in scenario.orders)
    assert 1 <= len(scenario.orders) <= 5


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_orders_reference_only_the_given_parties(data: st.DataObject) -> None:
    order = data.draw(orders(["alice", "bob"], ["shop"]))
    assert isinstance(order, OrderSpec)
    assert order.customer in ("alice", "bob") and order.merchant == "shop"
    assert order.amount_fen == sum(line.quantity * line.unit_price_fen for line in order.items) > 0


@settings(max_examples=30, deadline=None)
@given(
    amount=amounts_fen(1, 500),
    customer=customer_behaviours(),
    merchant=merchant_behaviours(random_choices=False),
    link=network_conditions(max_latency_s=5.0, max_loss=0.1),
)
def test_strategies_respect_their_bounds(amount, customer, merchant, link: LinkSpec) -> None:
    assert isinstance(amount, int) and 1 <= amount <= 500
    assert customer.p_decline + customer.p_ignore_confirm <= 1
    assert merchant.p_never_ship == 0 and merchant.p_ignore_refund == 0
    assert 0 <= link.latency_s <= 5.0 and 0 <= link.loss <= 0.1


def test_a_money_count_catches_money_that_appeared() -> None:
    summary = {
        "opening": {"a": {"wallet": 100, "bank_account": 50}, "s": {"wallet": 0, "bank_account": None}},
        "parties": {
            "a": {"role": "customer", "wallet": 40, "bank_account": 50},
            "s": {"role": "merchant", "wallet": 61, "bank_account": None},
            "mpc": {"role": "payment_center", "wallet": None, "bank_account": 10_000},
        },
    }
    assert opening_money_fen(summary) == 150
    assert user_money_fen(summary) == 151  # one fen too many: the property would fail
