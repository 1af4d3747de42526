"""The library as a scheduler calls it: what the `driftwatch` commands do, as functions.

    import driftwatch

    cfg = driftwatch.load_config("/etc/driftwatch/driftwatch.toml")
    with driftwatch.Store(cfg.store_path) as store:
        driftwatch.load(store, "/data/drops/2026-11-23", cfg)      # or driftwatch pull's connectors
        result = driftwatch.audit(store, cfg)
        driftwatch.write_report(store, cfg)                          # the HTML report's path
        new = driftwatch.findings(store, status="new")               # a Polars frame
        if driftwatch.drifted(result, cfg):                          # audit.fail_on decides
            ...

Every function raises `UserError` (bad configuration or input: its message is one line meant for a
person) or `DataError`; anything else is a defect.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from driftwatch import auditing, engine, payouts
from driftwatch.config import Config
from driftwatch.engine import RunResult
from driftwatch.filedrop import LoadReport, load_directory
from driftwatch.payouts import Period, Reconciliation
from driftwatch.report.build import build_report, report_settings
from driftwatch.severity import fails
from driftwatch.store import Store


def load(store: Store, directory: Path | str, cfg: Config) -> LoadReport:
    """Store a file drop (`DIR/<source>/<entity>.csv|parquet|jsonl`) as snapshots, in one transaction;
    rows that fail validation are quarantined (`LoadReport.quarantine`), the rest load."""
    return load_directory(store, directory, cfg)


def audit(store: Store, cfg: Config, *, checks: list[str] | None = None) -> RunResult:
    """Run the checks (default: all) over the latest snapshots, store the findings as a new run, and
    follow up on them (incidents, sync latency), as `driftwatch audit` does."""
    return auditing.audit(store, cfg, checks=checks)


def findings(store: Store, run_id: str | None = None, status: str | None = None) -> pl.DataFrame:
    """A run's findings (default: the latest run), optionally only those of one lifecycle status
    (new, ongoing, regressed, resolved)."""
    return engine.findings(store, run_id, status)


def write_report(store: Store, cfg: Config, run_id: str | None = None, out: Path | str | None = None) -> Path:
    """Write the self-contained HTML report of a run (default: the latest) where `[report]` says, or to
    `out`, and return its path."""
    return build_report(store, report_settings(cfg), run_id, Path(out) if out is not None else None)


def reconcile(store: Store, cfg: Config, period: Period | str, marketplace: str | None = None) -> Reconciliation:
    """The month-end reconciliation of a marketplace's payouts for `period` ("2026-10")."""
    return payouts.reconcile(store, cfg, period, marketplace)


def drifted(result: RunResult, cfg: Config) -> bool:
    """Whether a run found open drift at or above `audit.fail_on`: what `driftwatch audit` exits 1 on."""
    return fails(result.counts, cfg.audit.fail_on)
