"""A world: every party of a scenario wired to the kernel, the SMS network, the ledgers and
the credit bureau; initialization, the orders, and the run's summary.

``World.build(scenario, run_dir)`` opens the databases and issues the certificates;
``await world.run()`` carries out initialization and every order until nothing is left to
happen, and returns the summary (the stable contract of ``summary.json``).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.bank import Bank
from actors.base import Actor, Contact, Directory
from actors.behaviour import CustomerBehaviour, MerchantBehaviour
from actors.customer import CustomerHandset
from actors.merchant import Merchant
from actors.payment_center import PaymentCenter
from actors.ports import GoodsArrived
from mpay.books import (
    BankLedgerBooks,
    PaymentCenterLedgerBooks,
    open_customer_accounts,
    open_merchant_accounts,
)
from mpay.credit import SqliteCreditBureau
from mpay.invariants import invariant_report
from mpay.kernel import Kernel
from mpay.keycache import KeyCache
from mpay.network import LinkConfig, SmsNetwork
from mpay.scenario import CustomerSpec, MerchantSpec, OrderSpec, Scenario
from mpay.state_store import SqliteStateStore
from mpay.trace import TraceWriter
from protocol import escrow
from protocol import messages as m
from protocol.pki import Authority, TrustStore
from protocol.suites import get_suite

PAYMENT_CENTER_ID = "mpc"
BANK_ID = "bank"
AUTHORITY_ID = "ca"
PAYMENT_CENTER_NUMBER = "10658888"
BANK_NUMBER = "95588"
#: certificates are valid from a day before the run's start for this long
CERT_VALIDITY_S = 2 * 365 * 86_400


class KernelCourier:
    """The ``Courier`` port: a parcel is a mailbox item delivered after its transit time."""

    def __init__(self, kernel: Kernel, tracer: TraceWriter) -> None:
        self.kernel = kernel
        self.tracer = tracer

    def dispatch(self, sender_id: str, recipient_id: str, contract_no: str, transit_s: float) -> None:
        at_s = self.kernel.now_s() + transit_s
        self.tracer.record(
            "parcel_sent", actor=sender_id, to=recipient_id, contract_no=contract_no, transit_s=transit_s
        )
        self.kernel.post(recipient_id, GoodsArrived(contract_no, sender_id, at_s), at_s=at_s)


@dataclass
class PlannedOrder:
    """One order of the run, as scheduled."""

    order_ref: str
    spec: OrderSpec
    at_s: float = 0.0


@dataclass
class World:
    scenario: Scenario
    kernel: Kernel
    network: SmsNetwork
    tracer: TraceWriter
    pc_books: PaymentCenterLedgerBooks
    bank_books: BankLedgerBooks
    credit: SqliteCreditBureau
    authority: Authority
    payment_center: PaymentCenter
    bank: Bank
    customers: dict[str, CustomerHandset]
    merchants: dict[str, Merchant]
    orders: list[PlannedOrder] = field(default_factory=list)
    run_dir: Path | None = None
    wall_s: float = 0.0
    opening: dict[str, dict[str, int | None]] = field(default_factory=dict)
    make_payment_center: Any = None
    restarts: int = 0

    # --- building -------------------------------------------------------------------------

    @classmethod
    async def build(
        cls,
        scenario: Scenario,
        run_dir: Path | None = None,
        *,
        key_cache: KeyCache | None = None,
        speed: float | None = None,
        keep_trace: bool = False,
        record_plaintexts: bool = False,
    ) -> World:
        """Create every party, database and certificate of ``scenario`` (nothing runs yet).

        ``run_dir`` None keeps the databases in memory and writes no files.
        """
        customer_specs, merchant_specs, order_specs = expand(scenario)
        rng = random.Random(scenario.seed)
        kernel = Kernel(epoch_unix_s=float(scenario.start_unix_s), speed=speed)
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
        tracer = TraceWriter(
            kernel.now_s, run_dir / "trace.jsonl" if run_dir else None, keep_in_memory=keep_trace
        )
        network = SmsNetwork(
            kernel,
            random.Random(f"{scenario.seed}:network"),
            LinkConfig(**scenario.network.model_dump()),
        )
        suite = get_suite(scenario.suite)
        keys = key_cache or KeyCache()
        start = scenario.start_unix_s
        authority = Authority.create(
            keys.authority_key(suite),
            not_before_unix_s=start - 86_400,
            not_after_unix_s=start + CERT_VALIDITY_S,
        )

        def db(name: str) -> str:
            return str(run_dir / f"{name}.sqlite") if run_dir is not None else ":memory:"

        pc_books = await PaymentCenterLedgerBooks.open(
            db("payment_center"),
            clock=kernel.now_s,
            points_per_yuan=scenario.payment_center.points_per_yuan,
        )
        bank_books = await BankLedgerBooks.open(db("bank"), clock=kernel.now_s)
        credit = await SqliteCreditBureau.open(pc_books.ledger)
        store = await SqliteStateStore.open(pc_books.ledger)

        directory = Directory()
        courier = KernelCourier(kernel, tracer)
        index = iter(range(1_000_000))

        def identity(party_id: str, role: str, number: str, phone: str | None = None) -> Any:
            return authority.issue_identity(
                party_id, role, suite, keys.keys(suite, next(index)),
                start - 86_400, start + CERT_VALIDITY_S, phone=phone,
            )

        institutions = [
            (PAYMENT_CENTER_ID, "payment_center", PAYMENT_CENTER_NUMBER),
            (BANK_ID, "bank", BANK_NUMBER),
        ]
        identities = {pid: identity(pid, role, number) for pid, role, number in institutions}
        for pid, role, number in institutions:
            directory.add(Contact(pid, role, number))
        # Merchants publish their certificates like the institutions (customers check them
        # with the authority, seed init 5); a customer's certificate travels in its first SMS.
        merchant_numbers = {spec.id: f"1069{i:07d}" for i, spec in enumerate(merchant_specs)}
        for spec in merchant_specs:
            identities[spec.id] = identity(spec.id, "merchant", merchant_numbers[spec.id])

        def trust_store() -> TrustStore:
            trust = TrustStore(authority.certificate, revocations=authority.revocations)
            for ident in identities.values():
                for cert in ident.certificates:
                    trust.add(cert)
            return trust

        def common(party_id: str, number: str, ident: Any) -> dict[str, Any]:
            return dict(
                party_id=party_id,
                number=number,
                identity=ident,
                trust=trust_store(),
                directory=directory,
                transport=network,
                clock=kernel,
                tracer=tracer,
                courier=courier,
                rng=random.Random(f"{scenario.seed}:{party_id}"),
            )

        windows = escrow.Windows(
            confirm_window_s=scenario.windows.confirm_s,
            ship_window_s=scenario.windows.ship_s,
            accept_window_s=scenario.windows.accept_s,
            refund_window_s=scenario.windows.refund_s,
        )
        def make_payment_center(
            books: PaymentCenterLedgerBooks, bureau: SqliteCreditBureau, state: SqliteStateStore
        ) -> PaymentCenter:
            return PaymentCenter(
                books=books,
                credit=bureau,
                store=state,
                windows=windows,
                dispute_decision=scenario.payment_center.dispute_decision,
                **common(PAYMENT_CENTER_ID, PAYMENT_CENTER_NUMBER, identities[PAYMENT_CENTER_ID]),
            )

        payment_center = make_payment_center(pc_books, credit, store)
        bank = Bank(
            books=bank_books,
            payment_center_id=PAYMENT_CENTER_ID,
            **common(BANK_ID, BANK_NUMBER, identities[BANK_ID]),
        )

        customers: dict[str, CustomerHandset] = {}
        for number_index, spec in enumerate(customer_specs):
            number = spec.phone or f"139{number_index:08d}"
            person = _person(rng, spec, number_index)
            directory.add(Contact(spec.id, "customer", number))
            customers[spec.id] = CustomerHandset(
                behaviour=spec.behaviour.build(),
                payment_center_id=PAYMENT_CENTER_ID,
                bank_id=BANK_ID,
                **person,
                **common(spec.id, number, identity(spec.id, "customer", number, phone=number)),
            )
        merchants: dict[str, Merchant] = {}
        for number_index, spec in enumerate(merchant_specs):
            number = merchant_numbers[spec.id]
            directory.add(Contact(spec.id, "merchant", number))
            merchants[spec.id] = Merchant(
                behaviour=spec.behaviour.build(),
                payment_center_id=PAYMENT_CENTER_ID,
                shop_name=f"{spec.id} shop",
                address=f"{number_index + 1} Market Street, Hangzhou",
                **common(spec.id, number, identities[spec.id]),
            )

        actors: list[Actor] = [payment_center, bank, *customers.values(), *merchants.values()]
        for actor in actors:
            kernel.add_actor(actor.party_id, actor.handle)
            network.attach(actor.party_id, actor.number)
            if record_plaintexts:
                actor.opened_log = []

        world = cls(
            scenario=scenario,
            kernel=kernel,
            network=network,
            tracer=tracer,
            pc_books=pc_books,
            bank_books=bank_books,
            credit=credit,
            authority=authority,
            payment_center=payment_center,
            bank=bank,
            customers=customers,
            merchants=merchants,
            run_dir=run_dir,
            make_payment_center=make_payment_center,
        )
        for spec in customer_specs:
            await open_customer_accounts(pc_books, bank_books, spec.id, spec.wallet_fen, spec.card_fen)
            world.opening[spec.id] = {"wallet": spec.wallet_fen, "bank_account": spec.card_fen}
        for spec in merchant_specs:
            await open_merchant_accounts(pc_books, bank_books, spec.id, spec.wallet_fen)
            world.opening[spec.id] = {"wallet": spec.wallet_fen, "bank_account": None}
        world.orders = [
            PlannedOrder(order_ref=f"O{number + 1:06d}", spec=spec)
            for number, spec in enumerate(order_specs)
        ]
        return world

    # --- running --------------------------------------------------------------------------

    def actors(self) -> list[Actor]:
        return [self.payment_center, self.bank, *self.customers.values(), *self.merchants.values()]

    async def initialize(self) -> None:
        """Seed initialization 2-5: merchants register at the payment center; customers open
        shop accounts (only where they will buy), register and bind their cards."""
        shops_of: dict[str, list[str]] = {cid: [] for cid in self.customers}
        for order in self.orders:
            shops = shops_of[order.spec.customer]
            if order.spec.merchant not in shops:
                shops.append(order.spec.merchant)
        for merchant in self.merchants.values():
            self.kernel.schedule(0.0, merchant.register_at_payment_center)
        for customer_id, customer in self.customers.items():
            self.kernel.schedule(0.0, customer.register_everywhere, shops_of[customer_id])
        await self.kernel.run()
        self.tracer.record("initialized", parties=len(self.actors()))

    def schedule_orders(self) -> None:
        """Step 1 of every order, at its time after initialization."""
        base_s = self.kernel.now_s()
        for order in self.orders:
            spec = order.spec
            order.at_s = base_s + spec.at_s
            items = [
                m.Item(
                    name=item.name,
                    specification=item.specification,
                    quantity=item.quantity,
                    unit_price_fen=item.unit_price_fen,
                )
                for item in spec.items
            ]
            behaviour = spec.customer_behaviour.build() if spec.customer_behaviour else None
            if spec.merchant_behaviour is not None:
                self.merchants[spec.merchant].expect_behaviour(
                    order.order_ref, spec.merchant_behaviour.build()
                )
            self.kernel.schedule(
                order.at_s,
                self.customers[spec.customer].buy,
                spec.merchant,
                items,
                behaviour,
                order.order_ref,
            )

    async def run(self) -> dict[str, Any]:
        """Initialization, every order, until nothing is left to happen; the summary."""
        started = time.perf_counter()
        await self.initialize()
        self.schedule_orders()
        await self.kernel.run()
        self.wall_s = time.perf_counter() - started
        return await self.summary()

    async def restart_payment_center(self) -> None:
        """Crash and restart the payment center: its memory (transactions, timers, replay
        window, learned certificates) is lost; the new process rebuilds it all from its
        database. Needs a run directory (an in-memory database does not survive)."""
        if self.run_dir is None:
            raise RuntimeError("restarting the payment center needs a run directory")
        old = self.payment_center
        await self.pc_books.close()
        self.pc_books = await PaymentCenterLedgerBooks.open(
            self.run_dir / "payment_center.sqlite",
            clock=self.kernel.now_s,
            points_per_yuan=self.scenario.payment_center.points_per_yuan,
        )
        self.credit = await SqliteCreditBureau.open(self.pc_books.ledger)
        store = await SqliteStateStore.open(self.pc_books.ledger)
        new = self.make_payment_center(self.pc_books, self.credit, store)
        new.rejections.update(old.rejections)
        new.opened_log = old.opened_log
        self.kernel.replace_handler(PAYMENT_CENTER_ID, new.handle)
        await new.restore()
        self.payment_center = new
        self.restarts += 1
        self.tracer.record("restarted", actor=PAYMENT_CENTER_ID, transactions=len(new.txns))

    async def close(self) -> None:
        await self.kernel.close()
        self.tracer.close()
        await self.pc_books.close()
        await self.bank_books.close()

    # --- the summary ----------------------------------------------------------------------

    async def top_ups_in_flight_fen(self) -> int:
        """Money the bank moved whose notice the payment center has not credited (yet)."""
        rows = await self.pc_books.ledger.execute(
            "SELECT user_data FROM ledger_transfers WHERE code = 'top_up'"
        )
        credited = {row[0] for row in rows}
        return sum(
            amount for top_up_id, amount in self.bank.top_ups_fen.items() if top_up_id not in credited
        )

    async def summary(self) -> dict[str, Any]:
        now_s = self.kernel.now_s()
        pc = self.payment_center
        by_contract = self.network.by_contract
        transactions = []
        for order in self.orders:
            spec = order.spec
            purchase = self.customers[spec.customer].purchases_by_order.get(order.order_ref)
            contract_no = purchase.contract.contract_no if purchase and purchase.contract else None
            txn = pc.txns.get(contract_no) if contract_no else None
            traffic = Counter()
            for key in (order.order_ref, contract_no):
                if key and key in by_contract:
                    traffic.update(by_contract[key].as_dict())
            steps = ["purchase_request"] + (["order_contract"] if contract_no else [])
            if txn is not None:
                steps += list(txn.steps)
            end_s = txn.updated_at_s if txn is not None and escrow.is_terminal(txn.state) else now_s
            transactions.append(
                {
                    "id": contract_no or order.order_ref,
                    "order_ref": order.order_ref,
                    "customer": spec.customer,
                    "merchant": spec.merchant,
                    "amount": spec.amount_fen,
                    "currency": self.scenario.currency,
                    "outcome": (escrow.outcome_of(txn) if txn is not None else None) or "open",
                    "state": str(txn.state) if txn is not None else "not_requested",
                    "auto_accepted": bool(txn and txn.auto_accepted),
                    "steps": steps,
                    "messages": traffic["messages"],
                    "sms_segments": traffic["sms_segments"],
                    "bytes": traffic["bytes"],
                    "duration_s": round(end_s - order.at_s, 3),
                }
            )
        parties: dict[str, Any] = {}
        for customer_id in self.customers:
            parties[customer_id] = {
                "role": "customer",
                "wallet": await self.pc_books.wallet_fen(customer_id),
                "bank_account": await self.bank_books.card_fen(customer_id),
                "points": await self.pc_books.points(customer_id),
                "integrity_points": await self.credit.integrity_points(customer_id),
                "credit_score": round(await self.credit.score(customer_id, now_s), 3),
            }
        for merchant_id in self.merchants:
            parties[merchant_id] = {
                "role": "merchant",
                "wallet": await self.pc_books.wallet_fen(merchant_id),
                "bank_account": None,
                "points": None,
                "integrity_points": await self.credit.integrity_points(merchant_id),
                "credit_score": round(await self.credit.score(merchant_id, now_s), 3),
            }
        parties[PAYMENT_CENTER_ID] = {
            "role": "payment_center",
            "wallet": None,
            "bank_account": await self.bank_books.payment_center_fen(),
            "points": None,
            "integrity_points": None,
            "credit_score": None,
        }
        for party_id, role in ((BANK_ID, "bank"), (AUTHORITY_ID, "authority")):
            parties[party_id] = {
                "role": role,
                "wallet": None,
                "bank_account": None,
                "points": None,
                "integrity_points": None,
                "credit_score": None,
            }
        report = await invariant_report(self.pc_books, self.bank_books, await self.top_ups_in_flight_fen())
        invariants = dict(report.results)
        invariants["no_transaction_stuck"] = all(
            escrow.is_terminal(txn.state) or self.kernel.timer_pending(PAYMENT_CENTER_ID, f"{txn.deadline_name}:{txn.contract_no}")
            for txn in pc.txns.values()
        )
        rejected: Counter[str] = Counter()
        for actor in self.actors():
            rejected.update(actor.rejections)
        network = self.network.counters.as_dict()
        return {
            "scenario": self.scenario.name,
            "seed": self.scenario.seed,
            "suite": self.scenario.suite,
            "transactions": transactions,
            "parties": parties,
            "opening": self.opening,
            "escrow_fen": await self.pc_books.escrow_fen(),
            "invariants": invariants,
            "invariant_messages": report.messages,
            "network": {
                "messages": network["messages"],
                "sms_segments": network["sms_segments"],
                "bytes": network["bytes"],
                "dropped": network["dropped"],
                "duplicated": network["duplicated"],
                "delivered": network["delivered"],
            },
            "security": {"rejected": dict(sorted(rejected.items()))},
            "virtual_s": round(now_s, 3),
            "wall_s": round(self.wall_s, 3),
        }


# --- scenario expansion -----------------------------------------------------------------------

_SURNAMES = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu")
_GIVEN = ("Wei", "Fang", "Na", "Min", "Jing", "Lei", "Qiang", "Yan", "Jun", "Ying")


def _person(rng: random.Random, spec: CustomerSpec, index: int) -> dict[str, str]:
    """Real-name data and a bank card for a simulated customer (deterministic per seed)."""
    name = spec.name or f"{rng.choice(_SURNAMES)} {rng.choice(_GIVEN)}"
    return {
        "name": name,
        "id_number": f"33010619{rng.randrange(10**9, 10**10)}",
        "landline": f"0571-{rng.randrange(10**7, 10**8)}",
        "address": f"{index + 1} West Lake Road, Hangzhou",
        "postcode": "310000",
        "card_number": f"622202{rng.randrange(10**12, 10**13)}",
        "card_pin": f"{rng.randrange(10**6):06d}",
    }


def expand(scenario: Scenario) -> tuple[list[CustomerSpec], list[MerchantSpec], list[OrderSpec]]:
    """The scenario's parties and orders, with a ``[workload]`` turned into concrete ones."""
    customers = list(scenario.customers)
    merchants = list(scenario.merchants)
    orders = list(scenario.orders)
    workload = scenario.workload
    if workload is None:
        return customers, merchants, orders
    rng = random.Random(f"{scenario.seed}:workload")
    new_customers = [
        CustomerSpec(
            id=f"c{i:05d}",
            wallet_fen=workload.wallet_fen,
            card_fen=workload.card_fen,
            behaviour=workload.customer_behaviour,
        )
        for i in range(1, workload.customers + 1)
    ]
    new_merchants = [
        MerchantSpec(id=f"m{i:04d}", behaviour=workload.merchant_behaviour)
        for i in range(1, workload.merchants + 1)
    ]
    for _ in range(workload.transactions):
        customer = rng.choice(new_customers).id
        merchant = rng.choice(new_merchants).id
        items = [
            {
                "name": rng.choice(("tea", "phone case", "charger", "book", "umbrella", "scarf")),
                "quantity": rng.randint(1, 3),
                "unit_price_fen": rng.randint(workload.min_price_fen, workload.max_price_fen),
            }
            for _ in range(rng.randint(1, 2))
        ]
        orders.append(
            OrderSpec.model_validate(
                {
                    "customer": customer,
                    "merchant": merchant,
                    "at_s": round(rng.uniform(0, workload.spread_s), 3),
                    "items": items,
                }
            )
        )
    orders.sort(key=lambda order: order.at_s)
    return customers + new_customers, merchants + new_merchants, orders


__all__ = ["World", "expand", "CustomerBehaviour", "MerchantBehaviour"]
