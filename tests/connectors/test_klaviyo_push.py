"""Repairs pushed to Klaviyo: a real audit of the ERP against a pull from the loopback simulator, a plan, and
an apply (killed in a subprocess and resumed) that leaves Klaviyo equal to the ERP with every record written
once, through the catalog variant job, the subscription jobs, profile writes and events."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from killed_apply import KILL_IDS, KILL_POINTS, apply_again, kill_apply
from push_scenario import audit_against, push_config
from push_scenario import open_drift as scenario_open_drift

from driftwatch.config import Config, parse_config
from driftwatch.connectors.klaviyo.push import Pusher
from driftwatch.errors import UserError
from driftwatch.normalize import coerce
from driftwatch.repair import apply_plan, load_plan, make_plan
from driftwatch.repair.plan import Action
from driftwatch.simulators.klaviyo import KlaviyoSimulator as Simulator
from driftwatch.store import Store

NOW = datetime.now(UTC).replace(microsecond=0)
EARLIER = NOW - timedelta(days=3)
STAMP = (NOW - timedelta(days=10)).isoformat()
CHECKS = ["consent_parity", "customer_master_parity", "fulfilment_events", "stock_parity"]
FAST_JOBS = {"poll_seconds": 0.01, "job_timeout": 2}


def text_frame(columns: dict[str, list]) -> pl.DataFrame:
    return pl.DataFrame(columns, schema=dict.fromkeys(columns, pl.String))


def typed(frame: pl.DataFrame, entity: str) -> pl.DataFrame:
    coerced = coerce(frame, entity)
    assert coerced.bad.height == 0, coerced.bad
    return coerced.good


def erp() -> dict[str, pl.DataFrame]:
    ids = [f"E{i}" for i in range(1, 6)]
    customers = text_frame(
        {
            "customer_id": ids,
            "email": [f"c{i}@example.com" for i in range(1, 6)],
            "email_consent": ["true", "false", "true", "false", "true"],
            "sms_consent": [None, None, None, "false", None],
            "first_name": ["Ann", "Bo", "Cy", "Di", "Ed"],
            "last_name": [f"Last{i}" for i in range(1, 6)],
            "postcode": [f"N{i} 1AA" for i in range(1, 6)],
            "country": ["GB"] * 5,
            "merged_into": [None] * 5,
            "updated_at": [STAMP] * 5,
        }
    )
    products = text_frame(
        {
            "sku": ["S1", "S2", "S3", "S4"],
            "name": ["Shirt", "Scarf", "Sock", "Shoe"],
            "price": ["29.99", "15.00", "4.50", "80.00"],
            "currency": ["GBP"] * 4,
            "status": ["active"] * 4,
            "updated_at": [STAMP] * 4,
        }
    )
    inventory = text_frame(
        {
            "sku": ["S1", "S2", "S3", "S4"],
            "location": ["WH1"] * 4,
            "on_hand": ["10", "5", "6", "9"],
            "allocated": ["2", "0", "0", "0"],
            "safety_stock": ["0"] * 4,
            "updated_at": [STAMP] * 4,
        }
    )  # available-to-sell: 8, 5, 6, 9
    at = EARLIER.isoformat()
    orders = text_frame(
        {
            "order_id": ["W1", "W2", "W3", "W4"],
            "channel": ["web"] * 4,
            "customer_id": ["E1"] * 4,
            "email": ["c1@example.com"] * 4,
            "status": ["shipped", "cancelled", "refunded", "shipped"],
            "placed_at": [STAMP] * 4,
            "updated_at": [at] * 4,
            "total": ["100.00", "30.00", "50.00", "20.00"],
            "currency": ["GBP"] * 4,
        }
    )
    shipments = text_frame(
        {"shipment_id": ["SH1", "SH4"], "order_id": ["W1", "W4"], "carrier": ["DPD"] * 2, "shipped_at": [at] * 2}
    )
    returns = text_frame(
        {"return_id": ["R3"], "order_id": ["W3"], "sku": ["S1"], "qty": ["1"], "amount": ["50.00"],
         "status": ["refunded"], "processed_at": [at]}
    )  # fmt: skip
    return {"customers": customers, "products": products, "inventory": inventory, "orders": orders,
            "shipments": shipments, "returns": returns}  # fmt: skip


def klaviyo() -> dict[str, pl.DataFrame]:
    """Klaviyo, drifted from the ERP in ways each push answers."""
    customers = (
        erp()["customers"]
        .filter(pl.col("customer_id") != "E5")  # E5 never reached Klaviyo
        .with_columns(
            ("K" + pl.col("customer_id").str.slice(1)).alias("customer_id"),
            pl.col("customer_id").alias("erp_customer_id"),
            pl.Series("first_name", ["Anne", "Bo", "Cy", "Di"]),  # E1 renamed in the ERP
            pl.Series("email_consent", ["true", "true", "false", "false"]),  # E2 opted out, E3 in
            pl.Series("sms_consent", [None, None, None, "true"]),  # E4 opted out of SMS
        )
    )
    products = erp()["products"]
    inventory = text_frame({"sku": ["S1", "S2", "S3", "S4"], "location": ["*"] * 4, "available": ["8", "3", "2", "1"]})
    events = text_frame(
        {
            "event_id": ["EV1", "EV2", "EV3"],
            "metric": ["order_placed"] * 3,
            "order_id": ["W1", "W2", "W3"],  # W4 never reached Klaviyo at all
            "email": ["c1@example.com"] * 3,
            "occurred_at": [STAMP] * 3,
            "value": ["100.00", "30.00", "50.00"],
        }
    )
    frames = {"customers": customers, "products": products, "inventory": inventory, "events": events}
    return {entity: typed(frame, entity) for entity, frame in frames.items()}


def config(settings: dict) -> dict:
    return push_config("klaviyo", settings, ["customers", "products", "inventory", "events"])


def audited(sim: Simulator, settings: dict, db: Path) -> Config:
    return audit_against("klaviyo", sim, config(settings), db, erp(), NOW, CHECKS)


def open_drift(sim: Simulator, settings: dict, db: Path) -> set[tuple[str, str, str]]:
    return scenario_open_drift("klaviyo", sim, config(settings), db, CHECKS)


def without_s4(dataset: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """A merchandiser deleted variant S4 after the audit: its stock repair is refused by the catalog job."""
    return {e: f.filter(pl.col("sku") != "S4") if e in ("products", "inventory") else f for e, f in dataset.items()}


@pytest.fixture
def sim():
    with Simulator(without_s4(klaviyo()), rate_limits={}) as simulator:
        yield simulator


@pytest.fixture
def settings(sim, fast_http) -> dict:
    return sim.settings(**FAST_JOBS, **fast_http)


@pytest.fixture(scope="module")
def made_plan(tmp_path_factory) -> Path:
    """The ERP snapshot, a pull of the drifted simulator, an audit and its plan: made once, copied per test."""
    folder = tmp_path_factory.mktemp("planned")
    with Simulator(klaviyo(), rate_limits={}) as sim:
        cfg = audited(sim, sim.settings(), folder / "s.duckdb")
    with Store(folder / "s.duckdb") as store:
        plan = make_plan(store, cfg, checks=CHECKS)
    assert {(a.check_id, a.key, a.field) for a in plan.actions} == EXPECTED_PLAN
    plan.save(folder / "plan.json")
    return folder


def planned(settings: dict, made_plan: Path, tmp_path: Path) -> tuple[Config, Path]:
    shutil.copytree(made_plan, tmp_path, dirs_exist_ok=True)  # the store, its working folder and the plan
    return parse_config(config(settings)), tmp_path / "plan.json"


EXPECTED_PLAN = {
    ("consent_parity", "E2", "email_consent"),
    ("consent_parity", "E3", "email_consent"),
    ("consent_parity", "E4", "sms_consent"),
    ("customer_master_parity", "E1", "first_name"),
    ("customer_master_parity", "E5", ""),
    ("fulfilment_events", "W1", "order_fulfilled"),
    ("fulfilment_events", "W2", "order_cancelled"),
    ("fulfilment_events", "W3", "order_refunded"),
    ("fulfilment_events", "W4", "order_fulfilled"),
    ("stock_parity", "S2", "available"),
    ("stock_parity", "S3", "available"),
    ("stock_parity", "S4", "available"),
}
FAILING = {
    ("consent_parity", "E4", "sms_consent"): "Klaviyo takes SMS consent by phone number",
    ("fulfilment_events", "W4", "order_fulfilled"): "no Klaviyo event of order W4 names its customer's profile",
    ("stock_parity", "S4", "available"): "not_found: A catalog variant with id $custom:::$default:::S4 does not exist.",
}
WRITTEN = {("variant", "S2"), ("variant", "S3"), ("consent", "K2"), ("consent", "K3"), ("profile", "K1")}
WRITTEN |= {("event", "Fulfilled Order/W1"), ("event", "Cancelled Order/W2"), ("event", "Refunded Order/W3")}


def assert_repaired(sim: Simulator, settings: dict, tmp_path: Path, report) -> None:
    created = {key for key in sim.writes if not key[1].startswith(("K", "S", "Fulfilled", "Cancelled", "Refunded"))}
    assert {operation for operation, _ in created} == {"profile", "consent"}  # E5's new profile, subscribed
    assert len({profile_id for _, profile_id in created}) == 1  # its id Klaviyo's own
    assert dict(sim.writes) == dict.fromkeys(WRITTEN | created, 1)  # every record written exactly once
    plan = load_plan(tmp_path / "plan.json")
    failed = {
        (a.check_id, a.key, a.field): report.failed[a.action_id] for a in plan.actions if a.action_id in report.failed
    }
    assert failed.keys() == FAILING.keys()
    assert all(failed[k].startswith(words) for k, words in FAILING.items()), failed
    verdicts = {(a.check_id, a.key, a.field): report.verdicts[a.action_id] for a in plan.actions}
    assert {k for k, v in verdicts.items() if v != "repaired"} == set(FAILING)
    # S4 is gone from Klaviyo, so nothing compares it; E4's SMS opt-out and W4 remain for someone to act on.
    assert open_drift(sim, settings, tmp_path / "s.duckdb") == set(FAILING) - {("stock_parity", "S4", "available")}


def test_apply_repairs_the_drift_through_klaviyos_jobs_and_events(sim, settings, made_plan, tmp_path):
    cfg, plan_path = planned(settings, made_plan, tmp_path)
    with Store(tmp_path / "s.duckdb") as store:
        report = apply_plan(store, cfg, load_plan(plan_path), {"klaviyo": Pusher(cfg.source("klaviyo"), env=sim.env)})
    listings = [r for r in sim.requests if r.path == "/api/profiles" and "filter" not in r.query]
    assert len(listings) == 2  # all profiles read once for the pushes, once to verify
    assert_repaired(sim, settings, tmp_path, report)
    posts = Counter(r.path for r in sim.requests if r.method != "GET")
    assert posts == {
        "/api/catalog-variant-bulk-update-jobs": 1,  # S2, S3 and S4 in one job
        "/api/profile-subscription-bulk-create-jobs": 2,  # E3, then E5 once it exists
        "/api/profile-subscription-bulk-delete-jobs": 1,
        "/api/profiles/K1": 1,
        "/api/profile-import": 1,
        "/api/events": 3,
    }
    events = sim.dataset["events"].filter(pl.col("order_id") == "W1", pl.col("metric") == "order_fulfilled")
    assert events["occurred_at"].to_list() == [EARLIER]  # at the ERP's dispatch time, on the order's profile
    assert events["email"].to_list() == ["c1@example.com"]
    values = dict(
        sim.dataset["events"].filter(pl.col("metric") != "order_placed").select("order_id", "value").iter_rows()
    )
    assert values == {"W1": Decimal(100), "W2": Decimal(30), "W3": None}  # a refund's amount is not the order's
    new = sim.dataset["customers"].filter(pl.col("erp_customer_id") == "E5").row(0, named=True)
    assert (new["email"], new["first_name"], new["postcode"]) == ("c5@example.com", "Ed", "N5 1AA")


@pytest.mark.parametrize(("kill_at", "when"), KILL_POINTS, ids=KILL_IDS)
def test_a_killed_apply_resumes_and_writes_every_record_once(sim, settings, made_plan, tmp_path, kill_at, when):
    cfg, plan_path = planned(settings, made_plan, tmp_path)
    kill_apply(
        "klaviyo",
        db=tmp_path / "s.duckdb",
        plan_path=plan_path,
        config=config(settings),
        batch_size=4,
        kill_at=kill_at,
        when=when,
        env=sim.env,
    )
    # batch 1: E2, E3 (consent), E4 (SMS: not sent), E1; batch 2: E5 (created, subscribed), W1, W2, W3;
    # batch 3: W4 (no profile to send it to), S2, S3, S4
    sim.apply_due()  # what Klaviyo accepted before the kill, applied
    assert sum(sim.writes.values()) == {(1, "before"): 0, (2, "before"): 3, (2, "after"): 8}[(kill_at, when)]

    report = apply_again("klaviyo", db=tmp_path / "s.duckdb", cfg=cfg, plan_path=plan_path, batch_size=4, env=sim.env)
    assert report.settled_in_doubt == (4 if when == "after" else 0)  # found on Klaviyo, not sent again
    assert_repaired(sim, settings, tmp_path, report)


def stock_action(sku: str, quantity: str) -> Action:
    return Action(f"id-{sku}", "klaviyo", "klaviyo", "set_stock", "stock_parity", "inventory", f"{sku}/*",
                  "available", None, quantity, "fp")  # fmt: skip


def catalogue(n: int) -> dict[str, pl.DataFrame]:
    skus = [f"P{i:04d}" for i in range(n)]
    products = text_frame({"sku": skus, "name": skus, "price": ["1.00"] * n, "status": ["active"] * n})
    inventory = text_frame({"sku": skus, "location": ["*"] * n, "available": ["1"] * n})
    return {"products": typed(products, "products"), "inventory": typed(inventory, "inventory")}


def test_a_stock_job_is_polled_to_completion_and_splits_at_100_variants(fast_http):
    with Simulator(catalogue(150), rate_limits={}) as sim:
        sim.job_seconds = 0.2  # queued, then processing, then complete
        pusher = Pusher(sim.settings(poll_seconds=0.02, job_timeout=5, **fast_http), env=sim.env)
        batch = [stock_action(f"P{i:04d}", "7") for i in range(150)]
        outcomes = pusher.push(batch)
        assert all(o.ok for o in outcomes.values())
        assert sim.count(path="/api/catalog-variant-bulk-update-jobs", status=202) == 2  # 100, then 50
        polls = sim.count(path="/api/catalog-variant-bulk-update-jobs/", status=200)
        assert polls > 2  # a job is asked about until it is complete
        assert set(pusher.read(batch).values()) == {"7"}
        assert sum(sim.writes.values()) == 150


def test_a_push_keeps_within_the_documented_job_limits(fast_http):
    limits = {"catalog_jobs": [(4, 0.5)]}  # the documented 75/s would need thousands of variants to reach
    with Simulator(catalogue(300), rate_limits=limits) as sim:
        sim.job_seconds = 0.05
        pusher = Pusher(sim.settings(poll_seconds=0.01, job_timeout=5, rate_limits=limits, **fast_http), env=sim.env)
        assert all(o.ok for o in pusher.push([stock_action(f"P{i:04d}", "2") for i in range(300)]).values())
        assert sim.count(status=429) == 0
        assert sim.count(path="/api/catalog-variant-bulk-update-jobs", status=202) == 3


def test_klaviyo_refuses_oversized_jobs_and_consent_dates_without_a_historical_import(fast_http):
    with Simulator(catalogue(1), rate_limits={}) as sim:
        http = Pusher(sim.settings(**fast_http), env=sim.env)._http
        variants = [
            {"type": "catalog-variant", "id": f"$custom:::$default:::P{i}", "attributes": {}} for i in range(101)
        ]
        job = {"data": {"type": "catalog-variant-bulk-update-job", "attributes": {"variants": {"data": variants}}}}
        too_many = http.request("POST", "/api/catalog-variant-bulk-update-jobs", json=job, expect=[400])
        profiles = [
            {"type": "profile", "attributes": {"email": f"p{i}@x.com",
             "subscriptions": {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}}}
            for i in range(101)
        ]  # fmt: skip
        body = {
            "data": {"type": "profile-subscription-bulk-delete-job", "attributes": {"profiles": {"data": profiles}}}
        }
        unsubscribe = http.request("POST", "/api/profile-subscription-bulk-delete-jobs", json=body, expect=[400])
        dated = {"consent": "SUBSCRIBED", "consented_at": STAMP}
        profile = {
            "type": "profile",
            "attributes": {"email": "a@x.com", "subscriptions": {"email": {"marketing": dated}}},
        }
        body = {
            "data": {"type": "profile-subscription-bulk-create-job", "attributes": {"profiles": {"data": [profile]}}}
        }
        subscribe = http.request("POST", "/api/profile-subscription-bulk-create-jobs", json=body, expect=[400])
    assert "at most 100 variants" in too_many.json()["errors"][0]["detail"]
    assert "at most 100 profiles" in unsubscribe.json()["errors"][0]["detail"]
    error = subscribe.json()["errors"][0]
    assert "historical_import" in error["detail"] and error["source"]["pointer"].endswith("/subscriptions")


def consent_action(key: str, wanted: str) -> Action:
    return Action(f"id-{key}", "klaviyo", "klaviyo", "update_consent", "consent_parity", "customers", key,
                  "email_consent", None, wanted, "fp", {"email": f"{key.lower()}@example.com"})  # fmt: skip


def profiles(consents: list[str]) -> dict[str, pl.DataFrame]:
    n = len(consents)
    frame = text_frame(
        {
            "customer_id": [f"K{i}" for i in range(n)],
            "erp_customer_id": [f"E{i}" for i in range(n)],
            "email": [f"e{i}@example.com" for i in range(n)],
            "email_consent": consents,
        }
    )
    return {"customers": typed(frame, "customers")}


def test_a_profile_patch_never_changes_consent(fast_http):
    with Simulator(profiles(["true"]), rate_limits={}) as sim:
        http = Pusher(sim.settings(**fast_http), env=sim.env)._http
        unsubscribed = {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}
        body = {
            "data": {"type": "profile", "id": "K0", "attributes": {"first_name": "Jo", "subscriptions": unsubscribed}}
        }
        http.request("PATCH", "/api/profiles/K0", json=body)
    row = sim.dataset["customers"].row(0, named=True)
    assert (row["first_name"], row["email_consent"]) == ("Jo", True)


def test_a_subscribe_that_waits_for_double_opt_in_fails_and_says_why(fast_http):
    with Simulator(profiles(["false", "true"]), rate_limits={}) as sim:
        sim.double_opt_in = True
        # Long enough for the unsubscribe to show on a busy machine; the subscribe never shows, so it is waited out.
        pusher = Pusher(sim.settings(poll_seconds=0.02, job_timeout=1.0, **fast_http), env=sim.env)
        outcomes = pusher.push([consent_action("E0", "true"), consent_action("E1", "false")])
    assert not outcomes["id-E0"].ok and "double opt-in" in outcomes["id-E0"].detail
    assert outcomes["id-E1"].ok
    polls = [r.query.get("filter") for r in sim.requests if r.path == "/api/profiles" and "filter" in r.query]
    assert set(polls) == {'any(id,["K0","K1"])', 'any(id,["K0"])'}  # only the profiles still waiting
    assert sim.dataset["customers"]["email_consent"].to_list() == [False, False]


def test_a_429_on_a_job_submission_is_sent_again_and_applied_once(fast_http):
    with Simulator(catalogue(3), rate_limits={}) as sim:
        pusher = Pusher(sim.settings(**FAST_JOBS, **fast_http), env=sim.env)
        sim.faults.set(rate_limit_storm=1, storm_retry_after=0.01)  # a 429 was never applied: sent again
        assert pusher.push([stock_action("P0001", "3")])["id-P0001"].ok
        assert [r.status for r in sim.requests if r.method == "POST"] == [429, 202]
        assert dict(sim.writes) == {("variant", "P0001"): 1}


def event_action(order_id: str) -> Action:
    return Action(f"ev-{order_id}", "klaviyo", "klaviyo", "send_event", "fulfilment_events", "events", order_id,
                  "order_fulfilled", None, EARLIER.isoformat(), "fp")  # fmt: skip


def test_a_5xx_on_an_event_is_retried_and_klaviyo_keeps_one(fast_http):
    with Simulator(klaviyo(), rate_limits={}) as sim:
        pusher = Pusher(sim.settings(**FAST_JOBS, **fast_http), env=sim.env)
        assert pusher.push([event_action("W1")])["ev-W1"].ok  # reads the order's events once per apply
        sim.faults.set(server_errors=1)
        assert pusher.push([event_action("W3")])["ev-W3"].ok
        assert [r.status for r in sim.requests if r.method == "POST"] == [202, 503, 202]
        sim.apply_due()
        assert dict(sim.writes) == {("event", "Fulfilled Order/W1"): 1, ("event", "Fulfilled Order/W3"): 1}


def test_a_5xx_on_a_job_submission_is_never_sent_again_and_the_resume_settles_it(fast_http):
    with Simulator(catalogue(3), rate_limits={}) as sim:
        pusher = Pusher(sim.settings(**FAST_JOBS, **fast_http), env=sim.env)
        sim.faults.set(server_errors=1)
        with pytest.raises(UserError, match="not sent again"):
            pusher.push([stock_action("P0001", "3")])
        assert sim.count(path="/api/catalog-variant-bulk-update-jobs") == 1


def test_an_event_resent_with_its_unique_id_is_dropped_by_klaviyo(fast_http):
    with Simulator(klaviyo(), rate_limits={}) as sim:
        first, second = (Pusher(sim.settings(**FAST_JOBS, **fast_http), env=sim.env) for _ in range(2))
        action = event_action("W1")
        assert first.push([action])["ev-W1"].ok
        assert second.push([action])["ev-W1"].ok  # as after a crash that lost the journal's word
        assert second.read([action]) == {"ev-W1": EARLIER.isoformat()}
        assert sim.count(path="/api/events", status=202) == 2
        assert sim.dropped_events == 1
        assert dict(sim.writes) == {("event", "Fulfilled Order/W1"): 1}


def test_verify_reports_still_drifting_when_someone_undoes_the_repair(sim, settings, made_plan, tmp_path):
    cfg, plan_path = planned(settings, made_plan, tmp_path)

    def storefront_resets_s2(platform, size):
        inventory = sim.dataset["inventory"]
        sim.dataset["inventory"] = inventory.with_columns(
            pl.when(pl.col("sku") == "S2").then(pl.lit(3, pl.Int64)).otherwise("available").alias("available")
        )

    with Store(tmp_path / "s.duckdb") as store:
        plan = load_plan(plan_path)
        report = apply_plan(
            store, cfg, plan, {"klaviyo": Pusher(cfg.source("klaviyo"), env=sim.env)}, on_batch=storefront_resets_s2
        )
    verdicts = {(a.key, a.field): report.verdicts[a.action_id] for a in plan.actions}
    assert verdicts.pop(("S2", "available")) == "still drifting"
    assert {verdicts.pop(k) for k in [("S4", "available"), ("E4", "sms_consent"), ("W4", "order_fulfilled")]} == {
        "failed"
    }
    assert set(verdicts.values()) == {"repaired"}


def contact_action(action_id: str, field: str, value: str) -> Action:
    return Action(action_id, "klaviyo", "klaviyo", "upsert_contact", "customer_master_parity", "customers", "E0",
                  field, None, value, "fp")  # fmt: skip


def test_profile_fields_are_patched_and_a_rejected_one_fails_with_klaviyos_words(fast_http):
    with Simulator(profiles(["true"]), rate_limits={}) as sim:
        pusher = Pusher(sim.settings(**fast_http), env=sim.env)
        batch = [
            contact_action("ltv", "lifetime_value", "90.50"),
            contact_action("zip", "postcode", "N1 9GU"),
            contact_action("bad", "email", "e0 at example"),
        ]
        outcomes = pusher.push(batch)
        assert outcomes["ltv"].ok and outcomes["zip"].ok
        assert outcomes["bad"].detail == "invalid: Invalid email address: e0 at example"
        assert pusher.read(batch) == {"ltv": "90.5", "zip": "N1 9GU", "bad": "e0@example.com"}
    row = sim.dataset["customers"].row(0, named=True)
    assert (row["lifetime_value"], row["postcode"]) == (Decimal("90.5"), "N1 9GU")  # a custom property, a number
