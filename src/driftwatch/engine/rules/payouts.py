"""Marketplace payout lines tied to ERP orders, credit memos and journal entries.

The nightly face of month-end reconciliation: one implementation (driftwatch.payouts) and one set of
settings ([payouts]). Every period holding an accounting document is reconciled as `driftwatch payouts
reconcile` would reconcile it today, the current period to date, and each line it does not match is a
finding keyed by the line's id, its problem as the field.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from driftwatch.engine.context import Scope
from driftwatch.engine.findings import as_text
from driftwatch.engine.rules._base import findings_from, rule
from driftwatch.entities import MONEY
from driftwatch.payouts.inputs import Snapshots, read_inputs
from driftwatch.payouts.reconcile import flagged_to_date, periods
from driftwatch.payouts.settings import PayoutSettings, marketplaces, payout_settings
from driftwatch.statuses import RETURNS

# What the truth holds where a line has no counterpart, and what a person does about each problem.
MISSING = {
    "erp_order": "an ERP order",
    "marketplace_order": "a marketplace order id",
    "credit_memo": "an ERP credit memo",
    "journal_entry": "an ERP journal entry",
}
REPAIRS = {
    "credit_memo": "create_credit_memo",
    "journal_entry": "create_journal_entry",
    "commission_rate": "dispute_commission",
    "refund_commission_rate": "dispute_commission",
    "duplicate_line": "dispute_charge",
}
# What the reconciliation cannot do without in each snapshot (any other column it reads as absent). Without
# one of these in the payout lines or the ERP's orders the check cannot run; in the ERP's other records, the
# part they serve is left out, as if they had not been loaded.
NEEDS = {
    "payout_lines": ("payout_id", "external_id", "line_type", "amount", "currency", "transaction_date"),
    "orders": ("external_id", "status", "total", "currency"),
    "order_lines": ("qty_ordered", "unit_price"),
    "returns": ("order_id", "status", "amount"),
    "journal_entries": ("payout_id", "amount", "currency"),
}
# Every column a reconciliation reads of each snapshot: the others (emails, customer ids, quantities
# shipped, ...) are never read out of the store.
READS = {
    "payout_lines": ("line_id", "payout_id", "external_id", "line_type", "amount", "currency", "transaction_date"),
    "orders": ("order_id", "external_id", "channel", "status", "updated_at", "total", "currency"),
    "order_lines": ("order_id", "sku", "qty_ordered", "qty_cancelled", "unit_price"),
    "returns": ("return_id", "order_id", "amount", "status", "processed_at"),
    "journal_entries": ("entry_id", "order_id", "payout_id", "amount", "currency"),
}
LEFT_OUT = {
    "order_lines": "commission per SKU",
    "returns": "the match of refunds to credit memos",
    "journal_entries": "the match of charges to journal entries",
}
# Problems judged on an order's total to date: every line of the order shows it, the first carries its impact.
PER_ORDER = ("order_amount", "order_currency", "refund_amount", "commission_rate", "refund_commission_rate")


@rule
def payout_matching(scope: Scope) -> pl.LazyFrame | None:
    """Every payout line of every accounting document: its order exists in the ERP, order and shipping
    amounts equal the ERP order's, commission is at the agreed rate, a refund has a credit memo, fees and
    adjustments have a journal entry, no charge is repeated, and each document's lines sum to its payment."""
    # Each marketplace reconciled is matched on its own settings, against the ERP they name; other feeds
    # carrying payout lines are not it.
    if scope.target not in marketplaces(scope.cfg):
        return None
    settings = payout_settings(scope.cfg, scope.target)
    if scope.source != settings.erp:
        return None
    if scope.target_frame("payout_lines") is None or scope.frame(settings.erp, "orders") is None:
        return None

    cfg = scope.cfg
    # The snapshots as collected are not kept once read into inputs (at scale 3334, 0.6 GiB of ERP orders).
    snapshots = _lean_snapshots(scope, settings)
    inputs = read_inputs(snapshots, cfg.status_map(settings.erp), settings, cfg.status_map(settings.erp, RETURNS))
    del snapshots
    if not periods(inputs):
        return None  # no accounting document yet: nothing to reconcile
    flagged, warnings = flagged_to_date(inputs, settings)
    # Said once per run however many periods say it, such as the commission rate assumed. What the ERP's
    # snapshots lack is noted by scope.holds above, or (never snapshotted) not compared, as for every check.
    for warning in dict.fromkeys(w for w in warnings if w not in inputs.warnings):
        scope.note(settings.marketplace, "payout_lines", "caveat", detail=warning)
    # A line month-end could not judge (its ERP counterpart was not loaded) has no problem to report.
    return _findings(scope, flagged)


