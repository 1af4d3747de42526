"""Marketplace payout lines tied to ERP orders, credit memos and journal entries."""

from __future__ import annotations

from decimal import Decimal

import polars as pl

from driftwatch.engine.context import Scope
from driftwatch.engine.rules._base import findings_from, rule, text_or_none
from driftwatch.engine.views import (
    zero_if_null,
)
from driftwatch.entities import MONEY

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
            text_or_none(pl.col("amount"), MONEY),
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
            text_or_none(pl.col("amount"), MONEY),
            "line_type",
            "external_id",
            text_or_none(pl.col("expected"), MONEY),
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
            text_or_none(pl.col("amount"), MONEY),
            "line_type",
            "external_id",
            pl.lit(f"{rate * 100:f}".rstrip("0").rstrip(".")),
            text_or_none(pl.col("agreed"), MONEY),
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
            text_or_none(pl.col("amount"), MONEY),
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
            text_or_none(pl.col("amount"), MONEY),
        ),
        "create_journal_entry",
        pl.col("amount").abs(),
    )
