"""The store's migrations and the configuration's validation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from driftwatch import platforms
from driftwatch import store as store_module
from driftwatch.cli import cli
from driftwatch.config import load_config
from driftwatch.errors import UserError
from driftwatch.statuses import canonical_status, merged_map
from driftwatch.store import IncomingSnapshot, Store


def test_an_empty_store_migrates_to_the_current_version(tmp_path):
    path = tmp_path / "new.duckdb"
    with Store(path) as s:
        version = s.schema_version()
        assert version == max(store_module._MIGRATIONS)
        tables = set(s.frame("SELECT table_name FROM information_schema.tables")["table_name"])
    assert {"snapshots", "quarantine", "snap_orders", "snap_payout_lines", "schema_migrations"} <= tables
    with Store(path) as again:  # reopening applies nothing twice
        assert again.migrate() == []


def test_a_store_from_an_older_version_gets_only_the_new_migrations(tmp_path, monkeypatch):
    path = tmp_path / "old.duckdb"
    with Store(path):
        pass
    newer = dict(store_module._MIGRATIONS)
    newer[999] = store_module.Migration(999, "extra", "CREATE TABLE extra_table (x INTEGER);")
    monkeypatch.setattr(store_module, "_MIGRATIONS", newer)
    with Store(path) as s:
        assert s.schema_version() == 999
        assert s.frame("SELECT count(*) AS n FROM extra_table")["n"][0] == 0


def test_a_failing_migration_leaves_the_store_at_its_previous_version(tmp_path, monkeypatch):
    path = tmp_path / "s.duckdb"
    with Store(path) as s:
        before = s.schema_version()
    broken = dict(store_module._MIGRATIONS)
    broken[998] = store_module.Migration(998, "broken", "CREATE TABLE half (x INTEGER); SELECT * FROM missing_table;")
    monkeypatch.setattr(store_module, "_MIGRATIONS", broken)
    with pytest.raises(duckdb.Error):
        Store(path)
    monkeypatch.undo()
    with Store(path) as s:
        assert s.schema_version() == before
        assert "half" not in set(s.frame("SELECT table_name FROM information_schema.tables")["table_name"])


def test_db_info_lists_latest_snapshots(tmp_path):
    drop = tmp_path / "drop" / "mirakl"
    drop.mkdir(parents=True)
    (drop / "products.csv").write_text("sku,price\nA,1\n")
    db = str(tmp_path / "s.duckdb")
    runner = CliRunner()
    assert runner.invoke(cli, ["--db", db, "load", str(tmp_path / "drop")]).exit_code == 0
    result = runner.invoke(cli, ["--db", db, "db", "info", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert '"entity": "products"' in result.output and '"row_count": 1' in result.output


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "driftwatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_starter_config_is_valid(tmp_path):
    path = tmp_path / "driftwatch.toml"
    result = CliRunner().invoke(cli, ["init", "--path", str(path)])
    assert result.exit_code == 0
    cfg = load_config(path)
    assert {f.target for f in cfg.feeds} == {"mirakl", "klaviyo"}
    assert CliRunner().invoke(cli, ["init", "--path", str(path)]).exit_code != 0  # never clobbers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[sauces]\n", "sauces: unknown section"),
        ("[sources.shopify]\n", "sources.shopify: unknown source"),
        ('[sources.klaviyo]\napi_key = "pk_live_123"\n', "sources.klaviyo.api_key: secrets never go in this file"),
        ('[statuses.bluecherry]\n"10" = "booked"\n', "statuses.bluecherry.'10': 'booked' is not a canonical status"),
        ('[[feeds]]\nsource = "bluecherry"\ntarget = "tiktok"\n', "feeds[0]: source and target must be sources"),
        ('[audit]\nfail_on = "urgent"\n', "audit.fail_on: 'urgent' is not a severity"),
        ('[sources.bluecherry.column_map.inventory]\n"QOH" = "qoh"\n', "'qoh' is not a column of inventory"),
        ("[audit\n", "not valid TOML"),
    ],
)
def test_config_errors_name_file_key_and_problem(tmp_path, text, expected):
    path = write_config(tmp_path, text)
    with pytest.raises(UserError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_secret_values_never_echo_in_the_error(tmp_path):
    path = write_config(tmp_path, '[sources.mirakl]\napi_key = "s3cr3t-value"\n')
    with pytest.raises(UserError) as err:
        load_config(path)
    assert "s3cr3t-value" not in str(err.value)


def test_status_maps_merge_user_entries_and_defaults(tmp_path):
    path = write_config(tmp_path, '[statuses.bluecherry]\n"50" = "shipped"\n[statuses.mirakl]\nSHIPPING = "placed"\n')
    cfg = load_config(path)
    assert canonical_status("50", cfg.status_map("bluecherry")) == "shipped"
    assert canonical_status("77", cfg.status_map("bluecherry")) is None  # unmapped: a finding, not a guess
    assert canonical_status("shipped", cfg.status_map("bluecherry")) == "shipped"  # already canonical
    assert canonical_status("SHIPPING", cfg.status_map("mirakl")) == "placed"  # the user's entry wins
    assert canonical_status("RECEIVED", cfg.status_map("mirakl")) == "delivered"


def test_commercetools_compound_states_pick_the_most_specific():
    mapping = merged_map(platforms.get("commercetools").vocabulary, None)
    assert canonical_status("Confirmed/Shipped", mapping) == "shipped"
    assert canonical_status("Confirmed/Partial", mapping) == "partially_shipped"
    assert canonical_status("Cancelled/Shipped", mapping) == "cancelled"
    assert canonical_status("Open", mapping) == "placed"
    assert canonical_status("Confirmed/Backorder", mapping) == "accepted"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[report]\nmask_email = false\n", "[report]: unknown setting(s) mask_email"),
        ('[[alerts.routes]]\nname = "x"\nurls = ["json://h/"]\nmin_severity = "urgent"\n', "urgent"),
        ("[repair]\nmax_zero_stock_shar = 0.1\n", "[repair] max_zero_stock_shar: unknown setting"),
        ('[payouts]\ntolerance = "a lot"\n', "tolerance"),
    ],
)
def test_every_section_is_validated_when_the_config_is_read(tmp_path, text, expected):
    path = write_config(tmp_path, text)
    with pytest.raises(UserError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: ") and expected in str(err.value)


def test_a_snapshot_read_for_some_columns_gets_only_those_it_holds(tmp_path):
    frame = pl.DataFrame({"sku": ["A", "B"], "location": ["W1", "W2"], "on_hand": [3, None]})
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest([IncomingSnapshot("erp", "inventory", datetime(2026, 11, 23, tzinfo=UTC), frame)])
        info = store.latest_snapshot("erp", "inventory")
        # `available` is not held by this source: asking for it reads nothing more.
        some = store.rows(info, ["on_hand", "sku", "available"])
        assert some.columns == ["sku", "on_hand"]
        assert some.sort("sku").rows() == [("A", 3), ("B", None)]
        assert store.rows(info).columns == list(info.columns)
