"""Ratings, integrity points, credit scores and the credit policy."""

from __future__ import annotations

import sqlite3

import pytest

from mpay.actors.ports import CreditBureau, RatingRefused
from mpay.books.credit import (
    SCORE_UNKNOWN,
    AllowAll,
    BetaReputation,
    CreditEvent,
    EwmaScore,
    LaplaceAverage,
    MerchantScoreLimit,
    OutcomeConflict,
    SqliteCreditBureau,
)
from mpay.books.ledger import Ledger

DAY_S = 86_400.0


@pytest.fixture
async def bureau():
    ledger = await Ledger.open(":memory:", name="payment_center")
    b = await SqliteCreditBureau.open(ledger)
    yield b
    await ledger.close()


async def test_bureau_implements_the_port(bureau: SqliteCreditBureau) -> None:
    assert isinstance(bureau, CreditBureau)
    assert await bureau.score("nobody", 0.0) == SCORE_UNKNOWN
    assert await bureau.integrity_points("nobody") == 0


async def test_each_party_rates_the_other_once_after_the_end(bureau: SqliteCreditBureau) -> None:
    with pytest.raises(RatingRefused):  # before the end
        await bureau.rate("c1", "alice", "shop", 5, "fast", 10.0)
    await bureau.record_outcome("c1", "alice", "shop", "settled", 100.0)
    await bureau.record_outcome("c1", "alice", "shop", "settled", 100.0)  # duplicate notice
    with pytest.raises(OutcomeConflict):
        await bureau.record_outcome("c1", "alice", "shop", "refunded", 100.0)
    with pytest.raises(RatingRefused):  # dated before the end
        await bureau.rate("c1", "alice", "shop", 5, "fast", 99.0)
    await bureau.rate("c1", "alice", "shop", 5, "fast delivery", 200.0)
    with pytest.raises(RatingRefused):  # twice
        await bureau.rate("c1", "alice", "shop", 1, "changed my mind", 300.0)
    with pytest.raises(RatingRefused):  # a stranger
        await bureau.rate("c1", "mallory", "shop", 1, "", 300.0)
    with pytest.raises(RatingRefused):  # rating someone who is not the other party
        await bureau.rate("c1", "shop", "mallory", 1, "", 300.0)
    with pytest.raises(RatingRefused):  # rating oneself
        await bureau.rate("c1", "shop", "shop", 5, "", 300.0)
    for stars in (0, 6, 3.5, True):
        with pytest.raises(RatingRefused):
            await bureau.rate("c1", "shop", "alice", stars, "", 300.0)  # type: ignore[arg-type]
    with pytest.raises(RatingRefused):
        await bureau.rate("c1", "shop", "alice", 4, "x" * 141, 300.0)
    await bureau.rate("c1", "shop", "alice", 4, "paid on time", 300.0)
    assert await bureau.ratings("c1") == [
        ("alice", "shop", 5, "fast delivery", 200.0),
        ("shop", "alice", 4, "paid on time", 300.0),
    ]


async def test_integrity_points_follow_the_documented_rules(bureau: SqliteCreditBureau) -> None:
    await bureau.record_outcome("c1", "alice", "shop", "settled", 0.0)  # +1 each
    await bureau.rate("c1", "alice", "shop", 5, "", 1.0)  # shop +2
    await bureau.rate("c1", "shop", "alice", 2, "", 1.0)  # alice -1
    assert await bureau.integrity_points("shop") == 3
    assert await bureau.integrity_points("alice") == 0
    await bureau.record_behaviour("shop", "deadline_missed", 2.0)  # -2
    await bureau.record_behaviour("shop", "dispute_lost", 3.0)  # -5
    assert await bureau.integrity_points("shop") == -4


async def test_score_rises_with_good_and_falls_with_bad_behaviour(bureau: SqliteCreditBureau) -> None:
    for i in range(5):
        await bureau.record_outcome(f"g{i}", "alice", "good", "settled", float(i))
        await bureau.rate(f"g{i}", "alice", "good", 5, "", float(i))
        await bureau.record_outcome(f"b{i}", "alice", "bad", "refunded", float(i))
        await bureau.rate(f"b{i}", "alice", "bad", 1, "", float(i))
    now = 10.0
    good, bad = await bureau.score("good", now), await bureau.score("bad", now)
    assert bad < SCORE_UNKNOWN < good <= 1000.0
    before = await bureau.score("bad", now)
    await bureau.record_behaviour("bad", "dispute_lost", now)
    assert await bureau.score("bad", now) < before
    # the score is "as of now": later events do not count yet
    assert await bureau.score("good", 0.0) < good


