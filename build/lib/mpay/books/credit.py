"""Ratings, integrity points (诚信积分), credit scores and the credit policy (step 11).

:class:`SqliteCreditBureau` implements :class:`actors.ports.CreditBureau`. It keeps its
tables in a :class:`mpay.books.ledger.Ledger`'s database (normally the payment center's) and
writes through the ledger (:meth:`~mpay.books.ledger.Ledger.run_one_write`), so a rating and the
payment center's own state commit together inside one ``atomic()`` block. An outcome or a
rating and the events it books are one INSERT (triggers book the events).

What happens to a party is stored as *events* (a settled transaction, a refund, a rating
received, a lost dispute, a missed deadline). A pluggable :class:`ScoreModel` turns a party's
events into a score in [0, 1000]; :class:`BetaReputation` (with a forgetting factor) is the
default, :class:`LaplaceAverage` and :class:`EwmaScore` are there to compare. The models and
the integrity-point rules are documented in ``docs/credit.md``.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from mpay.actors.ports import RatingRefused
from mpay.books.ledger import Ledger

#: longest rating comment (one UCS-2 SMS holds 70 characters; two parts ~134)
MAX_COMMENT_CHARS = 140
#: longest party id / contract number
MAX_ID_CHARS = 128
#: longest outcome or behaviour kind
MAX_KIND_CHARS = 32
MIN_STARS, MAX_STARS = 1, 5
#: score bounds and the score of a party nobody knows anything about
SCORE_MIN, SCORE_MAX, SCORE_UNKNOWN = 0.0, 1000.0, 500.0

#: event kinds
SETTLED = "settled"
REFUNDED = "refunded"
RATING = "rating"
DISPUTE_LOST = "dispute_lost"
DEADLINE_MISSED = "deadline_missed"

#: evidence (positive, negative) per event kind; a rating's is derived from its stars.
#: Kinds not listed (e.g. an outcome "refused") are recorded but weigh nothing.
DEFAULT_EVIDENCE: Mapping[str, tuple[float, float]] = {
    SETTLED: (1.0, 0.0),
    REFUNDED: (0.0, 0.5),
    DISPUTE_LOST: (0.0, 3.0),
    DEADLINE_MISSED: (0.0, 1.0),
}

#: integrity points per event kind; a rating received gives ``stars - 3``
DEFAULT_INTEGRITY_POINTS: Mapping[str, int] = {
    SETTLED: 1,
    REFUNDED: 0,
    DISPUTE_LOST: -5,
    DEADLINE_MISSED: -2,
}

#: outcome -> event kind booked for both parties
OUTCOME_EVENTS: Mapping[str, str] = {"settled": SETTLED, "refunded": REFUNDED}


class OutcomeConflict(Exception):
    """The same contract reported with a different terminal outcome or parties: a caller bug."""

    reason = "outcome_conflict"


@dataclass(frozen=True, slots=True)
class CreditEvent:
    """Something that happened to a party; ``stars`` only for a rating received."""

    kind: str
    at_s: float
    stars: int | None = None


def evidence(
    event: CreditEvent, weights: Mapping[str, tuple[float, float]] = DEFAULT_EVIDENCE
) -> tuple[float, float]:
    """(positive, negative) evidence of one event: a rating of s stars is ((s-1)/4, (5-s)/4)."""
    if event.kind == RATING and event.stars is not None:
        return (event.stars - MIN_STARS) / 4.0, (MAX_STARS - event.stars) / 4.0
    return weights.get(event.kind, (0.0, 0.0))


def _clamp(score: float) -> float:
    return min(SCORE_MAX, max(SCORE_MIN, score))


# --- score models ---------------------------------------------------------------------------


@runtime_checkable
class ScoreModel(Protocol):
    """Turns a party's events (ordered by time, none after ``now_s``) into [0, 1000]."""

    name: str

    def score(self, events: Sequence[CreditEvent], now_s: float) -> float: ...


