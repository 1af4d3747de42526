"""Returns processed in the ERP reflected downstream."""

from __future__ import annotations

import polars as pl

from driftwatch.engine.context import Scope
from driftwatch.engine.rules._base import due_before, findings_from, rule
from driftwatch.engine.views import order_ref_of_lines, source_orders, source_returns, target_orders
from driftwatch.entities import MONEY


@rule
def returns_sync(scope: Scope) -> pl.LazyFrame | None:
    """Processed ERP returns (older than the allowed lag) show as returned quantities on the target's
    order lines, so no review request goes out for an item that came back. Processed means a canonical
    return state among `processed_states` (the goods are back, or the money went back)."""
    lines = scope.target_frame("order_lines", needs=("sku", "qty_returned"))
    returns = source_returns(scope, needs=("order_id", "sku", "qty", "status", "processed_at"))
    if returns is None or lines is None:
        return None
    orders, copy_orders = source_orders(scope), target_orders(scope)
    if orders is None or copy_orders is None:
        return None
    due = due_before(scope, "order_lines")
    # The refund is in the order's currency (an order without one leaves the amount without one).
    currency = pl.col("currency") if "currency" in orders.collect_schema().names() else pl.lit(None, pl.String)
    processed = (
        returns.filter(
            pl.col("status_canonical").is_in(scope.option("processed_states")) & (pl.col("processed_at") <= due)
        )
        .join(orders.select("order_id", "order_ref", "key", currency.alias("currency")), on="order_id")
        .join(copy_orders.select("order_ref"), on="order_ref", how="semi")  # a missing order is not this check's
        .group_by("order_ref", "key", "sku")
        .agg(
            pl.col("qty").sum().alias("returned"),
            pl.col("return_id").min(),
            _amount(returns).sum(),
            pl.col("currency").first(),
        )
    )
    reflected = (
        order_ref_of_lines(scope, lines, scope.target_frame("orders"))
        .group_by("order_ref", "sku")
        .agg(pl.col("qty_returned").fill_null(0).sum().alias("shown"))
    )
    behind = processed.join(reflected, on=["order_ref", "sku"], how="left").filter(
        pl.col("shown").fill_null(0) < pl.col("returned")
    )
    return findings_from(
        scope,
        behind,
        entity="returns",
        key=pl.col("key"),
        field=pl.format("{}.qty_returned", "sku"),
        expected=pl.col("returned"),
        actual=pl.col("shown").fill_null(0),
        severity=scope.option("severity"),
        message=pl.format(
            "return {} of {} x {} on order {} is processed in the ERP but {} shows {} returned",
            "return_id",
            "returned",
            "sku",
            "key",
            pl.lit(scope.target),
            pl.col("shown").fill_null(0),
        ),
        repair="upsert_order",
        impact=pl.col("amount"),
        currency=pl.col("currency"),
    )


def _amount(returns: pl.LazyFrame) -> pl.Expr:
    """The money a return gave back, where the returns hold it (the impact of a finding)."""
    return pl.col("amount") if "amount" in returns.collect_schema().names() else pl.lit(None, MONEY).alias("amount")
