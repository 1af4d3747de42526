"""Incidents: `incidents` lists a run's incidents; `ack incident:<id>` (in `audit`) acknowledges one."""

from __future__ import annotations

import click
import polars as pl

from driftwatch.cli._common import AppContext, emit, format_option, pass_app
from driftwatch.engine import latest_run_id, run_info
from driftwatch.errors import UserError
from driftwatch.incidents import run_incidents
from driftwatch.money import format_money

LISTED = (
    "severity",
    "status",
    "check_id",
    "target",
    "cause",
    "size",
    "records",
    "owner",
    "acknowledged",
    "incident_id",
)
# The stored lifecycle, and `acknowledged`: open incidents every finding of which someone acknowledged.
STATUSES = ("new", "ongoing", "worsened", "regressed", "resolved", "acknowledged")


@click.command("incidents")
@click.option("--run", "run_id", default=None, help="Run id (default: the latest run).")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only incidents with this status.")
@format_option()
@pass_app
def incidents_command(app: AppContext, run_id: str | None, status: str | None, fmt: str) -> None:
    """Show the incidents of a run (default: the latest), most urgent first: findings of one check on one
    target grouped by their probable cause. `driftwatch ack incident:<id>` acknowledges one.

    \b
    Examples:
      driftwatch incidents
      driftwatch incidents --status new --format json
      driftwatch incidents --status acknowledged --run 20261123T020000-1a2b3c
    """
    run_id = run_id or latest_run_id(app.store)
    if run_id is None:
        found = pl.DataFrame(schema={c: pl.Boolean if c == "acknowledged" else pl.String for c in LISTED})
    elif run_info(app.store, run_id) is None:
        raise UserError(f"no audit run {run_id!r} in {app.store.path}")
    else:
        found = run_incidents(app.store, run_id)
    if status == "acknowledged":
        found = found.filter(pl.col("acknowledged") & (pl.col("status") != "resolved"))
    elif status:
        found = found.filter(pl.col("status") == status)
    if fmt == "table":
        emit(found.select(LISTED), fmt, title=f"{found.height} incident(s)")
    elif fmt == "csv":
        emit(_flat(found.drop("run_id", strict=False)), fmt)
    else:
        emit(found.drop("run_id", strict=False), fmt)


def _flat(found: pl.DataFrame) -> pl.DataFrame:
    """A CSV cell holds no list: the money at risk as text, one amount per currency ("540.00 EUR; 12.00 GBP")."""
    if "money" not in found.columns:
        return found
    text = [
        "; ".join(format_money(m["amount"], m["currency"] or None) for m in row or [])
        for row in found["money"].to_list()
    ]
    return found.with_columns(pl.Series("money", text, pl.String))


def register(group: click.Group) -> None:
    group.add_command(incidents_command)
