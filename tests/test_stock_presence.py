"""stock_parity on records one side lacks: what the truth holds is reported (and pushed by a repair), and a SKU
missing from a catalogue is reported once, by catalogue_parity, not again per stock location."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from driftwatch.config import parse_config
from driftwatch.engine import audit
from driftwatch.store import IncomingSnapshot, Store

CAPTURED = datetime(2026, 11, 23, 2, tzinfo=UTC)


def snapshot(source: str, entity: str, **columns) -> IncomingSnapshot:
    return IncomingSnapshot(source, entity, CAPTURED, pl.DataFrame(columns))


def erp_inventory() -> IncomingSnapshot:
    # S1 at W1: 5 free; S1 at W2: nothing free; S2 at W1: 3 free.
    return snapshot(
        "bluecherry", "inventory", sku=["S1", "S1", "S2"], location=["W1", "W2", "W1"],
        on_hand=[5, 1, 3], allocated=[0, 1, 0], safety_stock=[0, 0, 0],
    )  # fmt: skip


def stock_findings(tmp_path, snapshots: list[IncomingSnapshot], entities: list[str]) -> pl.DataFrame:
    feeds = [{"source": "bluecherry", "target": "commercetools", "entities": entities}]
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest(snapshots)
        found = audit(store, parse_config({"feeds": feeds}), checks=["stock_parity", "catalogue_parity"]).findings
    return found.sort("check_id", "key").select(
        "check_id", "key", "field", "expected", "actual", "severity", "repair_action"
    )


def test_stock_records_one_side_lacks_are_reported_with_the_truths_quantity(tmp_path):
    target = snapshot(
        "commercetools", "inventory", sku=["S1", "S2", "S3", "S9"], location=["W1", "W2", "W1", "W1"],
        available=[5, 2, 0, 4],
    )  # fmt: skip
    found = stock_findings(tmp_path, [erp_inventory(), target], ["inventory"])
    assert found.rows() == [
        # 3 free at W1 that the target does not publish: stock that could sell is hidden.
        ("stock_parity", "S2/W1", "available", "3", "absent", "medium", "set_stock"),
        # Published where the ERP holds no stock record: selling what is not there.
        ("stock_parity", "S2/W2", "available", "0", "2", "critical", "set_stock"),
        ("stock_parity", "S9/W1", "available", "0", "4", "critical", "set_stock"),
    ]
    # 0 against no record is no finding either way: S1/W2 (ERP 0, no target record), S3/W1 (target 0, no
    # ERP record). Stock there is 0 whichever side is right.


def test_a_sku_a_catalogue_lacks_is_catalogue_paritys_finding_not_stock_paritys(tmp_path):
    erp_products = snapshot("bluecherry", "products", sku=["S1", "S2"], status=["active", "active"])
    # The target does not list S2 (so publishes no stock for it) and lists S9, which the ERP does not know.
    target_products = snapshot("commercetools", "products", sku=["S1", "S9"], status=["active", "active"])
    target = snapshot(
        "commercetools", "inventory", sku=["S1", "S1", "S9"], location=["W1", "W2", "W1"], available=[5, 0, 4]
    )
    found = stock_findings(
        tmp_path, [erp_products, erp_inventory(), target_products, target], ["inventory", "products"]
    )
    assert found.select("check_id", "key").rows() == [("catalogue_parity", "S2"), ("catalogue_parity", "S9")]


def test_a_target_publishing_one_figure_per_sku_is_held_to_the_skus_the_erp_stocks(tmp_path):
    erp_products = snapshot("bluecherry", "products", sku=["S1", "S2", "S3"], status=["active", "active", "active"])
    # S3 has no ERP stock row: the target not publishing it is no finding; S2's 3 units are hidden.
    target = snapshot("commercetools", "inventory", sku=["S1"], location=["*"], available=[5])
    found = stock_findings(tmp_path, [erp_products, erp_inventory(), target], ["inventory"])
    assert found.select("key", "expected", "actual", "severity").rows() == [("S2", "3", "absent", "medium")]
