"""Repairs pushed to Mirakl: a real audit of ERP snapshots against a pull from the loopback simulator, a plan,
and an apply (killed in a subprocess and resumed) through STO01 and OF24 imports and OR21/OR23/OR24, that
leaves the shop equal to the ERP with every record written once."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest
from killed_apply import KILL_IDS, KILL_POINTS, apply_again, kill_apply
from push_scenario import SMALL_SHOP_GUARDS

from driftwatch.config import Config, parse_config
from driftwatch.connectors.mirakl.push import WRITE_CALL_LIMITS, Pusher
from driftwatch.engine.runner import audit
from driftwatch.entities import ENTITIES
from driftwatch.errors import UserError
from driftwatch.normalize import coerce
from driftwatch.pull import pull_sources
from driftwatch.push import PushOutcome
from driftwatch.repair import Journal, apply_plan, load_plan, make_plan
from driftwatch.repair.plan import Action, Plan
from driftwatch.simulators.mirakl import MiraklSimulator as Simulator
from driftwatch.store import IncomingSnapshot, Store

NOW = datetime.now(UTC).replace(microsecond=0)
CHECKS = ["stock_parity", "catalogue_parity", "tracking_sync", "acceptance_sla"]
# Every call ceiling small, in the simulator and the pusher alike: the ceilings hold, the tests stay fast.
WINDOW = 0.05
CEILINGS = {op: [(1, WINDOW)] for op in [*WRITE_CALL_LIMITS, "OR11"]}
CALL_LIMITS = {op: [[1, WINDOW]] for op in CEILINGS}


def ago(hours: float) -> str:
    return (NOW - timedelta(hours=hours)).isoformat()


def frame(entity: str, rows: list[dict]) -> pl.DataFrame:
    """A canonical frame with each of the entity's columns, as an export gives them."""
    typed = coerce(pl.DataFrame(rows, schema=dict.fromkeys(rows[0], pl.String)), entity)
    assert typed.bad.height == 0, typed.bad
    schema = ENTITIES[entity].schema
    return typed.good.with_columns(pl.lit(None, t).alias(c) for c, t in schema.items() if c not in typed.good.columns)


def product(sku: str, price: str, status: str = "active") -> dict:
    return {"sku": sku, "style": sku, "colour": "010", "size": "M", "name": f"Shirt {sku}", "price": price,
            "currency": "EUR", "status": status}  # fmt: skip


def order(number: str, status: str, placed_hours_ago: float) -> dict:
    return {"order_id": f"SO{number}", "external_id": f"MRK-{number}", "channel": "mirakl", "customer_id": "C1",
            "status": status, "placed_at": ago(placed_hours_ago), "updated_at": ago(1), "total": "20.00",
            "currency": "EUR"}  # fmt: skip


def shipment(number: str, carrier: str | None, tracking: str | None) -> dict:
    return {"shipment_id": f"SH{number}", "order_id": f"SO{number}", "carrier": carrier, "tracking_number": tracking,
            "shipped_at": ago(30)}  # fmt: skip


def erp() -> dict[str, pl.DataFrame]:
    """The ERP's truth: P4 discontinued, P6 and P7 new, five marketplace orders (2 to 5 dispatched)."""
    products = [product("P1", "10.00"), product("P2", "12.00"), product("P3", "25.00"),
                product("P4", "30.00", "discontinued"), product("P6", "8.00"), product("P7", "9.00")]  # fmt: skip
    stock = {"P1": ("9", "2"), "P2": ("4", "0"), "P3": ("5", "0"), "P4": ("2", "0")}  # ATS 7, 4, 5, 2
    inventory = [
        {"sku": sku, "location": "WH1", "on_hand": on_hand, "allocated": allocated, "safety_stock": "0"}
        for sku, (on_hand, allocated) in stock.items()
    ]
    orders = [order("1", "accepted", 60), *(order(n, "shipped", 40) for n in "2345")]
    shipments = [shipment("2", "DHL", "T2"), shipment("3", "UPS", "T3"), shipment("4", "UPS", "T4"),
                 shipment("5", "DHL", "T5")]  # fmt: skip
    return {
        "products": frame("products", products),
        "inventory": frame("inventory", inventory),
        "orders": frame("orders", orders),
        "shipments": frame("shipments", shipments),
    }