async def test_beta_reputation_forgets_old_evidence() -> None:
    model = BetaReputation(half_life_s=30 * DAY_S)
    bad_history = [CreditEvent("dispute_lost", 0.0)] * 3
    fresh = model.score(bad_history, 0.0)
    after_a_year = model.score(bad_history, 365 * DAY_S)
    assert fresh < after_a_year < SCORE_UNKNOWN + 1e-6
    assert abs(after_a_year - SCORE_UNKNOWN) < 1.0  # nearly forgotten
    # one half-life halves the evidence: 3 negatives weigh 9 -> 4.5
    assert model.score(bad_history, 30 * DAY_S) == pytest.approx(1000 * 1 / (4.5 + 2))
    # the Laplace model never forgets
    assert LaplaceAverage().score(bad_history, 365 * DAY_S) == pytest.approx(1000 * 1 / 11)


async def test_models_are_pluggable_and_comparable(bureau: SqliteCreditBureau) -> None:
    await bureau.record_outcome("c1", "alice", "shop", "settled", 0.0)
    await bureau.rate("c1", "alice", "shop", 5, "", 0.0)
    scores = await bureau.scores("shop", 0.0, [BetaReputation(), LaplaceAverage(), EwmaScore(alpha=0.5)])
    assert scores["beta"] == pytest.approx(1000 * 3 / 4)  # r=2, s=0
    assert scores["laplace"] == pytest.approx(1000 * 3 / 4)
    assert scores["ewma"] == pytest.approx(875.0)  # 0.5 -> 0.75 -> 0.875
    ewma = SqliteCreditBureau(bureau.ledger, model=EwmaScore(alpha=0.5))
    assert await ewma.score("shop", 0.0) == pytest.approx(875.0)
    with pytest.raises(ValueError):
        BetaReputation(half_life_s=0)


async def test_credit_policy(bureau: SqliteCreditBureau) -> None:
    assert isinstance(bureau.policy, AllowAll)
    assert await bureau.allow_payment("alice", "shady", 10**9, 0.0) is None
    strict = SqliteCreditBureau(bureau.ledger, policy=MerchantScoreLimit(min_score=600, max_amount_fen=50_000))
    await strict.record_behaviour("shady", "dispute_lost", 0.0)
    assert await strict.allow_payment("alice", "shady", 50_000, 1.0) is None  # small order
    assert await strict.allow_payment("alice", "shady", 50_001, 1.0) == "merchant_score_below_limit"
    for i in range(10):
        await strict.record_outcome(f"c{i}", "alice", "trusted", "settled", 0.0)
    assert await strict.allow_payment("alice", "trusted", 1_000_000, 1.0) is None


async def test_rating_commits_with_the_payment_centers_step(bureau: SqliteCreditBureau) -> None:
    await bureau.record_outcome("c1", "alice", "shop", "settled", 0.0)
    with pytest.raises(RuntimeError):
        async with bureau.ledger.atomic():
            await bureau.rate("c1", "alice", "shop", 5, "", 1.0)
            raise RuntimeError("the step failed")
    await bureau.rate("c1", "alice", "shop", 5, "", 1.0)  # not counted as a second rating
    assert await bureau.integrity_points("shop") == 3


async def test_an_outcome_or_a_rating_books_its_events_in_one_statement(bureau: SqliteCreditBureau) -> None:
    await bureau.record_outcome("c1", "alice", "shop", "settled", 1.0)
    await bureau.record_outcome("c1", "alice", "shop", "settled", 1.0)  # a duplicate books nothing
    await bureau.record_outcome("c2", "alice", "shop", "declined", 2.0)  # an outcome not mapped
    await bureau.rate("c1", "shop", "alice", 4, "", 3.0)
    with pytest.raises(RatingRefused):
        await bureau.rate("c1", "shop", "alice", 2, "", 4.0)  # refused: no second event either
    await bureau.record_behaviour("alice", "deadline_missed", 2.0)
    assert await bureau.events("alice") == [
        CreditEvent("settled", 1.0), CreditEvent("declined", 2.0),
        CreditEvent("deadline_missed", 2.0), CreditEvent("rating", 3.0, 4),
    ]
    assert await bureau.events("shop") == [CreditEvent("settled", 1.0), CreditEvent("declined", 2.0)]
    rows = await bureau.ledger.execute("SELECT party_id, seq, kind FROM credit_events ORDER BY party_id, seq")
    assert rows == [
        ("alice", 1, "settled"), ("alice", 2, "declined"), ("alice", 3, "rating"), ("alice", 4, "deadline_missed"),
        ("shop", 1, "settled"), ("shop", 2, "declined"),
    ]


