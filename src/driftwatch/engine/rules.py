"""Rule functions: the checks that are not a plain field-by-field comparison.

Each rule is named by a check file (`rule = "..."`), takes a Scope and returns findings as a lazy frame
(FINDING_COLUMNS), or None when the data it needs was not snapshotted. Every time-based rule measures
against the snapshot's captured_at, never the wall clock, so auditing the same snapshots always gives the
same findings.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import polars as pl

from driftwatch.engine.context import Scope
from driftwatch.engine.findings import FINDING_COLUMNS, as_text
from driftwatch.engine.views import (
    order_ref_of_lines,
    raw_statuses,
    source_orders,
    target_locations,
    target_orders,
    with_canonical_status,
    zero_if_null,
)
from driftwatch.entities import MONEY, SOURCES

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
    # A platform that does not say when each stock figure changed (Mirakl's offer listing) can only be
    # judged as a whole feed, below.
    if "updated_at" not in inventory.collect_schema().names():
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


@rule
def acceptance_sla(scope: Scope) -> pl.LazyFrame | None:
    """Marketplace orders still awaiting acceptance as their deadline nears: critical when the ERP has no
    order for them (nobody will accept it), high when the ERP has it but acceptance was never sent."""
    orders = scope.target_frame("orders")
    truth = scope.source_frame("orders")
    if not scope.marketplace or orders is None or truth is None:
        return None
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
                _text(pl.col("deadline"), TS),
            )
        )
        .otherwise(
            pl.format(
                "{} order {} awaits acceptance, is not in the ERP, and is auto-cancelled at {}",
                pl.lit(scope.target),
                "external_id",
                _text(pl.col("deadline"), TS),
            )
        ),
        repair=pl.when(in_erp).then(pl.lit("accept_order")).otherwise(pl.lit("import_order_to_erp")),
        impact=pl.col("total"),
        currency=pl.col("currency"),
    )


@rule
def fulfilment_events(scope: Scope) -> pl.LazyFrame | None:
    """Fulfilment, cancellation and refund events of a platform that keeps events: each must exist once the
    ERP fact is older than the allowed lag; a fulfilment event may not precede the ERP's dispatch (critical:
    a dispatch email for a parcel not sent) nor follow it by more than the lag."""
    events, orders = scope.target_frame("events"), source_orders(scope)
    shipments = scope.source_frame("shipments")
    if events is None or orders is None or shipments is None:
        return None
    due = _due_before(scope, "events")
    lag = scope.hours("allowed_lag_hours")
    refs = orders.select("order_id", "order_ref", "key", "status_canonical", "updated_at", "total", "currency")
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
    early = sent.is_not_null() & (ship.is_null() | (sent < ship))
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
    cancelled = refs.filter((pl.col("status_canonical") == "cancelled") & (pl.col("updated_at") <= due)).join(
        event("order_cancelled"), on="order_ref", how="anti"
    )
    parts.append(
        _event_findings(
            scope,
            cancelled.with_columns(pl.lit(None, TS).alias("order_cancelled")),
            "order_cancelled",
            pl.col("updated_at"),
            pl.col("order_cancelled"),
            "high",
            "the ERP cancelled order {} at {} but {} has no cancellation event",
            "send_event",
        )
    )
    returns = scope.source_frame("returns")
    if returns is not None:
        refunded = (
            returns.filter(
                pl.col("status").str.to_lowercase().is_in(scope.option("refunded_statuses"))
                & (pl.col("processed_at") <= due)
            )
            .group_by("order_id")
            .agg(pl.col("processed_at").min(), pl.col("amount").sum().alias("refunded"))
            .join(refs, on="order_id")
            .join(event("order_refunded"), on="order_ref", how="anti")
        )
        parts.append(
            _event_findings(
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
        )
    return pl.concat(parts)


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
    erp_text, target = _text(erp_time, TS), pl.lit(scope.target)
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


@rule
def tracking_sync(scope: Scope) -> pl.LazyFrame | None:
    """Every ERP shipment of a marketplace order (older than the allowed lag) is on the marketplace with
    the same tracking number and carrier code (after the configured carrier mapping)."""
    shipments, orders = scope.source_frame("shipments"), source_orders(scope)
    copy, copy_orders = scope.target_frame("shipments"), scope.target_frame("orders")
    if shipments is None or orders is None or copy is None or copy_orders is None:
        return None
    due = _due_before(scope, "shipments")
    erp = (
        shipments.filter(pl.col("tracking_number").is_not_null() & (pl.col("shipped_at") <= due))
        .join(orders.select("order_id", "order_ref", "key"), on="order_id")
        .with_columns(pl.col("carrier").replace(scope.option("carrier_map")).alias("carrier"))
    )
    posted = order_ref_of_lines(scope, copy, copy_orders).select(
        "order_ref", "tracking_number", pl.col("carrier").alias("posted_carrier")
    )
    matched = erp.join(posted, on=["order_ref", "tracking_number"], how="left")
    any_posted = posted.group_by("order_ref").agg(pl.col("tracking_number").drop_nulls().first().alias("posted"))
    missing = matched.filter(pl.col("posted_carrier").is_null()).join(any_posted, on="order_ref", how="left")
    wrong_carrier = matched.filter(
        pl.col("posted_carrier").is_not_null() & (pl.col("posted_carrier") != pl.col("carrier"))
    )
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


@rule
def returns_sync(scope: Scope) -> pl.LazyFrame | None:
    """Processed ERP returns (older than the allowed lag) show as returned quantities on the target's
    order lines, so no review request goes out for an item that came back."""
    returns, orders = scope.source_frame("returns"), source_orders(scope)
    lines, copy_orders = scope.target_frame("order_lines"), target_orders(scope)
    if returns is None or orders is None or lines is None or copy_orders is None:
        return None
    if not scope.ctx.has(scope.target, "order_lines", "qty_returned"):
        return None
    due = _due_before(scope, "order_lines")
    processed = (
        returns.filter(
            pl.col("status").str.to_lowercase().is_in(scope.option("processed_statuses"))
            & (pl.col("processed_at") <= due)
        )
        .join(orders.select("order_id", "order_ref", "key"), on="order_id")
        .join(copy_orders.select("order_ref"), on="order_ref", how="semi")  # a missing order is not this check's
        .group_by("order_ref", "key", "sku")
        .agg(pl.col("qty").sum().alias("returned"), pl.col("return_id").min(), pl.col("amount").sum())
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
    )


# -- payouts -----------------------------------------------------------------------------------------

_ORDER_LINE_TYPES = ("order_amount", "shipping", "commission", "refund", "refund_commission")


@rule
def payout_matching(scope: Scope) -> pl.LazyFrame | None:
    """Every marketplace payout line ties to the ERP: its order exists, order and shipping amounts equal the
    ERP order's, commission is at the agreed rate, a refund has a credit memo, and every fee, commission
    and adjustment has a journal entry."""
    lines, orders = scope.target_frame("payout_lines"), scope.source_frame("orders")
    order_lines = scope.source_frame("order_lines")
    if lines is None or orders is None or order_lines is None:
        return None
    # Only the ERP orders the payouts name: the marketplace's share of the order book.
    paid = orders.join(lines.select("external_id").unique(), on="external_id", how="semi").select(
        "external_id", pl.col("order_id").alias("erp_order"), "total"
    )
    merchandise = (
        order_lines.join(paid.select(pl.col("erp_order").alias("order_id")), on="order_id", how="semi")
        .group_by("order_id")
        .agg(
            ((pl.col("qty_ordered") - zero_if_null("qty_cancelled")) * pl.col("unit_price")).sum().alias("merchandise")
        )
    )
    erp = paid.join(merchandise, left_on="erp_order", right_on="order_id", how="left")
    tied = lines.join(erp, on="external_id", how="left").collect().lazy()  # read by every part below
    parts = [_orphan_lines(scope, tied), _amounts(scope, tied), _commission(scope, tied)]
    returns = scope.source_frame("returns")
    if returns is not None:
        parts.append(_refunds_without_credit_memo(scope, tied, returns))
    journal = scope.source_frame("journal_entries")
    if journal is not None:
        parts.append(_unbooked(scope, tied, journal))
    return pl.concat(parts)


def _payout_findings(
    scope: Scope,
    rows: pl.LazyFrame,
    field: str,
    expected: pl.Expr,
    message: pl.Expr,
    repair: str,
    impact: pl.Expr,
) -> pl.LazyFrame:
    return findings_from(
        scope,
        rows,
        entity="payout_lines",
        key=pl.col("line_id"),
        field=field,
        expected=expected,
        actual=pl.col("amount") if field != "external_id" else pl.col("external_id"),
        severity=scope.option("severity"),
        message=message,
        repair=repair,
        impact=impact,
        currency=pl.col("currency"),
    )


def _orphan_lines(scope: Scope, tied: pl.LazyFrame) -> pl.LazyFrame:
    orphans = tied.filter(
        pl.col("line_type").is_in(_ORDER_LINE_TYPES)
        & pl.col("external_id").is_not_null()
        & pl.col("erp_order").is_null()
    )
    return _payout_findings(
        scope,
        orphans,
        "external_id",
        pl.lit("an ERP order"),
        pl.format(
            "payout {} line {} ({} {}) is for order {}, which the ERP does not have",
            "payout_id",
            "line_id",
            "line_type",
            _text(pl.col("amount"), MONEY),
            "external_id",
        ),
        "investigate_payout_line",
        pl.col("amount").abs(),
    )


def _amounts(scope: Scope, tied: pl.LazyFrame) -> pl.LazyFrame:
    """Order and shipping lines against the ERP order (per order, in case a line is split)."""
    expected = (
        pl.when(pl.col("line_type") == "order_amount")
        .then(pl.col("merchandise"))
        .otherwise(pl.col("total") - pl.col("merchandise"))
    )
    per_order = (
        tied.filter(pl.col("line_type").is_in(["order_amount", "shipping"]) & pl.col("erp_order").is_not_null())
        .group_by("external_id", "line_type")
        .agg(
            pl.col("line_id").min(),
            pl.col("payout_id").first(),
            pl.col("currency").first(),
            pl.col("amount").sum(),
            pl.col("merchandise").first(),
            pl.col("total").first(),
        )
        .with_columns(expected.alias("expected"))
    )
    limit = _money(scope.option("money_tolerance"))
    wrong = per_order.filter((pl.col("amount") - pl.col("expected")).abs() > limit)
    return _payout_findings(
        scope,
        wrong,
        "amount",
        pl.col("expected"),
        pl.format(
            "payout {} pays {} {} for order {} but the ERP order says {}",
            "payout_id",
            _text(pl.col("amount"), MONEY),
            "line_type",
            "external_id",
            _text(pl.col("expected"), MONEY),
        ),
        "investigate_payout_line",
        (pl.col("amount") - pl.col("expected")).abs(),
    )


def _money(value: object) -> pl.Expr:
    return pl.lit(Decimal(str(value))).cast(MONEY)


def _commission(scope: Scope, tied: pl.LazyFrame) -> pl.LazyFrame:
    """Commission at the agreed rate on the ERP's order amount; refunded commission on the refund."""
    rate = Decimal(str(scope.option("commission_rate")))
    refunds = (
        tied.filter(pl.col("line_type") == "refund")
        .group_by("external_id")
        .agg(pl.col("amount").sum().alias("refunded"))
    )
    charged = (
        tied.filter(pl.col("line_type").is_in(["commission", "refund_commission"]) & pl.col("erp_order").is_not_null())
        .group_by("external_id", "line_type")
        .agg(
            pl.col("line_id").min(),
            pl.col("payout_id").first(),
            pl.col("currency").first(),
            pl.col("amount").sum(),
            pl.col("merchandise").first(),
        )
        .join(refunds, on="external_id", how="left")
    )
    base = pl.when(pl.col("line_type") == "commission").then(-pl.col("merchandise")).otherwise(-pl.col("refunded"))
    agreed = (base * pl.lit(rate)).round(2).cast(MONEY)  # money stays exact: no float on the way
    off = charged.with_columns(agreed.alias("agreed")).filter(
        (pl.col("amount") - pl.col("agreed")).abs() > _money(scope.option("money_tolerance"))
    )
    return _payout_findings(
        scope,
        off,
        "amount",
        pl.col("agreed"),
        pl.format(
            "payout {} charges {} {} on order {}; the agreed {}% is {}",
            "payout_id",
            _text(pl.col("amount"), MONEY),
            "line_type",
            "external_id",
            pl.lit(f"{rate * 100:f}".rstrip("0").rstrip(".")),
            _text(pl.col("agreed"), MONEY),
        ),
        "dispute_commission",
        (pl.col("amount") - pl.col("agreed")).abs(),
    )


