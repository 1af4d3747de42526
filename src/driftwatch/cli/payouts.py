"""Finance month-end: `payouts reconcile`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
import polars as pl

from driftwatch.cli._common import AppContext, emit, format_option, pass_app
from driftwatch.money import amounts_as_text
from driftwatch.payouts import lock, parse_period, reconcile, write_outputs

ISSUES_SHOWN = 20
# The counts a person reads first; the workbook's summary sheet has every total by line type.
SUMMARY_SHOWN = (
    "currency",
    "documents",
    "unbalanced_documents",
    "paid_out",
    "lines",
    "matched",
    "unmatched",
    "mismatched",
    "duplicates",
    "erp_not_paid",
)
# What a person must look at, each listed up to ISSUES_SHOWN rows: (table, columns shown, title).
LISTED = (
    ("mismatches", ("check", "payout_id", "external_id", "expected", "actual", "currency", "message"), "Mismatches"),
    (
        "unmatched_marketplace",
        ("payout_id", "line_id", "line_type", "external_id", "amount", "currency", "reason"),
        "Unmatched marketplace lines",
    ),
    (
        "unmatched_erp",
        ("kind", "record_id", "external_id", "amount", "currency", "reason"),
        "ERP records the marketplace has not paid",
    ),
)


@click.group()
def payouts() -> None:
    """Reconcile marketplace payouts with the ERP at month-end."""


@payouts.command("reconcile")
@click.option("--period", "period_text", required=True, help="The month to reconcile, YYYY-MM.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for the workbook, CSVs and journal import file (default: payouts-YYYY-MM beside the "
    "config file, else in the current directory).",
)
@click.option(
    "--marketplace",
    default=None,
    help="The marketplace source whose payouts to reconcile (needed when several are: mirakl_fr, ...).",
)
@click.option("--lock", "lock_period", is_flag=True, help="Keep this result as the period's close.")
@format_option()
@pass_app
def reconcile_command(
    app: AppContext, period_text: str, out_dir: Path | None, marketplace: str | None, lock_period: bool, fmt: str
) -> None:
    """Match every payout line of the month's accounting documents to ERP orders, credit memos, agreed
    commission rates and journal entries; write a workbook, CSVs and a balanced journal import file.

    Rerunning a period gives the same result. A locked period keeps its close: later data shows on the
    `variances` sheet instead of rewriting it. Prints the summary (one row per currency).

    \b
    Example:
      driftwatch payouts reconcile --period 2026-10 --out close/2026-10
      driftwatch payouts reconcile --period 2026-10 --lock
      driftwatch payouts reconcile --period 2026-10 --marketplace mirakl_de
    """
    period = parse_period(period_text)
    result = reconcile(app.store, app.config, period, marketplace)
    if lock_period:
        if result.locked_at is None:
            result = replace(result, locked_at=lock(app.store, result))
            click.echo(f"locked {period}", err=True)
        else:
            click.echo(f"{period} was already locked on {result.locked_at:%Y-%m-%d}; its close is kept", err=True)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    default_dir = f"payouts-{period}" if marketplace is None else f"payouts-{result.marketplace}-{period}"
    # Beside the config, as reports are: a scheduler's working directory is nobody's choice of folder.
    base = app.config.path.parent if app.config.path else Path()
    written = write_outputs(result, out_dir or base / default_dir)
    if fmt != "table":
        emit(result.summary, fmt)
        return
    state = f"locked {result.locked_at:%Y-%m-%d %H:%M} UTC" if result.locked_at else "open"
    emit(_readable(result.summary.select(SUMMARY_SHOWN)), fmt, title=f"Payouts {period} ({state})")
    unbalanced = result.documents.filter(~pl.col("balanced"))
    if unbalanced.height:
        emit(_readable(unbalanced), fmt, title="\nUnbalanced documents")
    for table, columns, title in LISTED:
        frame = getattr(result, table)
        if frame.height:
            shown = _readable(frame.select(columns).head(ISSUES_SHOWN))
            emit(shown, fmt, title=f"\n{title}: {frame.height} (first {shown.height})")
    if result.locked_at is not None:
        emit(result.variances, fmt, title=f"\nVariances since the close: {result.variances.height}")
    click.echo(f"\nwrote {written[0]} and {len(written) - 1} CSV file(s) in {written[0].parent}")


def _readable(frame: pl.DataFrame) -> pl.DataFrame:
    """Money to its currency's minor unit (45.00 EUR, 4500 JPY), as the workbook shows it."""
    if "currency" not in frame.columns:
        return frame
    return frame.with_columns(
        amounts_as_text(pl.col(name), pl.col("currency")) for name, dtype in frame.schema.items() if dtype.is_decimal()
    )


def register(group: click.Group) -> None:
    group.add_command(payouts)
