"""Repairs pushed to Emarsys: a real audit of the ERP's customers against a pull from the loopback simulator, a
plan, and an apply (killed in a subprocess and resumed) that leaves Emarsys equal to the ERP with every
contact written once."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from killed_apply import KILL_IDS, KILL_POINTS, apply_again, kill_apply
from push_scenario import SMALL_SHOP_GUARDS, audit_against, push_config
from push_scenario import open_drift as scenario_open_drift

from driftwatch.config import Config, parse_config
from driftwatch.connectors.emarsys.push import Pusher
from driftwatch.engine.runner import audit
from driftwatch.normalize import coerce
from driftwatch.pull import pull_sources
from driftwatch.repair import apply_plan, load_plan, make_plan
from driftwatch.repair.plan import Action
from driftwatch.simulators.emarsys import EmarsysSimulator as Simulator
from driftwatch.store import IncomingSnapshot, Store

NOW = datetime.now(UTC).replace(microsecond=0)
STAMP = "2026-11-01T10:00:00+00:00"
CHECKS = ["customer_master_parity", "consent_parity"]
ERP_IDS = [f"E{i}" for i in range(1, 9)]


def erp_customers() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": ERP_IDS,
            "email": [f"c{i}@example.com" for i in range(1, 9)],
            "email_consent": ["true", "false", "true", "false", "true", "false", "true", "true"],
            "first_name": ["Ann", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal"],
            "last_name": [f"Last{i}" for i in range(1, 9)],
            "postcode": [f"N{i} 1AA" for i in range(1, 9)],
            "country": ["GB"] * 8,
            "merged_into": [None] * 8,
            "updated_at": [STAMP] * 8,
        },
        schema_overrides={"merged_into": pl.String},
    )


def emarsys_contacts() -> pl.DataFrame:
    """Emarsys, drifted from the ERP: E1's name, E2 still subscribed, E3's old email, E5's postcode, E6 stored
    without its ERP id (known by email) under an old surname; E8 never reached Emarsys."""
    truth = erp_customers().filter(pl.col("customer_id") != "E8")
    drift = {
        "E1": {"first_name": "Anne"},
        "E2": {"email_consent": "true"},
        "E3": {"email": "old3@example.com"},
        "E5": {"postcode": "OLD 1"},
        "E6": {"last_name": "Maiden", "erp_customer_id": None},
    }
    rows = []
    for n, row in enumerate(truth.to_dicts()):
        erp_id = row["customer_id"]
        rows.append({**row, "customer_id": str(5000 + n), "erp_customer_id": erp_id, **drift.get(erp_id, {})})
    return pl.DataFrame(rows, schema=dict.fromkeys(rows[0], pl.String))


EXPECTED_PLAN = {
    ("customer_master_parity", "E1", "first_name", "Ann"),
    ("consent_parity", "E2", "email_consent", "false"),
    ("customer_master_parity", "E3", "email", "c3@example.com"),
    ("customer_master_parity", "E5", "postcode", "N5 1AA"),
    ("customer_master_parity", "E6", "last_name", "Last6"),
    ("customer_master_parity", "E8", "", "present"),
}
WRITTEN = {"E1", "E2", "E3", "E5", "E6", "E8"}


def config(settings: dict) -> dict:
    return push_config("emarsys", settings, ["customers"])


def audited(sim: Simulator, settings: dict, db: Path) -> Config:
    return audit_against("emarsys", sim, config(settings), db, {"customers": erp_customers()}, NOW, CHECKS)


def open_drift(sim: Simulator, settings: dict, db: Path) -> set[tuple[str, str, str]]:
    return scenario_open_drift("emarsys", sim, config(settings), db, CHECKS)


@pytest.fixture
def sim():
    with Simulator({"customers": emarsys_contacts()}) as simulator:
        yield simulator


@pytest.fixture
def settings(sim, fast_http) -> dict:
    return sim.settings(**fast_http)


@pytest.fixture(scope="module")
def made_plan(tmp_path_factory) -> Path:
    """The ERP snapshot, a pull of the drifted simulator, an audit and its plan: made once, copied per test."""
    folder = tmp_path_factory.mktemp("planned")
    with Simulator({"customers": emarsys_contacts()}) as sim:
        cfg = audited(sim, sim.settings(), folder / "s.duckdb")
    with Store(folder / "s.duckdb") as store:
        plan = make_plan(store, cfg, checks=CHECKS)
    assert {(a.check_id, a.key, a.field, a.after) for a in plan.actions} == EXPECTED_PLAN
    plan.save(folder / "plan.json")
    return folder


def planned(settings: dict, made_plan: Path, tmp_path: Path) -> tuple[Config, Path]:
    """A copy of the audited store and its plan, and the configuration that points at this test's simulator."""
    shutil.copytree(made_plan, tmp_path, dirs_exist_ok=True)  # the store, its working folder and the plan
    return parse_config(config(settings)), tmp_path / "plan.json"


