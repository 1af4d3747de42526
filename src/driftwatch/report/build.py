"""From the store to a report file: the run, its findings, the trend before it, and the `[report]` settings.

```toml
[report]
out_dir = "driftwatch-reports"   # where reports are written, relative to this file
mask_emails = true                # false shows email addresses in reports, exports and alerts
link_base = "https://intranet.example/driftwatch/"   # where out_dir is published: alerts link here + file name
max_table_rows = 5000             # the full table keeps the most urgent rows; exports keep all
```
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import polars as pl

from driftwatch.config import Config
from driftwatch.engine import findings as run_findings
from driftwatch.engine import latest_run_id, run_info, run_notes
from driftwatch.errors import UserError
from driftwatch.incidents import incident_members, run_incidents
from driftwatch.incidents.age import aging, open_since, run_time, spells
from driftwatch.latency import latency_history, run_latency
from driftwatch.report.html import TREND_RUNS, ReportOptions, write_report
from driftwatch.report.sections import FollowUp
from driftwatch.report.summary import OPEN_STATUSES, History, RunInfo
from driftwatch.store import Store

_KEYS = {"out_dir", "mask_emails", "link_base", "max_table_rows"}


@dataclass(frozen=True)
class ReportSettings:
    out_dir: Path = Path("driftwatch-reports")
    mask_emails: bool = True
    link_base: str | None = None
    max_table_rows: int = 5000

    def path_for(self, run_id: str) -> Path:
        return self.out_dir / f"driftwatch-{run_id}.html"

    def link_for(self, path: Path) -> str:
        """What a digest points its readers at: the published copy, or, when reports are not published, the
        file and the machine that holds it (a file:// link opens nothing on a reader's own machine)."""
        if self.link_base:
            return self.link_base.rstrip("/") + "/" + path.name
        return f"{path.resolve()} on {socket.gethostname()} (set [report] link_base to link it)"

    @property
    def options(self) -> ReportOptions:
        return ReportOptions(mask_emails=self.mask_emails, max_table_rows=self.max_table_rows)


def report_settings(cfg: Config) -> ReportSettings:
    section = cfg.section("report")
    unknown = sorted(set(section) - _KEYS)
    if unknown:
        raise UserError(f"[report]: unknown setting(s) {', '.join(unknown)}; expected {', '.join(sorted(_KEYS))}")
    base = cfg.path.parent if cfg.path else Path()
    mask = section.get("mask_emails", True)
    rows = section.get("max_table_rows", 5000)
    if not isinstance(mask, bool):
        raise UserError("[report] mask_emails: expected true or false")
    if not isinstance(rows, int) or rows < 1:
        raise UserError("[report] max_table_rows: expected a whole number of at least 1")
    link_base = section.get("link_base")
    if link_base is not None and not _is_shared_address(link_base):
        raise UserError(
            f"[report] link_base: {link_base!r} is not an address readers can open; give the URL where "
            "out_dir is published, e.g. https://intranet.example/driftwatch/"
        )
    return ReportSettings(
        out_dir=base / section.get("out_dir", "driftwatch-reports"),
        mask_emails=mask,
        link_base=link_base,
        max_table_rows=rows,
    )


def _is_shared_address(value: object) -> bool:
    """An absolute URL naming a host (https://intranet/…, file://fileserver/share/…), not a local path."""
    if not isinstance(value, str):
        return False
    parts = urlsplit(value.strip())
    return bool(parts.scheme and parts.netloc)


def load_run(store: Store, run_id: str | None = None, *, muted: bool = False) -> tuple[RunInfo, pl.DataFrame]:
    """A stored run and its findings (muted findings left out unless asked for: muting means nobody wants
    to see them)."""
    run_id = run_id or latest_run_id(store)
    info = run_info(store, run_id) if run_id else None
    if info is None:
        raise UserError(f"no audit run {run_id!r} in {store.path}" if run_id else "no audit has run yet")
    found = run_findings(store, run_id)
    if not muted:
        found = found.filter(~pl.col("muted"))
    return RunInfo(info["run_id"], info["started_at"], info["trusted"], tuple(info["checks"])), found


def load_history(store: Store, run: RunInfo, last: int = TREND_RUNS) -> History:
    """Open findings per check, target and severity for the runs up to `run`."""
    runs = store.frame(
        "SELECT run_id, started_at FROM audit_runs WHERE started_at <= ? ORDER BY started_at DESC LIMIT ?",
        [run.started_at, last],
    )
    counts = store.frame(
        "SELECT run_id, check_id, target, severity, count(*) AS findings FROM findings "
        "WHERE status IN (SELECT unnest(?)) AND run_id IN (SELECT unnest(?)) "
        "GROUP BY ALL",
        [list(OPEN_STATUSES), runs["run_id"].to_list()],
    )
    return History(runs, counts)


def build_report(store: Store, settings: ReportSettings, run_id: str | None = None, out: Path | None = None) -> Path:
    """Write the HTML report of a run (default: the latest) and return its path."""
    run, found = load_run(store, run_id)
    found = found.join(open_since(store, run.run_id), on="fingerprint", how="left")
    path = out or settings.path_for(run.run_id)
    notes = run_notes(store, run.run_id)["message"].to_list()
    follow_up = load_follow_up(store, run)
    return write_report(path, run, found, load_history(store, run), settings.options, notes, follow_up)


def load_follow_up(store: Store, run: RunInfo) -> FollowUp:
    """The run's incidents, sync latency (with the trend before it) and how its drift has aged."""
    return FollowUp(
        incidents=run_incidents(store, run.run_id),
        members=incident_members(store, run.run_id),
        latency=run_latency(store, run.run_id),
        latency_trend=latency_history(store, run.run_id, TREND_RUNS),
        aging=aging(spells(store, run.run_id)),
        as_of=run_time(store, run.run_id),
    )