def shop() -> dict[str, pl.DataFrame]:
    """The Mirakl shop, drifted from the ERP in ways each repair action answers (and two it cannot)."""
    products = [product("P1", "10.00"), product("P2", "12.00"), product("P3", "20.00", "discontinued"),
                product("P4", "30.00"), product("X9", "5.00")]  # fmt: skip
    inventory = [{"sku": sku, "location": "*", "available": n} for sku, n in
                 (("P1", "3"), ("P2", "9"), ("P3", "5"), ("P4", "2"), ("X9", "6"))]  # fmt: skip
    states = {"1": "WAITING_ACCEPTANCE", "2": "SHIPPING", "3": "SHIPPED", "4": "SHIPPED", "5": "SHIPPING"}
    orders = [{**order(n, state, 60 if n == "1" else 40)} for n, state in states.items()]
    lines = [
        {"order_id": f"SO{n}", "line_no": str(i), "sku": "P1", "qty_ordered": "1",
         "qty_shipped": "1" if state == "SHIPPED" else "0", "qty_cancelled": "0", "qty_returned": "0",
         "unit_price": "10.00"}
        for n, state in states.items()
        for i in (1, 2)
    ]  # fmt: skip
    # SO2 has its carrier but no tracking yet, SO3 the wrong carrier, SO5 nothing at all.
    shipments = [shipment("2", "DHL", None), shipment("3", "DHL", "T3"), shipment("4", "UPS", "T4")]
    return {
        "products": frame("products", products),
        "inventory": frame("inventory", inventory),
        "orders": frame("orders", orders),
        "order_lines": frame("order_lines", lines),
        "shipments": frame("shipments", shipments),
    }


# What the ERP's truth asks of Mirakl (check, key, field, after), and the action Mirakl cannot take.
EXPECTED_PLAN = {
    ("acceptance_sla", "SO1", "acceptance"),
    ("catalogue_parity", "P3", "price"),
    ("catalogue_parity", "P3", "status"),
    ("catalogue_parity", "P4", "status"),
    ("catalogue_parity", "P6", ""),
    ("catalogue_parity", "P7", ""),
    ("catalogue_parity", "X9", ""),
    ("stock_parity", "P1", "available"),
    ("stock_parity", "P2", "available"),
    ("tracking_sync", "SO2", "tracking_number"),
    ("tracking_sync", "SO3", "carrier"),
    ("tracking_sync", "SO5", "tracking_number"),
}
FAILING = {
    ("catalogue_parity", "P7", ""): "The product P7 (SHOP_SKU) does not exist in the catalogue",
}
WRITES = {
    ("STO01", "P1"): 1,
    ("STO01", "P2"): 1,
    ("OF24", "P3"): 1,  # price and status in one whole-offer line
    ("OF24", "P4"): 1,
    ("OF24", "P6"): 1,
    ("OF24", "X9"): 1,
    ("OR21", "MRK-1"): 1,
    ("OR23", "MRK-2"): 1,
    ("OR24", "MRK-2"): 1,
    ("OR23", "MRK-3"): 1,
    ("OR23", "MRK-5"): 1,  # carrier and tracking from the ERP's shipment of the order
    ("OR24", "MRK-5"): 1,
}


def config(sim: Simulator, http: dict, **settings) -> dict:
    return {
        "sources": {"mirakl": sim.settings(**http, call_limits=CALL_LIMITS, **settings)},
        "feeds": [
            {"source": "bluecherry", "target": "mirakl", "entities": ["products", "inventory", "orders", "shipments"]}
        ],
        "repair": dict(SMALL_SHOP_GUARDS),
    }


def new_simulator() -> Simulator:
    sim = Simulator(shop(), rate_limits=CEILINGS)
    sim.operator_products = {"P6"}  # the operator's catalogue has P6, not P7
    return sim


@pytest.fixture
def sim():
    with new_simulator() as simulator:
        yield simulator