@dataclass(frozen=True)
class BetaReputation:
    """Beta reputation (Jøsang & Ismail 2002) with a forgetting factor.

    r = Σ w·positive, s = Σ w·negative with w = 0.5 ** (age_s / half_life_s); the score is
    1000 · (r + 1) / (r + s + 2), the expected value of Beta(r + 1, s + 1). Unknown: 500.
    """

    half_life_s: float = 30 * 86400.0
    weights: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_EVIDENCE))
    name: str = "beta"

    def __post_init__(self) -> None:
        if not (self.half_life_s > 0 and math.isfinite(self.half_life_s)):
            raise ValueError(f"half_life_s must be positive and finite, got {self.half_life_s!r}")

    def score(self, events: Sequence[CreditEvent], now_s: float) -> float:
        r = s = 0.0
        for e in events:
            w = 0.5 ** (max(0.0, now_s - e.at_s) / self.half_life_s)
            p, n = evidence(e, self.weights)
            r += w * p
            s += w * n
        return _clamp(SCORE_MAX * (r + 1.0) / (r + s + 2.0))


@dataclass(frozen=True)
class LaplaceAverage:
    """The share of positive evidence with Laplace smoothing, never forgetting:
    1000 · (Σpositive + 1) / (Σpositive + Σnegative + 2)."""

    weights: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_EVIDENCE))
    name: str = "laplace"

    def score(self, events: Sequence[CreditEvent], now_s: float) -> float:
        r = s = 0.0
        for e in events:
            p, n = evidence(e, self.weights)
            r += p
            s += n
        return _clamp(SCORE_MAX * (r + 1.0) / (r + s + 2.0))


@dataclass(frozen=True)
class EwmaScore:
    """Exponentially weighted moving average of each event's positive share, by event
    order (not time): x ← (1-α)·x + α·p/(p+n), starting at 0.5."""

    alpha: float = 0.2
    weights: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_EVIDENCE))
    name: str = "ewma"

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha!r}")

    def score(self, events: Sequence[CreditEvent], now_s: float) -> float:
        x = SCORE_UNKNOWN / SCORE_MAX
        for e in events:
            p, n = evidence(e, self.weights)
            if p + n > 0:
                x = (1.0 - self.alpha) * x + self.alpha * p / (p + n)
        return _clamp(SCORE_MAX * x)


#: the models by name, for scenario files and the command line
SCORE_MODELS: dict[str, type] = {"beta": BetaReputation, "laplace": LaplaceAverage, "ewma": EwmaScore}


# --- credit policy --------------------------------------------------------------------------


@runtime_checkable
class CreditPolicy(Protocol):
    """Consulted before the payment center accepts a payment request."""

    async def decide(
        self, bureau: SqliteCreditBureau, customer_id: str, merchant_id: str, amount_fen: int, now_s: float
    ) -> str | None:
        """None to allow, or the reason for refusing."""
        ...


class AllowAll:
    """The default policy: allow every payment."""

    async def decide(
        self, bureau: SqliteCreditBureau, customer_id: str, merchant_id: str, amount_fen: int, now_s: float
    ) -> str | None:
        return None


@dataclass(frozen=True)
class MerchantScoreLimit:
    """Refuse orders above ``max_amount_fen`` from merchants scoring below ``min_score``."""

    min_score: float
    max_amount_fen: int

    async def decide(
        self, bureau: SqliteCreditBureau, customer_id: str, merchant_id: str, amount_fen: int, now_s: float
    ) -> str | None:
        if amount_fen <= self.max_amount_fen:
            return None
        if await bureau.score(merchant_id, now_s) < self.min_score:
            return "merchant_score_below_limit"
        return None


# --- the bureau -----------------------------------------------------------------------------

# credit_ratings and credit_events are kept together by the key they are read by (a contract,
# a party), each row numbered 1, 2, ... in the order recorded within it (``seq``, the order
# a rowid gave): a row is written to one page, where a rowid table and its index wrote two.
_RATINGS_TABLE = """CREATE TABLE IF NOT EXISTS credit_ratings (
        contract_no TEXT NOT NULL,
        rater_id TEXT NOT NULL,
        ratee_id TEXT NOT NULL,
        stars INTEGER NOT NULL CHECK (stars BETWEEN 1 AND 5),
        comment TEXT NOT NULL,
        at_s REAL NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (contract_no, rater_id)) WITHOUT ROWID"""
