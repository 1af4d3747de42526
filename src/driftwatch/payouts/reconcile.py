"""Reconcile one month of marketplace payouts with the ERP."""

from __future__ import annotations

from dataclasses import dataclass, replace

import polars as pl

from driftwatch.config import Config
from driftwatch.entities import MONEY, PAYOUT_LINE_TYPES
from driftwatch.payouts import closes, matching
from driftwatch.payouts.inputs import Inputs, read_inputs, require_snapshots
from driftwatch.payouts.journal import balances, propose
from driftwatch.payouts.period import Period, parse_period, period_of
from driftwatch.payouts.result import Reconciliation
from driftwatch.payouts.settings import PayoutSettings, payout_settings
from driftwatch.statuses import RETURNS
from driftwatch.store import Store

LINE_COLUMNS = (
    "payout_id",
    "document_date",
    "line_id",
    "line_type",
    "external_id",
    "order_id",
    "transaction_date",
    "amount",
    "currency",
    "reason",
    "journal_entry_id",
)
UNMATCHED_COLUMNS = (*LINE_COLUMNS, "problem")
MISMATCHED_COLUMNS = (*LINE_COLUMNS, "problem", "expected", "actual")

SUMMARY_COLUMNS = (
    "currency",
    "documents",
    "unbalanced_documents",
    "paid_out",
    *(t for t in PAYOUT_LINE_TYPES if t != "payment"),
    "lines",
    "matched",
    "unmatched",
    "mismatched",
    "duplicates",
    "issues",
    "erp_not_paid",
    "journal_debit",
    "journal_credit",
)


def reconcile(store: Store, cfg: Config, period: Period | str, marketplace: str | None = None) -> Reconciliation:
    """The period's reconciliation of one marketplace's payouts (by default the only one reconciled). A
    locked period gives its close as locked, with today's differences from it as variances: a close is
    never silently rewritten."""
    period = parse_period(period) if isinstance(period, str) else period
    current = compute(store, cfg, period, marketplace)
    close = closes.load_close(store, period, current.marketplace)
    if close is None:
        return current
    return replace(close, variances=closes.variances(close, current), warnings=current.warnings)


def compute(store: Store, cfg: Config, period: Period, marketplace: str | None = None) -> Reconciliation:
    """Reconcile the period from the latest snapshots, whether or not it is locked."""
    settings = payout_settings(cfg, marketplace)
    require_snapshots(store, settings)
    inputs = read_inputs(store.latest, cfg.status_map(settings.erp), settings, cfg.status_map(settings.erp, RETURNS))
    return reconcile_inputs(inputs, settings, period)


def periods(inputs: Inputs) -> list[Period]:
    """Every period holding an accounting document, oldest first: the current one is the period to date."""
    return sorted({period_of(date) for date in inputs.lines["document_date"].drop_nulls().unique()})


def reconcile_to_date(inputs: Inputs, settings: PayoutSettings) -> list[Reconciliation]:
    """Each period's reconciliation, as month-end would give it today (locked or not)."""
    return [reconcile_inputs(inputs, settings, period) for period in periods(inputs)]


def flagged_to_date(inputs: Inputs, settings: PayoutSettings) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """The lines month-end flags in every period to date (its unmatched lines that name a problem, and its
    mismatched lines, columns as in those tables), and the warnings of those reconciliations: what the
    nightly check reports, judged by the same rules without building the rest of each close. Every period
    is judged in one pass: each order's amounts to each period's end (matching.PERIOD_END)."""
    judged = _judge(inputs, settings, inputs.lines.filter(pl.col("document_date").is_not_null()), explain_all=False)
    unmatched = _lines_with(judged.lines, ("unmatched",), UNMATCHED_COLUMNS)
    mismatched = _lines_with(judged.lines, ("mismatch", "duplicate"), MISMATCHED_COLUMNS)
    schema = {**inputs.lines.schema, "order_id": pl.String, "journal_entry_id": pl.String}
    empty = pl.DataFrame(schema={name: schema.get(name, pl.String) for name in UNMATCHED_COLUMNS})
    flagged = pl.concat([empty, unmatched, mismatched], how="diagonal_relaxed")
    warnings = _warnings(inputs, settings, judged.verdicts.assumed_rate_orders) if periods(inputs) else ()
    return flagged.filter(pl.col("problem").is_not_null()), warnings


