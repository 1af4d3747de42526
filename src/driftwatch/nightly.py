"""The nightly job: pull every source, audit, write the report, send the alerts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from driftwatch.alerts.run import AlertOutcome, alert_run
from driftwatch.auditing import audit
from driftwatch.config import Config
from driftwatch.engine import RunResult
from driftwatch.exitcodes import ExitCode
from driftwatch.pull import PullResult, pull_sources
from driftwatch.report.build import build_report, report_settings
from driftwatch.severity import fails
from driftwatch.store import Store


@dataclass(frozen=True)
class NightlyResult:
    pulls: list[PullResult]
    run: RunResult
    report: Path
    alerts: AlertOutcome

    @property
    def failed_pulls(self) -> list[PullResult]:
        return [p for p in self.pulls if p.error]

    def exit_code(self, fail_on: str) -> int:
        """3 when a source or an alert delivery failed (the job is incomplete), else 1 on drift, else 0."""
        if self.failed_pulls or self.alerts.failed:
            return ExitCode.INCOMPLETE
        return ExitCode.DRIFT if fails(self.run.counts, fail_on) else ExitCode.CLEAN


def run_nightly(
    store: Store,
    cfg: Config,
    *,
    env: Mapping[str, str] = os.environ,
    checkpoint_dir: Path | None = None,
    send_alerts: bool = True,
    progress: bool | None = None,
    full: bool = False,
) -> NightlyResult:
    """A failed pull does not stop the job: the audit runs on what is stored, and snapshot_health and
    stock_staleness say what is missing or old. Pulls are incremental where they can be (`full` forces
    whole pulls; see driftwatch.pull)."""
    pulls = pull_sources(store, cfg, env=env, checkpoint_dir=checkpoint_dir, progress=progress, full=full)
    result = audit(store, cfg)
    report = build_report(store, report_settings(cfg), result.run_id)
    alerts = alert_run(store, cfg, run_id=result.run_id, send=send_alerts)
    return NightlyResult(pulls, result, report, alerts)
