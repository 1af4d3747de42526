"""Sources that hold fewer columns than the canonical entity: the audit compares what both sides hold,
reads what one side lacks as null, and never fails on it."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from driftwatch.config import parse_config
from driftwatch.engine import audit
from driftwatch.store import IncomingSnapshot, Store

CAPTURED = datetime(2026, 11, 23, 2, tzinfo=UTC)
FEEDS = [
    {"source": "bluecherry", "target": "klaviyo", "entities": ["customers"]},
    {"source": "bluecherry", "target": "mirakl", "entities": ["inventory"], "locations": ["W1"]},
]


def snapshot(source: str, entity: str, **columns) -> IncomingSnapshot:
    return IncomingSnapshot(source, entity, CAPTURED, pl.DataFrame(columns))


def test_an_erp_without_merges_prices_or_profile_times_is_audited_on_what_it_holds(tmp_path):
    no_time = pl.Series([None, None], dtype=pl.Datetime("us", "UTC"))
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest([
            # No merged_into, no products (so no price for the money at risk), profiles without update times.
            snapshot("bluecherry", "customers", customer_id=["C1", "C2"], email=["a@x.com", "b@x.com"]),
            snapshot("klaviyo", "customers", customer_id=["K1", "K2"], email=["a@x.com", "b@x.com"],
                     erp_customer_id=["C1", None], updated_at=no_time),
            snapshot("bluecherry", "inventory", sku=["S1"], location=["W1"], on_hand=[5], allocated=[0],
                     safety_stock=[0]),
            snapshot("mirakl", "inventory", sku=["S1"], location=["W1"], available=[4]),
        ])  # fmt: skip
        found = audit(store, parse_config({"feeds": FEEDS})).findings
    rows = found.select("check_id", "target", "key", "field", "expected", "actual").rows()
    # Both profiles are found (one by the ERP id it stores, one by email): only the stock drift is real.
    assert rows == [("stock_parity", "mirakl", "S1/W1", "available", "5", "4")]
    assert found["impact"].to_list() == [None]  # no ERP price: no money at risk to claim
