"""A source pulled night after night into one store, the way `driftwatch pull` pulls it, and what a full pull
of the same platform state stores, for comparing the two."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
import tomli_w

from driftwatch.config import load_config
from driftwatch.pull import PullResult, pull_sources
from driftwatch.store import Store

Stored = dict[str, tuple[pl.DataFrame, pl.DataFrame]]  # entity -> (rows, quarantined) of its latest snapshot


class Nights:
    """`pull()` is one night's `driftwatch pull --source <source>`: same store, same working folder."""

    def __init__(self, folder: Path, source: str, settings: Mapping[str, Any], env: Mapping[str, str]):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.source, self.env = folder, source, dict(env)
        self.settings = dict(settings)
        self.store = Store(folder / "driftwatch.duckdb")
        self.configure()

    def configure(self, **changes: Any) -> None:
        """Rewrite the source's settings (as a person editing driftwatch.toml would)."""
        self.settings.update(changes)
        table = {k: v for k, v in self.settings.items() if v is not None}
        (self.folder / "driftwatch.toml").write_text(tomli_w.dumps({"sources": {self.source: table}}))

    def pull(self, *, full: bool = False) -> dict[str, PullResult]:
        config = load_config(self.folder / "driftwatch.toml")
        results = pull_sources(
            self.store, config, [self.source], env=self.env, checkpoint_dir=self.folder / "pulls", progress=False,
            full=full,
        )  # fmt: skip
        failed = [r.error for r in results if r.error]
        assert not failed, failed
        return {r.entity: r for r in results}

    def kinds(self, results: Mapping[str, PullResult]) -> dict[str, str]:
        return {entity: r.kind for entity, r in results.items()}

    def stored(self) -> Stored:
        """Each entity's latest snapshot: its rows and its quarantined values, in a fixed order (a merged
        snapshot lists its records in another order than a full pull, and numbers quarantined lines so)."""
        stored: Stored = {}
        latest = self.store.latest_snapshots()
        for entity in latest.filter(pl.col("source") == self.source)["entity"]:
            info = self.store.latest_snapshot(self.source, entity)
            rows = self.store.rows(info)
            quarantined = self.store.quarantine(info.snapshot_id).select("column", "value", "reason")
            stored[entity] = (rows.select(sorted(rows.columns)).sort(sorted(rows.columns), nulls_last=True),
                              quarantined.sort("column", "value", "reason", nulls_last=True))  # fmt: skip
        return stored

    def close(self) -> None:
        self.store.close()


def full_pull_of(folder: Path, source: str, settings: Mapping[str, Any], env: Mapping[str, str]) -> Stored:
    """What a first (full) pull of the platform as it is now stores, in a store of its own."""
    fresh = Nights(folder, source, settings, env)
    try:
        assert set(fresh.kinds(fresh.pull()).values()) == {"full"}
        return fresh.stored()
    finally:
        fresh.close()


def assert_same_stored(merged: Stored, full: Stored) -> None:
    assert merged.keys() == full.keys()
    for entity, (rows, quarantined) in full.items():
        got_rows, got_quarantined = merged[entity]
        assert got_rows.columns == rows.columns, entity
        assert got_rows.equals(rows), (entity, _difference(got_rows, rows))
        assert got_quarantined.equals(quarantined), (entity, got_quarantined, quarantined)


def _difference(got: pl.DataFrame, expected: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows only the merged snapshot has, and those only the full pull has."""
    return got.join(expected, on=got.columns, how="anti", nulls_equal=True), expected.join(
        got, on=got.columns, how="anti", nulls_equal=True
    )