_EVENTS_TABLE = """CREATE TABLE IF NOT EXISTS credit_events (
        party_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        at_s REAL NOT NULL,
        stars INTEGER,
        contract_no TEXT,
        PRIMARY KEY (party_id, seq)) WITHOUT ROWID"""

_SCHEMA = (
    # WITHOUT ROWID: read only by contract_no, so one B-tree instead of a table and its
    # primary-key index (a page less written per outcome)
    """CREATE TABLE IF NOT EXISTS credit_outcomes (
        contract_no TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        merchant_id TEXT NOT NULL,
        outcome TEXT NOT NULL,
        at_s REAL NOT NULL) WITHOUT ROWID""",
    _RATINGS_TABLE,
    _EVENTS_TABLE,
)


def _add_event_sql(party: str, kind: str, at_s: str, stars: str, contract_no: str) -> str:
    """One event, numbered after the party's last (read from the end of the party's rows).
    A scalar subquery in VALUES: an INSERT ... SELECT from its own table would first copy
    the SELECT's result into a temporary table (twice the time)."""
    return (
        "INSERT INTO credit_events (party_id, seq, kind, at_s, stars, contract_no) VALUES "
        f"({party}, (SELECT coalesce(max(seq), 0) + 1 FROM credit_events WHERE party_id = {party}), "
        f"{kind}, {at_s}, {stars}, {contract_no})"
    )


_SQL_ADD_EVENT = _add_event_sql("?1", "?2", "?3", "?4", "?5")
#: the event kind of an outcome, as SQL (:data:`OUTCOME_EVENTS`; others: the outcome itself)
_OUTCOME_KIND = (
    "CASE NEW.outcome "
    + " ".join(f"WHEN '{outcome}' THEN '{kind}'" for outcome, kind in OUTCOME_EVENTS.items())
    + " ELSE NEW.outcome END"
)
#: an outcome or a rating and its events are one statement (atomic by itself, no savepoint)
_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS credit_outcomes_events AFTER INSERT ON credit_outcomes BEGIN "
    + _add_event_sql("NEW.customer_id", _OUTCOME_KIND, "NEW.at_s", "NULL", "NEW.contract_no") + "; "
    + _add_event_sql("NEW.merchant_id", _OUTCOME_KIND, "NEW.at_s", "NULL", "NEW.contract_no") + "; END",
    "CREATE TRIGGER IF NOT EXISTS credit_ratings_event AFTER INSERT ON credit_ratings BEGIN "
    + _add_event_sql("NEW.ratee_id", f"'{RATING}'", "NEW.at_s", "NEW.stars", "NEW.contract_no") + "; END",
)


#: a rating, numbered after the contract's others (a scalar subquery, as in _add_event_sql)
_SQL_ADD_RATING = (
    "INSERT INTO credit_ratings (contract_no, rater_id, ratee_id, stars, comment, at_s, seq) VALUES "
    "(?1, ?2, ?3, ?4, ?5, ?6, (SELECT count(*) + 1 FROM credit_ratings WHERE contract_no = ?1))"
)


def _number_rows(c: sqlite3.Connection, table: str, create: str, within: str, columns: str) -> None:
    """A database of an earlier version keeps ``table`` as a rowid table without ``seq``:
    rebuild it, numbering the rows of each ``within`` value in their rowid (recording) order."""
    if "seq" in {row[1] for row in c.execute(f"PRAGMA table_info({table})")}:
        return
    c.execute(f"ALTER TABLE {table} RENAME TO {table}_unnumbered")
    c.execute(create)
    c.execute(
        f"INSERT INTO {table} ({columns}, seq) SELECT {columns}, "
        f"row_number() OVER (PARTITION BY {within} ORDER BY rowid) FROM {table}_unnumbered"
    )
    c.execute(f"DROP TABLE {table}_unnumbered")  # and its indexes


