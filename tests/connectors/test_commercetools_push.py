"""Repairs pushed to commercetools: a real audit of ERP snapshots against a pull from the loopback simulator,
a plan, and an apply (killed in a subprocess and resumed) that leaves the platform equal to the ERP with
every record written once."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from killed_apply import KILL_IDS, KILL_POINTS, apply_again, kill_apply

from driftwatch.config import Config, parse_config
from driftwatch.connectors.commercetools import mapping
from driftwatch.connectors.commercetools.push import Pusher
from driftwatch.engine.runner import audit
from driftwatch.entities import ENTITIES
from driftwatch.normalize import coerce
from driftwatch.pull import pull_sources
from driftwatch.repair import apply_plan, load_plan, make_plan
from driftwatch.repair.plan import Action
from driftwatch.simulators.commercetools import CommercetoolsSimulator as Simulator
from driftwatch.store import IncomingSnapshot, Store

NOW = datetime.now(UTC).replace(microsecond=0)
STAMP = "2026-11-01T10:00:00Z"
CHECKS = [
    "stock_parity",
    "customer_master_parity",
    "consent_parity",
    "ltv_after_refunds",
    "order_status_drift",
    "order_presence",
    "order_value_drift",
]
RECENT = (NOW - timedelta(hours=1)).isoformat()


def erp() -> dict[str, pl.DataFrame]:
    """The ERP's truth: stock, customers and the orders of one customer (E7)."""
    inventory = pl.DataFrame(
        {
            "sku": ["S1", "S2", "S3", "S4", "S5", "S6"],
            "location": ["WH1"] * 6,
            "on_hand": ["10", "5", "8", "4", "9", "3"],
            "allocated": ["2", "0", "3", "0", "0", "1"],
            "safety_stock": ["1", "0", "0", "0", "0", "0"],
            "updated_at": [STAMP] * 6,
        }
    )  # available-to-sell: 7, 5, 5, 4, 9, 2
    ids = [f"E{i}" for i in range(1, 9)]
    customers = pl.DataFrame(
        {
            "customer_id": ids,
            "email": [f"c{i}@example.com" for i in range(1, 9)],
            "email_consent": ["true", "false", "true", "false", "true", "false", "true", "true"],
            "sms_consent": ["false"] * 8,
            "first_name": ["Ann", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal"],
            "last_name": [f"Last{i}" for i in range(1, 9)],
            "postcode": [f"N{i} 1AA" for i in range(1, 9)],
            "country": ["GB"] * 8,
            "updated_at": [STAMP] * 8,
        }
    ).with_columns(
        pl.when(pl.col("customer_id") == "E3").then(pl.lit("new3@example.com"))
        .when(pl.col("customer_id") == "E4").then(pl.lit("taken@example.com"))
        .otherwise(pl.col("email")).alias("email")
    )  # fmt: skip
    orders = pl.DataFrame(
        {
            "order_id": ["W1", "W2", "W3", "W4"],
            "external_id": ["WEB-1", "WEB-2", "WEB-3", "WEB-4"],
            "channel": ["web"] * 4,
            "customer_id": ["E7"] * 4,
            "status": ["shipped", "placed", "cancelled", "placed"],
            "placed_at": ["2026-10-01T09:00:00Z", "2026-10-02T09:00:00Z", "2026-10-03T09:00:00Z", RECENT],
            "updated_at": [STAMP] * 4,
            "total": ["100.00", "50.00", "30.00", "20.00"],
            "currency": ["EUR"] * 4,
        }
    )
    products = pl.DataFrame(
        {"sku": inventory["sku"], "price": ["10.00"] * 6, "currency": ["EUR"] * 6, "status": ["active"] * 6}
    )
    return {"inventory": inventory, "products": products, "customers": customers, "orders": orders}


def storefront() -> dict[str, pl.DataFrame]:
    """commercetools, drifted from the ERP in ways each repair action answers (and three it cannot)."""
    inventory = pl.DataFrame(
        {
            "sku": ["S1", "S2", "S3", "S4", "S5", "S6"],
            "location": ["WH1"] * 6,
            "on_hand": ["7", "9", "6", "4", "12", "2"],  # S3: 2 units reserved by checkouts
            "available": ["7", "9", "4", "4", "12", "2"],
            "updated_at": [STAMP] * 6,
        }
    )
    truth = erp()["customers"].filter(pl.col("customer_id") != "E8")  # E8 never signed up
    customers = pl.concat(
        [
            truth.with_columns(
                pl.col("customer_id").str.replace("E", "c"),
                pl.col("customer_id").alias("erp_customer_id"),
                drifted("first_name", {"E1": "Anne"}),
                drifted("email_consent", {"E2": "true"}),
                drifted("email", {"E3": "old3@example.com", "E4": "old4@example.com"}),
                drifted("postcode", {"E5": "OLD 1"}),
                drifted("lifetime_value", {"E7": "999.00"}, otherwise="0"),
                drifted("order_count", {"E7": "3"}, otherwise="0"),
                drifted("last_order_at", {"E7": RECENT}, otherwise=None),
            ),
            pl.DataFrame(  # someone the ERP does not know holds the email E4 should move to
                {"customer_id": ["c9"], "erp_customer_id": ["E9"], "email": ["taken@example.com"]}
            ),
        ],
        how="diagonal_relaxed",
    )
    orders = erp()["orders"].with_columns(
        # WEB-4 was never given the ERP's number; W1 and W3 lag the ERP's status; W2 was amended in the ERP.
        pl.when(pl.col("order_id") == "W4").then(pl.lit("WEB-4")).otherwise("order_id").alias("order_id"),
        pl.Series("status", ["Confirmed/Pending", "Open", "Confirmed", "Open"]),
        pl.Series("total", ["100.00", "55.00", "30.00", "20.00"]),
        pl.lit("c7").alias("customer_id"),
    )
    return {"inventory": inventory, "customers": customers, "orders": orders}


def drifted(column: str, values: dict[str, str], **fallback: str | None) -> pl.Expr:
    """`column` with other values for some ERP customers (and `otherwise` for the rest, if given)."""
    rest = pl.lit(fallback["otherwise"], pl.String) if fallback else pl.col(column).cast(pl.String)
    return pl.col("customer_id").replace_strict(values, default=rest, return_dtype=pl.String).alias(column)


def config(sim: Simulator, http: dict) -> dict:
    return {
        "sources": {"commercetools": sim.settings(**http)},
        "feeds": [
            {"source": "bluecherry", "target": "commercetools", "entities": ["inventory", "customers", "orders"]}
        ],
    }


def audited(sim: Simulator, db: Path, http: dict) -> Config:
    """ERP snapshots and a commercetools pull in the store, audited."""
    cfg = parse_config(config(sim, http))
    with Store(db) as store:
        store.ingest(
            IncomingSnapshot("bluecherry", entity, NOW, every_column(frame, entity)) for entity, frame in erp().items()
        )
        assert all(r.error is None for r in pull_sources(store, cfg, ["commercetools"], env=sim.env, progress=False))
        assert audit(store, cfg, checks=CHECKS).trusted
    return cfg


def every_column(frame: pl.DataFrame, entity: str) -> pl.DataFrame:
    """A canonical frame with each of the entity's columns, as an ERP export gives them."""
    good = coerce(frame, entity).good
    schema = ENTITIES[entity].schema
    return good.with_columns(pl.lit(None, dtype).alias(c) for c, dtype in schema.items() if c not in good.columns)


def open_drift(sim: Simulator, db: Path, http: dict) -> set[tuple[str, str, str]]:
    """(check, key, field) still open after pulling commercetools again and re-auditing."""
    cfg = parse_config(config(sim, http))
    with Store(db) as store:
        pull_sources(store, cfg, ["commercetools"], env=sim.env, progress=False)
        found = audit(store, cfg, checks=CHECKS).findings
    return {(r["check_id"], r["key"], r["field"]) for r in found.iter_rows(named=True) if r["status"] != "resolved"}


# What the ERP's truth asks of commercetools, and the three actions commercetools cannot take as asked.
EXPECTED_PLAN = {
    ("stock_parity", "S2/WH1", "available", "5"),
    ("stock_parity", "S3/WH1", "available", "5"),
    ("stock_parity", "S5/WH1", "available", "9"),
    ("customer_master_parity", "E1", "first_name", "Ann"),
    ("customer_master_parity", "E3", "email", "new3@example.com"),
    ("customer_master_parity", "E4", "email", "taken@example.com"),
    ("customer_master_parity", "E5", "postcode", "N5 1AA"),
    ("customer_master_parity", "E8", "", "present"),
    ("consent_parity", "E2", "email_consent", "false"),
    ("ltv_after_refunds", "E7", "lifetime_value", "170.00"),
    ("order_status_drift", "W1", "status", "shipped"),
    ("order_status_drift", "W3", "status", "cancelled"),
    ("order_presence", "W4", "", "present"),
    ("order_value_drift", "W2", "total", "50.00"),
}
FAILING = {
    ("customer_master_parity", "E4", "email"): "DuplicateField",
    ("customer_master_parity", "E8", ""): "does not create customers",
    ("order_value_drift", "W2", "total"): "Order Edits",
}


def written_records() -> set[str]:
    """The records the plan changes: each must take exactly one update."""
    ids = {f"inventory/{mapping.stable_id('inventory', sku, 'WH1')}" for sku in ("S2", "S3", "S5")}
    ids |= {f"customers/{c}" for c in ("c1", "c2", "c3", "c5", "c7")}
    ids |= {f"orders/{mapping.stable_id('order', o)}" for o in ("W1", "W3", "WEB-4")}
    return ids


@pytest.fixture
def sim():
    with Simulator(storefront()) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The audited store and its plan, made once; each test starts from a copy and a fresh simulator."""
    folder = tmp_path_factory.mktemp("template")
    with Simulator(storefront()) as sim:
        cfg = audited(sim, folder / "s.duckdb", {})
    with Store(folder / "s.duckdb") as store:
        plan = make_plan(store, cfg, checks=CHECKS)
    assert {(a.check_id, a.key, a.field, a.after) for a in plan.actions} == EXPECTED_PLAN
    plan.save(folder / "plan.json")
    return folder


def planned(sim: Simulator, tmp_path: Path, http: dict, template: Path) -> tuple[Config, Path]:
    for name in ("s.duckdb", "plan.json"):
        shutil.copy(template / name, tmp_path / name)
    return parse_config(config(sim, http)), tmp_path / "plan.json"


def assert_repaired(sim: Simulator, tmp_path: Path, report, http: dict) -> None:
    assert dict(sim.writes) == dict.fromkeys(written_records(), 1)  # every record written exactly once
    plan = load_plan(tmp_path / "plan.json")
    failed = {(a.check_id, a.key, a.field): report.failed.get(a.action_id) for a in plan.actions}
    for where, words in FAILING.items():
        assert words in failed[where], failed[where]
    assert sum(v is not None for v in failed.values()) == len(FAILING)
    verdicts = {(a.check_id, a.key, a.field): report.verdicts[a.action_id] for a in plan.actions}
    assert {k for k, v in verdicts.items() if v != "repaired"} == set(FAILING)
    # A second pull and audit agree: only the drift commercetools refused is left.
    assert open_drift(sim, tmp_path / "s.duckdb", http) == set(FAILING)


def test_apply_repairs_every_drift_it_can_and_reports_the_rest_with_the_platforms_words(
    sim, tmp_path, fast_http, template
):
    cfg, plan_path = planned(sim, tmp_path, fast_http, template)
    with Store(tmp_path / "s.duckdb") as store:
        report = apply_plan(
            store, cfg, load_plan(plan_path), {"commercetools": Pusher(cfg.source("commercetools"), env=sim.env)}
        )
    assert_repaired(sim, tmp_path, report, fast_http)
    entry = sim.resources["inventory"][mapping.stable_id("inventory", "S3", "WH1")]
    assert (entry["quantityOnStock"], entry["availableQuantity"]) == (7, 5)  # the 2 reserved units stay reserved
    order = sim.resources["orders"][mapping.stable_id("order", "WEB-4")]
    assert order["custom"]["fields"] == {"erpOrderNumber": "W4"}  # set with the order's first custom type
    customer = sim.resources["customers"]["c7"]
    assert customer["custom"]["fields"]["lifetimeValue"]["centAmount"] == 17000
    assert "OrderStateChanged" in {m["type"] for m in sim.messages}


@pytest.mark.parametrize(("kill_at", "when"), KILL_POINTS, ids=KILL_IDS)
def test_a_killed_apply_resumes_and_writes_every_record_once(sim, tmp_path, kill_at, when, fast_http, template):
    cfg, plan_path = planned(sim, tmp_path, fast_http, template)
    kill_apply(
        "commercetools",
        db=tmp_path / "s.duckdb",
        plan_path=plan_path,
        config=config(sim, fast_http),
        batch_size=4,
        kill_at=kill_at,
        when=when,
        env=sim.env,
    )
    assert (sum(sim.writes.values()) > 0) == (when == "after" or kill_at > 1)

    report = apply_again(
        "commercetools", db=tmp_path / "s.duckdb", cfg=cfg, plan_path=plan_path, batch_size=4, env=sim.env
    )
    # The batch in doubt is found applied on the platform, except what it refused (asked again, refused again).
    in_doubt = load_plan(plan_path).actions[4:8] if when == "after" else []
    assert report.settled_in_doubt == sum((a.check_id, a.key, a.field) not in FAILING for a in in_doubt)
    assert_repaired(sim, tmp_path, report, fast_http)


def stock_action(key: str, after: str) -> Action:
    return Action(f"id-{key}", "commercetools", "commercetools", "set_stock", "stock_parity", "inventory", key,
                  "available", None, after, "fp")  # fmt: skip


def test_a_version_conflict_rereads_the_entry_and_keeps_what_checkout_reserved_meanwhile(sim, fast_http):
    pusher = Pusher(sim.settings(**fast_http), env=sim.env)

    def checkout_reserves_two(path, entry):
        entry["availableQuantity"] -= 2

    sim.interfere(1, checkout_reserves_two)
    outcome = pusher.push([stock_action("S2/WH1", "5")])["id-S2/WH1"]
    assert outcome.ok, outcome.detail
    assert sim.count(status=409) == 1
    entry = sim.resources["inventory"][mapping.stable_id("inventory", "S2", "WH1")]
    assert (entry["quantityOnStock"], entry["availableQuantity"]) == (7, 5)
    assert pusher.read([stock_action("S2/WH1", "5")]) == {"id-S2/WH1": "5"}


def test_endless_conflicts_fail_the_action_with_the_platforms_message(sim, fast_http):
    sim.interfere(10)
    outcome = Pusher(sim.settings(**fast_http), env=sim.env).push([stock_action("S2/WH1", "5")])["id-S2/WH1"]
    assert not outcome.ok and "ConcurrentModification" in outcome.detail
    assert sum(sim.writes.values()) == 0


@pytest.mark.parametrize(
    ("status", "after_applying"),
    [(503, False), (429, False), (502, True)],
    ids=["503", "429", "502 after the write committed"],
)
def test_transient_failures_of_an_update_are_retried_without_writing_twice(sim, fast_http, status, after_applying):
    failures = 1 if after_applying else 2
    sim.fail_updates(failures, status, after_applying=after_applying)
    pusher = Pusher(sim.settings(**fast_http), env=sim.env)
    outcome = pusher.push([stock_action("S5/WH1", "9")])["id-S5/WH1"]
    assert outcome.ok, outcome.detail
    assert sim.count(status=status) == failures and list(sim.writes.values()) == [1]
    # The retry of a write that had landed carries a stale version: 409, re-read, nothing left to send.
    assert sim.count(status=409) == (1 if after_applying else 0)
    assert pusher.read([stock_action("S5/WH1", "9")]) == {"id-S5/WH1": "9"}


def test_an_edge_outage_while_reading_the_batch_is_retried(sim, fast_http):
    sim.fail_next(2, 503, html=True)
    outcome = Pusher(sim.settings(**fast_http), env=sim.env).push([stock_action("S5/WH1", "9")])["id-S5/WH1"]
    assert outcome.ok, outcome.detail
    assert sim.count(status=503) == 2 and list(sim.writes.values()) == [1]


def test_verify_reports_still_drifting_when_someone_undoes_the_repair(sim, tmp_path, fast_http, template):
    cfg, plan_path = planned(sim, tmp_path, fast_http, template)

    def agent_reverts_first_name(platform, size):
        sim.update("customers", "c1", "CustomerFirstNameSet", lambda c: c.update(firstName="Anne"))

    with Store(tmp_path / "s.duckdb") as store:
        plan = load_plan(plan_path)
        report = apply_plan(
            store, cfg, plan, {"commercetools": Pusher(cfg.source("commercetools"), env=sim.env)},
            on_batch=agent_reverts_first_name,
        )  # fmt: skip
    first_name = next(a for a in plan.actions if a.field == "first_name")
    assert report.verdicts[first_name.action_id] == "still drifting"
    assert report.failed.get(first_name.action_id) is None


def customer_action(key: str, field: str, after: str | None, **truth: str) -> Action:
    return Action(f"id-{key}-{field}", "commercetools", "commercetools", "upsert_contact", "customer_master_parity",
                  "customers", key, field, None, after, "fp", truth)  # fmt: skip


@pytest.mark.parametrize("postcode", [None, "OLD 1"], ids=["no address yet", "an address"])
def test_postcode_and_country_go_to_the_default_shipping_address_in_one_update(fast_http, postcode):
    customers = pl.DataFrame(
        {
            "customer_id": ["c1"],
            "erp_customer_id": ["E1"],
            "email": ["a@example.com"],
            "postcode": [postcode],
            "country": ["GB" if postcode else None],
            "updated_at": [STAMP],
        }
    )
    truth = {"email": "a@example.com", "country": "IE", "postcode": "D02 X285"}
    batch = [customer_action("E1", "postcode", "D02 X285", **truth), customer_action("E1", "country", "IE", **truth)]
    with Simulator({"customers": customers}) as sim:
        pusher = Pusher(sim.settings(**fast_http), env=sim.env)
        assert all(outcome.ok for outcome in pusher.push(batch).values())
        assert pusher.read(batch) == {batch[0].action_id: "D02 X285", batch[1].action_id: "IE"}
        customer = sim.resources["customers"]["c1"]
        assert len(customer["addresses"]) == 1 and sim.writes == {"customers/c1": 1}
        assert customer["addresses"][0]["id"] == customer["defaultShippingAddressId"]


def test_consent_is_withdrawn_on_every_profile_of_the_customer(fast_http):
    customers = pl.DataFrame(
        {
            "customer_id": ["c1", "c2"],
            "erp_customer_id": ["E1", None],  # the second found by the ERP customer's email
            "email": ["a@example.com", "A@example.com "],
            "email_consent": ["true", "true"],
            "updated_at": [STAMP, STAMP],
        }
    )
    with Simulator({"customers": customers}) as sim:
        pusher = Pusher(sim.settings(**fast_http), env=sim.env)
        action = Action("id", "commercetools", "commercetools", "update_consent", "consent_parity", "customers", "E1",
                        "email_consent", "true", "false", "fp", {"email": "a@example.com",
                        "consent_updated_at": "2026-11-20 08:00:00+00:00"})  # fmt: skip
        assert pusher.read([action]) == {"id": "true"}
        assert pusher.push([action])["id"].ok
        assert pusher.read([action]) == {"id": "false"}
        for c in ("c1", "c2"):
            fields = sim.resources["customers"][c]["custom"]["fields"]
            assert fields["emailConsent"] is False and fields["consentUpdatedAt"] == "2026-11-20T08:00:00.000Z"


def test_updates_need_the_manage_scope(tmp_path, fast_http):
    with Simulator(storefront(), granted_scopes=("view_products",)) as sim:
        pusher = Pusher(sim.settings(**fast_http), env=sim.env)
        with pytest.raises(Exception, match="insufficient_scope"):
            pusher.push([stock_action("S2/WH1", "5")])
        assert sum(sim.writes.values()) == 0


@pytest.mark.parametrize(
    ("raw", "wanted", "sent", "held"),
    [
        ("Complete/Shipped", "partially_shipped", ["changeOrderState", "changeShipmentState"], "Confirmed/Partial"),
        ("Confirmed/Shipped", "placed", ["changeOrderState", "changeShipmentState"], "Open/Pending"),
        ("Open", "cancelled", ["changeOrderState"], "Cancelled"),
        ("Confirmed/Delivered", "returned", [], "Confirmed/Delivered"),
    ],
)
def test_an_order_status_takes_the_fewest_state_changes_that_mean_it(fast_http, raw, wanted, sent, held):
    orders = storefront()["orders"].head(1).with_columns(pl.lit(raw).alias("status"))
    with Simulator({"orders": orders}) as sim:
        pusher = Pusher(sim.settings(**fast_http), env=sim.env)
        action = Action("id", "commercetools", "commercetools", "update_order_status", "order_status_drift", "orders",
                        "W1", "status", None, wanted, "fp")  # fmt: skip
        outcome = pusher.push([action])["id"]
        assert outcome.ok if sent else "'returned'" in outcome.detail, outcome.detail
        order = sim.resources["orders"][mapping.stable_id("order", "W1")]
        assert mapping.order_rows(order, mapping.Names())[0]["status"] == held
        changes = [m["type"] for m in sim.messages if m["type"].startswith("Order") and m["type"] != "OrderCreated"]
        assert changes == [{"changeOrderState": "OrderStateChanged"}.get(s, "OrderShipmentStateChanged") for s in sent]