def reconcile_inputs(inputs: Inputs, settings: PayoutSettings, period: Period) -> Reconciliation:
    """The one implementation of payout matching, for month-end and for the nightly check alike."""
    judged = _judge(
        inputs,
        settings,
        inputs.lines.filter(pl.col("document_date").is_between(period.start, period.end, closed="left")),
    )
    lines, verdicts, order_ids = judged.lines, judged.verdicts, judged.order_ids
    history = inputs.lines.filter(pl.col("document_date") < period.end)
    proposed = propose(
        lines.filter(
            pl.col("line_type").is_in(matching.JOURNALLED)
            & pl.col("duplicate_of").is_null()
            & pl.col("journal_entry_id").is_null()
        ),
        settings.accounts,
    )
    mismatches = (
        verdicts.issues.join(order_ids, on="external_id", how="left", suffix="_erp")
        .with_columns(order_id=pl.coalesce("order_id", "order_id_erp"))
        .select(list(matching.ISSUE_SCHEMA))
        .sort("check", "payout_id", "external_id", "line_ids", nulls_last=True)
    )
    later = inputs.lines.filter(pl.col("document_date") >= period.end)
    credit_memos = inputs.erp_returns.filter(pl.col("processed_at").is_null() | (pl.col("processed_at") < period.end))
    unmatched_erp = matching.unpaid_erp(inputs.erp_orders, credit_memos, history, later, settings, period)
    return Reconciliation(
        marketplace=settings.marketplace,
        period=period,
        summary=_summary(lines, judged.documents, mismatches, unmatched_erp, proposed),
        documents=judged.documents,
        matched=_lines_with(lines, ("matched",), LINE_COLUMNS),
        unmatched_marketplace=_lines_with(lines, ("unmatched",), UNMATCHED_COLUMNS),
        mismatched_lines=_lines_with(lines, ("mismatch", "duplicate"), MISMATCHED_COLUMNS),
        unmatched_erp=unmatched_erp,
        mismatches=mismatches,
        journal_entries=proposed,
        warnings=_warnings(inputs, settings, verdicts.assumed_rate_orders),
    )


@dataclass(frozen=True)
class _Judged:
    lines: pl.DataFrame  # the lines judged, each with its verdict, ERP order id and journal entry
    verdicts: matching.Verdicts
    documents: pl.DataFrame
    order_ids: pl.DataFrame  # external_id -> the ERP's order ids, for the orders of the lines judged


def _judge(inputs: Inputs, settings: PayoutSettings, scope: pl.DataFrame, explain_all: bool = True) -> _Judged:
    """Every line of `scope` (lines of accounting documents: one period's, or every period's) judged as its
    own period's reconciliation judges it, to that period's end: its verdict, problem, reason and the
    amounts compared. Reasons for every judgement, or (not `explain_all`) for the lines flagged only."""
    scope = scope.with_columns(matching.period_end())
    originals = scope.filter(pl.col("duplicate_of").is_null())
    # Only the orders these lines name are judged: their history and ERP records are all it reads (each
    # matcher keeps, per period end, the documents dated before it).
    touched = scope["external_id"].drop_nulls().unique().implode()
    history = inputs.lines.filter(pl.col("document_date").is_not_null() & pl.col("external_id").is_in(touched))
    erp = matching.erp_by_external_id(inputs.erp_orders.filter(pl.col("external_id").is_in(touched)))
    order_ids = erp.select("external_id", "order_id")
    # Entries pair with lines of their own document only.
    posted = inputs.erp_journal.filter(pl.col("payout_id").is_in(scope["payout_id"].unique().implode()))
    journal = matching.match_journal(originals, posted, order_ids)
    documents, document_verdicts = matching.documents(scope, settings.tolerance)
    credit_memos = None if "returns" in inputs.missing else inputs.erp_returns
    verdicts = matching.Verdicts.concat(
        [
            matching.duplicates(scope),
            document_verdicts,
            matching.sales(originals, history, erp, settings.tolerance),
            matching.refunds(originals, history, erp, credit_memos, settings.tolerance),
            matching.commissions(originals, history, _agreed(originals, inputs, settings), settings, explain_all),
            matching.journal_only(originals, journal, checked="journal_entries" not in inputs.missing),
        ]
    )
    lines = (
        scope.drop(matching.PERIOD_END)
        .join(verdicts.lines, on="line_id", how="left")
        .join(order_ids, on="external_id", how="left")
        .join(journal, on="line_id", how="left")
    )
    return _Judged(lines, verdicts, documents, order_ids)


