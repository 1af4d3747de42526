"""The Ometria connector against its loopback simulator: paging, faults, resumption, credentials."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from driftwatch.config import parse_config
from driftwatch.connectors import get
from driftwatch.connectors.ometria.connector import Connector
from driftwatch.connectors.ometria.mapping import CANCELLED_BUT_VALID
from driftwatch.demo.generator import generate
from driftwatch.errors import UserError
from driftwatch.normalize import coerce
from driftwatch.simulators import SIMULATORS
from driftwatch.simulators.ometria import UNKNOWN_STATUS
from driftwatch.simulators.ometria import OmetriaSimulator as Simulator
from tests.slow_answers import CLIENT_TIMEOUT, LATE_ANSWER

UNLIMITED: dict = {}  # the documented rate is tested once; elsewhere it would only slow the suite


def _frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=dict.fromkeys(rows[0], pl.String))


def dataset(customers: int = 7, orders: int = 6) -> dict[str, pl.DataFrame]:
    return {
        "customers": _frame(
            [
                {
                    "customer_id": f"om-{i:03d}",
                    "erp_customer_id": f"C{i:05d}",
                    "email": f"person{i}@example.com",
                    "email_consent": ["true", "false", None][i % 3],
                    "sms_consent": ["true", "false"][i % 2],
                    "consent_updated_at": "2026-11-01T09:30:00+00:00" if i % 3 != 2 else None,
                    "first_name": f"First{i}",
                    "last_name": f"Last{i}",
                    "postcode": f"N{i} 1AA",
                    "country": "GB",
                    "lifetime_value": f"{100 + i}.25",
                    "order_count": str(i),
                    "last_order_at": "2026-11-10T12:00:00+00:00",
                    "merged_into": None,
                    "updated_at": f"2026-11-{10 + i:02d}T08:00:00+00:00",
                }
                for i in range(customers)
            ]
        ),
        "orders": _frame(
            [
                {
                    "order_id": f"SO{i:06d}",
                    "external_id": f"W{i:08d}",
                    "channel": "web",
                    "customer_id": f"C{i:05d}",
                    "email": f"person{i}@example.com",
                    "status": ["pending", "shipped", "complete", "cancelled", CANCELLED_BUT_VALID][i % 5],
                    "placed_at": "2026-11-09T10:15:00+00:00",
                    "updated_at": f"2026-11-{10 + i:02d}T11:00:00+00:00",
                    "total": "59.98",
                    "currency": "GBP" if i % 2 else "EUR",
                }
                for i in range(orders)
            ]
        ),
        "order_lines": _frame(
            [
                {
                    "order_id": f"SO{i:06d}",
                    "line_no": str(n),
                    "sku": f"00412-010-{size}",
                    "qty_ordered": "1",
                    "qty_returned": "1" if i == 2 and n == 2 else "0",
                    "unit_price": "29.99",
                }
                for i in range(orders)
                for n, size in ((1, "S"), (2, "M"))
            ]
        ),
        "products": _frame(
            [
                {
                    "sku": f"00412-010-{size}",
                    "name": "Linen shirt",
                    "price": "29.99",
                    "currency": "GBP",
                    "status": "discontinued" if size == "XL" else "active",
                    "updated_at": "2026-11-20T06:00:00+00:00",
                }
                for size in ("XS", "S", "M", "L", "XL")
            ]
        ),
        "inventory": _frame(
            [
                {
                    "sku": f"00412-010-{size}",
                    "location": "*",
                    "available": str(n),
                    "updated_at": "2026-11-22T06:00:00+00:00",
                }
                for n, size in enumerate(("XS", "S", "M", "L"))
            ]
        ),
    }


def _pull(sim: Simulator, fast_http: dict, tmp_path=None, **settings: object):
    connector = Connector(
        sim.settings(page_size=2, read_rate=1000, **fast_http, **settings), env=sim.env, checkpoint_dir=tmp_path
    )
    return connector.pull()


def _assert_same(pulled, data, canonical) -> None:
    for entity, frame in data.items():
        expected = canonical(frame, entity)
        assert canonical(pulled.frames[entity].select(frame.columns), entity).equals(expected), entity


def test_registry_gives_the_ometria_connector() -> None:
    assert get("ometria") is Connector
    assert SIMULATORS["ometria"] is Simulator


def test_pull_returns_exactly_what_the_simulator_holds(fast_http, canonical) -> None:
    data = dataset()
    with Simulator(data, rate_limits=UNLIMITED) as sim:
        pulled = _pull(sim, fast_http)
    assert set(pulled.frames) == set(Connector.entities)
    _assert_same(pulled, data, canonical)
    assert pulled.captured_at.tzinfo is UTC


def test_cancellation_without_is_valid_false_keeps_a_raw_status_of_its_own(fast_http) -> None:
    with Simulator(dataset(), rate_limits=UNLIMITED) as sim:
        orders = _pull(sim, fast_http).frames["orders"]
    statuses = dict(zip(orders["order_id"], orders["status"], strict=True))
    assert statuses["SO000003"] == "cancelled"
    assert statuses["SO000004"] == CANCELLED_BUT_VALID


@pytest.mark.parametrize(
    "fault",
    [
        {"rate_limit_storm": 3},
        {"server_errors": 3},
        {"server_errors": 2, "server_error_status": 502},
        {"timeouts": 2, "timeout_delay": LATE_ANSWER},
        {"truncated": 2},
    ],
    ids=lambda f: next(iter(f)) + (f"-{f['server_error_status']}" if "server_error_status" in f else ""),
)
def test_pull_survives_each_fault(fault, fast_http, canonical) -> None:
    data = dataset()
    with Simulator(data, rate_limits=UNLIMITED) as sim:
        sim.faults.set(**fault)
        pulled = _pull(sim, {**fast_http, "timeout": CLIENT_TIMEOUT})
        failures = sim.count(status=429) + sim.count(status=fault.get("server_error_status", 503))
    _assert_same(pulled, data, canonical)
    if "rate_limit_storm" in fault or "server_errors" in fault:
        assert failures == next(iter(fault.values()))


def test_a_record_added_while_paging_is_not_lost(fast_http, canonical) -> None:
    data = dataset()
    extra = dataset(customers=9)["customers"].tail(2)

    def insert(sim: Simulator) -> None:
        sim.dataset["customers"] = pl.concat([sim.dataset["customers"], extra])

    with Simulator(data, rate_limits=UNLIMITED) as sim:
        sim.faults.set(between_pages=(1, insert))
        customers = _pull(sim, fast_http).frames["customers"]
    expected = pl.concat([data["customers"], extra])
    assert canonical(customers, "customers").equals(canonical(expected, "customers"))


def test_unknown_status_reaches_the_audit_raw(fast_http) -> None:
    with Simulator(dataset(), rate_limits=UNLIMITED) as sim:
        sim.faults.set(unknown_enums=True)
        orders = _pull(sim, fast_http).frames["orders"]
    assert set(orders["status"]) == {UNKNOWN_STATUS}


def test_interrupted_pull_resumes_without_losing_or_repeating_a_record(fast_http, canonical, tmp_path) -> None:
    data = dataset(customers=9)
    with Simulator(data, rate_limits=UNLIMITED) as sim:
        connector = Connector(
            sim.settings(page_size=2, read_rate=1000, **{**fast_http, "max_attempts": 2}),
            env=sim.env,
            checkpoint_dir=tmp_path,
        )

        def fail_from_now(sim: Simulator) -> None:
            sim.faults.set(server_errors=10)

        sim.faults.set(between_pages=(3, fail_from_now))
        with pytest.raises(UserError, match="gave up"):
            connector.pull(["customers"])
        sim.faults.set(server_errors=0, between_pages=None)
        offsets_before = [r.query["offset"] for r in sim.requests if r.status == 200]
        customers = connector.pull(["customers"]).frames["customers"]
        offsets_after = [r.query["offset"] for r in sim.requests if r.status == 200][len(offsets_before) :]
    assert offsets_before == ["0", "2", "4"]
    assert offsets_after == ["6", "8"]  # resumed from the saved offset, nothing fetched twice
    assert canonical(customers, "customers").equals(canonical(data["customers"], "customers"))
    assert not any(tmp_path.rglob("*.parquet")), "a completed pull clears its staging"


def test_an_incremental_pull_reads_every_record_as_ometria_lists_no_changes(fast_http, canonical) -> None:
    data = dataset()
    with Simulator(data, rate_limits=UNLIMITED) as sim:
        connector = Connector(sim.settings(page_size=2, read_rate=1000, **fast_http), env=sim.env)
        pulled = connector.pull(["customers", "orders"], since=datetime(2026, 11, 14, tzinfo=UTC))
        sent = {key for r in sim.requests for key in r.query}
    assert pulled.deltas == {}
    assert sent == {"limit", "offset"}
    for entity in ("customers", "orders"):
        assert canonical(pulled.frames[entity], entity).equals(canonical(data[entity], entity))


def test_client_stays_under_the_documented_rate(fast_http) -> None:
    with Simulator(dataset(customers=10)) as sim:  # at the documented 4 requests a second
        connector = Connector(sim.settings(page_size=2, **fast_http), env=sim.env)
        connector.pull(["customers"])
        assert sim.count(path="/v2/contacts") == 6
        assert sim.count(status=429) == 0


def test_bad_key_is_a_clear_error_that_never_shows_the_key(fast_http, assert_no_secret) -> None:
    with Simulator(dataset(), rate_limits=UNLIMITED) as sim:
        connector = Connector(sim.settings(**fast_http), env={"OMETRIA_API_KEY": "wrong-key-123"})
        with pytest.raises(UserError, match="403: API key is not authorised") as error:
            connector.pull(["products"])
        assert_no_secret("wrong-key-123", str(error.value))
        with pytest.raises(UserError):  # and the good key never shows either, retries included
            sim.faults.set(server_errors=10)
            Connector(sim.settings(**fast_http), env=sim.env).pull(["products"])
        assert_no_secret(sim.api_key)


def test_missing_key_names_the_variable_not_a_value() -> None:
    with pytest.raises(UserError, match="OMETRIA_API_KEY"):
        Connector({"api_key_env": "OMETRIA_API_KEY"}, env={})


def test_round_trip_of_the_demo_retailer(tmp_path, fast_http) -> None:
    generate(tmp_path, seed=11)
    with Simulator.from_snapshot_dir(tmp_path, rate_limits=UNLIMITED) as sim:
        pulled = Connector(sim.settings(read_rate=1000, **fast_http), env=sim.env).pull()
        served = sim.dataset
    assert set(served) == set(Connector.entities)
    for entity, expected in served.items():
        got = coerce(pulled.frames[entity], entity)
        assert got.bad.height == 0, (entity, got.bad)
        held = got.good.columns
        assert set(expected.columns) - set(held) <= {"qty_shipped", "qty_cancelled"}, entity
        assert got.good.sort(held, nulls_last=True).equals(expected.select(held).sort(held, nulls_last=True)), entity


def test_driftwatch_toml_accepts_the_settings() -> None:
    with Simulator({}) as sim:
        parse_config({"sources": {"ometria": sim.settings(page_size=100, read_rate=4)}})


def test_a_rate_that_is_not_a_whole_number_is_a_clear_error() -> None:
    with Simulator({}) as sim, pytest.raises(UserError, match=r"read_rate: expected a whole number"):
        Connector(sim.settings(read_rate=0.5), env=sim.env).pull(["customers"])
