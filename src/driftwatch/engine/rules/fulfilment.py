"""Lifecycle events of a platform that keeps events: fulfilment, cancellation and refund sent on time."""

from __future__ import annotations

import polars as pl

from driftwatch.engine.context import Scope
from driftwatch.engine.rules._base import TS, due_before, findings_from, rule, text_or_none
from driftwatch.engine.views import present, source_orders, source_returns
from driftwatch.entities import MONEY


@rule
def fulfilment_events(scope: Scope) -> pl.LazyFrame | None:
    """Fulfilment, cancellation and refund events of a platform that keeps events: each must exist once the
    ERP fact is older than the allowed lag; a fulfilment event may not precede the ERP's dispatch (critical:
    a dispatch email for a parcel not sent) nor follow it by more than the lag."""
    events = scope.target_frame("events", needs=("order_id", "metric", "occurred_at"))
    shipments = scope.source_frame("shipments", needs=("order_id", "shipped_at"))
    orders = source_orders(scope) if events is not None and shipments is not None else None
    if events is None or orders is None or shipments is None:
        return None
    due = due_before(scope, "events")
    lag = scope.hours("allowed_lag_hours")
    # An event after the ERP's capture may follow a dispatch the ERP's snapshot could not show yet.
    erp_captured = scope.ctx.captured_at(scope.source, "shipments")
    refs = orders.select(
        "order_id", "order_ref", "key", *present(orders, ["status_canonical", "updated_at", "total", "currency"])
    )
    refs = refs.with_columns(
        pl.lit(None, pl.String).alias(c)
        for c in ("currency", "status_canonical")
        if c not in refs.collect_schema().names()
    )
    # Read by three joins below: the events are grouped once, not once per join.
    first_event = scope.ctx.materialize(
        ("first_events", scope.target),
        lambda: (
            events.filter(pl.col("order_id").is_not_null())
            .group_by("order_id", "metric")
            .agg(pl.col("occurred_at").min())
        ),
    )

    def event(metric: str) -> pl.LazyFrame:
        return first_event.filter(pl.col("metric") == metric).select(
            pl.col("order_id").alias("order_ref"), pl.col("occurred_at").alias(metric)
        )

    shipped = shipments.group_by("order_id").agg(pl.col("shipped_at").min())
    ship, sent = pl.col("shipped_at"), pl.col("order_fulfilled")
    unsent = ship.is_not_null() & sent.is_null() & (ship <= due)
    early = sent.is_not_null() & (ship.is_null() | (sent < ship)) & (sent <= erp_captured)
    late = sent > ship + lag
    # One join over every order; the three findings below read the few rows it keeps.
    fulfilment = (
        refs.join(shipped, on="order_id", how="left")
        .join(event("order_fulfilled"), on="order_ref", how="left")
        .filter(unsent | early | late.fill_null(False))
        .collect()
        .lazy()
    )
    parts = [
        _event_findings(
            scope,
            fulfilment.filter(unsent),
            "order_fulfilled",
            ship,
            sent,
            "high",
            "the ERP dispatched order {} at {} but {} has no fulfilment event",
            "send_event",
        ),
        _event_findings(
            scope,
            fulfilment.filter(early),
            "order_fulfilled",
            ship,
            sent,
            "critical",
            "{} got a fulfilment event for order {} before the ERP dispatched it ({})",
            None,
            order_first=False,
        ),
        _event_findings(
            scope,
            fulfilment.filter(late),
            "order_fulfilled",
            ship,
            sent,
            "medium",
            "order {} dispatched at {}: the fulfilment event on {} came more than the allowed lag later",
            None,
        ),
    ]
    if scope.holds(scope.source, "orders", "status", compared="cancellation events") and scope.holds(
        scope.source, "orders", "updated_at", compared="cancellation events"
    ):
        parts.append(_unsent_cancellations(scope, refs, event("order_cancelled"), due))
    returns = source_returns(scope)
    if returns is not None and all(
        scope.holds(scope.source, "returns", c, compared="refund events")
        for c in ("order_id", "status", "processed_at")
    ):
        parts.append(_unsent_refunds(scope, refs, returns, event("order_refunded"), due))
    return pl.concat(parts)


def _unsent_cancellations(scope: Scope, refs: pl.LazyFrame, sent: pl.LazyFrame, due) -> pl.LazyFrame:
    cancelled = refs.filter((pl.col("status_canonical") == "cancelled") & (pl.col("updated_at") <= due)).join(
        sent, on="order_ref", how="anti"
    )
    return _event_findings(
        scope,
        cancelled.with_columns(pl.lit(None, TS).alias("order_cancelled")),
        "order_cancelled",
        pl.col("updated_at"),
        pl.col("order_cancelled"),
        "high",
        "the ERP cancelled order {} at {} but {} has no cancellation event",
        "send_event",
    )


def _unsent_refunds(scope: Scope, refs: pl.LazyFrame, returns: pl.LazyFrame, sent: pl.LazyFrame, due) -> pl.LazyFrame:
    amount = pl.col("amount").sum() if "amount" in returns.collect_schema().names() else pl.lit(None, MONEY)
    refunded = (
        returns.filter((pl.col("status_canonical") == "refunded") & (pl.col("processed_at") <= due))
        .group_by("order_id")
        .agg(pl.col("processed_at").min(), amount.alias("refunded"))
        .join(refs, on="order_id")
        .join(sent, on="order_ref", how="anti")
    )
    return _event_findings(
        scope,
        refunded.with_columns(pl.lit(None, TS).alias("order_refunded")),
        "order_refunded",
        pl.col("processed_at"),
        pl.col("order_refunded"),
        "high",
        "the ERP refunded order {} at {} but {} has no refund event",
        "send_event",
        impact=pl.col("refunded"),
    )


def _event_findings(
    scope: Scope,
    rows: pl.LazyFrame,
    metric: str,
    erp_time: pl.Expr,
    event_time: pl.Expr,
    severity: str,
    message: str,
    repair: str | None,
    *,
    order_first: bool = True,
    impact: pl.Expr | None = None,
) -> pl.LazyFrame:
    erp_text, target = text_or_none(erp_time, TS), pl.lit(scope.target)
    args = (pl.col("key"), erp_text, target) if order_first else (target, pl.col("key"), erp_text)
    return findings_from(
        scope,
        rows,
        entity="events",
        key=pl.col("key"),
        field=metric,
        expected=erp_time,
        actual=event_time,
        severity=severity,
        message=pl.format(message, *args),
        repair=repair,
        impact=impact,
        currency=pl.col("currency"),
    )