async def test_ratings_at_the_same_moment_keep_the_order_they_came_in(bureau: SqliteCreditBureau) -> None:
    await bureau.record_outcome("c1", "zoe", "shop", "settled", 1.0)
    await bureau.rate("c1", "zoe", "shop", 5, "first", 2.0)
    await bureau.rate("c1", "shop", "zoe", 3, "second", 2.0)
    assert [r[0] for r in await bureau.ratings("c1")] == ["zoe", "shop"]


async def test_ratings_and_events_kept_by_an_earlier_version_are_numbered_on_open(tmp_path) -> None:
    """Earlier versions kept ``credit_events`` and ``credit_ratings`` as rowid tables with
    an index on the party and the primary key's index."""
    path = tmp_path / "pc.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE credit_ratings (contract_no TEXT NOT NULL, rater_id TEXT NOT NULL, ratee_id TEXT NOT NULL, "
        "stars INTEGER NOT NULL, comment TEXT NOT NULL, at_s REAL NOT NULL, PRIMARY KEY (contract_no, rater_id))"
    )
    db.executemany(
        "INSERT INTO credit_ratings VALUES (?,?,?,?,?,?)",
        [("c1", "zoe", "shop", 2, "", 5.0), ("c1", "shop", "zoe", 4, "", 5.0), ("c2", "zoe", "mall", 5, "", 1.0)],
    )
    db.execute(
        "CREATE TABLE credit_outcomes (contract_no TEXT PRIMARY KEY, customer_id TEXT NOT NULL, "
        "merchant_id TEXT NOT NULL, outcome TEXT NOT NULL, at_s REAL NOT NULL)"
    )
    db.executemany(
        "INSERT INTO credit_outcomes VALUES (?,?,?,?,?)",
        [("c1", "zoe", "shop", "settled", 0.0), ("c2", "zoe", "mall", "settled", 0.0)],
    )
    db.execute(
        "CREATE TABLE credit_events (party_id TEXT NOT NULL, kind TEXT NOT NULL, at_s REAL NOT NULL, "
        "stars INTEGER, contract_no TEXT)"
    )
    db.execute("CREATE INDEX credit_events_party ON credit_events (party_id, at_s)")
    db.executemany(
        "INSERT INTO credit_events VALUES (?,?,?,?,?)",
        [("shop", "settled", 5.0, None, "c1"), ("alice", "rating", 5.0, 2, "c1"),
         ("shop", "deadline_missed", 5.0, None, None), ("alice", "settled", 1.0, None, "c0")],
    )
    db.commit()
    db.close()
    ledger = await Ledger.open(path, name="payment_center")
    try:
        bureau = await SqliteCreditBureau.open(ledger)
        assert await bureau.events("shop") == [CreditEvent("settled", 5.0), CreditEvent("deadline_missed", 5.0)]
        assert await bureau.events("alice") == [CreditEvent("settled", 1.0), CreditEvent("rating", 5.0, 2)]
        await bureau.record_behaviour("shop", "dispute_lost", 5.0)  # numbered after the old ones
        assert [e.kind for e in await bureau.events("shop")] == ["settled", "deadline_missed", "dispute_lost"]
        assert [r[:2] for r in await bureau.ratings("c1")] == [("zoe", "shop"), ("shop", "zoe")]
        with pytest.raises(RatingRefused, match="already rated"):
            await bureau.rate("c1", "zoe", "shop", 1, "", 9.0)  # the primary key still holds
        await bureau.rate("c2", "mall", "zoe", 4, "", 1.0)  # numbered after zoe's
        assert [r[0] for r in await bureau.ratings("c2")] == ["zoe", "mall"]
        await SqliteCreditBureau.open(ledger)  # a second open changes nothing
        assert len(await bureau.events("shop")) == 3
        assert len(await bureau.ratings("c1")) == 2
    finally:
        await ledger.close()
