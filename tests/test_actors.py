"""Each party's own rules, exercised in a real world (real envelopes, ledgers, network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpay.actors.ports import SmsArrival
from mpay.schema.scenario import parse_scenario
from mpay.sim.world import World
from mpay.protocol import messages as m
from mpay.protocol.sms import segment

BASE = {
    "name": "actors",
    "customers": [
        {"id": "alice", "phone": "13800138000", "wallet_fen": 50_000, "card_fen": 200_000},
        {"id": "bob", "phone": "13900139000", "wallet_fen": 10_000, "card_fen": 10_000},
    ],
    "merchants": [{"id": "shop"}],
    "orders": [
        {"customer": "alice", "merchant": "shop", "at_s": 0,
         "items": [{"name": "tea", "quantity": 2, "unit_price_fen": 12_000}]},
    ],
}


@pytest.fixture
async def world(tmp_path: Path):
    world = await World.build(parse_scenario(BASE), tmp_path, keep_trace=True)
    await world.initialize()
    yield world
    await world.close()


def _contract(world: World, customer_no: str, total_fen: int = 24_000) -> m.Contract:
    return m.Contract(
        contract_no="SHOP-999999",
        merchant_id="shop",
        customer_no=customer_no,
        items=(m.Item(name="tea", quantity=1, unit_price_fen=total_fen),),
        shipping_method="express",
        total_fen=total_fen,
        currency="CNY",
        delivery_address="1 West Lake Road",
    )


async def test_initialization_registers_everyone_where_the_seed_says(world: World) -> None:
    pc = world.payment_center
    assert set(pc.customers) == {"alice", "bob"}
    assert set(pc.merchants) == {"shop"}
    assert pc.customers["alice"]["phone"] == "13800138000"
    assert set(world.bank.cards) == {"alice", "bob"}
    shop = world.merchants["shop"]
    assert shop.customers["alice"]["verified"] is True  # the phone check by SMS
    assert "bob" not in shop.customers  # bob opened no shop account (he orders nothing)
    assert world.customers["alice"].registered_with == {"mpc", "bank"}


async def test_payment_center_refuses_a_payment_request_for_an_unknown_phone(world: World) -> None:
    shop = world.merchants["shop"]
    request = m.PaymentRequest(
        contract_no="SHOP-999999",
        contract=_contract(world, "shop:nobody"),
        customer_phone="13700000000",
    )
    world.kernel.schedule(world.kernel.now_s(), shop.send, "mpc", request)
    await world.kernel.run()
    assert world.payment_center.rejections["unknown_party"] == 1
    assert world.payment_center.txns == {}
    assert await world.pc_books.escrow_fen() == 0


async def test_merchant_refuses_a_purchase_without_a_verified_shop_account(world: World) -> None:
    bob = world.customers["bob"]
    request = m.PurchaseRequest(
        order_ref="bob-1",
        customer_no="shop:bob",
        items=(m.Item(name="tea", quantity=1, unit_price_fen=100),),
        purchased_unix_s=int(world.kernel.now_unix_s()),
        delivery_address="2 West Lake Road",
        payment_method="phone_fee",
    )
    shop = world.merchants["shop"]
    # a stranger: the shop has never seen bob's certificate
    world.kernel.schedule(world.kernel.now_s(), bob.send, "shop", request)
    await world.kernel.run()
    assert shop.rejections["unknown_certificate"] == 1
    # with his certificate attached he is known, but has no verified shop account
    world.kernel.schedule(
        world.kernel.now_s(), lambda: bob.send("shop", request, include_certificate=True)
    )
    await world.kernel.run()
    assert shop.rejections["illegal_transition"] == 1
    assert shop.sales == {}


async def test_bank_refuses_a_wrong_pin_and_moves_nothing(world: World) -> None:
    alice = world.customers["alice"]
    wrong_pin = "000000" if alice.card_pin != "000000" else "111111"
    instruction = m.TopUpInstruction(
        top_up_id="T-wrong",
        contract_no="SHOP-999999",
        command="top_up_phone_fee",
        card_number=alice.card_number,
        pin=wrong_pin,
        customer_phone=alice.number,
        amount_fen=5_000,
        currency="CNY",
    )
    world.kernel.schedule(world.kernel.now_s(), alice.send, "bank", instruction)
    await world.kernel.run()
    assert world.bank.failed_pin_checks == 1
    assert await world.bank_books.card_fen("alice") == 200_000
    assert await world.pc_books.wallet_fen("alice") == 50_000
    receipts = [e for e in world.tracer.events if e["kind"] == "sms_opened" and e["type"] == "top_up_receipt"]
    assert receipts, "the bank answers the handset"


async def test_customer_refuses_a_confirmation_request_for_another_contract(world: World) -> None:
    """Step 4 against step 2: the handset confirms only the contract the merchant sent."""
    world.schedule_orders()
    alice = world.customers["alice"]
    await world.kernel.run(stop=lambda: any(p.contract for p in alice.purchases.values()))
    (contract,) = [p.contract for p in alice.purchases.values()]
    forged = m.ConfirmationRequest(
        contract_no=contract.contract_no,
        contract=contract.model_copy(update={"total_fen": contract.total_fen + 1,
                                             "shipping_fee_fen": 1}),
        balance_fen=50_000,
        shortfall_fen=0,
        confirm_window_s=1800,
    )
    world.kernel.schedule(world.kernel.now_s(), world.payment_center.send, "alice", forged)
    await world.kernel.run()
    assert alice.rejections["header_mismatch"] == 1
    summary = await world.summary()
    # the genuine request was confirmed; the odd one changed nothing
    assert summary["transactions"][0]["outcome"] == "settled"
    assert summary["parties"]["alice"]["wallet"] == 26_000


async def test_sms_parts_are_taken_in_the_call_and_the_message_is_awaited(world: World) -> None:
    """``Actor.handle`` does a part's work (reassembly) in the call and returns ``None``; the
    part completing a message returns the coroutine that opens and handles it."""
    shop, pc = world.merchants["shop"], world.payment_center
    request = m.PaymentRequest(
        contract_no="SHOP-999999",
        contract=_contract(world, "shop:nobody"),
        customer_phone="13700000000",
    )
    parts = segment(shop.seal_outgoing("mpc", request).envelope, 77)
    assert len(parts) > 2
    now_s = world.kernel.now_s()
    arrivals = [SmsArrival(shop.number, pc.number, part, now_s) for part in parts]
    assert [pc.handle(a) for a in arrivals[:-1]] == [None] * (len(parts) - 1)
    assert pc.rejections["unknown_party"] == 0
    await pc.handle(arrivals[-1])
    assert pc.rejections["unknown_party"] == 1  # opened, checked and refused by the handler
    bad_header = b"\x05\x00\x03\x01\x02\x03!"  # part 3 of 2
    assert pc.handle(SmsArrival(shop.number, pc.number, bad_header, now_s)) is None
    assert pc.rejections["malformed"] == 1
