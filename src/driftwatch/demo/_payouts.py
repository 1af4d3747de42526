"""Mirakl accounting documents (payouts) and the ERP journal entries that book their fees.

Mirakl bills per ten-day cycle (1st, 11th, 21st). A document holds the cycle's transaction lines per
currency; its `payment` line is the sum of all its other lines, so it can only be written once every
chunk of orders has contributed: `Payouts` accumulates the running totals.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from driftwatch.demo._trade import SHIPPED_STATES, TradeChunk

COMMISSION_RATE_PERCENT = 15  # agreed with the operator, on the order amount (shipping carries none)
SUBSCRIPTION_FEE_CENTS = {"EUR": 3900, "GBP": 2900}
MANUAL_CREDIT_CENTS = 2500
CREDIT_NOTE_CENTS = 5000
ACCOUNTS = {"commission": "6100", "refund_commission": "6110", "fee": "6200", "adjustment": "4900"}
LINE_COLUMNS = ["line_id", "payout_id", "external_id", "line_type", "amount", "currency", "transaction_date"]
DOCUMENT_LINE_TYPES = ("fee", "adjustment")
JOURNAL_COLUMNS = ["entry_id", "order_id", "payout_id", "account", "amount", "currency", "posted_at"]


def commission_cents(amount: pl.Expr) -> pl.Expr:
    """The agreed commission on an amount, rounded half up to the cent (integer cents in and out)."""
    return (amount * COMMISSION_RATE_PERCENT + 50) // 100


def commission_rates() -> dict[str, str]:
    return {"default": f"{COMMISSION_RATE_PERCENT / 100:.2f}", "base": "order_amount"}


def _cycle_part(ts: pl.Expr) -> pl.Expr:
    day = ts.dt.day()
    return pl.when(day <= 10).then(1).when(day <= 20).then(2).otherwise(3)


def cycle_end(ts: pl.Expr) -> pl.Expr:
    month = ts.dt.truncate("1mo")
    part = _cycle_part(ts)
    return (
        pl.when(part == 1)
        .then(month.dt.offset_by("10d"))
        .when(part == 2)
        .then(month.dt.offset_by("20d"))
        .otherwise(month.dt.offset_by("1mo"))
    )


def payout_id(ts: pl.Expr, currency: pl.Expr) -> pl.Expr:
    return pl.format("PO-{}-{}-{}", currency, ts.dt.strftime("%Y%m"), _cycle_part(ts))


class Payouts:
    def __init__(self, captured_at: datetime) -> None:
        self.captured = captured_at
        self._documents: list[pl.DataFrame] = []

    def chunk_frames(self, chunk: TradeChunk) -> dict[tuple[str, str], pl.DataFrame]:
        """Order, shipping, commission and refund lines of the chunk's marketplace orders, with journals."""
        orders = chunk.orders.filter((pl.col("channel") == "mirakl") & pl.col("state").is_in(SHIPPED_STATES)).select(
            "order_id", "external_id", "currency", "merchandise", "shipping", when="shipped_at"
        )
        refunds = chunk.returns.filter(pl.col("status") == "refunded").join(
            orders.select("order_id", "external_id", "currency"), on="order_id"
        )
        sales = [
            orders.select(kind=pl.lit("OA"), line_type=pl.lit("order_amount"), amount="merchandise"),
            orders.select(kind=pl.lit("SH"), line_type=pl.lit("shipping"), amount="shipping"),
            orders.select(
                kind=pl.lit("CO"), line_type=pl.lit("commission"), amount=-commission_cents(pl.col("merchandise"))
            ),
        ]
        keys = orders.select("order_id", "external_id", "currency", "when", ref="external_id")
        refund_keys = refunds.select("order_id", "external_id", "currency", when="processed_at", ref="return_id")
        lines = pl.concat(
            [pl.concat([keys, part], how="horizontal") for part in sales]
            + [
                pl.concat([refund_keys, part], how="horizontal")
                for part in (
                    refunds.select(kind=pl.lit("RF"), line_type=pl.lit("refund"), amount=-pl.col("amount")),
                    refunds.select(
                        kind=pl.lit("RC"),
                        line_type=pl.lit("refund_commission"),
                        amount=commission_cents(pl.col("amount")),
                    ),
                )
            ]
        ).filter(pl.col("amount") != 0)
        lines = lines.with_columns(
            payout_id=payout_id(pl.col("when"), pl.col("currency")), posted_at=cycle_end(pl.col("when"))
        ).filter(pl.col("posted_at") <= self.captured)  # only documents already issued
        lines = lines.with_columns(line_id=pl.format("TL-{}-{}", "ref", "kind"), transaction_date="when")
        return self._with_journal(lines)

    def _with_journal(self, lines: pl.DataFrame) -> dict[tuple[str, str], pl.DataFrame]:
        booked = lines.filter(pl.col("line_type").is_in(list(ACCOUNTS)))
        journal = booked.select(
            entry_id=pl.col("line_id").str.replace("^TL-", "JE-"),
            order_id="order_id",
            payout_id="payout_id",
            account=pl.col("line_type").replace_strict(ACCOUNTS),
            amount="amount",
            currency="currency",
            posted_at="posted_at",
        )
        return {("mirakl", "payout_lines"): lines.select(LINE_COLUMNS), ("bluecherry", "journal_entries"): journal}

    def record(self, payout_lines: pl.DataFrame) -> None:
        """Count lines as written, so each document's payment is their exact sum."""
        # document-level lines (fees, adjustments) are dated when the document is issued
        issued = (
            pl.when(pl.col("line_type").is_in(DOCUMENT_LINE_TYPES))
            .then(pl.col("transaction_date"))
            .otherwise(cycle_end(pl.col("transaction_date")))
        )
        self._documents.append(
            payout_lines.group_by("payout_id").agg(
                pl.col("currency").first(), pl.col("amount").sum(), posted_at=issued.max()
            )
        )

    def _documents_so_far(self) -> pl.DataFrame:
        return (
            pl.concat(self._documents)
            .group_by("payout_id")
            .agg(pl.col("currency").first(), pl.col("amount").sum(), pl.col("posted_at").max())
            .sort("posted_at", "payout_id")
        )

    def closing_frames(self) -> dict[tuple[str, str], pl.DataFrame]:
        """Per document: subscription fee, then the payment; plus a manual credit and a reversed payout."""
        documents = self._documents_so_far()
        fees = documents.select(
            "payout_id",
            "currency",
            line_id=pl.format("TL-{}-FEE", "payout_id"),
            line_type=pl.lit("fee"),
            amount=-pl.col("currency").replace_strict(SUBSCRIPTION_FEE_CENTS, return_dtype=pl.Int64),
            posted_at="posted_at",
        )
        latest_eur = documents.filter(pl.col("currency") == "EUR").tail(1)
        manual_credit = latest_eur.select(
            "payout_id",
            "currency",
            line_id=pl.format("TL-{}-MC", "payout_id"),
            line_type=pl.lit("adjustment"),
            amount=pl.lit(MANUAL_CREDIT_CENTS, pl.Int64),
            posted_at="posted_at",
        )
        # A credit note issued as its own document, then reversed by the operator in full.
        credit_note = latest_eur.select(
            pl.format("{}-CN", "payout_id").alias("payout_id"),
            "currency",
            "posted_at",
            line_type=pl.lit("adjustment"),
            amount=pl.lit(CREDIT_NOTE_CENTS, pl.Int64),
        )
        reversal = credit_note.with_columns(payout_id=pl.format("{}-R", "payout_id"), amount=-pl.col("amount"))
        notes = pl.concat([credit_note, reversal]).with_columns(line_id=pl.format("TL-{}-ADJ", "payout_id"))
        closing = pl.concat([fees, manual_credit, notes], how="diagonal").with_columns(
            external_id=pl.lit(None, pl.String), order_id=pl.lit(None, pl.String), transaction_date="posted_at"
        )
        return self._with_journal(closing)

    def payments(self, closing_lines: pl.DataFrame) -> pl.DataFrame:
        """One payment line per document: the amount paid out, the sum of its other lines."""
        self.record(closing_lines)
        return self._documents_so_far().select(
            line_id=pl.format("TL-{}-PAY", "payout_id"),
            payout_id="payout_id",
            external_id=pl.lit(None, pl.String),
            line_type=pl.lit("payment"),
            amount="amount",
            currency="currency",
            transaction_date="posted_at",
        )
