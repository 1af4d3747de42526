"""Amounts in two currencies are never compared as one money: a marketplace's own price list in GBP beside
an ERP priced in EUR is not a price difference (a note says it was left out), and an order booked in
another currency is reported as that, not as a difference of totals."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from tests.audit_helpers import CAPTURED, keys, run_audit, snap

FEED = {"source": "bluecherry", "target": "mirakl_uk", "channels": ["MKP-UK"]}
CONFIG = {"sources": {"mirakl_uk": {"kind": "mirakl"}}, "feeds": [{**FEED, "entities": ["products", "orders"]}]}


def erp_products():
    return snap(
        "bluecherry",
        "products",
        sku=["A", "B", "C"],
        price=["89.00", "35.00", "20.00"],
        currency=["EUR", "EUR", "EUR"],
        status=["active"] * 3,
    )


def test_a_price_list_in_another_currency_is_not_a_price_difference(tmp_path):
    # A is listed in GBP (the marketplace's own price list); B has no currency, so the ERP's is assumed and
    # it is compared; C is in EUR (in lower case), priced wrongly.
    target = snap(
        "mirakl_uk", "products", sku=["A", "B", "C"], price=["69.00", "30.00", "25.00"], currency=["GBP", None, "eur"]
    )
    found = run_audit(tmp_path, [erp_products(), target], CONFIG, ["catalogue_parity"])
    assert keys(found, "catalogue_parity") == {("mirakl_uk", "B", "price"), ("mirakl_uk", "C", "price")}


def test_the_amounts_left_out_are_named_in_a_note(tmp_path):
    from driftwatch.config import parse_config
    from driftwatch.engine import audit
    from driftwatch.store import Store

    target = snap(
        "mirakl_uk", "products", sku=["A", "B", "C"], price=["69.00", "35.00", "20.00"], currency=["GBP", "EUR", "EUR"]
    )
    with Store(tmp_path / "audit.duckdb") as store:
        store.ingest([erp_products(), target])
        result = audit(store, parse_config(CONFIG), checks=["catalogue_parity"])
    notes = result.notes.filter(pl.col("kind") == "other_currency")
    assert notes.select("check_id", "target", "column").rows() == [("catalogue_parity", "mirakl_uk", "price")]
    assert "GBP against the ERP's EUR" in notes["message"][0]
    assert result.findings.filter(pl.col("check_id") == "catalogue_parity").height == 0


def orders(source, currencies, totals, **extra):
    placed = (CAPTURED - timedelta(days=3)).isoformat()
    n = len(totals)
    return snap(
        source,
        "orders",
        order_id=[f"SO-{i}" for i in range(n)],
        external_id=[f"UK-{i}" for i in range(n)],
        status=["shipped"] * n,
        placed_at=[placed] * n,
        total=totals,
        currency=currencies,
        **extra,
    )


def test_an_order_in_another_currency_is_reported_as_such_not_as_a_total(tmp_path):
    erp = orders("bluecherry", ["GBP", "GBP", "GBP"], ["79.00", "79.00", "79.00"], channel=["MKP-UK"] * 3)
    # SO-0 agrees; SO-1 is the same number in EUR; SO-2 is another number in EUR.
    target = orders("mirakl_uk", ["GBP", "EUR", "EUR"], ["79.00", "79.00", "92.00"])
    config = {**CONFIG, "feeds": [{**FEED, "entities": ["orders"]}]}
    found = run_audit(tmp_path, [erp, target], config, ["order_value_drift"])
    assert keys(found, "order_value_drift") == {("mirakl_uk", "SO-1", "currency"), ("mirakl_uk", "SO-2", "currency")}