def assert_repaired(sim: Simulator, settings: dict, tmp_path: Path, report) -> None:
    assert dict(sim.writes) == dict.fromkeys(WRITTEN, 1)  # every contact written exactly once
    assert report.failed == {}
    assert set(report.verdicts.values()) == {"repaired"}
    assert open_drift(sim, settings, tmp_path / "s.duckdb") == set()


def upserts(sim: Simulator) -> int:
    return sum(r.method == "PUT" for r in sim.requests)


def contact(sim: Simulator, erp_id: str) -> dict:
    rows = sim.dataset["customers"].filter(pl.col("erp_customer_id") == erp_id)
    assert rows.height == 1, rows
    return rows.row(0, named=True)


def test_apply_repairs_every_drifted_contact_in_one_upsert(sim, settings, made_plan, tmp_path):
    cfg, plan_path = planned(settings, made_plan, tmp_path)
    with Store(tmp_path / "s.duckdb") as store:
        report = apply_plan(store, cfg, load_plan(plan_path), {"emarsys": Pusher(cfg.source("emarsys"), env=sim.env)})
    assert_repaired(sim, settings, tmp_path, report)
    assert upserts(sim) == 2  # one keyed by the ERP id, one by the Emarsys id (E6, known by email)
    assert contact(sim, "E6")["customer_id"] == "5005"  # the email-matched contact, not a duplicate
    assert contact(sim, "E8")["customer_id"] == "5007"  # created
    assert contact(sim, "E2")["email_consent"] == "false"


@pytest.mark.parametrize(("kill_at", "when"), KILL_POINTS, ids=KILL_IDS)
def test_a_killed_apply_resumes_and_writes_every_contact_once(sim, settings, made_plan, tmp_path, kill_at, when):
    cfg, plan_path = planned(settings, made_plan, tmp_path)
    kill_apply(
        "emarsys",
        db=tmp_path / "s.duckdb",
        plan_path=plan_path,
        config=config(settings),
        batch_size=2,
        kill_at=kill_at,
        when=when,
        env=sim.env,
    )
    written_before = {1: 0, 2: 2}[kill_at] + (2 if when == "after" else 0)
    assert sum(sim.writes.values()) == written_before

    report = apply_again("emarsys", db=tmp_path / "s.duckdb", cfg=cfg, plan_path=plan_path, batch_size=2, env=sim.env)
    assert report.settled_in_doubt == (2 if when == "after" else 0)
    assert report.already_done == (2 if kill_at == 2 else 0)
    assert_repaired(sim, settings, tmp_path, report)


def action(key: str, field: str, after: str, **truth: str) -> Action:
    return Action(f"id-{key}-{field}", "emarsys", "emarsys", "upsert_contact", "customer_master_parity",
                  "customers", key, field, None, after, "fp", truth)  # fmt: skip


def test_a_contact_emarsys_refuses_fails_with_its_words_and_the_rest_of_the_call_lands(fast_http):
    contacts = pl.DataFrame(
        {
            "customer_id": ["1", "2", "3"],
            "erp_customer_id": ["E1", "E2", "E2"],  # E2 is held by two contacts: not a usable key
            "first_name": ["Anne", "Bo", "Bob"],
        }
    )
    with Simulator({"customers": contacts}) as sim:
        pusher = Pusher(sim.settings(**fast_http), env=sim.env)
        batch = [action("E1", "first_name", "Ann"), action("E2", "first_name", "Bo")]
        outcomes = pusher.push(batch)
        assert outcomes["id-E1-first_name"].ok
        refused = outcomes["id-E2-first_name"]
        assert not refused.ok and "2010: More contacts found with the external id" in refused.detail
        assert dict(sim.writes) == {"E1": 1}
        assert pusher.read(batch) == {"id-E1-first_name": "Ann", "id-E2-first_name": None}


