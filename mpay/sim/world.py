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

from mpay.actors.authority import AuthorityActor
from mpay.actors.bank import Bank
from mpay.actors.base import Actor, Contact, Directory
from mpay.actors.behaviour import CustomerBehaviour, MerchantBehaviour
from mpay.actors.customer import CustomerHandset
from mpay.actors.merchant import Merchant
from mpay.actors.payment_center import PaymentCenter
from mpay.actors.ports import GoodsArrived
from mpay.books.accounts import (
    BankLedgerBooks,
    PaymentCenterLedgerBooks,
    open_customer_accounts,
    open_merchant_accounts,
)
from mpay.sim.adversary import Adversary, AttackContext, build_adversary
from mpay.books.credit import SqliteCreditBureau
from mpay.sim.faults import ClockSkew, CrashPoint, FaultPlan, SimulatedCrash, TimedRestart
from mpay.sim.gc_policy import long_run_gc
from mpay.sim.genuine import GenuineCheck
from mpay.books.invariants import invariant_report
from mpay.sim.kernel import HandlerFailed, Kernel
from mpay.keys.keycache import KeyCache
from mpay.sim.network import LinkConfig, SmsNetwork
from mpay.schema.scenario import CustomerSpec, MerchantSpec, OrderSpec, Scenario
from mpay.books.state_store import SqliteStateStore
from mpay.sim.trace import TraceWriter
from mpay.protocol import escrow
from mpay.protocol import messages as m
from mpay.protocol.pki import Authority, TrustStore
from mpay.protocol.suites import get_suite

