"""What a reconciliation reads from the store: the marketplace's payout lines and the ERP's records."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from driftwatch.entities import ENTITIES
from driftwatch.errors import UserError
from driftwatch.payouts.period import Period
from driftwatch.payouts.settings import PayoutSettings
from driftwatch.statuses import map_statuses
from driftwatch.store import Store


@dataclass(frozen=True)
class Inputs:
    lines: pl.DataFrame  # every payout line of a dated accounting document, with its document_date
    erp_orders: pl.DataFrame  # ERP orders that carry a marketplace order id, with canonical_status
    erp_returns: pl.DataFrame  # ERP credit memos (refunded returns) up to the period end, with external_id
    erp_journal: pl.DataFrame
    erp_order_lines: pl.DataFrame


def latest(store: Store, source: str, entity: str) -> pl.DataFrame:
    """The latest snapshot with every canonical column (null where the source gave none); empty if none."""
    schema = ENTITIES[entity].schema
    frame = store.latest(source, entity)
    if frame is None:
        return pl.DataFrame(schema=schema)
    missing = [pl.lit(None, dtype).alias(col) for col, dtype in schema.items() if col not in frame.columns]
    return frame.with_columns(missing).select(list(schema))


def read_inputs(store: Store, status_map: dict[str, str], settings: PayoutSettings, period: Period) -> Inputs:
    for source, entity in ((settings.marketplace, "payout_lines"), (settings.erp, "orders")):
        if store.latest_snapshot(source, entity) is None:
            raise UserError(
                f"no {source} {entity} in {store.path}: load a snapshot holding {source}/{entity} first "
                "(driftwatch load DIR)"
            )
    orders = latest(store, settings.erp, "orders").filter(pl.col("external_id").is_not_null())
    orders = orders.with_columns(canonical_status=map_statuses("status", status_map, orders))
    returns = (
        latest(store, settings.erp, "returns")
        .filter(
            pl.col("status").is_in(settings.refunded_statuses)
            & (pl.col("processed_at").is_null() | (pl.col("processed_at") < period.end))
        )
        .join(orders.select("order_id", "external_id", "channel", "currency"), on="order_id", how="inner")
    )
    return Inputs(
        lines=_dated_lines(latest(store, settings.marketplace, "payout_lines")),
        erp_orders=orders,
        erp_returns=returns,
        erp_journal=latest(store, settings.erp, "journal_entries"),
        erp_order_lines=latest(store, settings.erp, "order_lines"),
    )


def _dated_lines(lines: pl.DataFrame) -> pl.DataFrame:
    """Lines of accounting documents, each with the date of its document.

    A document is dated by its payment line (when the money moved), or by its latest line while it has no
    payment line yet. A line with no document is not yet invoiced and belongs to no period.
    """
    lines = lines.filter(pl.col("payout_id").is_not_null())
    document_dates = lines.group_by("payout_id").agg(
        document_date=pl.coalesce(
            pl.col("transaction_date").filter(pl.col("line_type") == "payment").max(),
            pl.col("transaction_date").max(),
        )
    )
    return lines.join(document_dates, on="payout_id").sort("document_date", "payout_id", "line_id")
