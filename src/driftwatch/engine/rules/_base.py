"""What every rule shares: the registry, and shaping rule output as findings.

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
from driftwatch.entities import MONEY

Rule = Callable[[Scope], pl.LazyFrame | None]
TS = pl.Datetime("us", "UTC")
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
    repair: pl.Expr | str | None = None,
    impact: pl.Expr | None = None,
    currency: pl.Expr | None = None,
    target: str | None = None,
) -> pl.LazyFrame:
    """Shape rule output as findings; `expected` and `actual` may be of any type (they become text).

    The rows are collected, rechunked and formatted eagerly: they are few, and polars 2.1 intermittently
    panics in its string kernels on the many-chunk columns a filtered join leaves behind."""
    shaped = rows.with_columns(expected.alias("_expected"), actual.alias("_actual")).collect().rechunk()
    schema = shaped.schema

    def lit(value: pl.Expr | str) -> pl.Expr:
        return pl.lit(value) if isinstance(value, str) else value

    return (
        shaped.select(
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
            (repair if isinstance(repair, pl.Expr) else pl.lit(repair, pl.String)).alias("repair_action"),
        )
        .select(FINDING_COLUMNS)
        .lazy()
    )


def text_or_none(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    return as_text(expr, dtype).fill_null("none")


def due_before(scope: Scope, entity: str, lag_option: str = "allowed_lag_hours") -> datetime | None:
    """Anything that happened before this instant should have reached the target's snapshot."""
    captured = scope.ctx.captured_at(scope.target, entity)
    return None if captured is None else captured - scope.hours(lag_option)
