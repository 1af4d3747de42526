"""Small hand-built snapshots audited in a real store: what the engine tests share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from driftwatch.config import parse_config
from driftwatch.engine import audit
from driftwatch.entities import ENTITIES
from driftwatch.store import IncomingSnapshot, Store

CAPTURED = datetime(2026, 11, 23, 2, tzinfo=UTC)


def snapshot(source: str, entity: str, captured: datetime = CAPTURED, **columns) -> IncomingSnapshot:
    """A snapshot of exactly the given columns, typed as the entity says."""
    schema = ENTITIES[entity].schema
    frame = pl.DataFrame(columns).cast({c: schema[c] for c in columns})
    return IncomingSnapshot(source, entity, captured, frame)


@dataclass(frozen=True)
class Audited:
    findings: pl.DataFrame
    notes: pl.DataFrame
    trusted: bool

    def rows(self, *columns: str) -> list[tuple]:
        columns = columns or ("check_id", "target", "key", "field", "expected", "actual")
        return sorted(self.findings.select(columns).rows())

    def messages(self) -> list[str]:
        return self.notes["message"].to_list()


def audited(
    tmp_path: Path,
    snapshots: list[IncomingSnapshot],
    feeds: list[dict],
    checks: list[str] | None = None,
    **config,
) -> Audited:
    """Load `snapshots` into a fresh store and audit them with `feeds` (and any other config tables)."""
    with Store(tmp_path / f"audit-{len(list(tmp_path.glob('*.duckdb')))}.duckdb") as store:
        store.ingest(snapshots)
        result = audit(store, parse_config({"feeds": feeds, **config}), checks=checks)
    live = result.findings.filter(pl.col("status") != "resolved")
    return Audited(live, result.notes, result.trusted)
