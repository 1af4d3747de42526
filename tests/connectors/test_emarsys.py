"""The Emarsys connector against its loopback simulator: WSSE and OAuth, replyCodes, getdata batches."""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import UTC, datetime
from decimal import Decimal

import polars as pl
import pytest

from driftwatch.config import parse_config
from driftwatch.connectors import get
from driftwatch.connectors.emarsys.client import EmarsysClient, WsseAuth, wsse_header
from driftwatch.connectors.emarsys.connector import Connector
from driftwatch.demo.generator import generate
from driftwatch.errors import UserError
from driftwatch.normalize import coerce
from driftwatch.simulators import SIMULATORS
from driftwatch.simulators.emarsys import EmarsysSimulator as Simulator
from tests.slow_answers import CLIENT_TIMEOUT, LATE_ANSWER

UNLIMITED: dict = {}  # the documented rate is 1,000 a minute: no test here comes near it
# Custom fields beyond the defaults, as an account would configure them.
EXTRA_FIELDS = {
    "sms_consent": "20001",
    "consent_updated_at": "20002",
    "lifetime_value": "20003",
    "order_count": "20004",
    "last_order_at": "20005",
}


def _frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=dict.fromkeys(rows[0], pl.String))


def _lines(orders: int) -> list[dict[str, str]]:
    lines = []
    for i in range(orders):
        for n, (size, qty) in enumerate((("S", 2), ("M", 1)), start=1):
            cancelled = qty if i % 4 == 1 else 1 if i % 4 == 2 and n == 1 else 0
            lines.append(
                {
                    "order_id": f"WEB-{i:05d}",
                    "line_no": str(n),
                    "sku": f"00412-010-{size}",
                    "qty_ordered": str(qty),
                    "qty_cancelled": str(cancelled),
                    "qty_returned": "1" if i % 4 == 3 and n == 2 else "0",
                    "unit_price": "29.99",
                }
            )
    return lines


