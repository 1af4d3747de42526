"""Stock rules: a target's stock figures that stopped changing, and the ERP's figures below zero."""

from __future__ import annotations

import polars as pl

from driftwatch.engine.context import Scope
from driftwatch.engine.rules._base import findings_from, rule, text_or_none
from driftwatch.engine.views import (
    target_locations,
)


@rule
def stock_staleness(scope: Scope) -> pl.LazyFrame | None:
    """Target stock rows not updated within the allowed lag of the target's capture, and a target snapshot
    captured long before the ERP's (a feed that stopped)."""
    inventory = scope.target_frame("inventory")
    source_captured = scope.ctx.captured_at(scope.source, "inventory")
    if inventory is None or source_captured is None:
        return None
    dated = scope.holds(scope.target, "inventory", "updated_at", compared="the age of each stock row")
    target_captured = scope.ctx.captured_at(scope.target, "inventory")
    lag = scope.hours("allowed_lag_hours")
    key = pl.format("{}/{}", "sku", "location") if target_locations(scope) else pl.col("sku")
    # A platform that does not say when each stock figure changed (Mirakl's offer listing) can only be
    # judged as a whole feed, below.
    if not dated:
        inventory = inventory.with_columns(pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("updated_at"))
    stale_rows = inventory.filter(pl.col("updated_at") < target_captured - lag)
    parts = [
        findings_from(
            scope,
            stale_rows,
            entity="inventory",
            key=key,
            field="updated_at",
            expected=pl.lit(target_captured - lag),
            actual=pl.col("updated_at"),
            severity=scope.option("severity"),
            message=pl.format(
                "stock last updated {} on {}, more than {} h before the snapshot",
                text_or_none(pl.col("updated_at"), inventory.collect_schema()["updated_at"]),
                pl.lit(scope.target),
                pl.lit(str(scope.option("allowed_lag_hours"))),
            ),
            repair="set_stock",
        )
    ]
    if target_captured < source_captured - lag:
        feed = pl.LazyFrame({"captured_at": [target_captured]}, schema={"captured_at": pl.Datetime("us", "UTC")})
        parts.append(
            findings_from(
                scope,
                feed,
                entity="inventory",
                key=pl.lit("*"),
                field="captured_at",
                expected=pl.lit(source_captured),
                actual=pl.col("captured_at"),
                severity="high",
                message=pl.lit(
                    f"{scope.target} stock was captured at {target_captured:%Y-%m-%d %H:%M} UTC, long "
                    f"before the ERP's ({source_captured:%Y-%m-%d %H:%M} UTC): the feed has stopped"
                ),
                repair=None,  # a stopped feed is restarted, not repaired one SKU at a time
            )
        )
    return pl.concat(parts)


# The ERP's own `available` is left out: allocations beyond what is on the shelf (back orders) make it
# negative in the ordinary course of business; the figures themselves never should be.
STOCK_FIGURES = ("on_hand", "allocated", "safety_stock", "on_order")


@rule
def negative_stock(scope: Scope) -> pl.LazyFrame | None:
    """The system of record's stock figures below zero, one finding per figure, as the ERP said them."""
    inventory = scope.source_frame("inventory")
    if inventory is None:
        return None
    held = [figure for figure in STOCK_FIGURES if scope.holds(scope.source, "inventory", figure)]  # notes the rest
    parts = [
        findings_from(
            scope,
            inventory.filter(pl.col(figure) < 0),
            entity="inventory",
            key=pl.format("{}/{}", "sku", "location"),
            field=figure,
            expected=pl.lit(">= 0"),
            actual=pl.col(figure),
            severity=scope.option("severity"),
            message=pl.format(
                "ERP holds {} {} of {} at {}: below zero (booked before its receipt, or a miscount); "
                "available-to-sell counts that location as 0",
                pl.col(figure),
                pl.lit(figure.replace("_", " ")),
                "sku",
                "location",
            ),
        )
        for figure in held
    ]
    return pl.concat(parts) if parts else None
