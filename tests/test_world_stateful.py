"""A stateful property test of a whole world: random orders, behaviours, faults and attacks,
with the invariants checked after every step.

Hypothesis drives a :class:`~hypothesis.stateful.RuleBasedStateMachine` over one world per
example (two customers, one merchant, real RSA envelopes, SQLite ledgers on disk): it places
orders with random behaviours, lets virtual time pass, drops, duplicates, delays or tampers
with the next SMS, sends phishing SMS, crashes and restarts the payment center or the
bank, and skews a clock. After every step the money invariants, "no forged message acted
upon" and the held money are checked; at the end the world runs until nothing is left to
happen and no transaction may be stuck.

A failure prints the shrunk steps and a ``@reproduce_failure`` blob (profile setting
``print_blob``); the world's own randomness comes from the drawn ``seed``, so the steps
replay exactly. ``make test-long`` (MPAY_LONG=1) runs many more and longer examples.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from conftest import LONG
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mpay.sim.adversary import Adversary, Delayer, Dropper, Duplicator, Phisher, Tamperer
from mpay.sim.faults import FaultPlan
from mpay.books.invariants import invariant_report
from mpay.schema.scenario import parse_scenario
from mpay.sim.world import World
from mpay.protocol import escrow
from mpay.protocol import messages as m
from mpay.actors.behaviour import CustomerBehaviour, MerchantBehaviour

PARTIES = {
    "customers": [
        {"id": "alice", "wallet_fen": 30_000, "card_fen": 100_000},
        {"id": "bob", "wallet_fen": 5_000, "card_fen": 50_000},
    ],
    "merchants": [{"id": "shop"}],
    # one order each, so that both customers open an account at the shop during initialization
    "orders": [
        {"customer": "alice", "merchant": "shop", "items": [{"name": "tea", "quantity": 1, "unit_price_fen": 1_000}]},
        {"customer": "bob", "merchant": "shop", "items": [{"name": "cup", "quantity": 1, "unit_price_fen": 800}]},
    ],
    "windows": {"confirm_s": 1_800, "ship_s": 20_000, "accept_s": 40_000, "refund_s": 30_000},
}

customer_behaviours = st.builds(
    CustomerBehaviour,
    confirm=st.sampled_from(["confirm", "confirm", "decline", "ignore"]),
    on_delivery=st.sampled_from(["accept", "accept", "reject", "ignore"]),
    think_s=st.floats(1, 600),
    inspect_s=st.floats(1, 5_000),
    return_transit_s=st.floats(1, 20_000),
)
merchant_behaviours = st.builds(
    MerchantBehaviour,
    ship=st.sampled_from(["ship", "ship", "never"]),
    ship_delay_s=st.floats(1, 10_000),
    transit_s=st.floats(1, 20_000),
    refund=st.sampled_from(["agree", "ignore"]),
)


class WorldMachine(RuleBasedStateMachine):
    """One world, driven step by step."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="mpay-stateful-"))
        self.world: World | None = None
        self.adversary = Adversary([])
        self.orders = 0

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    @rule(seed=st.integers(0, 2**32))
    @precondition(lambda self: self.world is None)
    def build(self, seed: int) -> None:
        scenario = parse_scenario({"name": "stateful", "seed": seed, **PARTIES})
        self.adversary.rng.seed(seed)
        self.world = self.run(World.build(scenario, self.dir, adversary=self.adversary, faults=FaultPlan()))
        self.run(self.world.initialize())
        self.world.schedule_orders()

    def _ready(self) -> bool:
        return self.world is not None

    @rule(customer=st.sampled_from(["alice", "bob"]), price_fen=st.integers(1, 40_000),
          customer_behaviour=customer_behaviours, merchant_behaviour=merchant_behaviours)
    @precondition(_ready)
    def place_order(self, customer, price_fen, customer_behaviour, merchant_behaviour) -> None:
        world = self.world
        self.orders += 1
        order_ref = f"X{self.orders:04d}"
        world.merchants["shop"].expect_behaviour(order_ref, merchant_behaviour)
        item = m.Item(name="thing", specification="standard", quantity=1, unit_price_fen=price_fen)
        world.kernel.schedule(
            world.kernel.now_s(), world.customers[customer].buy, "shop", [item], customer_behaviour, order_ref
        )

    @rule(seconds=st.sampled_from([10.0, 120.0, 2_000.0, 30_000.0]))
    @precondition(_ready)
    def advance(self, seconds: float) -> None:
        world = self.world
        self.run(world.run_events(until_s=world.kernel.now_s() + seconds))

    @rule(kind=st.sampled_from(["drop", "duplicate", "delay", "tamper"]), count=st.integers(1, 6),
          who=st.sampled_from(["alice", "bob", "shop", "mpc", "bank"]))
    @precondition(_ready)
    def attack_next_sms(self, kind: str, count: int, who: str) -> None:
        number = self.world.number_of(who)
        attack = {
            "drop": lambda: Dropper(targets=[number], max_count=count),
            "duplicate": lambda: Duplicator(targets=[number], max_count=count, gap_s=700.0),
            "delay": lambda: Delayer(targets=[number], max_count=count, delay_s=900.0),
            "tamper": lambda: Tamperer(targets=[number], max_count=count, position="random"),
        }[kind]()
        self.adversary.attacks.append(attack)

    @rule(who=st.sampled_from(["alice", "bob"]))
    @precondition(_ready)
    def phish(self, who: str) -> None:
        phisher = Phisher(targets=[self.world.number_of(who)], at_s=[0.0])
        phisher._send(self.adversary)

    @rule(party=st.sampled_from(["mpc", "bank"]))
    @precondition(_ready)
    def crash_and_restart(self, party: str) -> None:
        self.run(self.world.restart_party(party))

    # --- invariants after every step --------------------------------------------------------

    @invariant()
    def money_invariants_hold(self) -> None:
        world = self.world
        if world is None:
            return
        report = self.run(
            invariant_report(world.pc_books, world.bank_books, self.run(world.top_ups_in_flight_fen()))
        )
        assert report.ok, report.messages

    @invariant()
    def nothing_forged_or_replayed_is_acted_upon(self) -> None:
        if self.world is not None:
            assert self.world.not_genuine == []

    @invariant()
    def held_money_matches_the_transactions_holding_it(self) -> None:
        world = self.world
        if world is None:
            return
        held = sum(
            txn.amount_fen for txn in world.payment_center.txns.values()
            if txn.state in (escrow.State.AWAITING_SHIPMENT, escrow.State.AWAITING_ACCEPTANCE,
                             escrow.State.AWAITING_RETURN, escrow.State.DISPUTED)
        )
        assert self.run(world.pc_books.escrow_fen()) == held

    def teardown(self) -> None:
        try:
            world = self.world
            if world is not None:
                self.adversary.attacks.clear()  # the attacker leaves; the timeouts finish the rest
                self.run(world.run_events())
                summary = self.run(world.summary())
                assert all(summary["invariants"].values()), summary["invariant_messages"]
                assert all(escrow.is_terminal(t.state) for t in world.payment_center.txns.values())
                assert summary["escrow_fen"] == 0
                self.run(world.close())
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)


WorldMachine.TestCase.settings = settings(
    max_examples=200 if LONG else 5,
    stateful_step_count=40 if LONG else 10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestWorld = WorldMachine.TestCase