def _refunds_without_credit_memo(scope: Scope, tied: pl.LazyFrame, returns: pl.LazyFrame) -> pl.LazyFrame:
    credited = (
        returns.filter(pl.col("status").str.to_lowercase().is_in(scope.option("refunded_statuses")))
        .select(pl.col("order_id").alias("erp_order"))
        .unique()
    )
    uncredited = tied.filter((pl.col("line_type") == "refund") & pl.col("erp_order").is_not_null()).join(
        credited, on="erp_order", how="anti"
    )
    return _payout_findings(
        scope,
        uncredited,
        "credit_memo",
        pl.lit("a refunded ERP return"),
        pl.format(
            "payout {} refunds {} on order {} ({}) but the ERP has no credit memo for it",
            "payout_id",
            _text(pl.col("amount"), MONEY),
            "external_id",
            "erp_order",
        ),
        "create_credit_memo",
        pl.col("amount").abs(),
    )


def _unbooked(scope: Scope, tied: pl.LazyFrame, journal: pl.LazyFrame) -> pl.LazyFrame:
    """Fees, commissions and adjustments without a journal entry: one entry per line, matched on the payout,
    the order and the sign of the amount (the amount itself is the commission rule's business)."""
    accounts: dict[str, str] = scope.option("accounts")
    booked_types = list(scope.option("journal_line_types"))
    sign = pl.col("amount").sign()
    keys = ["payout_id", "_order", "_sign"] + (["account"] if accounts else [])
    wanted = tied.filter(pl.col("line_type").is_in(booked_types)).with_columns(
        pl.col("erp_order").fill_null("").alias("_order"),
        sign.alias("_sign"),
        pl.col("line_type").replace_strict(accounts, default=None).alias("account") if accounts else pl.lit(None),
    )
    entries = journal.filter(pl.col("payout_id").is_not_null()).with_columns(
        pl.col("order_id").fill_null("").alias("_order"), sign.alias("_sign")
    )

    def numbered(frame: pl.LazyFrame, by: str) -> pl.LazyFrame:
        return frame.with_columns(pl.col(by).cum_count().over(keys).alias("_n"))

    missing = numbered(wanted.sort("line_id"), "line_id").join(
        numbered(entries.sort("entry_id"), "entry_id").select(*keys, "_n"), on=[*keys, "_n"], how="anti"
    )
    return _payout_findings(
        scope,
        missing,
        "journal_entry",
        pl.lit("a journal entry"),
        pl.format(
            "payout {} {} line {} of {} has no journal entry in the ERP",
            "payout_id",
            "line_type",
            "line_id",
            _text(pl.col("amount"), MONEY),
        ),
        "create_journal_entry",
        pl.col("amount").abs(),
    )


