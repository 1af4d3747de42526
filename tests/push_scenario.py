"""The scenario every push test starts from: ERP snapshots in a real store, the target pulled from its
simulator, an audit; and, after a repair, what drift a fresh pull and audit still see."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from driftwatch.config import Config, parse_config
from driftwatch.engine import audit
from driftwatch.normalize import coerce
from driftwatch.pull import pull_sources
from driftwatch.store import IncomingSnapshot, Store

# A scenario's shop holds a handful of offers and takes one or two off sale on purpose: a large share of so
# small a catalogue, which the guard against mass discontinuation would refuse (see test_repair_guards).
SMALL_SHOP_GUARDS = {"max_discontinue_share": 1.0}


def push_config(target: str, settings: Mapping[str, Any], entities: Iterable[str]) -> dict:
    """The ERP feeds `target` with `entities`; the target is reached with `settings` (its simulator's)."""
    return {
        "sources": {target: dict(settings)},
        "feeds": [{"source": "bluecherry", "target": target, "entities": list(entities)}],
        "repair": dict(SMALL_SHOP_GUARDS),
    }


def audit_against(
    target: str, sim: Any, raw: dict, db: Path, erp: Mapping[str, pl.DataFrame], captured_at: Any, checks: list[str]
) -> Config:
    """Store the ERP's frames, pull the target from its simulator and audit: the run a plan is made from."""
    cfg = parse_config(raw)
    with Store(db) as store:
        store.ingest(
            IncomingSnapshot("bluecherry", entity, captured_at, coerce(frame, entity).good)
            for entity, frame in erp.items()
        )
        assert all(r.error is None for r in pull_sources(store, cfg, [target], env=sim.env, progress=False))
        assert audit(store, cfg, checks=checks).trusted
    return cfg


def open_drift(target: str, sim: Any, raw: dict, db: Path, checks: list[str]) -> set[tuple[str, str, str]]:
    """(check, key, field) still open after pulling the target again and re-auditing."""
    cfg = parse_config(raw)
    with Store(db) as store:
        pull_sources(store, cfg, [target], env=sim.env, progress=False)
        found = audit(store, cfg, checks=checks).findings
    return {(r["check_id"], r["key"], r["field"]) for r in found.iter_rows(named=True) if r["status"] != "resolved"}
