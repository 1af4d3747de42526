"""Figures a reader needs from one run's findings: what is open, how bad, how much money, and the trend.

Everything here works on plain polars frames in the engine's findings shape, so the report and the alerts
agree on what "open", "worse" and "money at risk" mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import polars as pl

from driftwatch.engine.findings import OPEN_STATUSES, SEVERITIES, STATUSES, severity_rank

RUNS_SCHEMA = {"run_id": pl.String, "started_at": pl.Datetime("us", "UTC")}
COUNTS_SCHEMA = {
    "run_id": pl.String,
    "check_id": pl.String,
    "target": pl.String,
    "severity": pl.String,
    "findings": pl.Int64,
}


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    started_at: datetime
    trusted: bool
    checks: tuple[str, ...] | None = None  # the checks that ran (None: every check)


def open_findings(findings: pl.DataFrame) -> pl.DataFrame:
    return findings.filter(pl.col("status").is_in(OPEN_STATUSES))


def by_attention(findings: pl.DataFrame) -> pl.DataFrame:
    """Most urgent first: severity, then fresh drift before old, then the most money, then a stable order."""
    status_rank = pl.col("status").replace_strict({"new": 0, "regressed": 0, "ongoing": 1}, default=2)
    return findings.sort(
        [severity_rank(), status_rank, pl.col("impact").abs(), "check_id", "target", "key", "field"],
        descending=[True, False, True, False, False, False, False],
        nulls_last=True,
    )


def money_at_risk(findings: pl.DataFrame) -> dict[str, Decimal]:
    """Total impact of the open findings, per currency (amounts in different currencies never add up)."""
    rows = (
        open_findings(findings)
        .filter(pl.col("impact").is_not_null())
        .group_by(pl.col("currency").fill_null(""))
        .agg(pl.col("impact").sum())
        .sort("currency")
        .iter_rows()
    )
    return {currency: Decimal(amount) for currency, amount in rows}


def status_counts(findings: pl.DataFrame) -> dict[str, int]:
    counts = dict(findings.group_by("status").len().iter_rows())
    return {status: counts.get(status, 0) for status in STATUSES}


def severity_counts(findings: pl.DataFrame) -> dict[str, int]:
    counts = dict(open_findings(findings).group_by("severity").len().iter_rows())
    return {severity: counts.get(severity, 0) for severity in SEVERITIES}


def current_counts(run: RunInfo, findings: pl.DataFrame) -> pl.DataFrame:
    """This run's open findings per check, target and severity, in the history shape."""
    counts = open_findings(findings).group_by("check_id", "target", "severity").agg(pl.len().alias("findings"))
    return counts.with_columns(pl.lit(run.run_id).alias("run_id")).select(list(COUNTS_SCHEMA)).cast(COUNTS_SCHEMA)


@dataclass(frozen=True)
class History:
    """Earlier runs (run_id, started_at) and their open findings per check, target and severity."""

    runs: pl.DataFrame
    counts: pl.DataFrame

    @classmethod
    def empty(cls) -> History:
        return cls(pl.DataFrame(schema=RUNS_SCHEMA), pl.DataFrame(schema=COUNTS_SCHEMA))

    def window(self, run: RunInfo, findings: pl.DataFrame, last: int) -> History:
        """The `last` runs up to and including `run`, with this run's counts taken from its findings.

        Later runs are left out, so a report re-rendered for an old run shows the trend as it was then.
        """
        this_run = pl.DataFrame({"run_id": [run.run_id], "started_at": [run.started_at]}, schema=RUNS_SCHEMA)
        runs = (
            self.runs.cast(RUNS_SCHEMA)
            .filter((pl.col("run_id") != run.run_id) & (pl.col("started_at") <= run.started_at))
            .vstack(this_run)
            .sort("started_at")
            .tail(last)
        )
        earlier = self.counts.cast(COUNTS_SCHEMA).filter(
            pl.col("run_id").is_in(runs["run_id"].to_list()) & (pl.col("run_id") != run.run_id)
        )
        return History(runs, pl.concat([earlier, current_counts(run, findings)]))

    def series(self, by: list[str]) -> pl.DataFrame:
        """Open findings per run (in run order, zero-filled) for every group in `by`: one list per group."""
        groups = self.counts.select(by).unique()
        grid = groups.join(self.runs.select("run_id", "started_at"), how="cross")
        totals = self.counts.group_by([*by, "run_id"]).agg(pl.col("findings").sum())
        return (
            grid.join(totals, on=[*by, "run_id"], how="left")
            .with_columns(pl.col("findings").fill_null(0))
            .sort("started_at")
            .group_by(by, maintain_order=True)
            .agg(pl.col("findings"))
        )