# -- snapshots ---------------------------------------------------------------------------------------


@rule
def snapshot_health(scope: Scope) -> pl.LazyFrame | None:
    """Snapshots that would make every other check wrong: far smaller than the previous one, columns lost,
    an entity missing from a source's latest drop, or many rows quarantined. Any finding here marks the
    run untrusted, and repair refuses to act on it."""
    rows = []
    latest = scope.ctx.store.latest_snapshots().to_dicts()
    newest = {}
    for snap in latest:
        newest[snap["source"]] = max(newest.get(snap["source"], snap["captured_at"]), snap["captured_at"])
    for snap in latest:
        rows.extend(_health_problems(scope, snap, newest[snap["source"]]))
    if not rows:
        return None
    frame = pl.LazyFrame(
        rows,
        schema={
            "source": pl.String,
            "entity": pl.String,
            "field": pl.String,
            "expected": pl.String,
            "actual": pl.String,
            "message": pl.String,
        },
    )
    return frame.select(
        pl.lit(scope.check.id).alias("check_id"),
        pl.lit(scope.option("severity")).alias("severity"),
        "source",
        pl.col("source").alias("target"),
        "entity",
        pl.col("entity").alias("key"),
        "field",
        "expected",
        "actual",
        pl.lit(None, MONEY).alias("impact"),
        pl.lit(None, pl.String).alias("currency"),
        "message",
        pl.lit("re-export the snapshot").alias("repair_action"),
    )


