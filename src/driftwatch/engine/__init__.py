"""The audit engine: declarative checks (checks/*.toml) run as Polars lazy frames over the latest snapshots.

from driftwatch.engine import audit, findings
result = audit(store, cfg)                  # RunResult(run_id, findings, trusted, counts)
findings(store, status="new")               # the latest run's new findings
run_notes(store, result.run_id)             # what the run could not check (info, never findings)
"""

from driftwatch.engine.findings import RunResult, acknowledge, findings, latest_run_id, run_info
from driftwatch.engine.notes import run_notes
from driftwatch.engine.runner import audit, load_catalogue

__all__ = [
    "RunResult",
    "acknowledge",
    "audit",
    "findings",
    "latest_run_id",
    "load_catalogue",
    "run_info",
    "run_notes",
]
