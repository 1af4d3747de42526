"""The outcome of reconciling one period: plain frames, in the order a person reads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from driftwatch.payouts.period import Period

VARIANCE_SCHEMA = {"table": pl.String, "key": pl.String, "change": pl.String, "detail": pl.String}
# Tables kept when a period is locked, each with the columns that identify one of its rows.
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "summary": ("currency",),
    "documents": ("payout_id", "currency"),
    "matched": ("line_id",),
    "unmatched_marketplace": ("line_id",),
    "mismatched_lines": ("line_id",),
    "unmatched_erp": ("kind", "record_id"),
    "mismatches": ("check", "payout_id", "external_id", "line_ids"),
    "journal_entries": ("entry_id", "line_no"),
}


@dataclass(frozen=True)
class Reconciliation:
    period: Period
    summary: pl.DataFrame  # one row per currency: totals by line type, counts, journal debits and credits
    documents: pl.DataFrame  # one row per accounting document and currency: payment vs the sum of its lines
    matched: pl.DataFrame  # payout lines that agree with the ERP
    unmatched_marketplace: pl.DataFrame  # payout lines with no ERP counterpart, and which one is missing
    mismatched_lines: pl.DataFrame  # payout lines in a mismatch or repeating another, with the amounts compared
    unmatched_erp: pl.DataFrame  # ERP orders delivered and credit memos issued, not yet paid or refunded
    mismatches: pl.DataFrame  # one row per problem: amounts, rates, duplicates, unbalanced documents
    journal_entries: pl.DataFrame  # proposed, balanced per payout and currency
    locked_at: datetime | None = None
    variances: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=VARIANCE_SCHEMA))
    warnings: tuple[str, ...] = ()  # what limits this result, e.g. ERP statuses nobody has mapped
    marketplace: str = "mirakl"  # the marketplace source whose payouts these are

    def tables(self) -> dict[str, pl.DataFrame]:
        """Every table by name; a locked period adds what changed since its close, and warnings come last."""
        tables = {name: getattr(self, name) for name in TABLE_KEYS}
        if self.locked_at is not None:
            tables["variances"] = self.variances
        if self.warnings:
            tables["warnings"] = pl.DataFrame({"warning": list(self.warnings)}, schema={"warning": pl.String})
        return tables
