"""The platform registry: a platform is one folder and one registration, built-in or from a plugin package
through the `driftwatch.platforms` entry-point group, and is then pulled, audited and repaired like any other."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from driftwatch import platforms
from driftwatch.config import parse_config
from driftwatch.engine import audit
from driftwatch.errors import UserError
from driftwatch.platforms import Platform
from driftwatch.pull import pull_sources
from driftwatch.repair import apply_plan, make_plan, pusher_for
from driftwatch.store import IncomingSnapshot, Store


def install_plugin(site: Path, entry: str) -> None:
    """What `pip install driftwatch-toy` leaves on the path: a distribution declaring the entry point."""
    info = site / "driftwatch_toy-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: driftwatch-toy\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[driftwatch.platforms]\ntoy = {entry}\n", encoding="utf-8")


@pytest.fixture
def toy_plugin(tmp_path, monkeypatch):
    install_plugin(tmp_path / "site", "toy_platform:PLATFORM")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    platforms.reload_plugins()
    yield platforms.get("toy")
    platforms.unregister("toy")


def test_a_plugin_platform_is_found_through_its_entry_point(toy_plugin):
    assert toy_plugin.name == "toy" and "toy" in platforms.names()
    assert not toy_plugin.marketplace and not toy_plugin.system_of_record
    assert toy_plugin.settings() >= {"path", "kind", "timezone"}  # its own settings and the common ones


def test_a_plugin_platform_is_pulled_audited_and_repaired_per_instance(toy_plugin, tmp_path):
    shop = tmp_path / "shop.json"
    shop.write_text(json.dumps({"stock": {"S1": 4, "S2": 9}}), encoding="utf-8")
    cfg = parse_config(
        {
            "sources": {"toy_eu": {"kind": "toy", "path": str(shop)}},
            "feeds": [{"source": "bluecherry", "target": "toy_eu", "entities": ["inventory"]}],
            "statuses": {"toy_eu": {"LOST": "cancelled"}},
        }
    )
    assert cfg.status_map("toy_eu") == {"LOST": "cancelled", "OPEN": "placed", "SENT": "shipped"}
    erp = pl.DataFrame(
        {"sku": ["S1", "S2"], "location": ["W1", "W1"], "on_hand": [6, 9], "allocated": [0, 0], "safety_stock": [0, 0]}
    )
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest([IncomingSnapshot("bluecherry", "inventory", datetime.now(UTC), erp)])
        assert [r.error for r in pull_sources(store, cfg, progress=False)] == [None]
        drift = audit(store, cfg, checks=["stock_parity"]).findings
        assert drift.select("target", "key", "expected", "actual").rows() == [("toy_eu", "S1", "6", "4")]
        plan = make_plan(store, cfg)
        report = apply_plan(store, cfg, plan, {"toy_eu": pusher_for("toy_eu", cfg)})
        assert list(report.verdicts.values()) == ["repaired"]
        pull_sources(store, cfg, progress=False)
        after = audit(store, cfg, checks=["stock_parity"]).findings
    assert json.loads(shop.read_text(encoding="utf-8")) == {"stock": {"S1": 6, "S2": 9}}
    assert after.filter(pl.col("status") != "resolved").height == 0


def test_a_broken_plugin_is_named_in_one_line(tmp_path, monkeypatch):
    install_plugin(tmp_path / "site", "no_such_module:PLATFORM")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(UserError, match=r"plugin platform 'toy' \(no_such_module:PLATFORM\) cannot be loaded"):
        platforms.reload_plugins()
    with pytest.raises(UserError, match="plugin platform 'toy'"):
        platforms.get("mirakl")  # every lookup says so, until the plugin is fixed or removed
    monkeypatch.undo()
    assert platforms.get("mirakl").marketplace


def test_a_name_is_registered_once_and_unknown_names_list_the_known():
    other = Platform("mirakl", connector="elsewhere:Connector")
    with pytest.raises(UserError, match="platform 'mirakl' is registered twice"):
        platforms.register(other)
    assert platforms.get("mirakl").connector == "driftwatch.connectors.mirakl.connector:Connector"
    with pytest.raises(UserError, match="unknown platform 'shopify'; expected one of bluecherry, commercetools"):
        platforms.get("shopify")


def test_push_sides_import_the_push_protocol_not_repair():
    """Connectors and repair meet in driftwatch.push: no module of a platform's folder imports repair."""
    connectors = Path(platforms.__file__).parent / "connectors"
    for path in connectors.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = [
            name
            for node in ast.walk(tree)
            for name in (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
        ]
        assert not [name for name in imported if name.startswith("driftwatch.repair")], path
