"""Pulling live sources into the store, exactly as a file drop of the same data would be stored."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from driftwatch.config import Config, unknown_source
from driftwatch.errors import UserError
from driftwatch.normalize import coerce
from driftwatch.store import IncomingSnapshot, Store

CONNECTION_KEYS = ("base_url", "path", "sftp_url")


@dataclass(frozen=True)
class PullResult:
    source: str
    entity: str
    rows: int
    quarantined: int
    loaded: bool
    error: str | None = None


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
) -> list[PullResult]:
    """Pull each source and store its snapshots (one transaction per source, so one platform's outage never
    costs another's data). A source that fails is reported, not raised, so the nightly job goes on."""
    chosen = list(sources) if sources is not None else pullable_sources(cfg)
    if not chosen:
        raise UserError("no source to pull: configure [sources.<name>] with base_url (API), path or sftp_url")
    for source in chosen:  # a mistyped name is a usage error, not a source that failed tonight
        if source not in cfg.known_sources():
            raise UserError(unknown_source(source, cfg))
    results: list[PullResult] = []
    for source in chosen:
        try:
            results += _pull_one(store, cfg, source, env, checkpoint_dir, progress)
        except UserError as exc:
            results.append(PullResult(source, "*", 0, 0, False, str(exc)))
    return results


def _pull_one(
    store: Store, cfg: Config, source: str, env: Mapping[str, str], checkpoint_dir: Path | None, progress: bool | None
) -> list[PullResult]:
    connector_class = cfg.platform(source).load_connector()
    with connector_class(
        cfg.source(source), source=source, env=env, checkpoint_dir=checkpoint_dir, progress=progress
    ) as connector:
        pulled = connector.pull(entities_to_pull(cfg, source, connector.entities))
    timezone = cfg.source(source).get("timezone", "UTC")
    incoming = []
    for entity, frame in pulled.frames.items():
        # A file-based connector names the file and its first data line, so quarantined rows point at lines
        # a person can open; an API pull counts records from 1.
        origin, first_line = getattr(connector, "origin", lambda e: (f"{source} {e}", 1))(entity)
        coerced = coerce(frame, entity, origin=origin, first_line=first_line, naive_timezone=timezone)
        incoming.append(IncomingSnapshot.from_coerced(source, entity, pulled.captured_at, coerced, f"pull:{source}"))
    stored = store.ingest(incoming)
    return [
        PullResult(source, snap.entity, snap.row_count, r.snapshot.quarantined_rows, r.loaded)
        for snap, r in zip(incoming, stored, strict=True)
    ]


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
        },
    )
