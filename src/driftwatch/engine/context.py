"""What a check sees while it runs: the latest snapshots, the configuration, and the feed it audits."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from polars.io.plugins import register_io_source

from driftwatch.config import Config, EngineSettings, Feed
from driftwatch.engine.checkfile import CheckSpec, CompareSpec
from driftwatch.engine.notes import Note
from driftwatch.engine.partitions import Partitioned
from driftwatch.entities import ENTITIES
from driftwatch.errors import UserError
from driftwatch.files import raise_if_refused
from driftwatch.locations import working
from driftwatch.scratch import scratch_folder
from driftwatch.store import SnapshotInfo, Store

_BATCH_ROWS = 122_880
# An audit reads each snapshot once or a few times, and the OS's page cache serves a re-read as well as
# DuckDB's own cache would: left at its default, that cache held 1.7 GiB of blocks already read by the end of
# a large retailer's audit (scale 3334), a third of the audit's peak memory.
AUDIT_DUCKDB_MEMORY = "1GB"


class CannotRun(Exception):
    """A check cannot run for a feed: a snapshot it reads holds no value in a column it needs, or
    snapshot_health distrusts it. The runner turns it into a note and goes on."""

    def __init__(self, source: str, entity: str, kind: str, column: str | None = None, detail: str = ""):
        super().__init__(f"{source} {entity}: {kind} {column or ''} {detail}".strip())
        self.source, self.entity, self.kind, self.column, self.detail = source, entity, kind, column, detail

    def note(self, check_id: str, target: str | None) -> Note:
        """What the check could not do for `target`, said once in the run."""
        return Note(check_id, target, self.source, self.entity, self.kind, self.column, self.detail)


@dataclass
class AuditContext:
    """The snapshots of one audit. A check reads a snapshot straight out of the store: a lazy frame whose
    scan asks DuckDB for only the columns (and applies only the filters) the check's plan needs, in Arrow
    batches, so no copy of a snapshot is made and the audit never holds every table in memory at once.
    (Copying each snapshot into scratch parquet first cost more than the reads it saved.) Frames several
    checks derive (event-derived orders, profiles per customer) are computed once into parquet files in a
    scratch folder; use the context as a `with` block so they are removed at the end. The scratch folder
    is private to the user, beside the store (see driftwatch.locations), and a killed audit's folder is
    removed when the next audit starts."""

    store: Store
    cfg: Config
    # Every comparison the audit will run, so the ones joining the same two views can share the join.
    compares: list[CompareSpec] = field(default_factory=list)
    # (source, entity) -> why snapshot_health distrusts that snapshot (it runs first and fills this in).
    distrusted: dict[tuple[str, str], str] = field(default_factory=dict)
    # The check and target running now: notes found while computing a frame several checks share are
    # replayed for each of them, so every check that lost something says so.
    current: tuple[str, str | None] | None = None
    _notes: dict[tuple, Note] = field(default_factory=dict)
    _collecting: list[list[Note]] = field(default_factory=list)
    _infos: dict[tuple[str, str], SnapshotInfo | None] = field(default_factory=dict)
    _memo: dict[tuple, Any] = field(default_factory=dict)
    _shared: dict[tuple, tuple[Any, int]] = field(default_factory=dict)
    # Where keyed comparisons run (default: the config's [engine]); see driftwatch.engine.partitions.
    engine: EngineSettings | None = None
    partitioned: Partitioned | None = None
    _workdir: Path | None = None
    _cleanup: ExitStack = field(default_factory=ExitStack)

    def __enter__(self) -> AuditContext:
        try:
            self._workdir = self._cleanup.enter_context(scratch_folder(working(self.store.path, "scratch"), "audit"))
            self._cleanup.enter_context(self.store.memory_limited(AUDIT_DUCKDB_MEMORY))
            engine = self.engine or self.cfg.engine
            if engine.splits:
                self.partitioned = Partitioned(engine, self._workdir, self._cleanup)
        except BaseException:
            # `with` calls no __exit__ when entering fails: undo what was entered while the store is open.
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._cleanup.close()
        self._workdir = self.partitioned = None

    def snapshot(self, source: str, entity: str) -> SnapshotInfo | None:
        if (source, entity) not in self._infos:
            self._infos[source, entity] = self.store.latest_snapshot(source, entity)
        return self._infos[source, entity]

    def frame(self, source: str, entity: str) -> pl.LazyFrame | None:
        """The latest snapshot's rows, or None when the source was never snapshotted for the entity. Only
        the columns the snapshot holds: a column no record fills is one the source does not have. Each
        collect reads the store anew (see `_scan`)."""
        info = self.snapshot(source, entity)
        if info is None:
            return None
        held = self.held(source, entity)
        return _scan(self.store, info, held)

    def held(self, source: str, entity: str) -> tuple[str, ...]:
        """The columns of a snapshot that at least one record fills (all of them in an empty snapshot)."""
        info = self.snapshot(source, entity)
        if info is None:
            return ()
        return self.memo(("held", source, entity), lambda: _held_columns(self.store, info))

    def note(self, note: Note) -> None:
        """Record a note once per run; a shared frame being computed keeps it to replay for later readers."""
        key = (note.check_id, note.target, note.source, note.entity, note.column, note.kind, note.detail)
        self._notes.setdefault(key, note)
        for collected in self._collecting:
            collected.append(note)

    def notes(self) -> list[Note]:
        return list(self._notes.values())

    def memo(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """A small result (distinct codes, a flag) computed once per audit, however many checks ask."""
        if key not in self._memo:
            self._collecting.append([])
            try:
                value = compute()
            finally:
                noted = self._collecting.pop()
            self._memo[key] = (value, noted)
            return value
        value, noted = self._memo[key]
        for note in noted:  # what computing it noted holds for this reader too
            if self.current is not None:
                note = dataclasses.replace(note, check_id=self.current[0], target=self.current[1])
            self.note(note)
        return value

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
                # Written once and read a few times, within minutes: neither compressed nor given statistics,
                # which would cost more CPU than the reads save (a 10M-row orders frame: 2.2 s written and
                # read back, against 3.4 s with lz4; twice the disk, for the length of the audit).
                frame.sink_parquet(path, compression="uncompressed", statistics=False)
            except Exception as exc:
                raise_if_refused(path.parent, exc)  # a full disk is the operator's to fix, not a bug
                raise
            return path

        path = self.memo(("materialized", *key), sink)
        return None if path is None else pl.scan_parquet(path)

    def distinct(self, source: str, entity: str, column: str) -> pl.LazyFrame:
        """The distinct values of one column of a snapshot, as a one-column frame. DuckDB finds them where
        the rows are: only the few distinct values leave the store."""

        def compute() -> pl.DataFrame:
            info = self.snapshot(source, entity)
            rows, params = self.store.snapshot_sql(info, [column])
            return self.store.frame(f"SELECT DISTINCT {column} FROM ({rows})", params).cast(
                {column: ENTITIES[entity].schema[column]}
            )

        return self.memo(("distinct", source, entity, column), compute).lazy()

    def has(self, source: str, entity: str, *columns: str) -> bool:
        """Whether the source was snapshotted for the entity and holds every one of `columns`."""
        held = self.held(source, entity)
        return bool(held) and all(c in held for c in columns)

    def captured_at(self, source: str, entity: str) -> datetime | None:
        info = self.snapshot(source, entity)
        # DuckDB hands back its own zone object; polars compares only identically named zones.
        return None if info is None else info.captured_at.astimezone(UTC)

    def snapshot_ids(self) -> list[str]:
        return sorted(info.snapshot_id for info in self._infos.values() if info is not None)


def _held_columns(store: Store, info: SnapshotInfo) -> tuple[str, ...]:
    keys = ENTITIES[info.entity].key
    if info.row_count == 0:
        return info.columns
    counts = ", ".join(f"count({c})" for c in info.columns)
    rows, params = store.snapshot_sql(info)
    filled = store.query(f"SELECT {counts} FROM ({rows})", params).fetchall()[0]
    return tuple(c for c, n in zip(info.columns, filled, strict=True) if n or c in keys)


def _scan(store: Store, info: SnapshotInfo, columns: tuple[str, ...]) -> pl.LazyFrame:
    """A snapshot as a lazy frame read from DuckDB in Arrow batches, only the columns a plan asks for.
    Each read has its own cursor, so several scans can run at once."""
    spec = ENTITIES[info.entity].schema
    schema = {c: spec[c] for c in columns}

    def batches(columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None, size: int | None):
        columns = columns or list(schema)
        limit = f" LIMIT {int(n_rows)}" if n_rows is not None else ""
        rows, params = store.snapshot_sql(info, columns)
        cursor = store.connection.cursor()
        try:
            for batch in cursor.sql(f"SELECT * FROM ({rows}){limit}", params=params).to_arrow_reader(
                size or _BATCH_ROWS
            ):
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

    def frame(
        self, source: str, entity: str, *, needs: tuple[str, ...] = (), defaults: dict[str, Any] | None = None
    ) -> pl.LazyFrame | None:
        """A source's snapshot of an entity as this check reads it, or None when it was not snapshotted.

        `needs` declares the columns the check cannot do without: if the snapshot holds none of a column's
        values, the check cannot run for this feed (CannotRun, which the runner notes). `defaults` declares
        what an absent column counts as (safety_stock: 0); the check runs, and a note says so. A snapshot
        snapshot_health distrusts is not read at all."""
        if entity not in self.check.reads:  # `reads` is what a skipped or held-back check is said to read
            raise UserError(f"{self.check.path}: reads: the check reads {entity}, which `reads` does not name")
        frame = self.ctx.frame(source, entity)
        if frame is None:
            return None
        reason = self.ctx.distrusted.get((source, entity))
        if reason is not None:
            raise CannotRun(source, entity, "held_back", detail=reason)
        held = self.ctx.held(source, entity)
        for column in needs:
            if column not in held:
                raise CannotRun(source, entity, "skipped", column)
        schema = ENTITIES[entity].schema
        for column, value in (defaults or {}).items():
            if column not in held:
                self.note(source, entity, "degraded", column, f"it counts as {value}")
                frame = frame.with_columns(pl.lit(value, schema[column]).alias(column))
        return frame

    def source_frame(
        self, entity: str, *, needs: tuple[str, ...] = (), defaults: dict[str, Any] | None = None
    ) -> pl.LazyFrame | None:
        return self.frame(self.source, entity, needs=needs, defaults=defaults) if self.source else None

    def target_frame(
        self, entity: str, *, needs: tuple[str, ...] = (), defaults: dict[str, Any] | None = None
    ) -> pl.LazyFrame | None:
        """The target's rows, only for entities the feed says it receives."""
        if self.target is None or not self.feeds_entity(entity):
            return None
        return self.frame(self.target, entity, needs=needs, defaults=defaults)

    def holds(
        self, source: str | None, entity: str, column: str, *, compared: str | None = None, instead: str | None = None
    ) -> bool:
        """Whether a snapshot holds a column. When it was snapshotted but does not, a note says what the
        check does without it: `instead` (what it does instead), or leaves `compared` (default: the column)
        out."""
        if source is None or self.ctx.snapshot(source, entity) is None:
            return False
        if column in self.ctx.held(source, entity):
            return True
        if instead is not None:
            self.note(source, entity, "degraded", column, instead)
        else:
            self.note(source, entity, "not_compared", column, compared or "")
        return False

    def note(self, source: str, entity: str, kind: str, column: str | None = None, detail: str = "") -> None:
        self.ctx.note(Note(self.check.id, self.target, source, entity, kind, column, detail))
