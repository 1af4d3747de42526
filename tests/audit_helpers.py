"""Small hand-built stores for rule tests: text columns in, coerced like any drop, audited for real."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from driftwatch.config import parse_config
from driftwatch.engine import audit
from driftwatch.normalize import coerce
from driftwatch.store import IncomingSnapshot, Store

CAPTURED = datetime(2026, 11, 23, 2, tzinfo=UTC)
FINDING = ["check_id", "target", "key", "field"]


def snap(source: str, entity: str, captured_at: datetime = CAPTURED, **columns: list[Any]) -> IncomingSnapshot:
    """A snapshot from text columns, parsed the way a file drop is; every row must be valid."""
    frame = pl.DataFrame({name: [None if v is None else str(v) for v in values] for name, values in columns.items()})
    coerced = coerce(frame, entity, origin=f"{source}/{entity}")
    assert coerced.bad.height == 0, coerced.bad
    return IncomingSnapshot.from_coerced(source, entity, captured_at, coerced)


def run_audit(path: Path, snapshots: list[IncomingSnapshot], config: dict[str, Any], checks: list[str]) -> pl.DataFrame:
    """The findings of `checks` (snapshot_health's left out) over a fresh store holding `snapshots`."""
    path.mkdir(parents=True, exist_ok=True)
    with Store(path / "audit.duckdb") as store:
        store.ingest(snapshots)
        found = audit(store, parse_config(config), checks=checks).findings
    return found.filter(pl.col("check_id") != "snapshot_health")


def keys(found: pl.DataFrame, check: str | None = None) -> set[tuple]:
    """(check, target, key, field) of every finding, or (target, key, field) of one check's."""
    if check is None:
        return set(found.select(FINDING).rows())
    return set(found.filter(pl.col("check_id") == check).select(FINDING[1:]).rows())
