"""Codes no mapping names: the records behind them drop out of every comparison."""

from __future__ import annotations

import polars as pl

from driftwatch.engine.context import Scope
from driftwatch.engine.rules._base import findings_from, rule
from driftwatch.engine.views import (
    raw_statuses,
    with_canonical_status,
)


@rule
def unmapped_codes(scope: Scope) -> pl.LazyFrame | None:
    """Raw order statuses that no mapping names: those orders drop out of every status comparison."""
    parts = []
    for source in scope.cfg.known_sources():
        orders = scope.ctx.frame(source, "orders")
        if orders is None or not scope.ctx.has(source, "orders", "status"):
            continue
        unmapped = (
            with_canonical_status(orders, scope.cfg.status_map(source), raw_statuses(scope, source))
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