def _health_problems(scope: Scope, snap: dict, source_newest: datetime) -> list[dict]:
    source, entity, found = snap["source"], snap["entity"], []
    ctx = scope.ctx

    def problem(field: str, expected: str, actual: str, message: str) -> None:
        found.append(
            {
                "source": source,
                "entity": entity,
                "field": field,
                "expected": expected,
                "actual": actual,
                "message": f"{source} {entity}: {message}",
            }
        )

    info, previous = ctx.snapshot(source, entity), ctx.store.previous_snapshot(source, entity)
    ratio = float(scope.option("min_row_ratio"))
    if previous is not None and info.row_count < ratio * previous.row_count:
        problem(
            "row_count",
            f">= {ratio * previous.row_count:.0f}",
            str(info.row_count),
            f"{info.row_count} rows against {previous.row_count} last time: a truncated export?",
        )
    if previous is not None and (lost := [c for c in previous.columns if c not in info.columns]):
        problem(
            "columns",
            ", ".join(previous.columns),
            ", ".join(info.columns),
            f"columns {', '.join(lost)} are gone since the previous snapshot (schema drift)",
        )
    if info.captured_at < source_newest - scope.hours("missing_after_hours"):
        problem(
            "captured_at",
            f"{source_newest:%Y-%m-%dT%H:%M:%SZ}",
            f"{info.captured_at:%Y-%m-%dT%H:%M:%SZ}",
            "missing from the latest drop: checks would compare an old copy",
        )
    total = info.row_count + info.quarantined_rows
    limit = float(scope.option("max_quarantined_ratio"))
    if total and info.quarantined_rows > limit * total:
        problem(
            "quarantined_rows",
            f"<= {limit * total:.0f}",
            str(info.quarantined_rows),
            f"{info.quarantined_rows} of {total} rows were quarantined as invalid",
        )
    return found
