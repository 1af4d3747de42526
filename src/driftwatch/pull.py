"""Pulling live sources into the store, exactly as a file drop of the same data would be stored."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from driftwatch.config import Config, unknown_source
from driftwatch.connectors.base import RECORD
from driftwatch.entities import ENTITIES
from driftwatch.errors import UserError
from driftwatch.incremental import (
    FULL_EVERY,
    MAX_PARTS,
    OVERLAP,
    Kept,
    Memory,
    PullPlan,
    fingerprint,
    merge_parsed,
    parse_duration,
    plan_pull,
)
from driftwatch.normalize import Parsed, finish, parse_frame
from driftwatch.progress import Board, Step
from driftwatch.store import IncomingSnapshot, IngestResult, Store

if TYPE_CHECKING:
    from driftwatch.connectors.base import Connector, Pulled

CONNECTION_KEYS = ("base_url", "path", "sftp_url")
# Settings that decide when to pull in full, not what a pull gives: changing them keeps the kept records.
UNRECORDED = frozenset({"full_every", "overlap"})


@dataclass(frozen=True)
class PullResult:
    source: str
    entity: str
    rows: int
    quarantined: int
    loaded: bool
    error: str | None = None
    kind: str = ""  # "full" or "incremental"
    detail: str = ""  # why a pull was full; what an incremental pull read


def pullable_sources(cfg: Config) -> list[str]:
    """The sources configured with a way to reach them (an API base URL, an export folder or an SFTP drop)."""
    return [name for name, table in cfg.section("sources").items() if any(k in table for k in CONNECTION_KEYS)]


def pull_sources(
    store: Store,
    cfg: Config,
    sources: Iterable[str] | None = None,
    *,
    env: Mapping[str, str] = os.environ,
    checkpoint_dir: Path | None = None,
    progress: bool | None = None,
    full: bool = False,
) -> list[PullResult]:
    """Pull each source and store its snapshots (one transaction per source, so one platform's outage never
    costs another's data). A source that fails is reported, not raised, so the nightly job goes on.

    Each source pulls only what changed since its last complete pull where the platform can list that and
    the records kept in `checkpoint_dir` can be trusted, else everything (`full` forces that); see
    `driftwatch.incremental`. Every result says which kind of pull its entity got and why."""
    chosen = list(sources) if sources is not None else pullable_sources(cfg)
    if not chosen:
        raise UserError("no source to pull: configure [sources.<name>] with base_url (API), path or sftp_url")
    for source in chosen:  # a mistyped name is a usage error, not a source that failed tonight
        if source not in cfg.known_sources():
            raise UserError(unknown_source(source, cfg))
    results: list[PullResult] = []
    with Board(progress):  # one display for every source's lines, drawn on a terminal once a pull takes a while
        for source in chosen:
            results += _SourcePull(store, cfg, source, checkpoint_dir).run(env, progress, full=full)
    return results


class _SourcePull:
    """One source's pull: its plan, the pull itself, the merge of changes into kept records, the store."""

    def __init__(self, store: Store, cfg: Config, source: str, checkpoint_dir: Path | None):
        self.store, self.cfg, self.source, self.checkpoint_dir = store, cfg, source, checkpoint_dir
        self.settings = cfg.source(source)
        self.plan: PullPlan | None = None

    def run(self, env: Mapping[str, str], progress: bool | None, *, full: bool) -> list[PullResult]:
        try:
            return self._run(env, progress, full)
        except UserError as exc:
            kind, why = (self.plan.kind, self.plan.reason) if self.plan else ("", "")
            return [PullResult(self.source, "*", 0, 0, False, str(exc), kind, why)]

    def _run(self, env: Mapping[str, str], progress: bool | None, full: bool) -> list[PullResult]:
        connector_class = self.cfg.platform(self.source).load_connector()
        entities = entities_to_pull(self.cfg, self.source, connector_class.entities)
        merged = [e for e in entities if e in getattr(connector_class, "incremental", {})]
        memory = Memory(self.checkpoint_dir, self.source)
        print_ = fingerprint({k: v for k, v in self.settings.items() if k not in UNRECORDED}, connector_class)
        now = datetime.now(UTC)
        self.plan = plan_pull(
            memory,
            fingerprint=print_,
            now=now,
            full_every=self._duration("full_every", FULL_EVERY),
            overlap=self._duration("overlap", OVERLAP),
            merged=merged,
            latest={e: self.store.latest_snapshot(self.source, e) for e in merged},
            forced=full,
        )
        # An incremental pull that does not complete is followed by a full one, never resumed: its pages are
        # staged in memory rather than written out for a resumption that will not come.
        staging = self.checkpoint_dir if self.plan.since is None else None
        with (
            Step(f"{self.source}: {self.plan.kind} pull, {self.plan.reason}"),
            connector_class(
                self.settings, source=self.source, env=env, checkpoint_dir=staging, progress=progress
            ) as connector,
        ):
            memory.begin(print_, now)
            pulled = connector.pull(entities, since=self.plan.since)
        with Step(f"{self.source}: merging, normalising and storing"):
            parsed, kept, details = self._complete(connector, pulled, memory)
            stored = self._store(connector, pulled, parsed)
            memory.finish(
                fingerprint=print_,
                captured_at=pulled.captured_at,
                full=self.plan.since is None or not pulled.deltas,
                kept={e: kept[e] for e in merged},
                snapshots={r.snapshot.entity: r.snapshot for r in stored if r.snapshot.entity in merged},
            )
        return [
            PullResult(self.source, r.snapshot.entity, r.snapshot.row_count, r.snapshot.quarantined_rows, r.loaded,
                       None, *details[r.snapshot.entity])
            for r in stored
        ]  # fmt: skip

    def _complete(
        self, connector: Connector, pulled: Pulled, memory: Memory
    ) -> tuple[dict[str, Parsed], dict[str, Kept], dict[str, tuple[str, str]]]:
        """Each entity's complete records (changes merged into the kept ones) parsed, what to keep of them for
        the next pull, and its kind and detail. Of a merged entity only the changes are parsed (the kept
        records' parsed rows are reused), and of its kept raw records only the columns naming records are
        read, unless the whole has to be parsed or kept again."""
        parsed, kept, details = {}, {}, {}
        for entity in pulled.frames:
            frame = pulled.with_records(entity)
            delta = pulled.deltas.get(entity)
            if delta is None:
                parsed[entity] = self._parse(connector, entity, frame)
                kept[entity] = Kept(frame, parsed[entity])
                details[entity] = ("full", self._why_whole(connector, pulled, entity))
                continue
            key, first_line = ENTITIES[entity].key, self._origin(connector, entity)[1]
            names = memory.records(entity, columns=[RECORD, *key, *delta.carried])
            assert names is not None  # the plan checked that every merged entity has its records kept
            parsed[entity], kept[entity] = merge_parsed(
                names,
                memory.parsed(entity, first_line),
                frame,
                key,
                delta.gone,
                delta.carried,
                parse=lambda records, entity=entity: self._parse(connector, entity, records),
                first_line=first_line,
                schema=memory.schema(entity),
                records=lambda entity=entity: memory.records(entity),
                whole=memory.parts(entity) >= MAX_PARTS,
            )
            gone = f", {len(delta.gone):,} deleted" if delta.gone else ""
            how = f" ({delta.how})" if delta.how else ""
            details[entity] = (
                "incremental",
                f"{frame.height:,} changed{gone} since {delta.since:%Y-%m-%d %H:%M:%S} UTC{how}, "
                f"merged into {names.height:,} kept",
            )
        return parsed, kept, details

    def _origin(self, connector: Connector, entity: str) -> tuple[str, int]:
        # A file-based connector names the file and its first data line, so quarantined rows point at lines a
        # person can open; an API pull counts records from 1.
        return getattr(connector, "origin", lambda e: (f"{self.source} {e}", 1))(entity)

    def _parse(self, connector: Connector, entity: str, frame: pl.DataFrame) -> Parsed:
        origin, first_line = self._origin(connector, entity)
        timezone = self.settings.get("timezone", "UTC")
        return parse_frame(
            frame.drop(RECORD, strict=False), entity, origin=origin, first_line=first_line, naive_timezone=timezone
        )

    def _store(self, connector: Connector, pulled: Pulled, parsed: dict[str, Parsed]) -> list[IngestResult]:
        incoming = []
        for entity, rows in parsed.items():
            origin, first_line = self._origin(connector, entity)
            coerced = finish(rows, entity, origin=origin, first_line=first_line)
            origin_name = f"pull:{self.source}"
            snap = IncomingSnapshot.from_coerced(self.source, entity, pulled.captured_at, coerced, origin_name)
            # An entity the platform lists changes of is merged on later nights, so layered on this snapshot.
            snap.keeps_hashes = entity in getattr(connector, "incremental", {})
            if entity in pulled.deltas:
                # Changes merged into the last pull's snapshot (the plan checked it is the latest): the store
                # keeps only what differs from it, on the base of that snapshot. A full pull is stored whole,
                # so every `full_every` starts a fresh base.
                snap.shares_with = self.store.latest_snapshot(self.source, entity)
            incoming.append(snap)
        return self.store.ingest(incoming)

    def _why_whole(self, connector: Connector, pulled: Pulled, entity: str) -> str:
        if entity not in getattr(connector, "incremental", {}):
            reasons = getattr(connector, "always_whole", {})
            return reasons.get(entity) or reasons.get("*") or "the connector lists every record, not changes"
        if self.plan is None or self.plan.since is None:
            return self.plan.reason if self.plan else ""
        return pulled.whole.get(entity, "the platform answered with every record")

    def _duration(self, key: str, default: timedelta) -> timedelta:
        value = self.settings.get(key)
        return default if value is None else parse_duration(value, f"sources.{self.source}.{key}")


def entities_to_pull(cfg: Config, source: str, provided: tuple[str, ...]) -> list[str]:
    """What the audit reads of this source: a target's fed entities; for a system of record also what the
    checks of those entities read besides (packs for stock, returns for lifetime value, ...). A source's own
    `entities` setting overrides both. Pulling more would spend the platform's rate limits on unread data."""
    wanted = cfg.source(source).get("entities")
    if wanted is None:
        needed = _entities_read(cfg, source)
        wanted = [e for e in provided if e in needed] if needed else list(provided)
    unknown = [e for e in wanted if e not in provided]
    if unknown:
        raise UserError(
            f"sources.{source}.entities: {source} cannot provide {', '.join(unknown)}; "
            f"it provides {', '.join(provided)}"
        )
    return list(wanted)


def _entities_read(cfg: Config, source: str) -> set[str]:
    from driftwatch.engine import load_catalogue

    needed: set[str] = set()
    for feed in cfg.feeds:
        if source == feed.target:
            needed |= set(feed.entities)
        if source == feed.source:
            needed |= set(feed.entities)
            for check in load_catalogue(cfg).values():
                if isinstance(check.applies_to, str):  # checks of a source's own data: only what it feeds
                    needed |= set(check.reads) & set(feed.entities)
                elif set(check.applies_to) & set(feed.entities):
                    needed |= set(check.reads)
    return needed


def results_frame(results: list[PullResult]) -> pl.DataFrame:
    return pl.DataFrame(
        [r.__dict__ for r in results],
        schema={
            "source": pl.String,
            "entity": pl.String,
            "rows": pl.Int64,
            "quarantined": pl.Int64,
            "loaded": pl.Boolean,
            "error": pl.String,
            "kind": pl.String,
            "detail": pl.String,
        },
    ).select("source", "entity", "kind", "rows", "quarantined", "loaded", "detail", "error")
