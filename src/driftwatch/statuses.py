"""Status vocabularies: the canonical words, how a platform's own words map to them, and the lookups.

Three vocabularies are mapped the same way (raw values stay as the source says them in the store; the
audit maps them):
- `orders`: the canonical order lifecycle (`placed` ... `closed`);
- `returns`: a return's state: `authorised` (agreed, goods not back yet), `received` (goods back, no money
  returned yet, or none will be), `refunded` (money returned: a credit memo), `cancelled` (declined or
  voided: nothing comes back, nothing is refunded);
- `products`: `active` or `discontinued`.

Each platform's documented vocabulary ships with its registration (`Platform.vocabulary`, in its
connector folder); a client's configuration adds to it per source (`[statuses.<source>]` for orders,
`[statuses.<source>.returns]`, `[statuses.<source>.products]`), and must name BlueCherry's codes, which
are not public. Keys may be glob patterns: commercetools reports
compound values ("orderState/shipmentState"), and the most specific state must win, so patterns are tried
in order and the first match counts. A raw value that already is a canonical name maps to itself; case
carries no meaning in any documented vocabulary, so a value that matches nothing exactly is tried again
ignoring case (a spreadsheet export says `TRUE` for `true`). A raw value nothing maps is null: the audit
reports it as an unmapped code instead of guessing.

A platform also has order stages it cannot tell apart (`same_stages`): Klaviyo's events say placed,
fulfilled, cancelled or refunded, nothing finer; on Mirakl the seller takes an order up to SHIPPED and the
customer or operator moves it on to RECEIVED and CLOSED. Comparing a status with such a platform's, the
stages of one group count as equal, so only what the platform could have said differently is drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import polars as pl

from driftwatch.entities import CANONICAL_STATUSES, PRODUCT_STATUSES, RETURN_STATES

ORDERS, RETURNS, PRODUCTS = "orders", "returns", "products"
CANONICAL: dict[str, tuple[str, ...]] = {
    ORDERS: CANONICAL_STATUSES,
    RETURNS: RETURN_STATES,
    PRODUCTS: PRODUCT_STATUSES,
}
# A platform's boolean "is it live" flag, as its API and exports write it.
PUBLISHED = {"true": "active", "false": "discontinued"}


@dataclass(frozen=True)
class Vocabulary:
    """What one platform says, per vocabulary (raw -> canonical), and the order stages it cannot tell apart."""

    orders: Mapping[str, str] = field(default_factory=dict)
    returns: Mapping[str, str] = field(default_factory=dict)
    products: Mapping[str, str] = field(default_factory=dict)
    same_stages: tuple[tuple[str, ...], ...] = ()

    def of(self, vocabulary: str) -> Mapping[str, str]:
        return getattr(self, vocabulary)


# Klaviyo and Emarsys keep no mutable order: their orders are derived from events, whose metric is the raw
# status. An event says an order was placed, fulfilled (dispatched, in whole or in part), cancelled or
# refunded; nothing finer.
ORDER_EVENTS = {
    "order_placed": "placed",
    "order_fulfilled": "shipped",
    "order_cancelled": "cancelled",
    "order_refunded": "refunded",
}
EVENT_STAGES = (("placed", "accepted"), ("partially_shipped", "shipped", "delivered", "closed"))


def merged_map(defaults: Vocabulary, overrides: Mapping[str, str] | None, vocabulary: str = ORDERS) -> dict[str, str]:
    """The user's entries first (they win, and their patterns are tried first), then the platform's shipped
    defaults (its registration's `vocabulary`, so a plugin platform brings its own)."""
    overrides = dict(overrides or {})
    defaults = defaults.of(vocabulary)
    return {**overrides, **{k: v for k, v in defaults.items() if k not in overrides}}


def canonical_status(raw: str | None, mapping: Mapping[str, str], vocabulary: str = ORDERS) -> str | None:
    """The canonical value of one raw value, or None when nothing maps it (an unmapped code)."""
    if raw is None:
        return None
    if raw in mapping:
        return mapping[raw]
    for pattern, canonical in mapping.items():
        if any(ch in pattern for ch in "*?[") and fnmatchcase(raw, pattern):
            return canonical
    if raw in CANONICAL[vocabulary]:
        return raw
    folded = raw.casefold()
    for known, canonical in (*mapping.items(), *((name, name) for name in CANONICAL[vocabulary])):
        if known.casefold() == folded:
            return canonical
    return None


def map_statuses(
    raw: pl.Expr | str,
    mapping: Mapping[str, str],
    frame: pl.LazyFrame | pl.DataFrame,
    vocabulary: str = ORDERS,
) -> pl.Expr:
    """An expression giving the canonical value of the `raw` column; null where the raw value is unmapped.

    Only the distinct raw values go through Python (a handful, whatever the row count), so this stays a
    vectorised lookup on millions of rows.
    """
    raw = pl.col(raw) if isinstance(raw, str) else raw
    distinct = frame.lazy().select(raw.unique().alias("raw")).collect()["raw"].to_list()
    lookup = {value: canonical_status(value, mapping, vocabulary) for value in distinct if value is not None}
    return raw.replace_strict(lookup, default=None, return_dtype=pl.String)


def stage_classes(groups: Iterable[Iterable[str]]) -> dict[str, str]:
    """Each canonical order status that shares a group with another -> one name for its whole class.

    Overlapping groups join up (shipped ~ closed on one platform and shipped ~ returned in a check make
    closed ~ returned), so the result is an equivalence whatever order the groups come in."""
    parent: dict[str, str] = {}

    def root(status: str) -> str:
        while parent.setdefault(status, status) != status:
            status = parent[status]
        return status

    for group in groups:
        members = list(group)
        for other in members[1:]:
            a, b = sorted((root(members[0]), root(other)))
            parent[b] = a
    classes: dict[str, list[str]] = {}
    for status in parent:
        classes.setdefault(root(status), []).append(status)
    return {status: "|".join(sorted(members)) for members in classes.values() for status in members}
