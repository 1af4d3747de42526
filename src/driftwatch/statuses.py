"""Raw order statuses mapped to the canonical lifecycle.

Shipped defaults cover each platform's documented vocabulary; a client's configuration adds to them (and
must name BlueCherry's codes, which are not public). Keys may be glob patterns: commercetools reports a
compound "orderState/shipmentState" value, and the most specific state must win, so patterns are tried in
order and the first match counts.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

import polars as pl

from driftwatch.entities import CANONICAL_STATUSES

DEFAULT_STATUS_MAPS: dict[str, dict[str, str]] = {
    "mirakl": {
        "STAGING": "placed",
        "WAITING_ACCEPTANCE": "placed",
        "WAITING_DEBIT": "placed",
        "WAITING_DEBIT_PAYMENT": "placed",
        "SHIPPING": "accepted",
        "SHIPPED": "shipped",
        "TO_COLLECT": "shipped",
        "RECEIVED": "delivered",
        "CLOSED": "closed",
        "REFUSED": "cancelled",
        "CANCELED": "cancelled",
    },
    "commercetools": {
        "Cancelled": "cancelled",
        "Cancelled/*": "cancelled",
        "Complete": "closed",
        "Complete/*": "closed",
        "*/Delivered": "delivered",
        "*/Shipped": "shipped",
        "*/Partial": "partially_shipped",
        "Open": "placed",
        "Open/*": "placed",
        "Confirmed": "accepted",
        "Confirmed/*": "accepted",
    },
    "ometria": {
        "pending": "placed",
        "shipped": "shipped",
        "complete": "delivered",
        "cancelled": "cancelled",
    },
    # Klaviyo keeps no mutable order: its orders are derived from events, whose metric is the raw status.
    "klaviyo": {
        "order_placed": "placed",
        "order_fulfilled": "shipped",
        "order_cancelled": "cancelled",
        "order_refunded": "refunded",
    },
    "emarsys": {
        "order_placed": "placed",
        "order_fulfilled": "shipped",
        "order_cancelled": "cancelled",
        "order_refunded": "refunded",
    },
    "bluecherry": {},
}


def merged_map(platform: str, overrides: dict[str, str] | None) -> dict[str, str]:
    """The user's entries first (they win), then the platform's shipped defaults (its registration's)."""
    from driftwatch import platforms  # the registry reads this module's defaults when it is imported

    defaults = platforms.get(platform).statuses if platforms.is_platform(platform) else {}
    return {
        **(overrides or {}),
        **{k: v for k, v in defaults.items() if k not in (overrides or {})},
    }


def canonical_status(raw: str | None, mapping: dict[str, str]) -> str | None:
    """The canonical status of one raw value, or None when nothing maps it (an unmapped code)."""
    if raw is None:
        return None
    if raw in mapping:
        return mapping[raw]
    for pattern, canonical in mapping.items():
        if any(ch in pattern for ch in "*?[") and fnmatchcase(raw, pattern):
            return canonical
    return raw if raw in CANONICAL_STATUSES else None


def map_statuses(raw: pl.Expr | str, mapping: dict[str, str], frame: pl.LazyFrame | pl.DataFrame) -> pl.Expr:
    """An expression giving the canonical status of the `raw` column; null where the raw value is unmapped.

    Only the distinct raw values go through Python (a handful, whatever the row count), so this stays a
    vectorised lookup on millions of orders.
    """
    raw = pl.col(raw) if isinstance(raw, str) else raw
    distinct = frame.lazy().select(raw.unique().alias("raw")).collect()["raw"].to_list()
    lookup = {value: canonical_status(value, mapping) for value in distinct if value is not None}
    return raw.replace_strict(lookup, default=None, return_dtype=pl.String)
