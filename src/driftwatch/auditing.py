"""An audit as `driftwatch audit` and `driftwatch run` both run it: the engine's findings, then what follows
from them (incidents grouped by probable cause, sync latency measured from the snapshot history)."""

from __future__ import annotations

from driftwatch.config import Config, EngineSettings
from driftwatch.engine import RunResult, load_catalogue
from driftwatch.engine import audit as run_checks
from driftwatch.engine.context import AUDIT_DUCKDB_MEMORY
from driftwatch.incidents import record_incidents
from driftwatch.latency import record_latency
from driftwatch.store import Store


def audit(
    store: Store, cfg: Config, *, checks: list[str] | None = None, engine: EngineSettings | None = None
) -> RunResult:
    """Run the checks (default: all), store the findings as a new run, and follow up on them. `engine`
    (default: the config's [engine]) says where keyed comparisons run."""
    result = run_checks(store, cfg, checks=checks, engine=engine)
    follow_up(store, cfg, result.run_id)
    return result


def follow_up(store: Store, cfg: Config, run_id: str) -> None:
    """What follows from a stored run's findings: its incidents and the sync latency it measured."""
    owners = {check_id: spec.owner for check_id, spec in load_catalogue(cfg).items()}
    # Grouping reads the run's snapshots again: with DuckDB's cache capped as in the checks, what was read
    # for one target's records does not stay cached for the rest of the run.
    with store.memory_limited(AUDIT_DUCKDB_MEMORY):
        record_incidents(store, cfg, run_id, owners)
        record_latency(store, cfg, run_id)