def test_a_field_emarsys_does_not_keep_fails_without_a_call(sim, settings):
    pusher = Pusher(settings, env=sim.env)
    outcome = pusher.push([action("E1", "lifetime_value", "10.00")])["id-E1-lifetime_value"]
    assert not outcome.ok and "field_ids" in outcome.detail
    assert upserts(sim) == 0


def test_opt_in_goes_out_as_1_or_2_and_emarsys_refuses_a_boolean(sim, settings):
    pusher = Pusher(settings, env=sim.env)
    assert pusher.push([action("E1", "email_consent", "false")])["id-E1-email_consent"].ok
    assert contact(sim, "E1")["email_consent"] == "false"
    careless = [{pusher.key_field: "E1", "31": "true"}]  # what a careless client would send
    refused = pusher._put(pusher.key_field, careless)
    assert refused == {"E1": "2013: Invalid value for field 31: only 1, 2 or null are accepted"}
    assert contact(sim, "E1")["email_consent"] == "false"


@pytest.mark.parametrize("fault", ["503", "429", "upsert race"])
def test_transient_failures_during_a_push_are_retried_and_write_once(sim, settings, fault):
    pusher = Pusher(settings, env=sim.env)
    if fault == "503":
        sim.faults.set(server_errors=2)
    elif fault == "429":
        sim.faults.set(rate_limit_storm=1)
    else:
        sim.upsert_races = 1
    new = action("E9", "", "present", email="c9@example.com", first_name="Ivy", email_consent="true")
    assert pusher.push([new])["id-E9-"].ok
    assert dict(sim.writes) == {"E9": 1}
    assert pusher.read([new]) == {"id-E9-": "present"}
    assert contact(sim, "E9")["email_consent"] == "true"


def test_verify_reports_still_drifting_when_someone_undoes_the_repair(sim, settings, made_plan, tmp_path):
    cfg, plan_path = planned(settings, made_plan, tmp_path)

    def agent_renames_e1(platform, size):
        customers = sim.dataset["customers"]
        sim.dataset["customers"] = customers.with_columns(
            pl.when(pl.col("erp_customer_id") == "E1").then(pl.lit("Anne")).otherwise("first_name").alias("first_name")
        )

    with Store(tmp_path / "s.duckdb") as store:
        plan = load_plan(plan_path)
        pusher = Pusher(cfg.source("emarsys"), env=sim.env)
        report = apply_plan(store, cfg, plan, {"emarsys": pusher}, on_batch=agent_renames_e1)
    verdicts = {(a.key, a.field): report.verdicts[a.action_id] for a in plan.actions}
    assert verdicts.pop(("E1", "first_name")) == "still drifting"
    assert set(verdicts.values()) == {"repaired"}


def test_a_contact_with_the_email_but_another_erp_id_is_someone_else(fast_http):
    contacts = pl.DataFrame({"customer_id": ["1"], "erp_customer_id": ["E9"], "email": ["c1@example.com"]})
    with Simulator({"customers": contacts}) as sim:
        pusher = Pusher(sim.settings(**fast_http), env=sim.env)
        new = action("E1", "", "present", email="c1@example.com", first_name="Ann")
        assert pusher.read([new]) == {"id-E1-": "absent"}
        assert pusher.push([new])["id-E1-"].ok
        assert contact(sim, "E9")["first_name"] is None
        assert contact(sim, "E1")["customer_id"] == "2"


CATALOGUE_CHECKS = ["catalogue_parity", "stock_parity"]


def erp_catalogue() -> dict[str, pl.DataFrame]:
    products = pl.DataFrame(
        {
            "sku": ["S1", "S2", "S3", "S4"],
            "name": ["Shirt", "Scarf", "Sock", "Shoe"],
            "price": ["29.99", "15.00", "4.50", "80.00"],
            "currency": ["EUR"] * 4,
            "status": ["active", "discontinued", "active", "active"],
            "updated_at": [STAMP] * 4,
        }
    )
    inventory = pl.DataFrame(
        {
            "sku": ["S1", "S2", "S3", "S4"],
            "location": ["WH1"] * 4,
            "on_hand": ["10", "0", "6", "9"],
            "allocated": ["2", "0", "0", "0"],
            "safety_stock": ["0"] * 4,
            "updated_at": [STAMP] * 4,
        }
    )  # available-to-sell: 8, 0, 6, 9
    return {"products": products, "inventory": inventory}


