"""Snapshot health: a snapshot that would make every other check wrong."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from driftwatch.engine.context import Scope
from driftwatch.engine.rules._base import rule
from driftwatch.entities import MONEY


@rule
def snapshot_health(scope: Scope) -> pl.LazyFrame | None:
    """Snapshots that would make every other check wrong: far smaller than the previous one, columns lost,
    an entity missing from a source's latest drop, or many rows quarantined. Any finding here marks the
    run untrusted, and repair refuses to act on it. A snapshot found truncated or mostly quarantined is
    distrusted: the other checks do not read it (each says so in a note) instead of reporting every
    record it lost."""
    rows = []
    latest = scope.ctx.store.latest_snapshots().to_dicts()
    newest = {}
    for snap in latest:
        newest[snap["source"]] = max(newest.get(snap["source"], snap["captured_at"]), snap["captured_at"])
    for snap in latest:
        rows.extend(_health_problems(scope, snap, newest[snap["source"]]))
    if not rows:
        return None
    frame = pl.LazyFrame(
        rows,
        schema={
            "source": pl.String,
            "entity": pl.String,
            "field": pl.String,
            "expected": pl.String,
            "actual": pl.String,
            "message": pl.String,
        },
    )
    return frame.select(
        pl.lit(scope.check.id).alias("check_id"),
        pl.lit(scope.option("severity")).alias("severity"),
        "source",
        pl.col("source").alias("target"),
        "entity",
        pl.col("entity").alias("key"),
        "field",
        "expected",
        "actual",
        pl.lit(None, MONEY).alias("impact"),
        pl.lit(None, pl.String).alias("currency"),
        "message",
        pl.lit("re-export the snapshot").alias("repair_action"),
    )


def _health_problems(scope: Scope, snap: dict, source_newest: datetime) -> list[dict]:
    source, entity, found = snap["source"], snap["entity"], []
    ctx = scope.ctx

    def problem(field: str, expected: str, actual: str, message: str) -> None:
        found.append(
            {
                "source": source,
                "entity": entity,
                "field": field,
                "expected": expected,
                "actual": actual,
                "message": f"{source} {entity}: {message}",
            }
        )

    info, previous = ctx.snapshot(source, entity), ctx.store.previous_snapshot(source, entity)
    ratio = float(scope.option("min_row_ratio"))
    if previous is not None and info.row_count < ratio * previous.row_count:
        ctx.distrusted[source, entity] = f"{info.row_count} rows against {previous.row_count} last time"
        problem(
            "row_count",
            f">= {ratio * previous.row_count:.0f}",
            str(info.row_count),
            f"{info.row_count} rows against {previous.row_count} last time: a truncated export?",
        )
    if previous is not None and (lost := [c for c in previous.columns if c not in info.columns]):
        problem(
            "columns",
            ", ".join(previous.columns),
            ", ".join(info.columns),
            f"columns {', '.join(lost)} are gone since the previous snapshot (schema drift)",
        )
    if info.captured_at < source_newest - scope.hours("missing_after_hours"):
        problem(
            "captured_at",
            f"{source_newest:%Y-%m-%dT%H:%M:%SZ}",
            f"{info.captured_at:%Y-%m-%dT%H:%M:%SZ}",
            "missing from the latest drop: checks would compare an old copy",
        )
    total = info.row_count + info.quarantined_rows
    limit = float(scope.option("max_quarantined_ratio"))
    if total and info.quarantined_rows > limit * total:
        ctx.distrusted[source, entity] = f"{info.quarantined_rows} of {total} rows quarantined"
        problem(
            "quarantined_rows",
            f"<= {limit * total:.0f}",
            str(info.quarantined_rows),
            f"{info.quarantined_rows} of {total} rows were quarantined as invalid",
        )
    return found
