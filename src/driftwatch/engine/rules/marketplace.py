"""Marketplace order rules: acceptance before the deadline, and tracking posted."""

from __future__ import annotations

import polars as pl

from driftwatch.engine.context import Scope
from driftwatch.engine.rules._base import TS, due_before, findings_from, rule, text_or_none
from driftwatch.engine.views import carrier_codes, carrier_map, order_ref_of_lines, present, source_orders
from driftwatch.entities import MONEY


@rule
def acceptance_sla(scope: Scope) -> pl.LazyFrame | None:
    """Marketplace orders still awaiting acceptance as their deadline nears: critical when the ERP has no
    order for them (nobody will accept it), high when the ERP has it but acceptance was never sent."""
    if not scope.marketplace:
        return None
    orders = scope.target_frame("orders", needs=("external_id", "status", "placed_at"))
    truth = scope.source_frame("orders", needs=("external_id",)) if orders is not None else None
    if orders is None or truth is None:
        return None
    orders = orders.with_columns(
        pl.lit(None, dtype).alias(c)
        for c, dtype in (("total", MONEY), ("currency", pl.String))
        if c not in present(orders, [c])
    )
    captured = scope.ctx.captured_at(scope.target, "orders")
    deadline = pl.col("placed_at") + scope.hours("acceptance_deadline_hours")
    waiting = orders.filter(
        pl.col("status").is_in(scope.option("awaiting_states"))
        & (deadline - scope.hours("warn_before_hours") <= captured)
    ).join(
        truth.filter(pl.col("external_id").is_not_null()).select("external_id", pl.col("order_id").alias("erp_order")),
        on="external_id",
        how="left",
    )
    in_erp = pl.col("erp_order").is_not_null()
    return findings_from(
        scope,
        waiting.with_columns(deadline.alias("deadline")),
        entity="orders",
        key=pl.coalesce("erp_order", "external_id"),
        field="acceptance",
        expected=pl.col("deadline"),
        actual=pl.col("status"),
        severity=pl.when(in_erp).then(pl.lit("high")).otherwise(pl.lit("critical")),
        message=pl.when(in_erp)
        .then(
            pl.format(
                "{} order {} (ERP {}) still awaits acceptance; the marketplace cancels it at {}",
                pl.lit(scope.target),
                "external_id",
                "erp_order",
                text_or_none(pl.col("deadline"), TS),
            )
        )
        .otherwise(
            pl.format(
                "{} order {} awaits acceptance, is not in the ERP, and is auto-cancelled at {}",
                pl.lit(scope.target),
                "external_id",
                text_or_none(pl.col("deadline"), TS),
            )
        ),
        repair=pl.when(in_erp).then(pl.lit("accept_order")).otherwise(pl.lit("import_order_to_erp")),
        impact=pl.col("total"),
        currency=pl.col("currency"),
    )


@rule
def tracking_sync(scope: Scope) -> pl.LazyFrame | None:
    """Every ERP shipment of a marketplace order (older than the allowed lag) is on the marketplace with
    the same tracking number and carrier code (after the target's carrier_map). A shipment sent with a
    carrier code the target never uses is left to unmapped_codes, which reports the code once."""
    copy = scope.target_frame("shipments", needs=("order_id", "tracking_number"))
    copy_orders = scope.target_frame("orders", needs=("external_id",) if scope.marketplace else ())
    shipments = scope.source_frame("shipments", needs=("order_id", "tracking_number", "shipped_at"))
    if shipments is None or copy is None or copy_orders is None:
        return None
    orders = source_orders(scope)
    if orders is None:
        return None
    carriers = scope.holds(scope.source, "shipments", "carrier") and scope.holds(scope.target, "shipments", "carrier")
    if not carriers:  # tracking numbers are still checked; which carrier is not
        shipments = shipments.with_columns(pl.lit(None, pl.String).alias("carrier"))
        copy = copy.with_columns(pl.lit(None, pl.String).alias("carrier"))
    due = due_before(scope, "shipments")
    erp = (
        shipments.filter(pl.col("tracking_number").is_not_null() & (pl.col("shipped_at") <= due))
        .join(orders.select("order_id", "order_ref", "key"), on="order_id")
        .with_columns(pl.col("carrier").replace(carrier_map(scope)).alias("carrier"))
    )
    codes = carrier_codes(scope)
    if codes is not None:
        unknown = codes.filter(~pl.col("known"))["sent_as"]
        erp = erp.filter(~pl.col("carrier").is_in(unknown.implode()) | pl.col("carrier").is_null())
    posted = order_ref_of_lines(scope, copy, copy_orders).select(
        "order_ref", "tracking_number", pl.col("carrier").alias("posted_carrier"), pl.lit(True).alias("_posted")
    )
    matched = erp.join(posted, on=["order_ref", "tracking_number"], how="left")
    any_posted = posted.group_by("order_ref").agg(pl.col("tracking_number").drop_nulls().first().alias("posted"))
    missing = matched.filter(pl.col("_posted").is_null()).join(any_posted, on="order_ref", how="left")
    wrong_carrier = matched.filter(pl.col("_posted") & (pl.col("posted_carrier") != pl.col("carrier")).fill_null(False))
    return pl.concat(
        [
            findings_from(
                scope,
                missing,
                entity="shipments",
                key=pl.col("key"),
                field="tracking_number",
                expected=pl.col("tracking_number"),
                actual=pl.col("posted"),
                severity=scope.option("severity"),
                message=pl.format(
                    "the ERP shipped order {} with {} {} but {} shows {}",
                    "key",
                    "carrier",
                    "tracking_number",
                    pl.lit(scope.target),
                    pl.col("posted").fill_null("no tracking"),
                ),
                repair="post_tracking",
            ),
            findings_from(
                scope,
                wrong_carrier,
                entity="shipments",
                key=pl.col("key"),
                field="carrier",
                expected=pl.col("carrier"),
                actual=pl.col("posted_carrier"),
                severity=scope.option("severity"),
                message=pl.format(
                    "order {} tracking {} is with carrier {} on {} but {} in the ERP",
                    "key",
                    "tracking_number",
                    "posted_carrier",
                    pl.lit(scope.target),
                    "carrier",
                ),
                repair="post_tracking",
            ),
        ]
    )