def _warnings(inputs: Inputs, settings: PayoutSettings, assumed_rate_orders: int) -> tuple[str, ...]:
    return (
        *inputs.warnings,
        *_unmapped_statuses(inputs.erp_orders, settings),
        *_assumed_rate(assumed_rate_orders, settings),
    )


def _assumed_rate(orders: int, settings: PayoutSettings) -> tuple[str, ...]:
    """A built-in rate is not an agreement: say which rate was assumed, and where to set the agreed one.
    The same words whatever the period, so a run over several periods says it once."""
    if not orders:
        return ()
    return (
        f"commission rate assumed: {settings.default_rate:.2%}, because [payouts.commission] sets no default; "
        f"set the rate agreed with {settings.marketplace} there (default, or per channel or SKU category)",
    )


def _unmapped_statuses(erp_orders: pl.DataFrame, settings: PayoutSettings) -> tuple[str, ...]:
    """An ERP status with no canonical mapping hides delivered orders from the not-yet-paid list."""
    unmapped = erp_orders.filter(
        (pl.col("channel") == settings.channel) & pl.col("status").is_not_null() & pl.col("canonical_status").is_null()
    )
    codes = sorted(unmapped["status"].unique().to_list())
    if not codes:
        return ()
    return (
        f"{settings.erp} statuses {', '.join(codes)} of {unmapped.height} {settings.channel} order(s) have no "
        f"canonical mapping: name them in [statuses.{settings.erp}] so delivered orders can be checked for payment",
    )


def _agreed(originals: pl.DataFrame, inputs: Inputs, settings: PayoutSettings) -> pl.DataFrame:
    charged = originals.filter(pl.col("line_type").is_in(matching.COMMISSIONS) & pl.col("external_id").is_not_null())
    external_ids = charged["external_id"].unique()
    return matching.agreed_commissions(external_ids, inputs.erp_orders, inputs.erp_order_lines, settings)


def _lines_with(lines: pl.DataFrame, statuses: tuple[str, ...], columns: tuple[str, ...]) -> pl.DataFrame:
    chosen = lines.filter(pl.col("status").is_in(statuses)).select(columns)
    return chosen.sort("document_date", "payout_id", "line_id")


def _summary(
    lines: pl.DataFrame,
    documents: pl.DataFrame,
    mismatches: pl.DataFrame,
    unmatched_erp: pl.DataFrame,
    journal: pl.DataFrame,
) -> pl.DataFrame:
    """One row per currency: money is never added across currencies."""
    by_type = [
        pl.col("amount").filter(pl.col("line_type") == line_type).sum().cast(MONEY).alias(line_type)
        for line_type in PAYOUT_LINE_TYPES
        if line_type != "payment"
    ]
    status_counts = [
        (pl.col("status") == status).sum().cast(pl.Int64).alias(name)
        for status, name in (
            ("matched", "matched"),
            ("unmatched", "unmatched"),
            ("mismatch", "mismatched"),
            ("duplicate", "duplicates"),
        )
    ]
    totals = lines.group_by("currency").agg(
        pl.col("payout_id").n_unique().cast(pl.Int64).alias("documents"),
        pl.col("amount").filter(pl.col("line_type") == "payment").sum().cast(MONEY).alias("paid_out"),
        *by_type,
        pl.len().cast(pl.Int64).alias("lines"),
        *status_counts,
    )
    counts = [
        documents.group_by("currency").agg(unbalanced_documents=(~pl.col("balanced")).sum().cast(pl.Int64)),
        mismatches.group_by("currency").agg(issues=pl.len().cast(pl.Int64)),
        unmatched_erp.group_by("currency").agg(erp_not_paid=pl.len().cast(pl.Int64)),
    ]
    journal_totals = (
        balances(journal)
        .group_by("currency")
        .agg(journal_debit=pl.col("debit").sum().cast(MONEY), journal_credit=pl.col("credit").sum().cast(MONEY))
    )
    summary = totals
    for frame in [*counts, journal_totals]:
        summary = summary.join(frame, on="currency", how="full", coalesce=True)
    zeros = [pl.col(name).fill_null(0).cast(dtype) for name, dtype in summary.schema.items() if name != "currency"]
    return summary.with_columns(zeros).select(SUMMARY_COLUMNS).sort("currency", nulls_last=True)
