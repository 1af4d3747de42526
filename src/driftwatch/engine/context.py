"""What a check sees while it runs: the latest snapshots, the configuration, and the feed it audits."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from polars.io.plugins import register_io_source

from driftwatch.config import Config, Feed
from driftwatch.engine.checkfile import CheckSpec, CompareSpec
from driftwatch.entities import ENTITIES
from driftwatch.files import raise_if_refused
from driftwatch.locations import working
from driftwatch.scratch import scratch_folder
from driftwatch.store import SnapshotInfo, Store

_BATCH_ROWS = 122_880


@dataclass
class AuditContext:
    """The snapshots of one audit. Each snapshot is streamed out of DuckDB once, batch by batch, into a
    parquet file in a scratch directory, and every check scans that file: checks read the same snapshots
    many times, and a parquet scan reads only the columns and row groups a plan asks for, in parallel,
    where a DuckDB read goes through Python batch by batch. The audit never holds every table in memory
    at once. Frames several checks derive (event-derived orders, profiles per customer) are computed once
    into parquet files the same way; use the context as a `with` block so they are removed at the end.
    The scratch folder is private to the user, beside the store (see driftwatch.locations), and a killed
    audit's folder is removed when the next audit starts."""

    store: Store
    cfg: Config
    # Every comparison the audit will run, so the ones joining the same two views can share the join.
    compares: list[CompareSpec] = field(default_factory=list)
    _infos: dict[tuple[str, str], SnapshotInfo | None] = field(default_factory=dict)
    _memo: dict[tuple, Any] = field(default_factory=dict)
    _shared: dict[tuple, tuple[Any, int]] = field(default_factory=dict)
    _workdir: Path | None = None
    _cleanup: ExitStack = field(default_factory=ExitStack)

    def __enter__(self) -> AuditContext:
        self._workdir = self._cleanup.enter_context(scratch_folder(working(self.store.path, "scratch"), "audit"))
        return self

    def __exit__(self, *exc: object) -> None:
        self._cleanup.close()
        self._workdir = None

    def snapshot(self, source: str, entity: str) -> SnapshotInfo | None:
        if (source, entity) not in self._infos:
            self._infos[source, entity] = self.store.latest_snapshot(source, entity)
        return self._infos[source, entity]

    def frame(self, source: str, entity: str) -> pl.LazyFrame | None:
        """The latest snapshot's rows, or None when the source was never snapshotted for the entity."""
        info = self.snapshot(source, entity)
        if info is None:
            return None
        return self.materialize(("snapshot", source, entity), lambda: _scan(self.store, info))

    def memo(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """A small result (distinct codes, a flag) computed once per audit, however many checks ask."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def shared(self, key: tuple, compute: Callable[[], Any], uses: int) -> Any:
        """A result `uses` consumers take in turn (the rows of a join several checks share): computed for
        the first, forgotten after the last, so it does not stay in memory for the rest of the audit."""
        value, taken = self._shared.pop(key, None) or (compute(), 0)
        if taken + 1 < uses:
            self._shared[key] = (value, taken + 1)
        return value

    def materialize(self, key: tuple, build: Callable[[], pl.LazyFrame | None]) -> pl.LazyFrame | None:
        """A derived frame several checks read (event-derived orders, profiles per customer), computed once
        into a parquet file beside the snapshots and scanned from there."""

        def sink() -> Path | None:
            frame = build()
            if frame is None:
                return None
            if self._workdir is None:
                raise RuntimeError("AuditContext is used outside its `with` block")
            path = self._workdir / f"derived-{len(self._memo)}.parquet"
            try:
                frame.sink_parquet(path, compression="lz4")  # written once, read a few times: fast beats small
            except Exception as exc:
                raise_if_refused(path.parent, exc)  # a full disk is the operator's to fix, not a bug
                raise
            return path

        path = self.memo(("materialized", *key), sink)
        return None if path is None else pl.scan_parquet(path)

    def distinct(self, source: str, entity: str, column: str) -> pl.LazyFrame:
        """The distinct values of one column of a snapshot, as a one-column frame."""
        values = self.memo(
            ("distinct", source, entity, column),
            lambda: self.frame(source, entity).select(pl.col(column).unique()).collect(),
        )
        return values.lazy()

    def has(self, source: str, entity: str, *columns: str) -> bool:
        info = self.snapshot(source, entity)
        return info is not None and all(c in info.columns for c in columns)

    def captured_at(self, source: str, entity: str) -> datetime | None:
        info = self.snapshot(source, entity)
        # DuckDB hands back its own zone object; polars compares only identically named zones.
        return None if info is None else info.captured_at.astimezone(UTC)

    def snapshot_ids(self) -> list[str]:
        return sorted(info.snapshot_id for info in self._infos.values() if info is not None)


def _scan(store: Store, info: SnapshotInfo) -> pl.LazyFrame:
    """A snapshot as a lazy frame read from DuckDB in Arrow batches, only the columns a plan asks for.
    Each read has its own cursor, so several scans can run at once."""
    spec = ENTITIES[info.entity].schema
    schema = {c: spec[c] for c in info.columns}

    def batches(columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None, size: int | None):
        columns = columns or list(schema)
        limit = f" LIMIT {int(n_rows)}" if n_rows is not None else ""
        sql = f"SELECT {', '.join(columns)} FROM snap_{info.entity} WHERE snapshot_id = ?{limit}"
        cursor = store.connection.cursor()
        try:
            for batch in cursor.sql(sql, params=[info.snapshot_id]).to_arrow_reader(size or _BATCH_ROWS):
                frame = pl.from_arrow(batch).cast({c: schema[c] for c in columns})
                yield frame if predicate is None else frame.filter(predicate)
        finally:
            cursor.close()

    return register_io_source(batches, schema=schema, is_pure=True)


@dataclass(frozen=True)
class Scope:
    """One check applied to one feed (or to one source, or once per run)."""

    ctx: AuditContext
    check: CheckSpec
    source: str | None
    target: str | None
    feed: Feed | None
    options: dict[str, Any]

    @property
    def cfg(self) -> Config:
        return self.ctx.cfg

    @property
    def marketplace(self) -> bool:
        return self.target is not None and self.cfg.is_marketplace(self.target)

    def option(self, name: str) -> Any:
        if name not in self.options:
            raise KeyError(f"check {self.check.id} ({self.check.path}) has no option {name!r}")
        return self.options[name]

    def hours(self, name: str) -> timedelta:
        return timedelta(hours=float(self.option(name)))

    def channels(self) -> tuple[str, ...] | None:
        """The ERP channels whose orders the target receives; None means every non-marketplace channel."""
        if self.feed is not None and self.feed.channels is not None:
            return self.feed.channels
        return (self.target,) if self.marketplace else None

    def feeds_entity(self, entity: str) -> bool:
        return self.feed is not None and entity in self.feed.entities

    def source_frame(self, entity: str) -> pl.LazyFrame | None:
        return self.ctx.frame(self.source, entity) if self.source else None

    def target_frame(self, entity: str) -> pl.LazyFrame | None:
        """The target's rows, only for entities the feed says it receives."""
        if self.target is None or not self.feeds_entity(entity):
            return None
        return self.ctx.frame(self.target, entity)
