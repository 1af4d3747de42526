"""Klaviyo connector against the loopback Klaviyo simulator: every record back, whatever the API does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from driftwatch import connectors
from driftwatch.connectors.klaviyo.connector import Connector
from driftwatch.errors import UserError
from driftwatch.normalize import coerce
from driftwatch.simulators import SIMULATORS
from driftwatch.simulators.klaviyo import UNKNOWN_CONSENT
from driftwatch.simulators.klaviyo import KlaviyoSimulator as Simulator
from tests.slow_answers import CLIENT_TIMEOUT, LATE_ANSWER

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
METRICS = ("order_placed", "order_fulfilled", "order_cancelled", "order_refunded")


def typed(rows: list[dict[str, Any]], entity: str) -> pl.DataFrame:
    coerced = coerce(pl.DataFrame(rows), entity)
    assert coerced.bad.height == 0, coerced.bad
    return coerced.good


def make_dataset(profiles: int = 230, skus: int = 120, events: int = 450) -> dict[str, pl.DataFrame]:
    customers = [
        {
            "customer_id": f"01HPROF{i:06d}",
            "erp_customer_id": f"C{i:06d}",
            "email": f"pat{i}@example.com",
            "email_consent": i % 2 == 0,
            "sms_consent": i % 3 == 0,
            "consent_updated_at": T0 - timedelta(days=i),
            "first_name": "Pat",
            "last_name": f"Lee {i}",
            "postcode": f"0{i:04d}",
            "country": "GB",
            "lifetime_value": Decimal("120.50") + i,
            "order_count": i % 7,
            "last_order_at": T0 - timedelta(hours=i),
            "merged_into": f"C{i - 1:06d}" if i % 50 == 7 else None,
            "updated_at": T0 + timedelta(minutes=i),
        }
        for i in range(profiles)
    ]
    products = [
        {
            "sku": f"{i:05d}-010-M",
            "style": f"{i:05d}",
            "colour": "010",
            "size": "M",
            "name": f"Shirt {i}",
            "price": Decimal("19.90") + i,
            "currency": "GBP",
            "status": "active" if i % 5 else "discontinued",
            "updated_at": T0,
        }
        for i in range(skus)
    ]
    inventory = [{"sku": f"{i:05d}-010-M", "location": "*", "available": i % 9, "updated_at": T0} for i in range(skus)]
    order_events = [
        {
            "event_id": f"01HEVT{i:06d}", "metric": METRICS[i % 4], "order_id": f"SO{i // 4:06d}",
            "email": f"pat{i % (profiles + 20)}@example.com",  # some events belong to anonymous profiles
            "occurred_at": T0 + timedelta(minutes=i), "value": Decimal("59.95") + i % 3,
        }
        for i in range(events)
    ]  # fmt: skip
    return {
        "customers": typed(customers, "customers"),
        "products": typed(products, "products"),
        "inventory": typed(inventory, "inventory"),
        "events": typed(order_events, "events"),
    }


@pytest.fixture
def klaviyo():
    with Simulator(make_dataset()) as sim:
        yield sim


@pytest.fixture
def connect(klaviyo, fast_http, tmp_path):
    def make(**overrides: Any) -> Connector:
        return Connector(klaviyo.settings(**{**fast_http, **overrides}), env=klaviyo.env, checkpoint_dir=tmp_path)

    return make


def assert_same(pulled: dict[str, pl.DataFrame], dataset: dict[str, pl.DataFrame], canonical) -> None:
    """Every record and value the dataset holds came back; columns it lacks came back empty."""
    for entity, frame in pulled.items():
        expected = dataset[entity]
        shared = [c for c in frame.columns if c in expected.columns]
        extra = [c for c in frame.columns if c not in shared]
        assert all(frame[c].null_count() == frame.height for c in extra), extra
        assert_frame_equal(canonical(frame.select(shared), entity), canonical(expected.select(shared), entity))


def test_round_trip_gives_back_exactly_the_records(klaviyo, connect, canonical):
    pulled = connect().pull()
    assert set(pulled.frames) == {"customers", "products", "inventory", "events"}
    assert_same(pulled.frames, klaviyo.dataset, canonical)
    assert pulled.frames["inventory"]["location"].unique().to_list() == ["*"]
    requests = [r for r in klaviyo.requests if r.path.startswith("/api/")]
    assert all(r.headers["revision"] == "2026-07-15" for r in requests)
    assert all("subscriptions" in r.query["additional-fields[profile]"] for r in requests if r.path == "/api/profiles")


def test_registry_knows_klaviyo():
    assert connectors.get("klaviyo") is Connector
    assert SIMULATORS["klaviyo"] is Simulator


@pytest.mark.parametrize(
    "fault",
    [
        {"rate_limit_storm": 4, "storm_retry_after": 0.01},
        {"rate_limit_storm": 3, "storm_retry_after": None},
        {"server_errors": 3, "server_error_status": 503},
        {"server_errors": 2, "server_error_status": 524},
        {"timeouts": 2, "timeout_delay": LATE_ANSWER},
        {"truncated": 3},
    ],
    ids=["429-retry-after", "429-no-retry-after", "503", "524", "timeout", "truncated-json"],
)
def test_each_fault_still_gives_every_record(klaviyo, connect, canonical, fault):
    klaviyo.faults.set(**fault)
    pulled = connect(timeout=CLIENT_TIMEOUT).pull()
    assert_same(pulled.frames, klaviyo.dataset, canonical)


def test_steady_rate_limit_gives_no_429s(fast_http, tmp_path):
    # Scaled-down windows with the documented shape: a burst per 0.1 s and a steady limit per 0.5 s.
    limits = {bucket: [(4, 0.1), (12, 0.5)] for bucket in ("profiles", "events", "catalog", "metrics")}
    with Simulator(make_dataset(profiles=1500, skus=10, events=10), rate_limits=limits) as sim:
        settings = sim.settings(**fast_http, rate_limits=limits)
        frame = Connector(settings, env=sim.env, checkpoint_dir=tmp_path).pull(["customers"]).frames["customers"]
        assert frame.height == 1500
        assert sim.count(status=429) == 0


def test_simulator_rate_limit_answers_429_with_retry_after(fast_http, tmp_path):
    # A window the client's nine pages overrun even on a busy machine (three requests within a second).
    limits = {"profiles": [(3, 1.0)]}
    with Simulator(make_dataset(profiles=900), rate_limits=limits, retry_after="fractional") as sim:
        connector = Connector(sim.settings(**fast_http), env=sim.env, checkpoint_dir=tmp_path)
        assert connector.pull(["customers"]).frames["customers"].height == 900
        throttled = [r for r in sim.requests if r.status == 429]
        assert throttled and sim.count(status=200, path="/api/profiles") == 9


def test_interrupted_pull_resumes_from_the_staged_cursor(klaviyo, connect, canonical, tmp_path):
    class Interrupted(Exception):
        pass

    def interrupt_on_third_page(sim: Simulator) -> None:
        raise Interrupted

    klaviyo.faults.set(between_pages=(3, interrupt_on_third_page))
    with pytest.raises(UserError):  # the simulator's handler fails: the client sees a dropped connection
        connect(max_attempts=1).pull(["customers"])
    staged = pl.read_parquet(tmp_path / "klaviyo" / "customers" / "page-*.parquet")
    assert staged.height == 200  # the two pages answered, flushed together when the pull failed

    klaviyo.faults.set(between_pages=None)
    before = klaviyo.count(path="/api/profiles")
    frame = connect().pull(["customers"]).frames["customers"]
    assert klaviyo.count(path="/api/profiles") - before == 1  # only the third and last page again
    assert_same({"customers": frame}, klaviyo.dataset, canonical)
    assert not (tmp_path / "klaviyo" / "customers").exists()


def test_events_resume_across_metrics(klaviyo, connect, canonical):
    connector = connect()
    original = connector.client.page
    calls = []

    def page_then_die(url, params=None):
        calls.append(url)
        if len(calls) == 5:  # the metrics list, one page of each of three metrics, then the fourth metric
            raise KeyboardInterrupt
        return original(url, params)

    connector.client.page = page_then_die
    with pytest.raises(KeyboardInterrupt):
        connector.pull(["events"])
    before = klaviyo.count(path="/api/events")
    frame = connect().pull(["events"]).frames["events"]
    assert klaviyo.count(path="/api/events") - before == 1  # only the fourth metric's page
    assert_same({"events": frame}, klaviyo.dataset, canonical)


def test_records_changing_while_paging(klaviyo, connect, canonical):
    def change(sim: Simulator) -> None:
        customers = sim.dataset["customers"]
        late = typed(
            [
                {
                    "customer_id": "01HZZZ000001",
                    "email": "late@example.com",
                    "email_consent": True,
                    "sms_consent": False,
                    "updated_at": T0,
                }
            ],
            "customers",
        )
        # One profile ahead of the cursor changes its name, and a new profile is created at the end.
        changed = customers.with_columns(
            last_name=pl.when(pl.col("customer_id") == "01HPROF000200").then(pl.lit("Renamed")).otherwise("last_name")
        )
        sim.dataset["customers"] = pl.concat([changed, late], how="diagonal_relaxed")

    klaviyo.faults.set(between_pages=(1, change))
    frame = connect().pull(["customers"]).frames["customers"]
    assert_same({"customers": frame}, klaviyo.dataset, canonical)
    assert "Renamed" in frame["last_name"].to_list()


def test_incremental_pull_asks_only_for_what_changed(klaviyo, connect, canonical):
    since = T0 + timedelta(minutes=200)
    pulled = connect().pull(["customers", "events"], since=since)
    expected = {
        "customers": klaviyo.dataset["customers"].filter(pl.col("updated_at") > since),
        "events": klaviyo.dataset["events"].filter(pl.col("occurred_at") > since),
    }
    assert pulled.frames["customers"].height == 29
    assert_same(pulled.frames, expected, canonical)
    assert any("greater-than(updated,2026-11-01T12:20:00Z)" in r.query.get("filter", "") for r in klaviyo.requests)


def test_unknown_consent_state_is_kept_raw(klaviyo, connect):
    klaviyo.faults.set(unknown_enums=True)
    frame = connect().pull(["customers"]).frames["customers"]
    assert frame["email_consent"].unique().to_list() == [UNKNOWN_CONSENT]
    bad = coerce(frame, "customers").bad
    assert bad.height == frame.height and set(bad["value"]) == {UNKNOWN_CONSENT}


def test_missing_api_key_names_the_variable(klaviyo, fast_http):
    with pytest.raises(UserError, match="KLAVIYO_API_KEY"):
        Connector(klaviyo.settings(**fast_http), env={})


def test_bad_api_key_is_a_clear_error_and_never_leaks(klaviyo, fast_http, assert_no_secret):
    wrong = "pk_wrong_but_secret_123456"
    connector = Connector(klaviyo.settings(**fast_http), env={"KLAVIYO_API_KEY": wrong})
    with pytest.raises(UserError, match="400: not_authenticated: Missing or invalid private key") as raised:
        connector.pull(["customers"])
    assert klaviyo.count(status=400) == 1  # a bad key is not retried
    assert_no_secret(wrong, str(raised.value))


def test_the_key_never_reaches_logs_even_through_retries(klaviyo, connect, assert_no_secret):
    klaviyo.faults.set(server_errors=100)
    with pytest.raises(UserError) as raised:
        connect().pull(["customers"])
    assert_no_secret(klaviyo.api_key, str(raised.value))


def test_bad_revision_and_page_size_are_user_errors(klaviyo, connect):
    with pytest.raises(UserError, match="invalid_revision"):
        connect(revision="latest").pull(["customers"])
    connector = connect()
    with pytest.raises(UserError, match=r"parameter page\[size\]"):
        connector.client.page("/api/profiles", {"page[size]": 101})


def test_demo_retailer_round_trips(tmp_path, fast_http, canonical):
    from driftwatch.demo.generator import generate

    generate(tmp_path / "demo", seed=7)
    with Simulator.from_snapshot_dir(tmp_path / "demo") as sim:
        connector = Connector(sim.settings(**fast_http), env=sim.env, checkpoint_dir=tmp_path / "staging")
        pulled = connector.pull()
        assert set(pulled.frames) == set(sim.dataset) == {"customers", "products", "inventory", "events"}
        assert_same(pulled.frames, sim.dataset, canonical)
        assert sim.count(status=429) == 0


def test_rate_limit_headers_describe_the_steady_window_and_429s_carry_none():
    with Simulator(make_dataset(profiles=5), rate_limits={"profiles": [(5, 10.0), (3, 60.0)]}) as sim:
        headers = {"Authorization": f"Klaviyo-API-Key {sim.api_key}", "revision": "2026-07-15"}
        answers = [httpx.get(f"{sim.url}/api/profiles", headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert answers[0].headers["RateLimit-Limit"] == "3"
    assert 0 < int(answers[0].headers["RateLimit-Reset"]) <= 60
    assert "RateLimit-Limit" not in answers[3].headers
    assert answers[3].json()["errors"][0]["code"] == "throttled"