PAYMENT_CENTER_ID = "mpc"
BANK_ID = "bank"
AUTHORITY_ID = "ca"
PAYMENT_CENTER_NUMBER = "10658888"
BANK_NUMBER = "95588"
#: certificates are valid from a day before the run's start for this long
CERT_VALIDITY_S = 2 * 365 * 86_400
#: shortest secret an eavesdropper's captures are searched for (see World.secrets)
MIN_SECRET_CHARS = 8


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
    authority_actor: AuthorityActor
    payment_center: PaymentCenter
    bank: Bank
    customers: dict[str, CustomerHandset]
    merchants: dict[str, Merchant]
    orders: list[PlannedOrder] = field(default_factory=list)
    run_dir: Path | None = None
    wall_s: float = 0.0
    opening: dict[str, dict[str, int | None]] = field(default_factory=dict)
    make_payment_center: Any = None
    #: run the ledgers' SQL on the event loop's thread (the default: faster, and safe because
    #: the kernel waits for every handler anyway; False uses aiosqlite's worker thread)
    ledger_inline: bool = True
    restarts: int = 0
    make_bank: Any = None
    adversary: Adversary | None = None
    faults: FaultPlan | None = None
    #: public certificates (signing, encryption) and numbers: what an attacker can know
    published: dict[str, Any] = field(default_factory=dict)
    key_cache: KeyCache | None = None
    #: what every party sent and acted upon, checked as the trace goes
    genuine: GenuineCheck = field(default_factory=GenuineCheck)

    # --- building -------------------------------------------------------------------------

    @classmethod
    async def build(cls, scenario: Scenario, run_dir: Path | None = None, **options: Any) -> World:
        """Create every party, database and certificate of ``scenario`` (see :meth:`_build`
        for the options). If building fails, the databases opened so far are closed again
        (an open aiosqlite connection would keep the process alive)."""
        opened: list[Any] = []
        try:
            return await cls._build(scenario, run_dir, opened=opened, **options)
        except BaseException:
            for books in reversed(opened):
                await books.close()
            raise

    @classmethod
    async def _build(
        cls,
        scenario: Scenario,
        run_dir: Path | None = None,
        *,
        opened: list[Any],
        key_cache: KeyCache | None = None,
        speed: float | None = None,
        keep_trace: bool = False,
        record_plaintexts: bool = False,
        adversary: Adversary | None = None,
        faults: FaultPlan | None = None,
        ledger_inline: bool = True,
    ) -> World:
        """Create every party, database and certificate of ``scenario`` (nothing runs yet).

        ``run_dir`` None keeps the databases in memory and writes no files. ``adversary``
        (from Python) gets the scenario's ``[[attacks]]`` added after its own; ``faults``
        (from Python) replaces the scenario's ``[faults]``. Crashes and restarts need a
        run directory.
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
            inline=ledger_inline,
            checkpoint_thread=True,
        )
        opened.append(pc_books)
        bank_books = await BankLedgerBooks.open(
            db("bank"), clock=kernel.now_s, inline=ledger_inline, checkpoint_thread=True
        )
        opened.append(bank_books)
        credit = await SqliteCreditBureau.open(pc_books.ledger)
        store = await SqliteStateStore.open(pc_books.ledger)
        bank_store = await SqliteStateStore.open(bank_books.ledger)
        plan = faults if faults is not None else _fault_plan(scenario)
        if plan.empty and faults is None:
            plan = None

        directory = Directory()
        courier = KernelCourier(kernel, tracer)
        index = iter(range(1_000_000))

        authority_actor = AuthorityActor(
            party_id=AUTHORITY_ID,
            authority=authority,
            suite=suite,
            clock=kernel,
            tracer=tracer,
            validity_s=CERT_VALIDITY_S,
        )

        def identity(party_id: str, role: str, number: str, phone: str | None = None) -> Any:
            return authority_actor.enrol(party_id, role, keys.keys(suite, next(index)), phone=phone)

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
        customer_identities: dict[str, Any] = {}

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
                transport=plan.transport_for(party_id, network) if plan else network,
                clock=plan.clock_for(party_id, kernel) if plan else kernel,
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
                store=plan.store_for(PAYMENT_CENTER_ID, state) if plan else state,
                windows=windows,
                dispute_decision=scenario.payment_center.dispute_decision,
                **common(PAYMENT_CENTER_ID, PAYMENT_CENTER_NUMBER, identities[PAYMENT_CENTER_ID]),
            )

        payment_center = make_payment_center(pc_books, credit, store)

        def make_bank(books: BankLedgerBooks, state: SqliteStateStore) -> Bank:
            return Bank(
                books=books,
                payment_center_id=PAYMENT_CENTER_ID,
                store=plan.store_for(BANK_ID, state) if plan else state,
                **common(BANK_ID, BANK_NUMBER, identities[BANK_ID]),
            )

        bank = make_bank(bank_books, bank_store)

        customers: dict[str, CustomerHandset] = {}
        for number_index, spec in enumerate(customer_specs):
            number = spec.phone or f"139{number_index:08d}"
            person = _person(rng, spec, number_index)
            directory.add(Contact(spec.id, "customer", number))
            customer_identities[spec.id] = ident = identity(spec.id, "customer", number, phone=number)
            customers[spec.id] = CustomerHandset(
                behaviour=spec.behaviour.build(),
                payment_center_id=PAYMENT_CENTER_ID,
                bank_id=BANK_ID,
                **person,
                **common(spec.id, number, ident),
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

        kernel.add_actor(AUTHORITY_ID, authority_actor.handle)
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
            ledger_inline=ledger_inline,
            authority_actor=authority_actor,
            payment_center=payment_center,
            bank=bank,
            customers=customers,
            merchants=merchants,
            run_dir=run_dir,
            make_payment_center=make_payment_center,
            make_bank=make_bank,
            faults=plan,
            key_cache=keys,
        )
        for party_id, ident in {**identities, **customer_identities}.items():
            world.published[party_id] = (ident.signing_cert, ident.agreement_cert)
        tracer.listeners.append(world.genuine.on_event)
        if plan is not None:
            plan.install(world)
        attacks = build_adversary(
            [a.model_dump() for a in scenario.attacks],
            world.number_of,
            random.Random(f"{scenario.seed}:adversary"),
        ) if scenario.attacks else None
        if adversary is not None and attacks is not None:
            adversary.attacks += attacks.attacks
        world.install_adversary(adversary or attacks)
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

    def number_of(self, party_or_number: str) -> str:
        """A party's phone number (a number is returned as it is)."""
        if party_or_number.isdigit():
            return party_or_number
        return self.network.number_of(party_or_number)

    def install_adversary(self, adversary: Adversary | None) -> None:
        """Put ``adversary`` on the air (before the run; ``None``: no attacker)."""
        self.adversary = adversary
        if adversary is None:
            return
        numbers = {pid: self.network.number_of(pid) for pid in self.published}
        context = AttackContext(
            suite=self.scenario.suite,
            key_cache=self.key_cache or KeyCache(),
            epoch_unix_s=float(self.scenario.start_unix_s),
            kernel=self.kernel,
            certificates=dict(self.published),
            numbers=numbers,
        )
        adversary.install(self.network, self.kernel, context)

    @property
    def not_genuine(self) -> list[str]:
        """SMS acted upon that no party sent, or acted upon twice (must stay empty)."""
        return self.genuine.not_genuine

    def forget_uncommitted(self, party_id: str) -> None:
        """``party_id`` crashed before committing the step it was taking: the SMS that
        started it was not acted upon after all (a copy may still be, once)."""
        self.genuine.forget_uncommitted(party_id)

    def secrets(self) -> list[str]:
        """What an eavesdropper must never learn: card numbers, real-name data, contract
        content. Strings under 8 characters (a 6-digit PIN) are left out: random
        ciphertext contains them by chance (the PIN travels in the same envelope as the
        card number, which is searched)."""
        found: set[str] = set()
        for customer in self.customers.values():
            found |= {customer.card_number, customer.card_pin, customer.name, customer.id_number,
                      customer.landline, customer.address}
        for customer in self.customers.values():
            for purchase in customer.purchases.values():
                contract = purchase.contract
                found |= {contract.contract_no, contract.delivery_address}
                found |= {item.name for item in contract.items} | {item.specification for item in contract.items}
        return sorted(secret for secret in found if len(secret) >= MIN_SECRET_CHARS)

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
        await self.run_events()
        self.tracer.record("initialized", parties=len(self.actors()))

    def schedule_orders(self) -> None:
        """Step 1 of every order, at its time after initialization (and the attacks' and
        faults' times, which count from the same moment)."""
        base_s = self.kernel.now_s()
        for revocation in self.scenario.revocations:
            self.authority_actor.revoke_at(revocation.party, base_s + revocation.at_s)
        if self.adversary is not None:
            self.adversary.start_orders(base_s)
        if self.faults is not None:
            self.faults.start_orders(base_s)
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
        await self.run_events()
        self.wall_s = time.perf_counter() - started
        return await self.summary()

    async def run_events(self, **kwargs: Any) -> float:
        """``kernel.run`` (its arguments), under the collector settings of a long run
        (:mod:`mpay.sim.gc_policy`); a simulated crash (fault injection) is not a handler error."""
        before = len(self.kernel.errors)
        with long_run_gc():
            now_s = await self.kernel.run(raise_errors=False, **kwargs)
        errors = [
            e for e in self.kernel.errors[before:] if not isinstance(e.exception, SimulatedCrash)
        ]
        if errors:
            raise HandlerFailed(errors)
        return now_s

    async def restart_party(self, party_id: str) -> None:
        """Crash and restart the payment center or the bank."""
        if party_id == PAYMENT_CENTER_ID:
            await self.restart_payment_center()
        elif party_id == BANK_ID:
            await self.restart_bank()
        else:
            raise ValueError(f"{party_id!r} cannot be restarted (only {PAYMENT_CENTER_ID}, {BANK_ID})")

    async def restart_bank(self) -> None:
        """Crash and restart the bank: card bindings, processed top-ups, replay window and
        sequence numbers come back from its database. Needs a run directory."""
        if self.run_dir is None:
            raise RuntimeError("restarting the bank needs a run directory")
        old = self.bank
        await self.bank_books.close()
        self.bank_books = await BankLedgerBooks.open(
            self.run_dir / "bank.sqlite", clock=self.kernel.now_s, inline=self.ledger_inline,
            checkpoint_thread=True,
        )
        store = await SqliteStateStore.open(self.bank_books.ledger)
        new = self.make_bank(self.bank_books, store)
        new.rejections.update(old.rejections)
        new.untrusted_sms = old.untrusted_sms
        new.failed_pin_checks = old.failed_pin_checks
        new.opened_log = old.opened_log
        self.kernel.replace_handler(BANK_ID, new.handle)
        await new.restore()
        self.bank = new
        self.restarts += 1
        self.tracer.record("restarted", actor=BANK_ID, cards=len(new.cards), top_ups=len(new.top_ups_fen))

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
            inline=self.ledger_inline,
            checkpoint_thread=True,
        )
        self.credit = await SqliteCreditBureau.open(self.pc_books.ledger)
        store = await SqliteStateStore.open(self.pc_books.ledger)
        new = self.make_payment_center(self.pc_books, self.credit, store)
        new.rejections.update(old.rejections)
        new.untrusted_sms = old.untrusted_sms
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
        credited = await self.pc_books.credited_top_up_ids()
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
        invariants["only_genuine_messages_acted_upon"] = not self.not_genuine
        security: dict[str, Any] = {
            "rejected": dict(sorted(rejected.items())),
            "untrusted_sms": sum(actor.untrusted_sms for actor in self.actors()),
            "not_genuine": self.not_genuine[:20],
        }
        if self.adversary is not None:
            security["attacks"] = self.adversary.report()
            eavesdroppers = self.adversary.eavesdroppers
            if eavesdroppers:
                secrets = self.secrets()
                leaked = sorted({s for e in eavesdroppers for s in e.leaks(secrets)})
                security["eavesdropped"] = {
                    "captured_sms": sum(len(e.captures) for e in eavesdroppers),
                    "secrets_searched": len(secrets),
                    "secrets_found": len(leaked),
                }
                invariants["eavesdropper_learned_nothing"] = not leaked
        if self.faults is not None:
            security["faults"] = self.faults.report()
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
                "retried": network["retried"],
                "undeliverable": network["undeliverable"],
                "adversary_dropped": network["adversary_dropped"],
                "adversary_altered": network["adversary_altered"],
                "injected": network["injected"],
            },
            "restarts": self.restarts,
            "security": security,
            "virtual_s": round(now_s, 3),
            "wall_s": round(self.wall_s, 3),
        }


def _fault_plan(scenario: Scenario) -> FaultPlan:
    """The scenario's ``[faults]`` as a :class:`FaultPlan`."""
    faults = scenario.faults
    return FaultPlan(
        crashes=[CrashPoint(c.party, c.on, c.where, c.nth) for c in faults.crashes],
        restarts=[TimedRestart(r.party, r.at_s) for r in faults.restarts],
        skews=[ClockSkew(k.party, k.offset_s, k.from_s) for k in faults.clock_skew],
    )


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
