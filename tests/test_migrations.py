"""Migrations: numbered, forward-only, never edited once released; an older store upgrades cleanly, a newer
one is refused rather than misread."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import polars as pl
import pytest

from driftwatch import store as store_module
from driftwatch.config import parse_config
from driftwatch.engine import audit
from driftwatch.entities import ENTITIES
from driftwatch.errors import UserError
from driftwatch.store import IncomingSnapshot, Store, migrations

# Every released migration, by version: its name and a digest of its SQL. A migration is never edited once
# released (a store that ran it keeps what it made); a new one is added below with its own version.
RELEASED = {
    1: ("snapshots", "bf9e5a3c8589"),
    3: ("layered snapshots", "c9565fe9d777"),
    4: ("row hashes of complete snapshots", "740e3b69f038"),
    100: ("audit findings", "148f05b8588a"),
    101: ("audit notes", "23d2ccf42f9d"),
    110: ("acknowledgements keep the values they cover", "d1f1a4ca6e1b"),
    200: ("alert deliveries and per-route alert state", "4ede7a50c780"),
    201: ("latest run alerted per route", "f0f255a6cf5a"),
    202: ("alert state per destination", "bb40e00839f5"),
    300: ("payout period closes", "eff7f4759ea3"),
    301: ("payout period closes per marketplace", "371496ec75d0"),
    400: ("repair journal", "cab300e2fd07"),
    500: ("incidents", "da15720b1691"),
    510: ("sync latency per run", "5b4599f16712"),
}


def digest(sql: str) -> str:
    """The SQL's statements, white space folded: re-indenting a migration is not editing it."""
    return hashlib.sha256(" ".join(sql.split()).encode()).hexdigest()[:12]


def test_released_migrations_are_never_edited():
    registered = {m.version: (m.name, digest(m.sql)) for m in migrations()}
    edited = {v: registered.get(v) for v, released in RELEASED.items() if registered.get(v) != released}
    assert not edited, f"released migrations changed or removed (add a new migration instead): {edited}"


def test_the_snapshot_tables_hold_every_entity_column(tmp_path):
    """A column added to an entity needs a migration of its own: the released one never changes."""
    with Store(tmp_path / "s.duckdb") as store:
        for entity in ENTITIES.values():
            columns = store.frame(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                [f"snap_{entity.name}"],
            )["column_name"].to_list()
            assert columns == ["snapshot_id", *entity.columns], entity.name


def stock(on_hand: int, available: int) -> tuple[IncomingSnapshot, IncomingSnapshot]:
    now = datetime.now(UTC)
    erp = pl.DataFrame({"sku": ["S1"], "location": ["W1"], "on_hand": [on_hand], "allocated": [0]})
    target = pl.DataFrame({"sku": ["S1"], "location": ["*"], "available": [available]})
    return IncomingSnapshot("bluecherry", "inventory", now, erp), IncomingSnapshot("klaviyo", "inventory", now, target)


def test_a_store_an_older_release_left_upgrades_and_keeps_its_history(tmp_path, monkeypatch):
    """A store made when only the snapshot and findings tables existed (versions up to 110), with a run in
    it, opens under this release: every later migration runs once, in order, and the history carries on."""
    path = tmp_path / "old.duckdb"
    cfg = parse_config({"feeds": [{"source": "bluecherry", "target": "klaviyo", "entities": ["inventory"]}]})
    older = {v: m for v, m in store_module._MIGRATIONS.items() if v <= 110}
    monkeypatch.setattr(store_module, "_MIGRATIONS", older)
    with Store(path) as store:
        store.ingest(stock(6, 4))
        first = audit(store, cfg, checks=["stock_parity"])
        assert store.schema_version() == 110
    monkeypatch.undo()

    with Store(path) as store:
        applied = store.frame("SELECT version FROM schema_migrations ORDER BY applied_at, version")["version"]
        assert applied.to_list() == [m.version for m in migrations()]
        tables = set(store.frame("SELECT table_name FROM information_schema.tables")["table_name"])
        assert {"alert_known", "payout_closes", "repair_journal"} <= tables
        assert store.latest_snapshot("klaviyo", "inventory") is not None
        second = audit(store, cfg, checks=["stock_parity"])
    assert first.findings["status"].to_list() == ["new"]
    assert second.findings.select("status", "fingerprint").rows() == [("ongoing", first.findings["fingerprint"][0])]
    with Store(path) as again:
        assert again.migrate() == []


def test_a_store_a_newer_release_wrote_is_refused_not_misread(tmp_path):
    path = tmp_path / "new.duckdb"
    with Store(path) as store:
        store.query("INSERT INTO schema_migrations VALUES (9001, 'from the future', now())")
    with pytest.raises(UserError, match=r"written by a newer driftwatch \(schema version 9001"):
        Store(path)


def test_two_migrations_under_one_version_are_refused():
    taken = migrations()[0]
    with pytest.raises(ValueError, match=f"migration {taken.version} is already"):
        store_module.register_migrations([store_module.Migration(taken.version, "another", "SELECT 1;")])