@pytest.fixture
def free_sim():
    """The shop without call ceilings, for tests that call its API by hand."""
    with Simulator(shop(), rate_limits={}) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The audited store and its plan, made once; each test starts from a copy and a fresh simulator."""
    folder = tmp_path_factory.mktemp("template")
    with new_simulator() as sim:
        cfg = parse_config(config(sim, {}))
        with Store(folder / "s.duckdb") as store:
            store.ingest(IncomingSnapshot("bluecherry", entity, NOW, f) for entity, f in erp().items())
            assert all(r.error is None for r in pull_sources(store, cfg, ["mirakl"], env=sim.env, progress=False))
            assert audit(store, cfg, checks=CHECKS).trusted
            plan = make_plan(store, cfg, checks=CHECKS)
    assert {(a.check_id, a.key, a.field) for a in plan.actions} == EXPECTED_PLAN
    plan.save(folder / "plan.json")
    return folder


def planned(sim: Simulator, tmp_path: Path, http: dict, template: Path) -> tuple[Config, Path]:
    for name in ("s.duckdb", "plan.json"):
        shutil.copy(template / name, tmp_path / name)
    return parse_config(config(sim, http)), tmp_path / "plan.json"


def open_drift(sim: Simulator, db: Path, http: dict) -> set[tuple[str, str, str]]:
    """(check, key, field) still open after pulling Mirakl again and re-auditing."""
    cfg = parse_config(config(sim, http))
    with Store(db) as store:
        assert all(r.error is None for r in pull_sources(store, cfg, ["mirakl"], env=sim.env, progress=False))
        found = audit(store, cfg, checks=CHECKS).findings
    return {(r["check_id"], r["key"], r["field"]) for r in found.iter_rows(named=True) if r["status"] != "resolved"}


def assert_repaired(sim: Simulator, tmp_path: Path, report, http: dict) -> None:
    assert dict(sim.writes) == WRITES  # every record written exactly once
    plan = load_plan(tmp_path / "plan.json")
    failed = {(a.check_id, a.key, a.field): report.failed.get(a.action_id) for a in plan.actions}
    assert {k for k, v in failed.items() if v is not None} == set(FAILING)
    for where, words in FAILING.items():
        assert words in failed[where], failed[where]
    verdicts = {(a.check_id, a.key, a.field): report.verdicts[a.action_id] for a in plan.actions}
    assert {k for k, v in verdicts.items() if v != "repaired"} == set(FAILING)
    assert sim.count(status=429) == 0  # the pusher kept to every call ceiling
    # A second pull and audit agree: only the drift Mirakl refused is left.
    assert open_drift(sim, tmp_path / "s.duckdb", http) == set(FAILING)


def raw_offer(sim: Simulator, sku: str) -> dict:
    body = httpx.get(f"{sim.url}/api/offers", params={"sku": sku}, headers={"Authorization": sim.api_key}).json()
    (offer,) = body["offers"]
    return offer


def test_apply_repairs_every_drift_it_can_and_reports_the_rest_with_the_platforms_words(
    sim, tmp_path, fast_http, template
):
    cfg, plan_path = planned(sim, tmp_path, fast_http, template)
    with Store(tmp_path / "s.duckdb") as store:
        report = apply_plan(store, cfg, load_plan(plan_path), {"mirakl": Pusher(cfg.source("mirakl"), env=sim.env)})
    assert_repaired(sim, tmp_path, report, fast_http)
    # One import of each kind per batch, and whole offers: what the repair did not touch is still there.
    assert sim.count(path="/api/offers/stock/imports") >= 1
    assert [r.method for r in sim.requests if r.path == "/api/offers"].count("POST") == 1
    p3 = raw_offer(sim, "P3")
    assert (p3["price"], p3["quantity"], p3["leadtime_to_ship"], p3["active"]) == (25.0, 5, 2, True)
    assert p3["description"] == "Shirt P3, shipped from our own warehouse"
    assert {f["code"]: f["value"] for f in p3["offer_additional_fields"]} == {
        "style": "P3",
        "colour": "010",
        "size": "M",
    }
    p6 = raw_offer(sim, "P6")
    assert (p6["price"], p6["quantity"], p6["product_sku"]) == (8.0, 0, "P6")


@pytest.mark.parametrize(("kill_at", "when"), KILL_POINTS, ids=KILL_IDS)
def test_a_killed_apply_resumes_and_writes_every_record_once(sim, tmp_path, kill_at, when, fast_http, template):
    cfg, plan_path = planned(sim, tmp_path, fast_http, template)
    kill_apply(
        "mirakl",
        db=tmp_path / "s.duckdb",
        plan_path=plan_path,
        config=config(sim, fast_http),
        batch_size=4,
        kill_at=kill_at,
        when=when,
        env=sim.env,
    )
    assert (sum(sim.writes.values()) > 0) == (when == "after" or kill_at > 1)

    report = apply_again("mirakl", db=tmp_path / "s.duckdb", cfg=cfg, plan_path=plan_path, batch_size=4, env=sim.env)
    # The batch in doubt is found applied on the shop, except what it rejected (asked again, rejected again).
    in_doubt = load_plan(plan_path).actions[4:8] if when == "after" else []
    assert report.settled_in_doubt == sum((a.check_id, a.key, a.field) not in FAILING for a in in_doubt)
    assert_repaired(sim, tmp_path, report, fast_http)


def action(action_id: str, name: str, key: str, field: str, after: str, truth: dict | None = None) -> Action:
    return Action(action_id, "mirakl", "mirakl", name, "check", "entity", key, field, None, after, "fp", truth or {})


def pusher(sim: Simulator, http: dict, **settings) -> Pusher:
    return Pusher(sim.settings(**http, call_limits=CALL_LIMITS, **settings), env=sim.env)


def test_an_import_is_polled_through_waiting_and_running_and_its_effect_shows_only_once_processed(sim, fast_http):
    sim.import_seconds = 0.4
    stock = action("s", "set_stock", "P1", "available", "7")
    outcome = pusher(sim, fast_http).push([stock])["s"]
    assert outcome.ok and outcome.detail.startswith("stock import ")
    polls = [r for r in sim.requests if r.path.endswith("/status")]
    assert len(polls) >= 2 and all(r.status == 200 for r in polls)
    assert raw_offer(sim, "P1")["quantity"] == 7
    # Before Mirakl processes an import, the offers it changes still show what they held.
    before = pusher(sim, fast_http).read([action("p", "update_price", "P3", "price", "25.00")])
    sim.import_seconds = 30
    client = httpx.Client(base_url=sim.url, headers={"Authorization": sim.api_key})
    line = {**_whole("P3"), "price": 25.0}
    submitted = client.post("/api/offers", json={"offers": [line]})
    assert submitted.status_code == 201
    status = client.get(f"/api/offers/imports/{submitted.json()['import_id']}").json()
    assert status["status"] in ("WAITING", "RUNNING") and status["lines_in_pending"] == 1
    assert pusher(sim, fast_http).read([action("p", "update_price", "P3", "price", "25.00")]) == before


def _whole(sku: str) -> dict:
    return {"shop_sku": sku, "product_id": sku, "product_id_type": "SKU", "state_code": "11", "update_delete": ""}


def test_an_offer_line_that_leaves_fields_out_resets_them_and_a_duplicate_import_gets_the_same_id(free_sim):
    sim = free_sim
    client = httpx.Client(base_url=sim.url, headers={"Authorization": sim.api_key})
    body = {"offers": [{**_whole("P1"), "price": 11.0}]}  # no quantity, no description: Mirakl resets them
    first = client.post("/api/offers", json=body)
    sim.import_seconds = 30
    second = client.post("/api/offers", json={"offers": [{**_whole("P2"), "price": 13.0}]})
    third = client.post("/api/offers", json={"offers": [{**_whole("P2"), "price": 13.0}]})
    assert [r.status_code for r in (first, second, third)] == [201, 201, 201]
    assert third.json()["import_id"] == second.json()["import_id"] != first.json()["import_id"]
    p1 = raw_offer(sim, "P1")
    assert (p1["price"], p1["quantity"], p1["description"], p1["active"]) == (11.0, 0, None, False)
    assert p1["inactivity_reasons"] == ["ZERO_QUANTITY"]
    assert sim.writes[("OF24", "P1")] == 1


def test_rejected_lines_are_failed_actions_in_mirakls_words_and_the_rest_of_the_import_applies(sim, fast_http):
    batch = [
        action("ok", "set_stock", "P1", "available", "7"),
        action("gone", "set_stock", "NOPE", "available", "3"),
        action("warehouse", "set_stock", "P2/WH9", "available", "3"),
        action("feed", "set_stock", "*", "captured_at", "2026-11-23T00:00:00Z"),
        action("price", "update_price", "P2", "price", "-4"),
    ]
    outcomes = pusher(sim, fast_http).push(batch)
    assert outcomes["ok"].ok
    assert outcomes["gone"].detail == "The offer with sku 'NOPE' does not exist"
    assert outcomes["warehouse"].detail == "The warehouse 'WH9' does not exist"
    assert not outcomes["feed"].ok and "whole stock feed" in outcomes["feed"].detail
    assert outcomes["price"].detail == "The price must be positive"
    assert dict(sim.writes) == {("STO01", "P1"): 1}


def test_an_update_to_an_offer_that_is_gone_fails_and_a_gone_offer_is_not_deleted_again(sim, fast_http):
    batch = [action("p", "update_price", "GONE", "price", "3"), action("d", "deactivate_offer", "GONE", "", "absent")]
    outcomes = pusher(sim, fast_http).push(batch)
    assert outcomes["p"] == PushOutcome(False, "offer GONE is not on mirakl: there is nothing to update price")
    assert outcomes["d"] == PushOutcome(True, "offer GONE is already absent")
    assert sim.count(path="/api/offers/imports") == 0 and sum(sim.writes.values()) == 0


def test_an_unreadable_stock_file_fails_the_whole_import(free_sim):
    sim = free_sim
    client = httpx.Client(base_url=sim.url, headers={"Authorization": sim.api_key})
    created = client.post("/api/offers/stock/imports", files={"file": ("s.csv", b"sku;qty\nP1;4\n", "text/csv")})
    assert created.status_code == 201
    status = client.get(f"/api/offers/stock/imports/{created.json()['import_id']}/status").json()
    assert (status["status"], status["has_error_report"]) == ("FAILED", False)


@pytest.mark.parametrize(
    "faults",
    [{"rate_limit_storm": 1, "storm_retry_after": None}, {"server_errors": 2, "server_error_status": 503}],
    ids=["429", "503"],
)
def test_a_429_or_5xx_answering_the_import_is_retried_and_the_import_made_once(sim, fast_http, faults):
    sim.faults.set(**faults)
    outcomes = pusher(sim, fast_http).push([action("s", "set_stock", "P1", "available", "7")])
    assert outcomes["s"].ok, outcomes["s"].detail
    assert dict(sim.writes) == {("STO01", "P1"): 1}
    assert sum(r.status >= 429 for r in sim.requests) == faults.get("rate_limit_storm", 0) + faults.get(
        "server_errors", 0
    )


def test_the_simulator_refuses_a_second_import_within_the_minute_and_the_pusher_never_asks(fast_http):
    file = {"file": ("s.csv", b'"offer-sku";"quantity";"warehouse-code";"update-delete"\n"P1";"4";"";""\n')}
    with Simulator(shop()) as sim:  # Mirakl's own ceiling: one stock import a minute, however slow the machine
        client = httpx.Client(base_url=sim.url, headers={"Authorization": sim.api_key})
        assert client.post("/api/offers/stock/imports", files=file).status_code == 201
        refused = client.post("/api/offers/stock/imports", files=file)
        assert refused.status_code == 429 and "Retry-After" not in refused.headers
    # Small ceilings, so that the pusher's waits are short. It counts each call from its answer, the latest
    # Mirakl can have counted it, so a call held up on a busy machine never lands in the previous one's window.
    ceilings = {"STO01": [(1, 0.2)], "STO02": [(1, 0.2)]}
    with Simulator(shop(), rate_limits=ceilings) as sim:
        limits = {op: [list(w) for w in windows] for op, windows in ceilings.items()}
        push = Pusher(sim.settings(**fast_http, call_limits=limits), env=sim.env)
        for quantity in ("5", "6"):
            assert push.push([action("s", "set_stock", "P1", "available", quantity)])["s"].ok
        assert sim.count(status=429) == 0 and raw_offer(sim, "P1")["quantity"] == 6


def test_an_import_still_running_when_the_wait_ends_leaves_its_actions_in_doubt_then_settled(
    sim, tmp_path, fast_http, template
):
    cfg, plan_path = planned(sim, tmp_path, fast_http, template)
    plan = load_plan(plan_path)
    stock = [a for a in plan.actions if a.action == "set_stock"]
    sim.import_seconds = 0.8
    patient = parse_config(config(sim, fast_http, import_timeout=0.1))
    with Store(tmp_path / "s.duckdb") as store:
        only_stock = type(plan)(plan.plan_id, plan.created_at, plan.run_id, plan.trusted, plan.snapshots, stock)
        with pytest.raises(UserError, match=r"stock import \w+ is still (WAITING|RUNNING)"):
            apply_plan(store, patient, only_stock, {"mirakl": Pusher(patient.source("mirakl"), env=sim.env)})
        assert set(Journal(store).entries()["state"]) == {"sending"}
        sim.import_seconds = 0  # Mirakl went on to process it
        report = apply_plan(store, cfg, only_stock, {"mirakl": Pusher(cfg.source("mirakl"), env=sim.env)})
    assert report.settled_in_doubt == 2 and report.pushed == 0
    assert set(report.verdicts.values()) == {"repaired"}
    assert dict(sim.writes) == {("STO01", "P1"): 1, ("STO01", "P2"): 1}


def test_verify_reports_still_drifting_when_the_shop_changes_stock_after_the_repair(sim, fast_http):
    batch = [action("s", "set_stock", "P1", "available", "7"), action("a", "accept_order", "SO1", "acceptance",
             "2026-11-30T00:00:00+00:00", {"external_id": "MRK-1"})]  # fmt: skip
    push = pusher(sim, fast_http)
    assert all(o.ok for o in push.push(batch).values())
    assert push.read(batch) == {"s": "7", "a": "2026-11-30T00:00:00+00:00"}
    client = httpx.Client(base_url=sim.url, headers={"Authorization": sim.api_key})
    file = {"file": ("s.csv", b'"offer-sku";"quantity";"warehouse-code";"update-delete"\n"P1";"6";"";""\n')}
    assert client.post("/api/offers/stock/imports", files=file).status_code == 201  # a sale elsewhere
    assert push.read(batch)["s"] == "6"
    again = push.push([batch[1]])["a"]
    assert again.ok and "already accepted" in again.detail  # accepted once, never twice
    assert sim.writes[("OR21", "MRK-1")] == 1


def test_order_refusals_are_the_actions_failure_with_the_documented_code(sim, fast_http):
    push = pusher(sim, fast_http)
    bad_carrier = action("c", "post_tracking", "SO3", "carrier", "FEDEX")
    unknown = action("u", "post_tracking", "SO9", "tracking_number", "T9")
    outcomes = push.push([bad_carrier, unknown])
    assert "carrier code 'FEDEX' is not a registered carrier" in outcomes["c"].detail
    assert outcomes["u"].detail == "order SO9 was not found on mirakl"
    ship = httpx.put(f"{sim.url}/api/orders/MRK-3/ship", headers={"Authorization": sim.api_key})
    assert ship.status_code == 400 and ship.json()["message"].startswith("ORDER_INVALID_STATE")
    assert sum(sim.writes.values()) == 0


class SlowToAnswerOrders(Simulator):
    """A shop that applies an order call, then answers it only after the client has stopped waiting."""

    def handle(self, request):
        response = super().handle(request)
        if request.method == "PUT" and request.path.startswith("/api/orders/"):
            time.sleep(0.6)
        return response


def test_an_order_call_whose_answer_is_lost_is_never_sent_again(tmp_path, fast_http):
    """OR23 lands but its answer times out: the apply stops with the action in doubt instead of posting the
    tracking a second time; the next apply reads the order, finds the tracking there, and sends nothing."""
    with SlowToAnswerOrders(shop(), rate_limits={}) as sim:
        http = {**fast_http, "timeout": 0.3}
        tracking = action("t", "post_tracking", "SO4", "tracking_number", "T4-NEW", {"carrier": "UPS"})
        plan = Plan("p1", NOW, "run-1", True, {}, [tracking])
        cfg = parse_config({"sources": {"mirakl": sim.settings(**http)}})
        with Store(tmp_path / "s.duckdb") as store:
            with pytest.raises(UserError, match="not sent again"):
                apply_plan(store, cfg, plan, {"mirakl": Pusher(cfg.source("mirakl"), env=sim.env)})
            assert set(Journal(store).entries()["state"]) == {"sending"}
            assert sim.writes[("OR23", "MRK-4")] == 1
            report = apply_plan(store, cfg, plan, {"mirakl": Pusher(cfg.source("mirakl"), env=sim.env)})
        assert report.settled_in_doubt == 1 and report.pushed == 0
        assert sim.writes[("OR23", "MRK-4")] == 1
        assert [r.method for r in sim.requests if r.path.endswith("/tracking")] == ["PUT"]