def _lean_snapshots(scope: Scope, settings: PayoutSettings) -> Snapshots:
    """The snapshots a reconciliation reads, holding only the ERP records the payout lines can reach: the
    orders of the marketplace orders they name (and the channel's orders, whose statuses are checked for a
    mapping), the lines and returns of the orders they name, and the journal entries of their documents.
    The rest of a large ERP is never collected, and matching reads nothing else (month-end reads it whole)."""
    read: dict[tuple[str, str], pl.DataFrame | None] = {}

    def snapshot(source: str, entity: str) -> pl.DataFrame | None:
        if (source, entity) not in read:
            erp = source == settings.erp
            rows = (lambda frame: _reachable(frame, read, settings, entity)) if erp else (lambda frame: frame)
            read[source, entity] = _collect(scope, source, entity, rows)
        return read[source, entity]

    snapshot(settings.marketplace, "payout_lines")
    snapshot(settings.erp, "orders")
    return snapshot


def _reachable(
    frame: pl.LazyFrame, read: dict[tuple[str, str], pl.DataFrame | None], settings: PayoutSettings, entity: str
) -> pl.LazyFrame:
    """The rows of an ERP snapshot the payout lines can reach. Joins, not `is_in` filters: a filter would
    hash the keys again for every batch read out of the store (a hundred times over 12M order lines)."""
    columns = frame.collect_schema().names()
    lines = read.get((settings.marketplace, "payout_lines"))
    orders = read.get((settings.erp, "orders"))
    if lines is None:
        return frame
    if entity == "orders" and "external_id" in columns:
        named = lines.select(pl.col("external_id").drop_nulls().unique(), named=pl.lit(True)).lazy()
        kept = frame.join(named, on="external_id", how="left", maintain_order="left")
        channel = (pl.col("channel") == settings.channel).fill_null(False) if "channel" in columns else False
        return kept.filter(pl.col("named").fill_null(False) | channel).drop("named")
    if entity in ("order_lines", "returns") and orders is not None and "order_id" in columns:
        # Of the channel's other orders only the status is read: their lines and returns are never judged.
        named = orders.join(lines.select(pl.col("external_id").drop_nulls().unique()), on="external_id", how="semi")
        return _semi_join(frame, named["order_id"])
    if entity == "journal_entries" and "payout_id" in columns:
        return _semi_join(frame, lines["payout_id"])
    return frame


def _semi_join(frame: pl.LazyFrame, keys: pl.Series) -> pl.LazyFrame:
    reachable = keys.drop_nulls().unique().to_frame().lazy()
    return frame.join(reachable, on=keys.name, how="semi", maintain_order="left")


def _collect(
    scope: Scope, source: str, entity: str, reachable: Callable[[pl.LazyFrame], pl.LazyFrame]
) -> pl.DataFrame | None:
    needs = NEEDS.get(entity, ())
    if entity in LEFT_OUT and not all(scope.holds(source, entity, c, compared=LEFT_OUT[entity]) for c in needs):
        return None
    frame = scope.frame(source, entity, needs=needs, defaults={"qty_cancelled": 0} if entity == "order_lines" else None)
    if frame is None:
        return None
    columns = frame.collect_schema().names()
    rows = reachable(frame.select([column for column in READS[entity] if column in columns])).collect()
    # polars keeps a text as a view into a buffer shared with the rows read beside it: the rows kept of a large
    # snapshot held the texts of every row read (1.1 GiB for the 2M order lines kept of 12M at scale 3334)
    # until their texts are written anew.
    return rows.with_columns(pl.col(pl.String) + "")


def _findings(scope: Scope, lines: pl.DataFrame) -> pl.LazyFrame:
    """One finding per line; a mismatch shows the amounts compared, an unmatched line what it lacks."""
    missing = pl.col("problem").replace_strict(MISSING, default=None, return_dtype=pl.String)
    expected = pl.coalesce(as_text(pl.col("expected"), MONEY), missing)
    actual = pl.coalesce(
        as_text(pl.col("actual"), MONEY),
        pl.when(pl.col("problem") == "erp_order").then(pl.col("external_id")),
        as_text(pl.col("amount"), MONEY),
    )
    difference = (pl.col("actual") - pl.col("expected")).abs()
    first_of_order = pl.col("line_id") == pl.col("line_id").min().over("problem", "external_id")
    impact = (
        pl.when(pl.col("problem").is_in(PER_ORDER))
        .then(pl.when(first_of_order).then(difference))
        .otherwise(pl.coalesce(difference, pl.col("amount").abs()))
    )
    message = pl.format(
        "payout {} line {} ({} {} {}{}): {}",
        "payout_id",
        "line_id",
        "line_type",
        as_text(pl.col("amount"), MONEY),
        "currency",
        pl.when(pl.col("external_id").is_not_null()).then(pl.format(", order {}", "external_id")).otherwise(pl.lit("")),
        "reason",
    )
    return findings_from(
        scope,
        lines.lazy(),
        entity="payout_lines",
        key=pl.col("line_id"),
        field=pl.col("problem"),
        expected=expected,
        actual=actual,
        severity=scope.option("severity"),
        message=message,
        repair=pl.col("problem").replace_strict(REPAIRS, default="investigate_payout_line", return_dtype=pl.String),
        impact=impact,
        currency=pl.col("currency"),
    )
