"""A source is a named instance of a platform: two Mirakl marketplaces, each with its own channel, stock
locations, statuses, credentials and findings, configured, loaded, audited and pulled per instance."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from driftwatch.config import load_config, parse_config
from driftwatch.engine import audit
from driftwatch.errors import DataError, UserError
from driftwatch.filedrop import load_directory
from driftwatch.normalize import coerce
from driftwatch.pull import pull_sources
from driftwatch.simulators.mirakl import MiraklSimulator
from driftwatch.statuses import canonical_status
from driftwatch.store import Store

CAPTURED = datetime(2026, 11, 23, 2, tzinfo=UTC)
TWO_MIRAKLS = {
    "sources": {"mirakl_fr": {"kind": "mirakl"}, "mirakl_de": {"kind": "mirakl"}},
    "feeds": [
        {"source": "bluecherry", "target": "mirakl_fr", "entities": ["inventory", "orders"], "locations": ["WH_FR"]},
        {"source": "bluecherry", "target": "mirakl_de", "entities": ["inventory", "orders"], "locations": ["WH_DE"],
         "channels": ["MKP_DE"]},
        {"source": "bluecherry", "target": "ometria", "entities": ["orders"]},
    ],
}  # fmt: skip


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "driftwatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- configuration -------------------------------------------------------------------------------------


def test_each_instance_asks_its_platform_for_connector_marketplace_and_statuses():
    cfg = parse_config(
        {
            **TWO_MIRAKLS,
            "statuses": {"mirakl": {"PENDING_REVIEW": "placed"}, "mirakl_de": {"SHIPPING": "placed"}},
        }
    )
    assert (cfg.kind("mirakl_fr"), cfg.kind("mirakl_de"), cfg.kind("ometria")) == ("mirakl", "mirakl", "ometria")
    # Both are marketplaces because their platform is one: nothing lists them.
    assert cfg.is_marketplace("mirakl_fr") and cfg.is_marketplace("mirakl_de") and not cfg.is_marketplace("ometria")
    fr, de = cfg.status_map("mirakl_fr"), cfg.status_map("mirakl_de")
    assert canonical_status("RECEIVED", fr) == canonical_status("RECEIVED", de) == "delivered"  # platform defaults
    # [statuses.mirakl] is shared by every Mirakl instance.
    assert canonical_status("PENDING_REVIEW", fr) == canonical_status("PENDING_REVIEW", de) == "placed"
    assert (canonical_status("SHIPPING", fr), canonical_status("SHIPPING", de)) == ("accepted", "placed")
    # Orders of each marketplace's channel stay away from the other targets.
    assert {"mirakl", "mirakl_fr", "MKP_DE"} <= set(cfg.marketplace_channels())
    assert "mirakl_de" in cfg.marketplace_channels()  # a configured marketplace's own name, channels or not


def test_a_source_named_after_its_platform_needs_no_kind_and_keeps_working_alone(tmp_path):
    cfg = load_config(write_config(tmp_path, '[sources.mirakl]\nbase_url = "https://x.mirakl.net"\n'))
    assert cfg.kind("mirakl") == "mirakl" and cfg.is_marketplace("mirakl")
    assert {f.target for f in cfg.feeds} == {"emarsys", "ometria", "klaviyo", "mirakl"}
    assert {f.source for f in cfg.feeds} == {"bluecherry"}


def test_default_feeds_reach_every_configured_instance():
    cfg = parse_config({"sources": {"erp": {"kind": "bluecherry"}, "klaviyo_us": {"kind": "klaviyo"}}})
    feeds = {(f.source, f.target) for f in cfg.feeds}
    assert ("erp", "klaviyo_us") in feeds and ("erp", "klaviyo") in feeds
    assert not any(f.source == "bluecherry" for f in cfg.feeds)  # the configured ERP instance feeds them


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[sources.Mirakl-FR]\nkind = "mirakl"\n', "sources.Mirakl-FR: a source name is lower_snake_case"),
        ('[sources.mirakl_fr]\nkind = "miracle"\n', "sources.mirakl_fr.kind: 'miracle' is not a platform"),
        ("[sources.mirakl_fr]\n", 'mirakl_fr\' is not a platform, so name its platform with kind = "..."'),
        ('[sources.klaviyo]\nkind = "mirakl"\n', "a source named 'klaviyo' is the klaviyo platform"),
        ('[statuses.mirakl_it]\nX = "placed"\n', "statuses.mirakl_it: unknown source"),
        ('[[feeds]]\nsource = "bluecherry"\ntarget = "mirakl_it"\n', "feeds[0]: source and target must be sources"),
        ('[audit]\nmarketplaces = ["amazon"]\n', "audit.marketplaces: 'amazon' is not a source"),
    ],
)
def test_instance_mistakes_name_the_key(tmp_path, text, expected):
    path = write_config(tmp_path, text)
    with pytest.raises(UserError) as err:
        load_config(path)
    assert str(path) in str(err.value) and expected in str(err.value)


# --- file drops and the audit --------------------------------------------------------------------------


def drop(root: Path, source: str, entity: str, rows: list[dict]) -> None:
    folder = root / source
    folder.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows, infer_schema_length=None).write_csv(folder / f"{entity}.csv")
    (folder / "_manifest.json").write_text(json.dumps({"captured_at": CAPTURED.isoformat()}), encoding="utf-8")


def order(order_id: str | None, external_id: str | None, channel: str, status: str = "shipped") -> dict:
    placed = (CAPTURED - timedelta(days=3)).isoformat()
    return {"order_id": order_id, "external_id": external_id, "channel": channel, "customer_id": "C1",
            "status": status, "placed_at": placed, "total": "20.00", "currency": "EUR"}  # fmt: skip


def two_marketplace_drop(root: Path) -> Path:
    """The ERP sells on two Mirakl marketplaces from two warehouses, and on the web. mirakl_fr agrees with
    it; mirakl_de publishes stock its warehouse does not have and lacks its order; Ometria has the web order."""
    stock = [("P1", "WH_FR", 5), ("P1", "WH_DE", 9), ("P2", "WH_FR", 3), ("P2", "WH_DE", 0)]
    drop(root, "bluecherry", "inventory", [
        {"sku": sku, "location": loc, "on_hand": n, "allocated": 0, "safety_stock": 0} for sku, loc, n in stock
    ])  # fmt: skip
    drop(root, "bluecherry", "orders", [
        order("SO1", "FR-1", "mirakl_fr"), order("SO2", "DE-1", "MKP_DE"), order("SO3", None, "web"),
    ])  # fmt: skip
    drop(root, "mirakl_fr", "inventory", [{"sku": "P1", "location": "*", "available": 5},
                                          {"sku": "P2", "location": "*", "available": 3}])  # fmt: skip
    drop(root, "mirakl_fr", "orders", [order("SO1", "FR-1", "mirakl_fr", "SHIPPED")])
    drop(root, "mirakl_de", "inventory", [{"sku": "P1", "location": "*", "available": 9},
                                          {"sku": "P2", "location": "*", "available": 2}])  # fmt: skip
    drop(root, "mirakl_de", "orders", [order("DE-9", "DE-9", "mirakl_de", "CLOSED")])  # a DE order the ERP lacks
    drop(root, "ometria", "orders", [order("SO3", None, "web", "shipped")])
    return root


def test_two_mirakl_instances_are_audited_each_against_its_channel_and_warehouse(tmp_path):
    cfg = parse_config(TWO_MIRAKLS)
    with Store(tmp_path / "s.duckdb") as store:
        report = load_directory(store, two_marketplace_drop(tmp_path / "drop"), cfg)
        assert {(f.source, f.entity) for f in report.files} >= {("mirakl_fr", "orders"), ("mirakl_de", "inventory")}
        found = audit(store, cfg, checks=["stock_parity", "order_presence", "unmapped_codes"]).findings
    rows = set(found.select("check_id", "target", "key", "field", "expected", "actual").rows())
    assert rows == {
        ("stock_parity", "mirakl_de", "P2", "available", "0", "2"),  # WH_DE has none of P2
        ("order_presence", "mirakl_de", "SO2", "", "present", "absent"),  # its channel is MKP_DE
        ("order_presence", "mirakl_de", "DE-9", "", "absent", "present"),  # a lost marketplace order
    }
    # Nothing on mirakl_fr (its stock comes from WH_FR only) and nothing on Ometria: marketplace orders
    # (channels mirakl_fr and MKP_DE) are not expected there.


def test_a_drop_folder_that_is_neither_a_source_nor_a_platform_names_both_lists(tmp_path):
    cfg = parse_config(TWO_MIRAKLS)
    drop(tmp_path / "drop", "mirakl_it", "orders", [order("IT-1", "IT-1", "mirakl_it")])
    with Store(tmp_path / "s.duckdb") as store, pytest.raises(DataError) as err:
        load_directory(store, tmp_path / "drop", cfg)
    message = str(err.value)
    assert "unknown source folder 'mirakl_it'" in message and "\n" not in message
    assert "configured source (mirakl_fr, mirakl_de)" in message and "platform (bluecherry," in message


def test_unmapped_codes_name_the_instance_whose_mapping_lacks_them(tmp_path):
    cfg = parse_config({**TWO_MIRAKLS, "statuses": {"mirakl_fr": {"IN_REVIEW": "placed"}}})
    root = tmp_path / "drop"
    drop(root, "mirakl_fr", "orders", [order("FR-2", "FR-2", "mirakl_fr", "IN_REVIEW")])
    drop(root, "mirakl_de", "orders", [order("DE-2", "DE-2", "mirakl_de", "IN_REVIEW")])
    with Store(tmp_path / "s.duckdb") as store:
        load_directory(store, root, cfg)
        found = audit(store, cfg, checks=["unmapped_codes"]).findings
    assert found.select("target", "key").rows() == [("mirakl_de", "IN_REVIEW")]
    assert "[statuses.mirakl_de]" in found["message"][0]


# --- pulls -----------------------------------------------------------------------------------------------


def shop(prefix: str, quantity: int) -> dict[str, pl.DataFrame]:
    products = pl.DataFrame({"sku": ["P1"], "name": ["Shirt"], "price": ["10.00"], "currency": ["EUR"],
                             "status": ["active"]})  # fmt: skip
    inventory = pl.DataFrame({"sku": ["P1"], "location": ["*"], "available": [str(quantity)]})
    orders = pl.DataFrame([order(f"{prefix}-1", f"{prefix}-1", "x", "SHIPPING")])
    return {name: coerce(frame, name).good for name, frame in
            (("products", products), ("inventory", inventory), ("orders", orders))}  # fmt: skip


def test_each_instance_is_pulled_with_its_own_credentials_into_its_own_snapshots(tmp_path):
    with MiraklSimulator(shop("FR", 4), rate_limits={}) as fr, MiraklSimulator(shop("DE", 7), rate_limits={}) as de:
        sources = {
            "mirakl_fr": {**fr.settings(), "kind": "mirakl", "api_key_env": "MIRAKL_FR_KEY"},
            "mirakl_de": {**de.settings(), "kind": "mirakl", "api_key_env": "MIRAKL_DE_KEY"},
        }
        cfg = parse_config({**TWO_MIRAKLS, "sources": sources})
        env = {"MIRAKL_FR_KEY": fr.api_key, "MIRAKL_DE_KEY": de.api_key}
        with Store(tmp_path / "s.duckdb") as store:
            results = pull_sources(store, cfg, env=env, checkpoint_dir=tmp_path / "ck", progress=False)
            assert not [r.error for r in results if r.error]
            assert {r.source for r in results} == {"mirakl_fr", "mirakl_de"}
            stock = {name: store.latest(name, "inventory")["available"].to_list() for name in sources}
            orders = {name: store.latest(name, "orders").select("external_id", "channel").row(0) for name in sources}
        # The staged pages of one instance never mix with the other's.
        assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["mirakl_de", "mirakl_fr"]
        with Store(tmp_path / "s2.duckdb") as store:
            wrong = pull_sources(store, cfg, ["mirakl_de"], env={"MIRAKL_DE_KEY": fr.api_key}, progress=False)
    assert stock == {"mirakl_fr": [4], "mirakl_de": [7]}
    assert orders == {"mirakl_fr": ("FR-1", "mirakl_fr"), "mirakl_de": ("DE-1", "mirakl_de")}
    assert wrong[0].source == "mirakl_de" and wrong[0].error  # the FR key opens no door at the DE shop


# --- repair ----------------------------------------------------------------------------------------------


def test_repair_pushes_each_instances_drift_to_that_instance_with_its_own_key(tmp_path):
    from driftwatch.connectors.mirakl.push import WRITE_CALL_LIMITS
    from driftwatch.repair import apply_plan, make_plan, pusher_for
    from driftwatch.store import IncomingSnapshot

    fast = {"call_limits": {op: [[1, 0.05]] for op in WRITE_CALL_LIMITS}}
    with MiraklSimulator(shop("FR", 4), rate_limits={}) as fr, MiraklSimulator(shop("DE", 7), rate_limits={}) as de:
        sources = {
            "mirakl_fr": {**fr.settings(**fast), "kind": "mirakl", "api_key_env": "MIRAKL_FR_KEY"},
            "mirakl_de": {**de.settings(**fast), "kind": "mirakl", "api_key_env": "MIRAKL_DE_KEY"},
        }
        cfg = parse_config({**TWO_MIRAKLS, "sources": sources})
        env = {"MIRAKL_FR_KEY": fr.api_key, "MIRAKL_DE_KEY": de.api_key}
        erp_stock = pl.DataFrame({"sku": ["P1", "P1"], "location": ["WH_FR", "WH_DE"], "on_hand": [6, 7],
                                  "allocated": [0, 0], "safety_stock": [0, 0]})  # fmt: skip
        with Store(tmp_path / "s.duckdb") as store:
            store.ingest([IncomingSnapshot("bluecherry", "inventory", datetime.now(UTC), erp_stock)])
            assert not [r.error for r in pull_sources(store, cfg, env=env, progress=False) if r.error]
            audit(store, cfg, checks=["stock_parity"])
            plan = make_plan(store, cfg)
            assert [(a.platform, a.key, a.before, a.after) for a in plan.actions] == [("mirakl_fr", "P1", "4", "6")]
            pushers = {name: pusher_for(name, cfg, env=env) for name in plan.by_platform()}
            assert pushers["mirakl_fr"].target == "mirakl_fr"
            report = apply_plan(store, cfg, plan, pushers)
        assert report.verdicts == {plan.actions[0].action_id: "repaired"}
        assert dict(fr.writes) == {("STO01", "P1"): 1} and not de.writes


@pytest.mark.parametrize("erp", ["commercetools", "erp_us"])
def test_erp_side_repairs_go_to_the_system_of_record_of_the_findings_feed(tmp_path, erp):
    """A marketplace order the system of record lacks is imported into that system of record: the
    storefront when commercetools owns orders, the configured BlueCherry instance otherwise."""
    from driftwatch.repair import make_plan, pusher_for
    from driftwatch.store import IncomingSnapshot

    sources = {"erp_us": {"kind": "bluecherry", "outbox": str(tmp_path / "outbox")}} if erp == "erp_us" else {}
    cfg = parse_config({"sources": sources, "feeds": [{"source": erp, "target": "mirakl", "entities": ["orders"]}]})
    truth = coerce(pl.DataFrame([order("SO1", "MRK-1", "mirakl", "shipped")]), "orders").good
    copy = pl.DataFrame([order("MRK-1", "MRK-1", "mirakl", "SHIPPED"), order("MRK-2", "MRK-2", "mirakl", "SHIPPED")])
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest([IncomingSnapshot(erp, "orders", CAPTURED, truth),
                      IncomingSnapshot("mirakl", "orders", CAPTURED, coerce(copy, "orders").good)])  # fmt: skip
        audit(store, cfg, checks=["order_presence"])
        plan = make_plan(store, cfg)
    assert [(a.platform, a.target, a.action, a.key) for a in plan.actions] == [
        (erp, "mirakl", "import_order_to_erp", "MRK-2")
    ]
    if erp == "erp_us":  # BlueCherry takes it as an import file, in this instance's outbox
        pusher = pusher_for(erp, cfg)
        assert pusher.target == erp and pusher.outbox == tmp_path / "outbox"
        assert "import_order_to_erp" in pusher.actions
    else:  # the storefront has no such write: apply refuses it by name rather than pushing it elsewhere
        assert "import_order_to_erp" not in cfg.platform(erp).load_pusher().actions


def test_pulling_a_source_nobody_configured_is_a_usage_error(tmp_path):
    with Store(tmp_path / "s.duckdb") as store, pytest.raises(UserError, match="unknown source 'mirakl_it'"):
        pull_sources(store, parse_config(TWO_MIRAKLS), ["mirakl_it"])