def emarsys_catalogue() -> dict[str, pl.DataFrame]:
    """The catalogue Emarsys imports: S1's old price, S2 still available, S3 never added, S4's old stock, and
    S9, which the ERP does not know."""
    products = (
        erp_catalogue()["products"]
        .filter(pl.col("sku") != "S3")
        .with_columns(pl.Series("price", ["24.99", "15.00", "80.00"]), pl.lit("active").alias("status"))
    )
    products = pl.concat([products, products.tail(1).with_columns(sku=pl.lit("S9"), name=pl.lit("Sample"))])
    inventory = pl.DataFrame(
        {"sku": ["S1", "S2", "S4", "S9"], "location": ["*"] * 4, "available": ["8", "0", "3", "1"]}
    )
    return {"products": products, "inventory": inventory}


CATALOGUE_PLAN = {
    ("catalogue_parity", "S1", "price", "29.99"),
    ("catalogue_parity", "S2", "status", "discontinued"),
    ("catalogue_parity", "S3", "", "present"),
    ("catalogue_parity", "S9", "", "absent"),
    ("stock_parity", "S4", "available", "9"),
}


def catalogue_config(settings: dict) -> dict:
    feed = {"source": "bluecherry", "target": "emarsys", "entities": ["products", "inventory"]}
    return {"sources": {"emarsys": settings}, "feeds": [feed], "repair": dict(SMALL_SHOP_GUARDS)}


def catalogue_audit(sim: Simulator, settings: dict, db: Path) -> set[tuple[str, str, str, str]]:
    """Pull the catalogue, audit it against the ERP: (check, key, field, expected) of what is open."""
    cfg = parse_config(catalogue_config(settings))
    with Store(db) as store:
        store.ingest(
            IncomingSnapshot("bluecherry", entity, NOW, coerce(frame, entity).good)
            for entity, frame in erp_catalogue().items()
        )
        assert all(r.error is None for r in pull_sources(store, cfg, ["emarsys"], env=sim.env, progress=False))
        found = audit(store, cfg, checks=CATALOGUE_CHECKS).findings
    rows = found.filter(pl.col("status") != "resolved").iter_rows(named=True)
    return {(r["check_id"], r["key"], r["field"], r["expected"]) for r in rows}


def test_the_catalogue_file_is_rewritten_whole_with_the_erps_truth(fast_http, tmp_path):
    with Simulator(emarsys_catalogue()) as sim:
        settings = sim.settings(**fast_http)
        assert catalogue_audit(sim, settings, tmp_path / "s.duckdb") == CATALOGUE_PLAN
        cfg = parse_config(catalogue_config(settings))
        with Store(tmp_path / "s.duckdb") as store:
            plan = make_plan(store, cfg, checks=CATALOGUE_CHECKS)
            report = apply_plan(store, cfg, plan, {"emarsys": Pusher(settings, env=sim.env)})
        assert report.failed == {} and set(report.verdicts.values()) == {"repaired"}
        served = pl.read_csv(sim.catalog_file, infer_schema=False)
        assert sorted(served["item"]) == ["S1", "S2", "S3", "S4"]  # S9 left out: it drops out of Emarsys
        assert served.filter(pl.col("item") == "S3")["link"].to_list() == ["https://shop.example/S3"]
        assert served.filter(pl.col("item") == "S4")["title"].to_list() == ["Shoe"]  # the rest of a row is kept
        # The product the repair added (S3) carries no stock yet: the next audit proposes the ERP's 6.
        assert catalogue_audit(sim, settings, tmp_path / "s.duckdb") == {("stock_parity", "S3", "available", "6")}


def test_without_a_catalogue_file_to_write_the_actions_fail_and_nothing_is_written(fast_http):
    with Simulator(emarsys_catalogue()) as sim:
        settings = {k: v for k, v in sim.settings(**fast_http).items() if k != "catalog_file"}
        price = Action("p", "emarsys", "emarsys", "update_price", "catalogue_parity", "products", "S1", "price",
                       "24.99", "29.99", "fp")  # fmt: skip
        outcome = Pusher(settings, env=sim.env).push([price])["p"]
        assert not outcome.ok and "catalog_file" in outcome.detail
        assert not sim.catalog_file.exists()


def test_the_push_also_goes_through_api_v3_with_oauth(sim, fast_http):
    pusher = Pusher(sim.settings(auth="oauth", **fast_http), env=sim.env)
    update = action("E1", "first_name", "Ann")
    assert pusher.push([update])["id-E1-first_name"].ok
    assert pusher.read([update]) == {"id-E1-first_name": "Ann"}
    assert [r.path for r in sim.requests if r.method == "PUT"] == ["/api/v3/contact/"]
