"""Drops shaped as the platforms hold their data, loaded from real files and audited: stock with no
location (one figure per SKU), and marketplace orders the ERP does not have yet (keyed by the
marketplace's own order id, order_id left blank until the ERP has the order)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from driftwatch.config import parse_config
from driftwatch.engine import audit
from driftwatch.filedrop import load_directory
from driftwatch.normalize import coerce
from driftwatch.store import Store

CAPTURED = "2026-11-23T02:00:00Z"
ERP_INVENTORY = "sku,location,on_hand,allocated,safety_stock\nS1,W1,4,0,0\nS1,W2,3,1,0\nS2,W1,6,0,0\n"


def drop(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        (path.parent / "_manifest.json").write_text(json.dumps({"captured_at": CAPTURED}), encoding="utf-8")
    return root


def audit_drop(tmp_path: Path, files: dict[str, str], feeds: list[dict], checks: list[str]):
    cfg = parse_config({"feeds": feeds})
    with Store(tmp_path / "s.duckdb") as store:
        load_directory(store, drop(tmp_path / "drop", files), cfg)
        result = audit(store, cfg, checks=checks)
        quarantined = store.quarantine()
    return result, quarantined


@pytest.mark.parametrize(
    "klaviyo_inventory",
    [
        "sku,available\nS1,6\nS2,5\n",  # no location column at all
        "sku,location,available\nS1,,6\nS2, ,5\n",  # blank locations
        "sku,location,available\nS1,*,6\nS2,*,5\n",  # what the connectors write
    ],
    ids=["absent", "blank", "star"],
)
def test_stock_without_a_location_is_the_whole_targets(tmp_path, klaviyo_inventory):
    feeds = [{"source": "bluecherry", "target": "klaviyo", "entities": ["inventory"]}]
    files = {"bluecherry/inventory.csv": ERP_INVENTORY, "klaviyo/inventory.csv": klaviyo_inventory}
    result, quarantined = audit_drop(tmp_path, files, feeds, ["stock_parity"])
    assert quarantined.height == 0
    # S1: 4 + 2 free over both warehouses = 6, as published; S2: 6 free, 5 published.
    assert result.findings.select("key", "expected", "actual").rows() == [("S2", "6", "5")]


def test_a_blank_location_reads_as_the_whole_stock_for_any_source():
    coerced = coerce(pl.DataFrame({"sku": ["A", "B"], "location": ["", "W1"], "on_hand": ["1", "2"]}), "inventory")
    assert coerced.good["location"].to_list() == ["*", "W1"]
    assert coerce(pl.DataFrame({"sku": ["A"], "available": ["3"]}), "inventory").good["location"].to_list() == ["*"]


MARKETPLACE_FEEDS = [
    {"source": "bluecherry", "target": "mirakl", "entities": ["orders", "order_lines", "shipments"]},
]
ERP_ORDERS = (
    "order_id,external_id,channel,status,placed_at,total,currency\n"
    "SO1,M1,mirakl,shipped,2026-11-10T10:00:00Z,50.00,EUR\n"
)


@pytest.mark.parametrize(
    "mirakl_orders",
    [
        # order_id blank until the ERP has the order
        "order_id,external_id,channel,status,placed_at,total,currency\n"
        "SO1,M1,mirakl,SHIPPED,2026-11-10T10:00:00Z,50.00,EUR\n"
        ",M2,mirakl,WAITING_ACCEPTANCE,2026-11-20T04:00:00Z,80.00,EUR\n",
        # keyed by external_id alone: no order_id column at all
        "external_id,channel,status,placed_at,total,currency\n"
        "M1,mirakl,SHIPPED,2026-11-10T10:00:00Z,50.00,EUR\n"
        "M2,mirakl,WAITING_ACCEPTANCE,2026-11-20T04:00:00Z,80.00,EUR\n",
    ],
    ids=["blank-order-id", "no-order-id"],
)
def test_a_marketplace_order_the_erp_does_not_have_yet_is_loaded_and_seen(tmp_path, mirakl_orders):
    files = {
        "bluecherry/orders.csv": ERP_ORDERS,
        "mirakl/orders.csv": mirakl_orders,
        # Lines name their order by its key: the ERP number where there is one, else the marketplace's id.
        "mirakl/order_lines.csv": "order_id,line_no,sku,qty_ordered\nSO1,1,S1,1\nM2,1,S2,2\n",
    }
    checks = ["acceptance_sla", "order_presence", "order_status_drift", "order_value_drift"]
    result, quarantined = audit_drop(tmp_path, files, MARKETPLACE_FEEDS, checks)
    assert quarantined.height == 0
    found = result.findings.select("check_id", "key", "severity").sort("check_id").rows()
    # Waiting 70 h of a 72 h deadline with nobody to accept it, and an order the ERP has lost.
    assert found == [("acceptance_sla", "M2", "critical"), ("order_presence", "M2", "critical")]


def test_an_erp_order_without_its_number_is_still_quarantined(tmp_path):
    files = {"bluecherry/orders.csv": ERP_ORDERS + ",M9,mirakl,shipped,2026-11-10T10:00:00Z,9.00,EUR\n"}
    cfg = parse_config({"feeds": MARKETPLACE_FEEDS})
    with Store(tmp_path / "s.duckdb") as store:
        load_directory(store, drop(tmp_path / "drop", files), cfg)
        assert store.quarantine()["reason"].to_list() == ["required value is missing"]
        assert store.latest("bluecherry", "orders")["order_id"].to_list() == ["SO1"]
