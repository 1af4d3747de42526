"""What a check sees while it runs: the latest snapshots, the configuration, and the feed it audits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from driftwatch.config import Config, Feed
from driftwatch.engine.checkfile import CheckSpec
from driftwatch.store import SnapshotInfo, Store


@dataclass
class AuditContext:
    """The snapshots of one audit: each (source, entity) is read once and shared by every check."""

    store: Store
    cfg: Config
    _frames: dict[tuple[str, str], pl.DataFrame | None] = field(default_factory=dict)
    _infos: dict[tuple[str, str], SnapshotInfo | None] = field(default_factory=dict)

    def snapshot(self, source: str, entity: str) -> SnapshotInfo | None:
        if (source, entity) not in self._infos:
            self._infos[source, entity] = self.store.latest_snapshot(source, entity)
        return self._infos[source, entity]

    def frame(self, source: str, entity: str) -> pl.LazyFrame | None:
        """The latest snapshot's rows, or None when the source was never snapshotted for the entity."""
        if (source, entity) not in self._frames:
            info = self.snapshot(source, entity)
            self._frames[source, entity] = None if info is None else self.store.rows(info)
        found = self._frames[source, entity]
        return None if found is None else found.lazy()

    def has(self, source: str, entity: str, *columns: str) -> bool:
        info = self.snapshot(source, entity)
        return info is not None and all(c in info.columns for c in columns)

    def captured_at(self, source: str, entity: str) -> datetime | None:
        info = self.snapshot(source, entity)
        # DuckDB hands back its own zone object; polars compares only identically named zones.
        return None if info is None else info.captured_at.astimezone(UTC)

    def snapshot_ids(self) -> list[str]:
        return sorted(info.snapshot_id for info in self._infos.values() if info is not None)


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
        return self.target in self.cfg.audit.marketplaces

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
