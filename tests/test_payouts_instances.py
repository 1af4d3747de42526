"""Payouts per marketplace instance: two Mirakl marketplaces, each reconciled with its own settings, closed
on its own and checked nightly on its own."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from driftwatch.config import load_config, parse_config
from driftwatch.engine import audit
from driftwatch.errors import UserError
from driftwatch.filedrop import load_directory
from driftwatch.payouts import lock, reconcile
from driftwatch.payouts.settings import marketplaces, payout_settings
from driftwatch.store import Store

FIXTURE = Path(__file__).parent.parent / "fixtures" / "payouts"
OCTOBER = "2026-10"
FEEDS = [
    {"source": "bluecherry", "target": name, "entities": ["orders", "payout_lines"]}
    for name in ("mirakl_fr", "mirakl_de")
]
TWO_MARKETPLACES = {
    "sources": {"mirakl_fr": {"kind": "mirakl"}, "mirakl_de": {"kind": "mirakl"}},
    "feeds": FEEDS,
    "payouts": {
        "commission": {"default": "0.15", "categories": {"footwear": {"rate": "0.12", "skus": ["FW-*"]}}},
        "marketplaces": {
            "mirakl_fr": {"channel": "mirakl"},  # the ERP's channel name for these orders
            "mirakl_de": {"channel": "mirakl", "commission": {"default": "0.10"}},
        },
    },
}


def drop(tmp_path: Path) -> Path:
    """The fixture retailer's payouts, paid out by two marketplaces: the same documents, each on its own."""
    root = tmp_path / "drop"
    shutil.copytree(FIXTURE / "retailer" / "bluecherry", root / "bluecherry")
    for name in ("mirakl_fr", "mirakl_de"):
        shutil.copytree(FIXTURE / "retailer" / "mirakl", root / name)
    return root


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "s.duckdb") as opened:
        load_directory(opened, drop(tmp_path), parse_config(TWO_MARKETPLACES))
        yield opened


def test_each_marketplace_has_its_own_settings_over_the_shared_ones():
    cfg = parse_config(TWO_MARKETPLACES)
    assert marketplaces(cfg) == ("mirakl_fr", "mirakl_de")
    fr, de = payout_settings(cfg, "mirakl_fr"), payout_settings(cfg, "mirakl_de")
    assert (fr.marketplace, fr.erp, fr.default_rate) == ("mirakl_fr", "bluecherry", Decimal("0.15"))
    assert (de.marketplace, de.default_rate) == ("mirakl_de", Decimal("0.10"))
    assert [c.name for c in de.categories] == ["footwear"]  # the shared categories stay
    # Without [payouts], every marketplace a feed gives payout lines is reconciled, each on its own channel.
    bare = parse_config({k: v for k, v in TWO_MARKETPLACES.items() if k != "payouts"})
    assert marketplaces(bare) == ("mirakl_fr", "mirakl_de")
    assert payout_settings(bare, "mirakl_de").channel == "mirakl_de"
    with pytest.raises(UserError, match=r"several marketplaces are reconciled \(mirakl_fr, mirakl_de\)"):
        payout_settings(cfg)
    with pytest.raises(UserError, match="'klaviyo' is not a marketplace source"):
        payout_settings(cfg, "klaviyo")


def test_a_single_marketplace_config_is_reconciled_as_before(tmp_path):
    cfg = load_config(FIXTURE / "driftwatch.toml")
    assert marketplaces(cfg) == ("mirakl",) and payout_settings(cfg).marketplace == "mirakl"


def test_each_marketplace_is_reconciled_and_closed_on_its_own(store):
    cfg = parse_config(TWO_MARKETPLACES)
    fr = reconcile(store, cfg, OCTOBER, "mirakl_fr")
    de = reconcile(store, cfg, OCTOBER, "mirakl_de")
    assert (fr.marketplace, de.marketplace) == ("mirakl_fr", "mirakl_de")
    # The same documents: what differs is DE's agreed rate, so only the commission verdicts differ.
    assert fr.documents.equals(de.documents)
    rate_issues = {name: set(r.mismatches.filter(pl.col("check") == "commission_rate")["external_id"]) for name, r in
                   (("fr", fr), ("de", de))}  # fmt: skip
    assert rate_issues["fr"] != rate_issues["de"]
    lock(store, fr)
    assert reconcile(store, cfg, OCTOBER, "mirakl_fr").locked_at is not None
    assert reconcile(store, cfg, OCTOBER, "mirakl_de").locked_at is None  # DE's October is still open
    with pytest.raises(UserError, match="mirakl_fr period 2026-10 is already locked"):
        lock(store, fr)


def test_the_nightly_check_matches_each_marketplaces_payouts(store):
    cfg = parse_config(TWO_MARKETPLACES)
    found = audit(store, cfg, checks=["payout_matching"]).findings.filter(pl.col("check_id") == "payout_matching")
    by_target = {t: set(found.filter(pl.col("target") == t)["key"]) for t in ("mirakl_fr", "mirakl_de")}
    assert by_target["mirakl_fr"] and by_target["mirakl_de"]
    month_end = {name: reconcile(store, cfg, OCTOBER, name) for name in by_target}
    for name, result in month_end.items():  # every October line month-end flags is a finding on its instance
        flagged = set(result.unmatched_marketplace["line_id"]) | set(result.mismatched_lines["line_id"])
        assert flagged <= by_target[name], name


def test_closes_kept_before_marketplaces_had_their_own_are_mirakls(tmp_path):
    cfg = load_config(FIXTURE / "driftwatch.toml")
    with Store(tmp_path / "s.duckdb") as store:
        root = tmp_path / "drop"
        shutil.copytree(FIXTURE / "retailer", root)
        load_directory(store, root, cfg)
        lock(store, reconcile(store, cfg, OCTOBER))
        # The store as the previous version left it: one close per period, no marketplace.
        store.connection.execute(
            """
            CREATE TABLE old_closes AS SELECT period, locked_at FROM payout_closes;
            CREATE TABLE old_tables AS SELECT period, table_name, row_count, parquet FROM payout_close_tables;
            DROP TABLE payout_closes; DROP TABLE payout_close_tables;
            ALTER TABLE old_closes RENAME TO payout_closes; ALTER TABLE old_tables RENAME TO payout_close_tables;
            DELETE FROM schema_migrations WHERE version = 301;
            """
        )
        assert 301 in store.migrate()
        kept = reconcile(store, cfg, OCTOBER)
    assert kept.locked_at is not None and kept.marketplace == "mirakl"
