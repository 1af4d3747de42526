"""Layered snapshots: a snapshot stored as the rows that differ from a complete base plus the base's keys it
hides reads exactly as the same snapshot stored whole, through every reader, night after night."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest

from driftwatch import store as store_module
from driftwatch.config import parse_config
from driftwatch.engine import audit
from driftwatch.store import IncomingSnapshot, SnapshotInfo, Store

NIGHT = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def customers(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": [f"C{i:03d}" for i in range(n)],
            "email": [f"c{i}@example.com" for i in range(n)],
            "email_consent": [i % 2 == 0 for i in range(n)],
            "first_name": [None if i % 7 == 0 else f"Name{i}" for i in range(n)],
            "lifetime_value": [Decimal(i) / 4 for i in range(n)],
            "updated_at": [NIGHT - timedelta(hours=i) for i in range(n)],
        },
        schema_overrides={"lifetime_value": pl.Decimal(18, 4)},
    )


def changed(frame: pl.DataFrame, ids: list[str], name: str) -> pl.DataFrame:
    return frame.with_columns(
        pl.when(pl.col("customer_id").is_in(ids)).then(pl.lit(name)).otherwise(pl.col("first_name")).alias("first_name")
    )


def store_night(store: Store, frame: pl.DataFrame, night: int, *, shared: bool = True, **extra) -> SnapshotInfo:
    """One night's customers, stored the way a pull stores them: on the previous snapshot when `shared`, and
    keeping keys and row hashes beside it when stored whole."""
    previous = store.latest_snapshot("klaviyo", "customers") if shared else None
    extra = {"keeps_hashes": True, **extra}
    snap = IncomingSnapshot("klaviyo", "customers", NIGHT + timedelta(days=night), frame, shares_with=previous, **extra)
    return store.ingest([snap])[0].snapshot


def as_read(store: Store, info: SnapshotInfo) -> pl.DataFrame:
    return store.rows(info).sort("customer_id")


@pytest.fixture
def stores(tmp_path):
    """A store that layers, and one that stores every night whole: what a reader must not tell apart."""
    with Store(tmp_path / "layered.duckdb") as layered, Store(tmp_path / "whole.duckdb") as whole:
        yield layered, whole


def both(stores, frame: pl.DataFrame, night: int, *, shared: bool = True, **extra) -> SnapshotInfo:
    layered, whole = stores
    info = store_night(layered, frame, night, shared=shared, **extra)
    reference = store_night(whole, frame, night, shared=False, **extra)
    assert as_read(layered, info).equals(as_read(whole, reference))
    assert info.row_count == reference.row_count
    assert info.content_hash == reference.content_hash
    return info


def own_rows(store: Store, info: SnapshotInfo) -> int:
    return store.frame("SELECT count(*) AS n FROM snap_customers WHERE snapshot_id = ?", [info.snapshot_id])["n"][0]


def test_a_chain_of_incremental_nights_reads_as_complete_snapshots_each_layered_on_the_first(stores):
    frame = customers(40)
    base = both(stores, frame, 0, shared=False)
    assert base.base_id is None
    for night in range(1, 6):
        frame = changed(frame, [f"C{night:03d}", f"C{night + 10:03d}"], f"night{night}")
        info = both(stores, frame, night)
        assert info.base_id == base.snapshot_id  # never a layer on a layer: one anti-join reads any night
        # Changes since the base are stored, not the other rows: two a night, carried forward.
        assert own_rows(stores[0], info) == 2 * night
    layered = stores[0]
    assert layered.latest_snapshot("klaviyo", "customers").base_id == base.snapshot_id
    assert layered.snapshot(info.snapshot_id) == info


def test_a_key_replaced_twice_reads_once_with_its_last_value(stores):
    frame = customers(20)
    both(stores, frame, 0, shared=False)
    both(stores, changed(frame, ["C005"], "first"), 1)
    info = both(stores, changed(frame, ["C005"], "second"), 2)
    rows = as_read(stores[0], info).filter(pl.col("customer_id") == "C005")
    assert rows["first_name"].to_list() == ["second"]
    # Back to the base's value: the base's row shows again, the layer holds nothing of it.
    info = both(stores, frame, 3)
    assert own_rows(stores[0], info) == 0


def test_a_deleted_record_leaves_the_layer_and_comes_back_with_a_full_pull(stores):
    frame = customers(20)
    both(stores, frame, 0, shared=False)
    gone = frame.filter(pl.col("customer_id") != "C003")
    info = both(stores, gone, 1)
    assert "C003" not in as_read(stores[0], info)["customer_id"].to_list()
    info = both(stores, gone.filter(pl.col("customer_id") != "C004"), 2)
    assert info.row_count == 18
    # Created again, then a full pull: stored whole, a fresh base for the nights after it.
    again = both(stores, frame, 3)
    assert again.row_count == 20 and again.base_id is not None
    full = both(stores, changed(frame, ["C001"], "full"), 4, shared=False)
    assert full.base_id is None
    assert both(stores, frame, 5).base_id == full.snapshot_id


def test_new_records_and_columns_left_empty_read_as_a_complete_snapshot(stores):
    frame = customers(20)
    both(stores, frame, 0, shared=False)
    grown = pl.concat([frame, customers(25).slice(20)]).with_columns(
        pl.when(pl.col("customer_id") == "C002").then(None).otherwise(pl.col("email")).alias("email")
    )
    info = both(stores, grown, 1)
    assert info.base_id is not None and own_rows(stores[0], info) == 6


def test_rows_left_out_by_keep_are_hidden_not_stored(stores):
    frame = customers(10)
    both(stores, frame, 0, shared=False)
    keep = pl.Series([customer != "C007" for customer in frame["customer_id"]])
    info = both(stores, frame, 1, keep=keep)
    assert info.row_count == 9 and "C007" not in as_read(stores[0], info)["customer_id"].to_list()


def test_a_night_that_changes_most_rows_is_stored_whole(stores):
    frame = customers(10)
    both(stores, frame, 0, shared=False)
    info = both(stores, changed(frame, [f"C{i:03d}" for i in range(6)], "most"), 1)
    assert info.base_id is None


def test_no_layer_on_a_base_that_holds_a_key_twice_or_other_columns(stores):
    frame = customers(10)
    twice = pl.concat([frame, frame.head(1).with_columns(pl.lit("dup").alias("email"))])
    both(stores, twice, 0, shared=False)
    assert both(stores, frame, 1).base_id is None
    assert both(stores, frame.drop("email"), 2).base_id is None


def test_a_store_of_the_older_layout_upgrades_and_layers_on_its_complete_snapshots(tmp_path, monkeypatch):
    path = tmp_path / "old.duckdb"
    older = {v: m for v, m in store_module._MIGRATIONS.items() if v not in (3, 4)}
    monkeypatch.setattr(store_module, "_MIGRATIONS", older)
    frame = customers(20)
    with Store(path) as store:
        store.ingest([IncomingSnapshot("klaviyo", "customers", NIGHT, frame)])
        assert "snapshot_layers" not in set(
            store.frame("SELECT table_name FROM information_schema.tables")["table_name"]
        )
    monkeypatch.undo()
    with Store(path) as store:
        old = store.latest_snapshot("klaviyo", "customers")
        assert old.base_id is None and as_read(store, old).height == 20
        info = store_night(store, changed(frame, ["C001"], "new"), 1)
        assert info.base_id == old.snapshot_id
        assert as_read(store, info).equals(
            as_read(store, old).with_columns(
                pl.when(pl.col("customer_id") == "C001")
                .then(pl.lit("new"))
                .otherwise(pl.col("first_name"))
                .alias("first_name")
            )
        )


def test_a_load_that_fails_halfway_leaves_no_layer_behind(tmp_path):
    frame = customers(20)
    with Store(tmp_path / "s.duckdb") as store:
        base = store_night(store, frame, 0, shared=False)

        def failing():
            yield IncomingSnapshot(
                "klaviyo", "customers", NIGHT + timedelta(days=1), changed(frame, ["C001"], "x"), shares_with=base
            )
            raise RuntimeError("killed halfway")

        with pytest.raises(RuntimeError):
            store.ingest(failing())
        assert store.latest_snapshot("klaviyo", "customers") == base
        for table in ("snap_customers_hidden", "snapshot_layers", "staged_snapshots"):
            assert store.frame(f"SELECT count(*) AS n FROM {table}")["n"][0] == 0, table
        assert store.frame("SELECT count(*) AS n FROM snap_customers")["n"][0] == 20


def test_a_killed_load_s_layer_is_removed_by_the_next_load(tmp_path):
    """A process killed after its layer's rows were committed, before it recorded them: invisible, and
    removed by the next load."""
    frame = customers(20)
    with Store(tmp_path / "s.duckdb") as store:
        base = store_night(store, frame, 0, shared=False)
        snap = IncomingSnapshot(
            "klaviyo", "customers", NIGHT + timedelta(days=1), changed(frame, ["C001"], "x"), shares_with=base
        )
        with store.transaction() as cur:
            staged = store._stage(cur, snap)  # the rows committed, the snapshot never recorded
        assert staged.snapshot.base_id == base.snapshot_id
        assert store.latest_snapshot("klaviyo", "customers") == base
        store_night(store, frame, 2)
        assert store.frame("SELECT count(*) AS n FROM snap_customers_hidden")["n"][0] == 0
        assert store.frame("SELECT count(*) AS n FROM staged_snapshots")["n"][0] == 0


def hashes_kept(store: Store, info: SnapshotInfo | None = None) -> int:
    where, params = ("WHERE snapshot_id = ?", [info.snapshot_id]) if info else ("", [])
    return store.frame(f"SELECT count(*) AS n FROM snap_customers_hashes {where}", params)["n"][0]


def test_a_layer_on_a_base_that_keeps_its_row_hashes_reads_no_base_row(stores, monkeypatch):
    layered, _ = stores
    frame = customers(40)
    keep = pl.Series([i != 5 for i in range(40)])
    base = both(stores, frame, 0, shared=False, keep=keep)
    assert hashes_kept(layered, base) == 39  # the stored rows' keys and hashes, not the rows left out
    read = Store.rows

    def rows(store, info, columns=None):
        assert info.snapshot_id != base.snapshot_id, "the base's rows were read to find the layer"
        return read(store, info, columns)

    monkeypatch.setattr(Store, "rows", rows)
    for night in (1, 2):
        frame = changed(frame, [f"C00{night}"], f"night{night}").filter(pl.col("customer_id") != f"C01{night}")
        info = both(stores, frame, night, keep=keep.head(frame.height))
        assert info.base_id == base.snapshot_id and own_rows(layered, info) == night
    assert hashes_kept(layered) == 39  # a layer keeps no hashes: it is never a base


def test_a_base_without_kept_hashes_is_read_to_find_the_layer(stores):
    """A snapshot stored by a file drop, or before hashes were kept: its rows are read and hashed."""
    layered, _ = stores
    frame = customers(40)
    base = both(stores, frame, 0, shared=False, keeps_hashes=False)
    assert hashes_kept(layered) == 0
    info = both(stores, changed(frame, ["C003"], "x"), 1)
    assert info.base_id == base.snapshot_id and own_rows(layered, info) == 1


def test_a_failed_or_killed_load_leaves_no_hashes_behind(tmp_path):
    frame = customers(20)
    with Store(tmp_path / "s.duckdb") as store:
        store_night(store, frame, 0, shared=False)

        def failing():
            yield IncomingSnapshot("klaviyo", "customers", NIGHT + timedelta(days=1), frame.head(5), keeps_hashes=True)
            raise RuntimeError("killed halfway")

        with pytest.raises(RuntimeError):
            store.ingest(failing())
        assert hashes_kept(store) == 20
        snap = IncomingSnapshot("klaviyo", "customers", NIGHT + timedelta(days=2), frame.head(5), keeps_hashes=True)
        with store.transaction() as cur:
            store._stage(cur, snap)  # the rows and hashes committed, the snapshot never recorded
        assert hashes_kept(store) == 25
        store_night(store, frame, 3)
        assert hashes_kept(store) == 20


def inventory(available: dict[str, int]) -> pl.DataFrame:
    return pl.DataFrame(
        {"sku": list(available), "location": ["*"] * len(available), "available": list(available.values())}
    )


def test_an_audit_of_a_layered_snapshot_finds_what_it_finds_on_the_same_snapshot_stored_whole(stores):
    cfg = parse_config({"feeds": [{"source": "bluecherry", "target": "klaviyo", "entities": ["inventory"]}]})
    erp = pl.DataFrame({"sku": [f"S{i}" for i in range(10)], "location": ["W1"] * 10, "on_hand": [5] * 10,
                        "allocated": [0] * 10})  # fmt: skip
    target = {f"S{i}": 5 for i in range(10)}
    findings = []
    for store in stores:
        store.ingest([IncomingSnapshot("bluecherry", "inventory", NIGHT, erp)])
        store.ingest([IncomingSnapshot("klaviyo", "inventory", NIGHT, inventory(target))])
        night = NIGHT + timedelta(days=1)
        previous = store.latest_snapshot("klaviyo", "inventory") if store is stores[0] else None
        tonight = inventory({**target, "S3": 9}).filter(pl.col("sku") != "S7")
        store.ingest([IncomingSnapshot("klaviyo", "inventory", night, tonight, shares_with=previous)])
        assert (store.latest_snapshot("klaviyo", "inventory").base_id is not None) == (store is stores[0])
        run = audit(store, cfg, checks=["stock_parity"])
        findings.append(run.findings.select("key", "field", "expected", "actual").sort("key", "field"))
    assert findings[0].height >= 1
    assert findings[0].equals(findings[1])
