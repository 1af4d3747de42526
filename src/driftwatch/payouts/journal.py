"""Proposed journal entries: what the ERP must post for the marketplace's commissions, fees, refunds and
adjustments that it has no journal entry for yet.

Every payout line becomes one balanced entry of two postings: the line's own account and the receivable
the marketplace owes the seller. So debits equal credits per entry, and therefore per payout and currency.
A ledger posts whole minor units: a sub-cent commission line (-1.5375 EUR) is proposed rounded half up
(1.54), on both sides of its entry.
"""

from __future__ import annotations

import polars as pl

from driftwatch.entities import MONEY, TIMESTAMP
from driftwatch.money import rounded

JOURNAL_SCHEMA = {
    "entry_id": pl.String,
    "line_no": pl.Int64,
    "posted_at": TIMESTAMP,
    "payout_id": pl.String,
    "order_id": pl.String,
    "external_id": pl.String,
    "line_id": pl.String,
    "account": pl.String,
    "debit": MONEY,
    "credit": MONEY,
    "currency": pl.String,
    "memo": pl.String,
}
ZERO = pl.lit(0).cast(MONEY)


def propose(lines: pl.DataFrame, accounts: dict[str, str]) -> pl.DataFrame:
    """Two postings per line (columns of JOURNAL_SCHEMA); `lines` carry payout line columns, order_id and
    document_date. Entry ids derive from line ids, so a rerun proposes the very same entries."""
    size = rounded(pl.col("amount").abs(), pl.col("currency")).cast(MONEY)
    # A positive line grows the seller's balance: the receivable is debited and the line's account credited.
    grows = pl.col("amount") > 0
    memo = pl.concat_str(
        [
            pl.col("line_type"),
            pl.format("order {}", "external_id"),
            pl.format("payout {}", "payout_id"),
            pl.format("line {}", "line_id"),
        ],
        separator=", ",
        ignore_nulls=True,
    )
    entries = lines.select(
        entry_id=pl.format("DW-{}", "line_id"),
        posted_at="document_date",
        payout_id="payout_id",
        order_id="order_id",
        external_id="external_id",
        line_id="line_id",
        currency="currency",
        memo=memo,
        line_account=pl.col("line_type").replace_strict(accounts, default=None, return_dtype=pl.String),
        grows=grows,
        size=size,
    )
    line_side = entries.with_columns(
        line_no=pl.lit(1, pl.Int64),
        account=pl.col("line_account"),
        debit=pl.when("grows").then(ZERO).otherwise("size"),
        credit=pl.when("grows").then("size").otherwise(ZERO),
    )
    receivable_side = entries.with_columns(
        line_no=pl.lit(2, pl.Int64),
        account=pl.lit(accounts["receivable"]),
        debit=pl.when("grows").then("size").otherwise(ZERO),
        credit=pl.when("grows").then(ZERO).otherwise("size"),
    )
    return (
        pl.concat([line_side, receivable_side])
        .select(list(JOURNAL_SCHEMA))
        .cast(JOURNAL_SCHEMA)
        .sort("payout_id", "currency", "entry_id", "line_no")
    )


def balances(journal: pl.DataFrame) -> pl.DataFrame:
    """Debits and credits per payout and currency; an import file is only sound when every row balances."""
    return (
        journal.group_by("payout_id", "currency")
        .agg(debit=pl.col("debit").sum().cast(MONEY), credit=pl.col("credit").sum().cast(MONEY))
        .with_columns(balanced=pl.col("debit") == pl.col("credit"))
        .sort("payout_id", "currency")
    )
