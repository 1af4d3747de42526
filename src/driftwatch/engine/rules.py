"""Rule functions: the checks that are not a plain field-by-field comparison.

Each rule is named by a check file (`rule = "..."`), takes a Scope and returns findings as a lazy frame
(FINDING_COLUMNS), or None when the data it needs was not snapshotted. Every time-based rule measures
against the snapshot's captured_at, never the wall clock, so auditing the same snapshots always gives the
same findings.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import polars as pl

from driftwatch.engine.context import Scope
from driftwatch.engine.findings import FINDING_COLUMNS, as_text
from driftwatch.engine.views import (
    target_locations,
    with_canonical_status,
)
from driftwatch.entities import MONEY, SOURCES

Rule = Callable[[Scope], pl.LazyFrame | None]
RULES: dict[str, Rule] = {}


def rule(fn: Rule) -> Rule:
    RULES[fn.__name__] = fn
    return fn


def findings_from(
    scope: Scope,
    rows: pl.LazyFrame,
    *,
    entity: str,
    key: pl.Expr,
    field: pl.Expr | str,
    expected: pl.Expr,
    actual: pl.Expr,
    severity: pl.Expr | str,
    message: pl.Expr,
    repair: str | None = None,
    impact: pl.Expr | None = None,
    currency: pl.Expr | None = None,
    target: str | None = None,
) -> pl.LazyFrame:
    """Shape rule output as findings; `expected` and `actual` may be of any type (they become text)."""
    shaped = rows.with_columns(expected.alias("_expected"), actual.alias("_actual"))
    schema = shaped.collect_schema()

    def lit(value: pl.Expr | str) -> pl.Expr:
        return pl.lit(value) if isinstance(value, str) else value

    return shaped.select(
        pl.lit(scope.check.id).alias("check_id"),
        lit(severity).alias("severity"),
        pl.lit(scope.source, pl.String).alias("source"),
        pl.lit(target or scope.target, pl.String).alias("target"),
        pl.lit(entity).alias("entity"),
        key.cast(pl.String).alias("key"),
        lit(field).alias("field"),
        as_text(pl.col("_expected"), schema["_expected"]).alias("expected"),
        as_text(pl.col("_actual"), schema["_actual"]).alias("actual"),
        (impact if impact is not None else pl.lit(None)).cast(MONEY).alias("impact"),
        (currency if currency is not None else pl.lit(None)).cast(pl.String).alias("currency"),
        message.alias("message"),
        pl.lit(repair, pl.String).alias("repair_action"),
    ).select(FINDING_COLUMNS)


def _text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    return as_text(expr, dtype).fill_null("none")


def _due_before(scope: Scope, entity: str, lag_option: str = "allowed_lag_hours") -> datetime | None:
    """Anything that happened before this instant should have reached the target's snapshot."""
    captured = scope.ctx.captured_at(scope.target, entity)
    return None if captured is None else captured - scope.hours(lag_option)


# -- stock -------------------------------------------------------------------------------------------


@rule
def stock_staleness(scope: Scope) -> pl.LazyFrame | None:
    """Target stock rows not updated within the allowed lag of the target's capture, and a target snapshot
    captured long before the ERP's (a feed that stopped)."""
    inventory = scope.target_frame("inventory")
    source_captured = scope.ctx.captured_at(scope.source, "inventory")
    if inventory is None or source_captured is None:
        return None
    target_captured = scope.ctx.captured_at(scope.target, "inventory")
    lag = scope.hours("allowed_lag_hours")
    key = pl.format("{}/{}", "sku", "location") if target_locations(scope) else pl.col("sku")
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
                _text(pl.col("updated_at"), inventory.collect_schema()["updated_at"]),
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
                repair="set_stock",
            )
        )
    return pl.concat(parts)


# -- orders ------------------------------------------------------------------------------------------


@rule
def unmapped_codes(scope: Scope) -> pl.LazyFrame | None:
    """Raw order statuses that no mapping names: those orders drop out of every status comparison."""
    parts = []
    for source in SOURCES:
        orders = scope.ctx.frame(source, "orders")
        if orders is None or not scope.ctx.has(source, "orders", "status"):
            continue
        unmapped = (
            with_canonical_status(orders, scope.cfg.status_map(source))
            .filter(pl.col("status").is_not_null() & pl.col("status_canonical").is_null())
            .group_by("status")
            .agg(pl.len().alias("orders"), pl.col("order_id").min().alias("example"))
        )
        scoped = Scope(scope.ctx, scope.check, source, source, None, scope.options)
        parts.append(
            findings_from(
                scoped,
                unmapped,
                entity="orders",
                key=pl.col("status"),
                field="status",
                expected=pl.lit("a mapped status"),
                actual=pl.col("status"),
                severity=scope.option("severity"),
                message=pl.format(
                    "{} order(s) of {} (e.g. {}) carry raw status '{}' that no mapping names; add it to [statuses.{}]",
                    "orders",
                    pl.lit(source),
                    "example",
                    "status",
                    pl.lit(source),
                ),
                repair="add_status_mapping",
            )
        )
    return pl.concat(parts) if parts else None
