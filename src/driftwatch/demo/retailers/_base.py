"""What every generated retailer shares: its records, its answer key, seeded draws, and the figures
DESIGN.md pins, computed here in plain Python.

A retailer module builds a `Retailer`: the canonical records each platform holds (what a connector would
give back), the captured_at of each source, and one answer-key row per finding its injected drift must
cause. The expected findings are derived here, from DESIGN.md's definitions, never by running the
engine: an answer key computed by the code under test would prove nothing.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

Record = dict[str, Any]
ANSWER_COLUMNS = ("check_id", "target", "key", "field", "note")
CENT = Decimal("0.01")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass
class Retailer:
    """One generated retailer: what every source holds, when each was captured, and the answer key."""

    name: str
    kinds: dict[str, str]  # source name -> platform ("mirakl_fr" -> "mirakl")
    captures: dict[str, datetime]
    held: dict[tuple[str, str], list[Record]] = field(default_factory=dict)
    answers: list[Record] = field(default_factory=list)

    def rows(self, source: str, entity: str) -> list[Record]:
        return self.held.setdefault((source, entity), [])

    def set(self, source: str, entity: str, match: dict[str, Any], **values: Any) -> None:
        """Change the records of `source`/`entity` that match every value of `match` (at least one)."""
        rows = [r for r in self.rows(source, entity) if all(r.get(k) == v for k, v in match.items())]
        if not rows:
            raise RuntimeError(f"no {source} {entity} record matches {match}")
        for row in rows:
            row.update(values)

    def drop(self, source: str, entity: str, **match: Any) -> None:
        """Remove the records of `source`/`entity` that match every value of `match` (at least one)."""
        rows = self.rows(source, entity)
        kept = [r for r in rows if not all(r.get(k) == v for k, v in match.items())]
        if len(kept) == len(rows):
            raise RuntimeError(f"no {source} {entity} record matches {match}")
        rows[:] = kept

    def answer(self, check_id: str, target: str, key: str, field: str = "", note: str = "") -> None:
        self.answers.append(dict(zip(ANSWER_COLUMNS, (check_id, target, key, field, note), strict=True)))


class Draws:
    """Seeded draws, one independent stream per name: adding a draw to one stream never shifts another."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._streams: dict[str, random.Random] = {}

    def __call__(self, stream: str) -> random.Random:
        if stream not in self._streams:
            self._streams[stream] = random.Random(f"{self.seed}:{stream}")
        return self._streams[stream]

    def uuid(self, stream: str) -> str:
        return str(uuid.UUID(int=self(stream).getrandbits(128), version=4))

    def minutes(self, stream: str, low: float, high: float) -> timedelta:
        return timedelta(minutes=int(self(stream).uniform(low, high)))


class Picker:
    """Records for drift, drawn from disjoint pools: a record one fault touches is never touched by another,
    so every fault causes exactly the findings written down for it."""

    def __init__(self, draws: Draws) -> None:
        self._draws = draws
        self._used: dict[str, set[Any]] = {}

    def pick(self, pool: str, candidates: Iterable[Record], key: str, n: int = 1) -> list[Record]:
        used = self._used.setdefault(pool, set())
        free = [c for c in candidates if c[key] not in used]
        if len(free) < n:
            raise RuntimeError(f"not enough records to inject drift into {pool}: {len(free)} of {n}")
        chosen = self._draws(f"pick.{pool}.{len(used)}").sample(free, n)
        used.update(c[key] for c in chosen)
        return chosen

    def one(self, pool: str, candidates: Iterable[Record], key: str) -> Record:
        return self.pick(pool, candidates, key, 1)[0]

    def reserved(self, pool: str) -> set[Any]:
        """The keys of a pool no later pick will draw."""
        return set(self._used.get(pool, ()))

    def reserve(self, pool: str, keys: Iterable[Any]) -> None:
        """Keep records out of every later pick (they carry a trap that drift must not disturb)."""
        self._used.setdefault(pool, set()).update(keys)


class Shape:
    """What building any retailer shares: seeded draws, disjoint picks for drift, when each source was
    captured, and the quiet time (six hours before the earliest capture) before which every ordinary change
    happens, so that only the traps fall in the windows between captures. A retailer module subclasses it
    with its own catalogue, customers, trade, copies and drift."""

    name: str
    kinds: dict[str, str]

    def __init__(self, seed: int, captures: dict[str, datetime]) -> None:
        self.draw = Draws(seed)
        self.picker = Picker(self.draw)
        self.captures = captures
        self.retailer = Retailer(self.name, self.kinds, captures)
        self.quiet = min(captures.values()) - 6 * HOUR
        self.people: list[Record] = []
        self.orders: list[Record] = []
        # customer id -> (when a change was recorded, the values before it): a target captured earlier
        # still holds those
        self.history: dict[str, tuple[datetime, Record]] = {}

    def cap(self, source: str) -> datetime:
        return self.captures[source]

    def as_of(self, person: Record, at: datetime) -> Record:
        """A customer as the system of record held them at `at`."""
        changed = self.history.get(person["customer_id"])
        return {**person, **changed[1]} if changed and changed[0] > at else person

    def orders_where(self, *conditions: Callable[[Record], bool]) -> list[Record]:
        return [o for o in self.orders if all(c(o) for c in conditions)]


# --- the figures DESIGN.md pins, in plain Python ------------------------------------------------------


def free_stock(row: Record) -> int:
    """A location's sellable quantity: on hand less allocated less safety stock, never below 0; on_order
    (open work orders) never counts."""
    return max(0, row["on_hand"] - row["allocated"] - row.get("safety_stock", 0))


def available_to_sell(stock: Sequence[Record], locations: Sequence[str]) -> dict[str, int]:
    """Per SKU: the sum over the feeding locations of each location's free stock."""
    ats: dict[str, int] = {}
    for row in stock:
        if row["location"] in locations:
            ats[row["sku"]] = ats.get(row["sku"], 0) + free_stock(row)
    return ats


def pack_ats(ats: dict[str, int], components: Sequence[Record]) -> dict[str, int]:
    """A pack's available-to-sell: the minimum over its components of floor(component ATS / qty)."""
    packs: dict[str, int] = {}
    for row in components:
        can = ats.get(row["component_sku"], 0) // row["qty"]
        packs[row["pack_sku"]] = min(packs.get(row["pack_sku"], can), can)
    return packs


def net_value(
    orders: Sequence[Record], refunds: Sequence[Record], cancelled: Callable[[Record], bool]
) -> dict[str, tuple[Decimal, int, datetime | None]]:
    """Per customer: (lifetime value, order count, last order date) over the orders that are not cancelled,
    less the amounts of their refunded returns."""
    value: dict[str, tuple[Decimal, int, datetime | None]] = {}
    kept = {o["order_id"]: o for o in orders if not cancelled(o)}
    for order in kept.values():
        total, count, last = value.get(order["customer_id"], (Decimal(0), 0, None))
        placed = order["placed_at"]
        value[order["customer_id"]] = (total + order["total"], count + 1, placed if last is None else max(last, placed))
    owner = {o["order_id"]: o["customer_id"] for o in orders}
    for ret in refunds:
        customer = owner.get(ret["order_id"])
        if customer is not None:
            total, count, last = value.get(customer, (Decimal(0), 0, None))
            value[customer] = (total - ret["amount"], count, last)
    return value


def money(value: float | int | str | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


def sku_location(sku: str, location: str) -> str:
    """The finding key of a stock record a target keeps per location."""
    return f"{sku}/{location}"