def dataset(customers: int = 7, orders: int = 6) -> dict[str, pl.DataFrame]:
    lines = _lines(orders)
    return {
        "customers": _frame(
            [
                {
                    "customer_id": str(5000 + i),
                    "erp_customer_id": f"C{i:05d}",
                    "email": f"person{i}@example.com",
                    "email_consent": ["true", "false", None][i % 3],
                    "sms_consent": ["true", "false"][i % 2],
                    "consent_updated_at": "2026-11-01T09:30:00+00:00",
                    "first_name": f"First{i}",
                    "last_name": f"Last{i}",
                    "postcode": f"N{i} 1AA",
                    "country": "GB",
                    "lifetime_value": f"{100 + i}.25",
                    "order_count": str(i),
                    "last_order_at": "2026-11-10T12:00:00+00:00",
                    "updated_at": f"2026-11-{10 + i:02d}T08:00:00+00:00",
                }
                for i in range(customers)
            ]
        ),
        "orders": _frame(
            [
                {
                    "order_id": f"WEB-{i:05d}",
                    "channel": "web",
                    "customer_id": f"ct-{i}",
                    "external_id": f"W{i:08d}",
                    "placed_at": f"2026-11-{9 + i:02d}T10:15:00+00:00",
                    "total": str(
                        sum(
                            Decimal(x["unit_price"]) * int(x["qty_ordered"])
                            for x in lines
                            if x["order_id"] == f"WEB-{i:05d}"
                        )
                    ),
                    "currency": "EUR",
                }
                for i in range(orders)
            ]
        ),
        "order_lines": _frame(lines),
        "products": _frame(
            [
                {
                    "sku": f"00412-010-{size}",
                    "style": "00412",
                    "colour": "010",
                    "size": size,
                    "name": 'Linen shirt, "relaxed"',
                    "price": "29.99",
                    "currency": "EUR",
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


def _connector(sim: Simulator, fast_http: dict, **settings: object) -> Connector:
    return Connector(sim.settings(**{"page_size": 3, **fast_http, **settings}), env=sim.env)


def _assert_same_frame(got: pl.DataFrame, expected: pl.DataFrame, entity: str, canonical) -> None:
    """Equal on the columns the dataset fills (what Emarsys can hold)."""
    assert canonical(got.select(expected.columns), entity).equals(canonical(expected, entity)), entity


def _assert_same(pulled, data, canonical) -> None:
    for entity, frame in data.items():
        _assert_same_frame(pulled.frames[entity], frame, entity, canonical)


def test_registry_gives_the_emarsys_connector() -> None:
    assert get("emarsys") is Connector
    assert SIMULATORS["emarsys"] is Simulator


def test_wsse_digest_is_base64_of_the_hex_sha1() -> None:
    header = wsse_header("user", "secret", nonce="abc", created="2026-11-23T10:00:00Z")
    # sha1("abc2026-11-23T10:00:00Zsecret") as hex, then base64 of that hex text
    hex_digest = hashlib.sha1(b"abc2026-11-23T10:00:00Zsecret").hexdigest()
    assert f'PasswordDigest="{base64.b64encode(hex_digest.encode()).decode()}"' in header


@pytest.mark.parametrize("auth", ["wsse", "oauth"])
def test_pull_returns_exactly_what_the_simulator_holds(auth, fast_http, canonical) -> None:
    data = dataset()
    with Simulator(data, rate_limits=UNLIMITED, field_ids=EXTRA_FIELDS) as sim:
        pulled = _connector(sim, fast_http, auth=auth).pull()
        api_paths = {r.path.split("/contact")[0] for r in sim.requests if r.path.startswith("/api/")}
    assert api_paths == {"/api/v2" if auth == "wsse" else "/api/v3"}
    _assert_same(pulled, data, canonical)


def test_oauth_token_expiring_mid_pull_is_refreshed(fast_http, canonical) -> None:
    data = dataset(customers=10)
    with Simulator(data, rate_limits=UNLIMITED, field_ids=EXTRA_FIELDS) as sim:
        sim.faults.set(expire_token_after=3)
        customers = _connector(sim, fast_http, auth="oauth").pull(["customers"]).frames["customers"]
        assert sim.count(path="/oauth2/token") > 1
        assert sim.count(status=401) >= 1
    _assert_same_frame(customers, data["customers"], "customers", canonical)


@pytest.mark.parametrize(
    "fault",
    [{"rate_limit_storm": 2}, {"server_errors": 3}, {"timeouts": 1, "timeout_delay": LATE_ANSWER}, {"truncated": 2}],
    ids=lambda f: next(iter(f)),
)
def test_pull_survives_each_fault(fault, fast_http, canonical) -> None:
    data = dataset()
    with Simulator(data, rate_limits=UNLIMITED, field_ids=EXTRA_FIELDS) as sim:
        sim.faults.set(**fault)
        # A 429 says when the minute resets; a test cannot wait for it.
        pulled = _connector(sim, {**fast_http, "timeout": CLIENT_TIMEOUT, "max_retry_after": 0.01}).pull(["customers"])
    _assert_same(pulled, {"customers": data["customers"]}, canonical)


def test_429_waits_for_the_reset_time_emarsys_gives(fast_http, caplog) -> None:
    caplog.set_level(logging.WARNING)
    with Simulator(dataset(), rate_limits=UNLIMITED, field_ids=EXTRA_FIELDS) as sim:
        sim.faults.set(rate_limit_storm=1)
        _connector(sim, {**fast_http, "max_retry_after": 0.05}).pull(["customers"])
    retries = [r.getMessage() for r in caplog.records if "429" in r.getMessage()]
    assert retries and "retrying in 0.05s" in retries[0]  # the reset time, capped: not the tiny backoff


def test_contact_deleted_between_listing_and_read_is_left_out(fast_http, canonical) -> None:
    data = dataset()

    def delete_first(sim: Simulator) -> None:
        sim.dataset["customers"] = sim.dataset["customers"].slice(1)

    with Simulator(data, rate_limits=UNLIMITED, field_ids=EXTRA_FIELDS) as sim:
        sim.faults.set(between_pages=(1, delete_first))
        customers = _connector(sim, fast_http).pull(["customers"]).frames["customers"]
    _assert_same_frame(customers, data["customers"].slice(1), "customers", canonical)


def test_error_inside_http_200_is_a_user_error(fast_http) -> None:
    with Simulator(dataset(), rate_limits=UNLIMITED, field_ids=EXTRA_FIELDS) as sim:
        connector = _connector(sim, fast_http, field_ids={"sms_consent": "99999"})
        with pytest.raises(UserError, match=r"-> 200, replyCode 2006: Invalid field id: 99999"):
            connector.pull(["customers"])
        assert sim.count(status=200) >= 1 and sim.count(status=400) == 0


def test_more_than_1000_keys_is_refused_by_emarsys(fast_http) -> None:
    with Simulator(dataset(), rate_limits=UNLIMITED, field_ids=EXTRA_FIELDS) as sim:
        env, settings = sim.env, sim.settings(**fast_http)
        connector = Connector(settings, env=env)
        client = EmarsysClient(
            sim.url,
            WsseAuth(env["EMARSYS_USERNAME"], env["EMARSYS_SECRET"]),
            api_path="/api/v2",
            secrets=[env["EMARSYS_SECRET"]],
            settings=settings,
            http_settings=connector.http_settings,
        )
        try:
            with pytest.raises(ValueError, match="at most 1000"):
                client.getdata([str(i) for i in range(1001)], ["3"])
            with pytest.raises(UserError, match="400: replyCode 1000"):
                client.http.request(
                    "POST", "/api/v2/contact/getdata", json={"keyId": "id", "keyValues": list(range(1001))}
                )
        finally:
            client.close()


def test_a_page_size_over_the_batch_limit_is_capped(fast_http) -> None:
    with Simulator(dataset(customers=4), rate_limits=UNLIMITED, field_ids=EXTRA_FIELDS) as sim:
        _connector(sim, fast_http, page_size=5000).pull(["customers"])
        assert [r.query["limit"] for r in sim.requests if r.path.endswith("query/")] == ["1000"]


def test_unknown_opt_in_value_is_quarantined_not_a_crash(fast_http) -> None:
    with Simulator(dataset(), rate_limits=UNLIMITED, field_ids=EXTRA_FIELDS) as sim:
        sim.faults.set(unknown_enums=True)
        customers = _connector(sim, fast_http).pull(["customers"]).frames["customers"]
    assert set(customers["email_consent"]) == {"3"}
    bad = coerce(customers, "customers").bad
    assert set(bad["column"]) == {"email_consent"} and bad.height == customers.height


def test_sales_uploaded_twice_under_another_name_doubles_revenue(fast_http) -> None:
    data = dataset()
    with Simulator(data, rate_limits=UNLIMITED, field_ids=EXTRA_FIELDS) as sim:
        sim.upload_sales_data("sales_initial_again.csv")
        sim.upload_sales_data("sales_bad_header.csv", pl.DataFrame({"order": ["WEB-00000"], "Price": ["1"]}))
        orders = _connector(sim, fast_http).pull(["orders"]).frames["orders"]
    doubled = {o: str(Decimal(t) * 2) for o, t in zip(data["orders"]["order_id"], data["orders"]["total"], strict=True)}
    got = dict(zip(orders["order_id"], orders["total"], strict=True))
    assert {o: Decimal(t) for o, t in got.items()} == {o: Decimal(t) for o, t in doubled.items()}


def test_an_incremental_pull_reads_everything_as_emarsys_lists_no_changes(fast_http) -> None:
    with Simulator(dataset(), rate_limits=UNLIMITED, field_ids=EXTRA_FIELDS) as sim:
        connector = _connector(sim, fast_http)
        whole = connector.pull(["customers", "orders", "order_lines"])
        pulled = connector.pull(["customers", "orders", "order_lines"], since=datetime(2026, 11, 12, tzinfo=UTC))
    assert pulled.deltas == {}
    for entity, frame in whole.frames.items():
        assert pulled.frames[entity].sort(frame.columns).equals(frame.sort(frame.columns)), entity


def test_interrupted_pull_resumes_without_losing_or_repeating_a_contact(fast_http, canonical, tmp_path) -> None:
    data = dataset(customers=10)
    with Simulator(data, rate_limits=UNLIMITED, field_ids=EXTRA_FIELDS) as sim:
        connector = Connector(
            sim.settings(page_size=3, **{**fast_http, "max_attempts": 2}), env=sim.env, checkpoint_dir=tmp_path
        )
        sim.faults.set(between_pages=(2, lambda s: s.faults.set(server_errors=10)))
        with pytest.raises(UserError, match="gave up"):
            connector.pull(["customers"])
        sim.faults.set(server_errors=0, between_pages=None)
        read_before = [r.query["offset"] for r in sim.requests if r.path.endswith("query/") and r.status == 200]
        customers = connector.pull(["customers"]).frames["customers"]
        read_after = [r.query["offset"] for r in sim.requests if r.path.endswith("query/") and r.status == 200]
    assert read_before == ["0", "3"]
    assert read_after[len(read_before) :] == ["3", "6", "9"]  # the page whose getdata failed, then onwards
    _assert_same_frame(customers, data["customers"], "customers", canonical)


@pytest.mark.parametrize("auth", ["wsse", "oauth"])
def test_bad_credentials_are_a_clear_error_that_never_shows_them(auth, fast_http, assert_no_secret) -> None:
    with Simulator(dataset(), rate_limits=UNLIMITED, field_ids=EXTRA_FIELDS) as sim:
        wrong = {**sim.env, "EMARSYS_SECRET": "wrong-secret-1", "EMARSYS_CLIENT_SECRET": "wrong-secret-1"}
        with pytest.raises(UserError, match=r"401|refused the client credentials") as error:
            Connector(sim.settings(auth=auth, **fast_http), env=wrong).pull(["customers"])
        assert_no_secret("wrong-secret-1", str(error.value))
        sim.faults.set(server_errors=10)
        with pytest.raises(UserError) as error:
            _connector(sim, fast_http, auth=auth).pull(["customers"])
        for secret in (sim.env["EMARSYS_SECRET"], sim.env["EMARSYS_CLIENT_SECRET"]):
            assert_no_secret(secret, str(error.value))


def test_missing_credential_names_the_variable() -> None:
    with pytest.raises(UserError, match="EMARSYS_SECRET"):
        Connector({"username_env": "EMARSYS_USERNAME", "secret_env": "EMARSYS_SECRET"}, env={"EMARSYS_USERNAME": "u"})


def test_round_trip_of_the_demo_retailer(tmp_path, fast_http) -> None:
    generate(tmp_path, seed=11)
    with Simulator.from_snapshot_dir(tmp_path, rate_limits=UNLIMITED) as sim:
        pulled = Connector(sim.settings(**fast_http), env=sim.env).pull()
        served = sim.dataset
    assert set(served) == set(Connector.entities)
    for entity, expected in served.items():
        got = coerce(pulled.frames[entity], entity)
        assert got.bad.height == 0, (entity, got.bad)
        held = [c for c in got.good.columns if c in expected.columns]
        assert set(expected.columns) - set(held) <= {"updated_at", "qty_shipped"}, entity
        assert (
            got.good.select(held).sort(held, nulls_last=True).equals(expected.select(held).sort(held, nulls_last=True))
        ), entity


def test_sales_file_with_only_the_standard_columns(fast_http) -> None:
    standard = pl.DataFrame(
        {
            "item": ["00412-010-S", "00412-010-M", "00412-010-M", "00412-010-S"],
            "price": ["59.98", "29.99", "-29.99", "29.99"],
            "order": ["A-1", "A-1", "A-1", "B-2"],
            "timestamp": ["2026-11-02", "2026-11-02", "2026-11-05T10:00:00Z", "2026-11-03T08:00:00Z"],
            "email": ["a@example.com", "a@example.com", "a@example.com", "b@example.com"],
            "quantity": ["2", "1", "-1", "1"],
        }
    )
    with Simulator({}, rate_limits=UNLIMITED) as sim:
        sim.upload_sales_data("sales_initial.csv", standard)  # replaces the (empty) initial upload
        pulled = _connector(sim, fast_http, currency="EUR").pull(["orders", "order_lines"])
    orders = coerce(pulled.frames["orders"], "orders").good
    lines = coerce(pulled.frames["order_lines"], "order_lines").good
    assert orders.select("order_id", "email", "total", "currency").rows() == [
        ("A-1", "a@example.com", Decimal("89.97"), "EUR"),
        ("B-2", "b@example.com", Decimal("29.99"), "EUR"),
    ]
    assert lines.select("order_id", "line_no", "sku", "qty_ordered", "qty_returned", "unit_price").rows() == [
        ("A-1", 1, "00412-010-S", 2, 0, Decimal("29.99")),
        ("A-1", 2, "00412-010-M", 1, 1, Decimal("29.99")),
        ("B-2", 1, "00412-010-S", 1, 0, Decimal("29.99")),
    ]


def test_driftwatch_toml_accepts_the_settings() -> None:
    with Simulator({}) as sim:
        for auth in ("wsse", "oauth"):
            parse_config({"sources": {"emarsys": sim.settings(auth=auth)}})


def test_token_endpoint_outage_is_retried(fast_http, canonical) -> None:
    data = dataset()
    with Simulator(data, rate_limits=UNLIMITED, field_ids=EXTRA_FIELDS) as sim:
        sim.faults.set(server_errors=2)  # the first requests of the pull are the token's
        customers = _connector(sim, fast_http, auth="oauth").pull(["customers"]).frames["customers"]
        assert sim.count(path="/oauth2/token", status=503) == 2
    _assert_same_frame(customers, data["customers"], "customers", canonical)


def test_contacts_added_and_changed_while_paging_are_read(fast_http, canonical) -> None:
    data = dataset(customers=7)
    later = dataset(customers=9)["customers"]
    changed = later.with_columns(
        pl.when(pl.col("customer_id") == "5006")
        .then(pl.lit("Renamed"))
        .otherwise(pl.col("first_name"))
        .alias("first_name")
    )

    def change(sim: Simulator) -> None:  # contact 5006 (not read yet) renamed, 5007 and 5008 added
        sim.dataset["customers"] = changed

    with Simulator(data, rate_limits=UNLIMITED, field_ids=EXTRA_FIELDS) as sim:
        sim.faults.set(between_pages=(1, change))
        customers = _connector(sim, fast_http).pull(["customers"]).frames["customers"]
    _assert_same_frame(customers, changed, "customers", canonical)