def _check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise ValueError(f"{what} must be a string of 1..{MAX_ID_CHARS} characters, got {value!r}")
    return value


def _check_kind(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_KIND_CHARS:
        raise ValueError(f"{what} must be a string of 1..{MAX_KIND_CHARS} characters, got {value!r}")
    return value


def _check_time(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number of seconds, got {value!r}")
    return float(value)


class SqliteCreditBureau:
    """The credit port on the payment center's database. Open with :meth:`open`."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        model: ScoreModel | None = None,
        policy: CreditPolicy | None = None,
        integrity_points: Mapping[str, int] | None = None,
    ) -> None:
        self.ledger = ledger
        self.model: ScoreModel = model if model is not None else BetaReputation()
        self.policy: CreditPolicy = policy if policy is not None else AllowAll()
        self.integrity_rules: Mapping[str, int] = dict(
            DEFAULT_INTEGRITY_POINTS if integrity_points is None else integrity_points
        )

    @classmethod
    async def open(
        cls,
        ledger: Ledger,
        *,
        model: ScoreModel | None = None,
        policy: CreditPolicy | None = None,
        integrity_points: Mapping[str, int] | None = None,
    ) -> SqliteCreditBureau:
        """Create the bureau's tables (if needed) in ``ledger``'s database."""

        def setup(c: sqlite3.Connection) -> None:
            for stmt in _SCHEMA:
                c.execute(stmt)
            _number_rows(c, "credit_ratings", _RATINGS_TABLE, "contract_no",
                         "contract_no, rater_id, ratee_id, stars, comment, at_s")
            _number_rows(c, "credit_events", _EVENTS_TABLE, "party_id", "party_id, kind, at_s, stars, contract_no")
            for stmt in _TRIGGERS:
                c.execute(stmt)

        await ledger.run_sync(setup)
        return cls(ledger, model=model, policy=policy, integrity_points=integrity_points)

    async def record_outcome(
        self, contract_no: str, customer_id: str, merchant_id: str, outcome: str, at_s: float
    ) -> None:
        """The transaction ended; its two parties may now rate each other. A settled or
        refunded outcome is also a behaviour event for both. Idempotent on contract_no."""
        _check_id(contract_no, "contract_no")
        _check_id(customer_id, "customer_id")
        _check_id(merchant_id, "merchant_id")
        _check_kind(outcome, "outcome")
        at = _check_time(at_s, "at_s")
        if customer_id == merchant_id:
            raise ValueError("customer and merchant must be different parties")

        def work(c: sqlite3.Connection) -> None:
            inserted = c.execute(  # its trigger books the two events
                "INSERT INTO credit_outcomes VALUES (?,?,?,?,?) ON CONFLICT (contract_no) DO NOTHING",
                (contract_no, customer_id, merchant_id, outcome, at),
            ).rowcount
            if inserted:
                return
            row = c.execute(
                "SELECT customer_id, merchant_id, outcome FROM credit_outcomes WHERE contract_no = ?",
                (contract_no,),
            ).fetchone()
            if tuple(row) != (customer_id, merchant_id, outcome):
                raise OutcomeConflict(
                    f"contract {contract_no} already ended as {row[2]} between {row[0]} and {row[1]}"
                )

        await self.ledger.run_one_write(work)

    async def record_behaviour(self, party_id: str, kind: str, at_s: float) -> None:
        """A behaviour event such as 'deadline_missed' or 'dispute_lost'."""
        _check_id(party_id, "party_id")
        _check_kind(kind, "kind")
        if kind == RATING:
            raise ValueError("ratings arrive through rate()")
        at = _check_time(at_s, "at_s")
        await self.ledger.execute(_SQL_ADD_EVENT, (party_id, kind, at, None, None))  # one statement: atomic

    async def rate(
        self, contract_no: str, rater_id: str, ratee_id: str, stars: int, comment: str, at_s: float
    ) -> None:
        """Step 11: one rating per party per ended transaction, of the other party only.
        Raises RatingRefused (also for a duplicate of an accepted rating)."""
        if type(stars) is not int or not MIN_STARS <= stars <= MAX_STARS:
            raise RatingRefused(f"stars must be an int in {MIN_STARS}..{MAX_STARS}, got {stars!r}")
        if not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS:
            raise RatingRefused(f"comment must be a string of at most {MAX_COMMENT_CHARS} characters")
        if not isinstance(contract_no, str) or not isinstance(rater_id, str) or not isinstance(ratee_id, str):
            raise RatingRefused("contract_no, rater_id and ratee_id must be strings")
        at = _check_time(at_s, "at_s")

        def work(c: sqlite3.Connection) -> None:
            row = c.execute(
                "SELECT customer_id, merchant_id, at_s FROM credit_outcomes WHERE contract_no = ?", (contract_no,)
            ).fetchone()
            if row is None:
                raise RatingRefused(f"contract {contract_no!r} has not ended (or is unknown)")
            customer_id, merchant_id, ended_at = row
            if rater_id not in (customer_id, merchant_id):
                raise RatingRefused(f"{rater_id} is not a party of contract {contract_no}")
            other = merchant_id if rater_id == customer_id else customer_id
            if ratee_id != other:
                raise RatingRefused(f"{rater_id} may rate only {other} for contract {contract_no}")
            if at < ended_at:
                raise RatingRefused(f"rating at {at} s precedes the end of contract {contract_no} at {ended_at} s")
            try:  # its trigger books the ratee's event
                c.execute(_SQL_ADD_RATING, (contract_no, rater_id, ratee_id, stars, comment, at))
            except sqlite3.IntegrityError:
                raise RatingRefused(f"{rater_id} already rated contract {contract_no}") from None

        await self.ledger.run_one_write(work)

    async def events(self, party_id: str, until_s: float | None = None) -> list[CreditEvent]:
        """A party's events in time order (up to ``until_s`` inclusive)."""
        limit = math.inf if until_s is None else until_s

        def work(c: sqlite3.Connection) -> list[CreditEvent]:
            rows = c.execute(
                "SELECT kind, at_s, stars FROM credit_events WHERE party_id = ? ORDER BY at_s, seq", (party_id,)
            ).fetchall()
            return [CreditEvent(k, a, s) for k, a, s in rows if a <= limit]

        return await self.ledger.read(work)

    async def score(self, party_id: str, now_s: float) -> float:
        """Credit score in [0, 1000] by the bureau's model, from events up to ``now_s``."""
        now = _check_time(now_s, "now_s")
        return _clamp(float(self.model.score(await self.events(party_id, now), now)))

    async def scores(self, party_id: str, now_s: float, models: Sequence[ScoreModel]) -> dict[str, float]:
        """The same history under several models, to compare them."""
        now = _check_time(now_s, "now_s")
        evs = await self.events(party_id, now)
        return {m.name: _clamp(float(m.score(evs, now))) for m in models}

    async def integrity_points(self, party_id: str) -> int:
        """Accumulated integrity points: rating received ``stars - 3``, plus the per-kind
        rules (settled +1, dispute lost -5, deadline missed -2); never forgotten."""
        total = 0
        for e in await self.events(party_id):
            if e.kind == RATING and e.stars is not None:
                total += e.stars - 3
            else:
                total += self.integrity_rules.get(e.kind, 0)
        return total

    async def ratings(self, contract_no: str) -> list[tuple[str, str, int, str, float]]:
        """(rater, ratee, stars, comment, at_s) of a contract, for the transaction-record site."""
        rows = await self.ledger.read(
            lambda c: c.execute(
                "SELECT rater_id, ratee_id, stars, comment, at_s FROM credit_ratings WHERE contract_no = ? "
                "ORDER BY at_s, seq",
                (contract_no,),
            ).fetchall()
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]

    async def allow_payment(
        self, customer_id: str, merchant_id: str, amount_fen: int, now_s: float
    ) -> str | None:
        """The credit policy: None to allow, or the reason for refusing."""
        return await self.policy.decide(self, customer_id, merchant_id, amount_fen, now_s)
