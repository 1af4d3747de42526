"""What a reconciliation reads: the marketplace's payout lines and the ERP's records, from the latest
snapshots. Month-end reads them from the store; the nightly check from the snapshots its audit reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from driftwatch.entities import ENTITIES
from driftwatch.errors import UserError
from driftwatch.payouts.matching import mark_duplicates
from driftwatch.payouts.settings import PayoutSettings
from driftwatch.statuses import RETURNS, map_statuses
from driftwatch.store import Store

# The latest snapshot of (source, entity), or None when the source was never snapshotted for it.
Snapshots = Callable[[str, str], pl.DataFrame | None]
# ERP entities a reconciliation can do without, and what it cannot check without them.
OPTIONAL_ERP = {
    "returns": "refunds cannot be matched to credit memos",
    "journal_entries": "every commission, fee, refund and adjustment is taken as not yet journalled",
    "order_lines": "commission is judged on the amounts paid at each channel's rate, not per SKU",
}


@dataclass(frozen=True)
class Inputs:
    lines: pl.DataFrame  # every payout line of an accounting document: its document_date and duplicate_of
    erp_orders: pl.DataFrame  # ERP orders that carry a marketplace order id, with canonical_status
    erp_returns: pl.DataFrame  # ERP credit memos (refunded returns), with external_id, channel and currency
    erp_journal: pl.DataFrame
    erp_order_lines: pl.DataFrame
    warnings: tuple[str, ...] = ()  # what limits a result read from these inputs
    missing: frozenset[str] = frozenset()  # the OPTIONAL_ERP entities there were none of


def complete(frame: pl.DataFrame | None, entity: str) -> pl.DataFrame:
    """A snapshot with every canonical column, null where the source gave none (an optional column a source
    does not export reads as absent, never as an error); empty when there is no snapshot."""
    schema = ENTITIES[entity].schema
    if frame is None:
        return pl.DataFrame(schema=schema)
    missing = [pl.lit(None, dtype).alias(col) for col, dtype in schema.items() if col not in frame.columns]
    return frame.with_columns(missing).select(list(schema)).cast(schema)


def require_snapshots(store: Store, settings: PayoutSettings) -> None:
    """A reconciliation needs the marketplace's payout lines and the ERP's orders at the least."""
    for source, entity in ((settings.marketplace, "payout_lines"), (settings.erp, "orders")):
        if store.latest_snapshot(source, entity) is None:
            raise UserError(
                f"no {source} {entity} in {store.path}: load a snapshot holding {source}/{entity} first "
                "(driftwatch load DIR)"
            )


def read_inputs(
    snapshots: Snapshots,
    status_map: dict[str, str],
    settings: PayoutSettings,
    return_map: dict[str, str] | None = None,
) -> Inputs:
    """`status_map` and `return_map`: the ERP's own order and return statuses -> canonical ones; a credit
    memo is a return whose canonical state is one of `refunded_statuses`."""
    erp = {entity: snapshots(settings.erp, entity) for entity in ("orders", *OPTIONAL_ERP)}
    orders = complete(erp["orders"], "orders").filter(pl.col("external_id").is_not_null())
    orders = orders.with_columns(canonical_status=map_statuses("status", status_map, orders))
    returns = complete(erp["returns"], "returns")
    returns = returns.filter(
        map_statuses("status", return_map or {}, returns, RETURNS).is_in(settings.refunded_statuses)
    ).join(orders.select("order_id", "external_id", "channel", "currency"), on="order_id", how="inner")
    warnings = tuple(
        f"without {settings.erp} {entity}, {consequence}"
        for entity, consequence in OPTIONAL_ERP.items()
        if erp[entity] is None
    )
    return Inputs(
        lines=_dated_lines(complete(snapshots(settings.marketplace, "payout_lines"), "payout_lines")),
        erp_orders=orders,
        erp_returns=returns,
        erp_journal=complete(erp["journal_entries"], "journal_entries"),
        erp_order_lines=complete(erp["order_lines"], "order_lines"),
        warnings=warnings,
        missing=frozenset(entity for entity in OPTIONAL_ERP if erp[entity] is None),
    )


def _dated_lines(lines: pl.DataFrame) -> pl.DataFrame:
    """Lines of accounting documents, each with the date of its document.

    A document is dated by its payment line (when the money moved), or by its latest line while it has no
    payment line yet. A line with no document is not yet invoiced and belongs to no period.

    Repeated charges are marked once here, for every period: lines are in date order, so the first line of
    a charge within any period's history (the documents dated before its end) is its first line overall.
    """
    lines = lines.filter(pl.col("payout_id").is_not_null())
    document_dates = lines.group_by("payout_id").agg(
        document_date=pl.coalesce(
            pl.col("transaction_date").filter(pl.col("line_type") == "payment").max(),
            pl.col("transaction_date").max(),
        )
    )
    # Date order: documents by date, a document's lines by id. Ranking the documents (a few dozen) leaves
    # the lines a sort on their id and a stable one on an integer, where sorting them on a date and two
    # texts took several times as long (5.5 s for 1.9M lines).
    ranked = document_dates.sort("document_date", "payout_id").with_columns(
        document_rank=pl.int_range(pl.len(), dtype=pl.UInt32)
    )
    lines = lines.join(ranked, on="payout_id").sort("line_id").sort("document_rank", maintain_order=True)
    lines = lines.drop("document_rank")
    undated = pl.col("document_date").is_null()
    return pl.concat(
        [
            lines.filter(undated).with_columns(duplicate_of=pl.lit(None, pl.String)),
            mark_duplicates(lines.filter(~undated)),
        ]
    )
