"""commercetools connector against its loopback simulator: round trips, paging, auth, faults, resumption."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest

from driftwatch.connectors import get
from driftwatch.connectors.commercetools import mapping
from driftwatch.connectors.commercetools.client import ClientCredentials, CommercetoolsClient
from driftwatch.connectors.commercetools.connector import Connector
from driftwatch.errors import UserError
from driftwatch.simulators import SIMULATORS
from driftwatch.simulators.commercetools import CLIENT_ID, CLIENT_SECRET, PROJECT_KEY
from driftwatch.simulators.commercetools import CommercetoolsSimulator as Simulator
from tests.slow_answers import CLIENT_TIMEOUT, LATE_ANSWER

STAMP = "2026-11-01T10:00:00Z"


def customers(count: int = 7) -> pl.DataFrame:
    ids = [f"c{i:03d}" for i in range(count)]
    return pl.DataFrame(
        {
            "customer_id": ids,
            "erp_customer_id": [f"E{i:05d}" if i % 3 else None for i in range(count)],
            "email": [f"shopper{i}@example.com" for i in range(count)],
            "email_consent": [["true", "false", None][i % 3] for i in range(count)],
            "sms_consent": [["false", None, "true"][i % 3] for i in range(count)],
            "consent_updated_at": [STAMP if i % 2 else None for i in range(count)],
            "first_name": [f"First{i}" for i in range(count)],
            "last_name": [None if i == 1 else f"Last{i}" for i in range(count)],
            "postcode": [None if i == 2 else f"N{i} 1AA" for i in range(count)],
            "country": [None if i == 2 else "GB" for i in range(count)],
            "lifetime_value": [f"{i * 10}.{i:02d}" if i != 4 else "12.3456" for i in range(count)],
            "order_count": [str(i) for i in range(count)],
            "last_order_at": ["2026-10-30T08:15:30.123Z" if i else None for i in range(count)],
            "merged_into": ["c000" if i == 5 else None for i in range(count)],
            "updated_at": [STAMP] * count,
        }
    )


def orders_dataset() -> dict[str, pl.DataFrame]:
    orders = pl.DataFrame(
        {
            "order_id": ["W1001", "W1002", "W1003", "W1004", "W1005"],
            # The storefront's order number; the ERP number W1001.. is stored on the order (W1005: the same).
            "external_id": ["WEB-000001", "WEB-000002", "WEB-000003", None, "W1005"],
            "channel": ["web", "web", "web", None, "web"],
            "customer_id": ["c001", "c002", None, "c004", "c001"],
            "email": [
                "shopper1@example.com",
                "shopper2@example.com",
                "guest@example.com",
                None,
                "shopper1@example.com",
            ],
            "status": ["Confirmed/Shipped", "Open", "Cancelled/Canceled", "Complete/Delivered", "Confirmed/Partial"],
            "placed_at": ["2026-10-01T09:00:00Z", "2026-10-02T09:00:00Z", STAMP, STAMP, STAMP],
            "updated_at": [STAMP] * 5,
            "total": ["59.80", "20", "0.00", "149.95", "39.80"],
            "currency": ["EUR", "GBP", "EUR", "EUR", "EUR"],
        }
    )
    lines = pl.DataFrame(
        {
            "order_id": ["W1001", "W1001", "W1002", "W1003", "W1004", "W1005", "W1005"],
            "line_no": ["1", "2", "1", "1", "1", "1", "2"],
            "sku": ["00412-010-M", "00412-010-L", "00413-020-S", None, "00500-001-XL", "00412-010-M", "00413-020-S"],
            "qty_ordered": ["1", "2", "1", "1", "5", "1", "1"],
            "qty_shipped": ["1", "2", "0", "0", "5", "1", "0"],
            "qty_cancelled": [None, "0", None, "1", None, None, "0"],
            "qty_returned": ["1", "0", "0", "0", "2", "0", "0"],
            "unit_price": ["19.90", "19.95", "20", "0", "29.99", "19.90", "19.90"],
        }
    )
    returns = pl.DataFrame(
        {
            "return_id": ["r-1", "r-2", "r-3"],
            "order_id": ["W1001", "W1004", "W1004"],
            "sku": ["00412-010-M", "00500-001-XL", "00500-001-XL"],
            "qty": ["1", "2", "1"],
            "amount": ["19.90", "59.98", None],
            "status": ["Returned/Refunded", "BackInStock/Refunded", "Advised/Initial"],
            "processed_at": ["2026-10-05T12:00:00Z", "2026-10-06T12:00:00Z", "2026-10-07T12:00:00Z"],
        }
    )
    # W1001 went in two parcels, W1004 in one delivery the storefront recorded without tracking.
    shipments = pl.DataFrame(
        {
            "shipment_id": ["p-1", "p-2", "d-4", "p-5"],
            "order_id": ["W1001", "W1001", "W1004", "W1005"],
            "carrier": ["DHL", "DHL", None, "UPS"],
            "tracking_number": ["JD0001", "JD0002", None, "1Z999"],
            "shipped_at": ["2026-10-02T08:00:00Z", "2026-10-02T08:05:00Z", STAMP, STAMP],
        }
    )
    return {"orders": orders, "order_lines": lines, "returns": returns, "shipments": shipments}


def inventory(count: int = 6) -> pl.DataFrame:
    skus = [f"{i // 2:05d}-010-M" for i in range(count)]
    return pl.DataFrame(
        {
            "sku": skus,
            "location": ["*" if i % 2 else f"WH{i % 3}" for i in range(count)],
            "on_hand": [str(i * 3) for i in range(count)],
            "available": [str(i * 2) for i in range(count)],
            "updated_at": [STAMP] * count,
        }
    )


def products() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sku": ["00412-010-M", "00412-010-L", "00412-020-M", "00413-020-S", "CAP-1"],
            "style": ["00412", "00412", "00412", "00413", None],
            "colour": ["010", "010", "020", "020", None],
            "size": ["M", "L", "M", "S", None],
            "name": ["Linen shirt", "Linen shirt", "Linen shirt", "Chino", "Cap"],
            "price": ["19.90", "19.95", "21", "49.00", "9.5"],
            "currency": ["EUR", "EUR", "EUR", "GBP", "EUR"],
            "status": ["active", "active", "discontinued", "active", "active"],
            "updated_at": [STAMP] * 5,
        }
    )


def dataset() -> dict[str, pl.DataFrame]:
    return {"customers": customers(), **orders_dataset(), "inventory": inventory(), "products": products()}


def connect(sim: Simulator, fast_http: dict, tmp_path: Path | None = None, **settings) -> Connector:
    return Connector(
        sim.settings(page_size=2, **fast_http, **settings),
        env=sim.env,
        checkpoint_dir=tmp_path,
        progress=False,
    )


def as_pulled(entity: str, frame: pl.DataFrame) -> pl.DataFrame:
    """What a pull gives back of the records served: an inventory entry's reservations (quantityOnStock less
    availableQuantity) come back as its `allocated`."""
    return mapping.drop_inventory(frame) if entity == "inventory" else frame


def assert_same(pulled: dict[str, pl.DataFrame], expected: dict[str, pl.DataFrame], canonical) -> None:
    for entity, frame in expected.items():
        assert canonical(pulled[entity], entity).equals(canonical(as_pulled(entity, frame), entity)), entity


def test_registry_knows_commercetools():
    assert get("commercetools") is Connector
    assert SIMULATORS["commercetools"] is Simulator


def test_round_trip_gives_back_every_record(fast_http, canonical, tmp_path):
    data = dataset()
    with Simulator(data) as sim:
        pulled = connect(sim, fast_http, tmp_path).pull()
    assert set(pulled.frames) == set(Connector.entities)
    assert_same(pulled.frames, data, canonical)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "a completed pull clears its staging"


def test_status_is_compound_and_statuses_keep_their_spelling(fast_http):
    with Simulator(orders_dataset()) as sim:
        frame = connect(sim, fast_http).pull(["orders"]).frames["orders"]
    statuses = dict(zip(frame["order_id"], frame["status"], strict=True))
    assert statuses["W1002"] == "Open"  # no shipmentState yet
    assert statuses["W1003"] == "Cancelled/Canceled"


def test_pages_by_sorted_id_past_the_offset_cap(fast_http, canonical):
    big = inventory(10_600)
    with Simulator({"inventory": big}) as sim:
        frame = (
            Connector(sim.settings(**fast_http), env=sim.env, progress=False).pull(["inventory"]).frames["inventory"]
        )
        pages = [r for r in sim.requests if r.path == f"/{PROJECT_KEY}/inventory"]
        client = CommercetoolsClient(
            api_url=sim.url, auth_url=sim.url, project_key=PROJECT_KEY, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
        )
        with pytest.raises(UserError, match="InvalidInput: The offset must be between 0 and 10000"):
            client.http.request_json("GET", f"/{PROJECT_KEY}/inventory", params={"offset": "10500"})
        client.close()
    assert canonical(frame, "inventory").equals(canonical(as_pulled("inventory", big), "inventory"))
    assert len(pages) == 22  # 10,600 / 500, the last one short
    for page in pages:
        assert page.query["sort"] == "id asc" and page.query["withTotal"] == "false" and "offset" not in page.query
    assert all(p.query["where"].startswith("id > ") for p in pages[1:])


@pytest.mark.parametrize(
    ("fault", "fired"),
    [
        pytest.param(
            lambda sim: sim.fail_next(2, 502, html=True), lambda sim: sim.count(status=502) == 2, id="502-html-edge"
        ),
        pytest.param(lambda sim: sim.fail_next(3, 503), lambda sim: sim.count(status=503) == 3, id="503-over-capacity"),
        pytest.param(
            lambda sim: sim.faults.set(rate_limit_storm=3, storm_retry_after=0.01),
            lambda sim: sim.count(status=429) == 3,
            id="429-retry-after",
        ),
        pytest.param(
            lambda sim: sim.faults.set(rate_limit_storm=2, storm_retry_after=None),
            lambda sim: sim.count(status=429) == 2,
            id="429-no-header",
        ),
        pytest.param(
            lambda sim: sim.faults.set(server_errors=2, server_error_status=500),
            lambda sim: sim.count(status=500) == 2,
            id="500-general",
        ),
        pytest.param(lambda sim: sim.faults.set(truncated=2), lambda sim: sim.faults.truncated == 0, id="truncated"),
        pytest.param(
            lambda sim: sim.faults.set(timeouts=1, timeout_delay=LATE_ANSWER),
            lambda sim: sim.faults.timeouts == 0,
            id="timeout",
        ),
    ],
)
def test_transient_faults_are_retried_to_the_same_records(fault, fired, fast_http, canonical):
    data = dataset()
    with Simulator(data, retry_after="fractional") as sim:
        fault(sim)
        pulled = connect(sim, {**fast_http, "timeout": CLIENT_TIMEOUT}).pull()
        assert fired(sim)
    assert_same(pulled.frames, data, canonical)


def test_gives_up_with_the_platform_message_after_max_attempts(fast_http):
    with Simulator({"customers": customers()}) as sim:
        sim.fail_next(10, 503)
        with pytest.raises(UserError, match=r"gave up after 5 attempts.*OverCapacity"):
            connect(sim, fast_http).pull(["customers"])


def test_token_revoked_mid_pull_is_renewed_once_and_the_pull_completes(fast_http, canonical):
    data = dataset()
    with Simulator(data) as sim:
        sim.faults.set(expire_token_after=3)
        pulled = connect(sim, fast_http).pull()
        renewals = sim.count(path="/oauth/token")
        rejected = sim.count(status=401)
    assert_same(pulled.frames, data, canonical)
    assert rejected >= 3 and renewals == rejected + 1


def test_token_is_renewed_before_it_expires():
    now = [0.0]
    with Simulator({"customers": customers()}) as sim:
        auth = ClientCredentials(f"{sim.url}/oauth/token", CLIENT_ID, CLIENT_SECRET, clock=lambda: now[0])
        with httpx.Client(base_url=sim.url, auth=auth) as client:
            for _ in range(3):
                assert client.get(f"/{PROJECT_KEY}/customers").status_code == 200
            now[0] = 172_800 - 60  # a minute before the 48 h token expires
            assert client.get(f"/{PROJECT_KEY}/customers").status_code == 200
        assert sim.count(path="/oauth/token") == 2
        assert sim.count(status=401) == 0


def test_scopes_are_requested_and_a_missing_one_is_a_clear_error(fast_http):
    with Simulator({"customers": customers(), **orders_dataset()}, granted_scopes=("view_customers",)) as sim:
        connector = connect(sim, fast_http, scopes=[f"view_customers:{PROJECT_KEY}"])
        assert connector.pull(["customers"]).frames["customers"].height == 7
        with pytest.raises(UserError, match=r"insufficient_scope.*view_orders"):
            connector.pull(["orders"])
        with pytest.raises(UserError, match="invalid_scope"):
            connect(sim, fast_http, scopes=[f"view_orders:{PROJECT_KEY}"]).pull(["orders"])


def test_bad_credentials_are_a_clear_error_without_the_secret(fast_http, assert_no_secret):
    with Simulator({"customers": customers()}) as sim:
        env = {**sim.env, "CTP_CLIENT_SECRET": "wrong-secret-4242"}
        connector = Connector(sim.settings(**fast_http), env=env, progress=False)
        with pytest.raises(UserError, match=r"token endpoint refused the API client.*invalid_client") as error:
            connector.pull(["customers"])
    assert_no_secret("wrong-secret-4242", str(error.value))


def test_missing_credential_names_the_variable():
    with pytest.raises(UserError, match="CTP_CLIENT_SECRET"):
        Connector(
            {
                "base_url": "http://127.0.0.1:9",
                "auth_url": "http://127.0.0.1:9",
                "project": "p",
                "client_id_env": "CTP_CLIENT_ID",
                "client_secret_env": "CTP_CLIENT_SECRET",
            },
            env={"CTP_CLIENT_ID": "id"},
        )


def test_no_credential_or_token_reaches_a_log_line(fast_http, assert_no_secret, caplog):
    with Simulator(dataset()) as sim:
        sim.fail_next(2, 503)
        sim.faults.set(expire_token_after=4, truncated=1)
        connect(sim, fast_http).pull()
        tokens = list(sim.tokens)
    assert any("retrying" in r.getMessage() for r in caplog.records)
    for secret in (CLIENT_SECRET, *tokens):
        assert_no_secret(secret)


def test_interrupted_pull_resumes_without_losing_or_repeating_a_record(fast_http, canonical, tmp_path):
    data = dataset()
    with Simulator(data) as sim:
        # After the second page of orders, the platform fails for longer than the client retries.
        sim.faults.set(between_pages=(6, lambda s: s.fail_next(5, 503)))
        with pytest.raises(UserError, match="gave up"):
            connect(sim, fast_http, tmp_path).pull()
        staged = sorted(p.name for p in (tmp_path / "commercetools").iterdir())
        sim.faults.set(between_pages=None)
        sim.requests.clear()
        pulled = connect(sim, fast_http, tmp_path).pull()
        resumed = [r for r in sim.requests if r.path == f"/{PROJECT_KEY}/orders"]
    assert staged == ["order_lines", "orders", "returns", "shipments"]
    assert resumed[0].query["where"].startswith("id > ")  # continued, not restarted
    assert_same(pulled.frames, data, canonical)


def test_records_inserted_and_updated_while_paging_come_once(fast_http, canonical):
    data = {"customers": customers()}

    def change(sim: Simulator) -> None:
        sim.update("customers", "c000", "CustomerFirstNameSet", lambda r: r.update(firstName="Renamed"))
        sim.create("customers", {"id": "c999", "email": "late@example.com"})

    with Simulator(data) as sim:
        sim.faults.set(between_pages=(2, change))
        frame = connect(sim, fast_http).pull(["customers"]).frames["customers"]
    assert frame["customer_id"].is_duplicated().sum() == 0
    assert set(frame["customer_id"]) == {*data["customers"]["customer_id"], "c999"}


def test_incremental_pull_reads_messages_and_fetches_only_what_changed(fast_http):
    with Simulator(dataset()) as sim:
        since = datetime.now(UTC) - timedelta(seconds=1)
        changed = next(iter(sim.resources["orders"].values()))
        sim.update("orders", changed["id"], "OrderShipmentStateChanged", lambda r: r.update(shipmentState="Delivered"))
        sim.create("customers", {"id": "c777", "email": "new@example.com"})
        pulled = connect(sim, fast_http).pull(["orders", "order_lines", "customers", "inventory"], since=since)
        messages = [r for r in sim.requests if r.path.endswith("/messages")]
    assert pulled.frames["orders"]["external_id"].to_list() == [changed.get("orderNumber")]
    assert pulled.frames["orders"]["status"].item().endswith("/Delivered")
    assert pulled.frames["order_lines"]["order_id"].unique().to_list() == pulled.frames["orders"]["order_id"].to_list()
    assert pulled.frames["customers"]["customer_id"].to_list() == ["c777"]
    assert pulled.frames["inventory"].height == 0
    assert messages and all("createdAt >= " in r.query["where"] for r in messages)


@pytest.mark.parametrize(
    ("options", "since", "how"),
    [
        pytest.param({"messages_enabled": False}, timedelta(hours=1), "Messages are disabled", id="disabled"),
        pytest.param({"retention_days": 15}, timedelta(days=20), "Messages are kept 15 days", id="past-retention"),
    ],
)
def test_incremental_pull_reads_by_last_modified_when_messages_cannot_answer(options, since, how, fast_http):
    with Simulator({"customers": customers()}, **options) as sim:
        sim.update("customers", "c003", "CustomerFirstNameSet", lambda r: r.update(firstName="Renamed"))
        pulled = connect(sim, fast_http).pull(["customers"], since=datetime.now(UTC) - since)
        queries = [r.query["where"] for r in sim.requests if r.path.endswith("/customers")]
    assert pulled.frames["customers"]["customer_id"].to_list() == ["c003"]  # the others date from STAMP
    assert pulled.deltas["customers"].how.startswith(f"by lastModifiedAt: {how}")
    assert all(q.startswith("lastModifiedAt >= ") for q in queries)


def test_a_deleted_resource_named_by_a_message_is_gone_from_the_changes(fast_http):
    with Simulator(dataset()) as sim:
        since = datetime.now(UTC) - timedelta(seconds=1)
        sim.delete("customers", "c002")
        sim.update("customers", "c004", "CustomerFirstNameSet", lambda r: r.update(firstName="Renamed"))
        pulled = connect(sim, fast_http).pull(["customers"], since=since)
    assert pulled.frames["customers"]["customer_id"].to_list() == ["c004"]
    assert pulled.deltas["customers"].gone == {"c002"}
    assert pulled.records["customers"].to_list() == ["c004"]


def test_unknown_enum_values_reach_the_audit_raw(fast_http):
    with Simulator(orders_dataset()) as sim:
        sim.faults.set(unknown_enums=True)
        frame = connect(sim, fast_http).pull(["orders"]).frames["orders"]
    assert "Confirmed/Rerouted" in frame["status"].to_list()


def test_variants_without_sku_are_skipped_and_reported(fast_http, caplog):
    with Simulator({"products": products()}) as sim:
        sim.create(
            "product-projections",
            {
                "id": "p-nosku",
                "key": "GIFT",
                "name": {"en": "Gift card"},
                "masterVariant": {"id": 1},
                "variants": [{"id": 2, "sku": "GIFT-50"}],
            },
        )
        frame = connect(sim, fast_http).pull(["products"]).frames["products"]
    assert "GIFT-50" in frame["sku"].to_list() and frame["sku"].null_count() == 0
    assert any("GIFT has 1 variant(s) without a SKU" in r.getMessage() for r in caplog.records)


def test_an_order_without_order_number_is_keyed_by_its_id(fast_http):
    with Simulator({}) as sim:
        sim.create("orders", {"id": "9f0e-unnumbered", "orderState": "Open", "lineItems": []})
        frame = connect(sim, fast_http).pull(["orders"]).frames["orders"]
    assert frame.select("order_id", "external_id").row(0) == ("9f0e-unnumbered", None)


def test_retry_warnings_name_the_url_without_secrets(fast_http, caplog):
    caplog.set_level(logging.WARNING)
    with Simulator({"customers": customers()}) as sim:
        sim.fail_next(1, 502, html=True)
        connect(sim, fast_http).pull(["customers"])
    warning = next(r.getMessage() for r in caplog.records if "retrying" in r.getMessage())
    assert f"/{PROJECT_KEY}/customers" in warning and "502" in warning


def test_demo_retailer_storefront_round_trips(fast_http, canonical, tmp_path):
    generator = pytest.importorskip("driftwatch.demo.generator")
    generator.generate(tmp_path / "demo", seed=3)
    with Simulator.from_snapshot_dir(tmp_path / "demo") as sim:
        pulled = Connector(sim.settings(**fast_http), env=sim.env, progress=False).pull(list(sim.dataset))
        assert sim.dataset, "the demo writes a commercetools folder"
        for entity, frame in sim.dataset.items():
            assert canonical(pulled.frames[entity].select(frame.columns), entity).equals(canonical(frame, entity))


def test_custom_field_and_attribute_names_come_from_settings(fast_http):
    with Simulator({}) as sim:
        sim.create(
            "customers",
            {
                "id": "c-1",
                "email": "a@example.com",
                "custom": {"type": {"typeId": "type", "key": "crm"}, "fields": {"newsletter": True, "smsOk": False}},
            },
        )
        sim.create(
            "product-projections",
            {
                "id": "p-1",
                "key": "00412",
                "name": {"de": "Hemd", "en": "Shirt"},
                "masterVariant": {
                    "id": 1,
                    "sku": "00412-010-M",
                    "attributes": [
                        {"name": "farbe", "value": {"key": "010", "label": {"en": "White"}}},
                        {"name": "groesse", "value": {"en": "M", "de": "M"}},
                        {"name": "style", "value": "00412"},
                    ],
                    "prices": [
                        {
                            "id": "p-eur",
                            "value": {
                                "type": "centPrecision",
                                "currencyCode": "EUR",
                                "centAmount": 1990,
                                "fractionDigits": 2,
                            },
                        },
                        {
                            "id": "p-gbp",
                            "value": {
                                "type": "centPrecision",
                                "currencyCode": "GBP",
                                "centAmount": 1750,
                                "fractionDigits": 2,
                            },
                        },
                    ],
                },
            },
        )
        connector = connect(
            sim,
            fast_http,
            custom_fields={"email_consent": "newsletter", "sms_consent": "smsOk"},
            attributes={"colour": "farbe", "size": "groesse"},
            locale="de",
            currency="GBP",
        )
        pulled = connector.pull(["customers", "products"]).frames
    assert pulled["customers"].select("email_consent", "sms_consent").row(0) == ("true", "false")
    product = pulled["products"].row(0, named=True)
    assert (product["colour"], product["size"], product["style"], product["name"]) == ("010", "M", "00412", "Hemd")
    assert (product["price"], product["currency"], product["status"]) == ("17.5", "GBP", "active")


def test_a_pull_lands_in_the_store_with_nothing_quarantined(fast_http, canonical, tmp_path):
    from driftwatch.config import load_config
    from driftwatch.pull import pull_sources
    from driftwatch.store import Store

    data = dataset()
    with Simulator(data) as sim:
        table = "\n".join(f"{key} = {json.dumps(value)}" for key, value in sim.settings(**fast_http).items())
        (tmp_path / "driftwatch.toml").write_text(f"[sources.commercetools]\n{table}\n")
        store = Store(tmp_path / "driftwatch.duckdb")
        results = pull_sources(
            store, load_config(tmp_path / "driftwatch.toml"), ["commercetools"], env=sim.env, progress=False
        )
    assert [r.error for r in results] == [None] * len(Connector.entities)
    assert all(r.loaded and r.quarantined == 0 for r in results)
    for entity, frame in data.items():
        stored = store.latest("commercetools", entity)
        assert canonical(stored.select(frame.columns), entity).equals(canonical(frame, entity)), entity


def test_incremental_pull_without_project_scope_trusts_the_configured_retention(fast_http):
    with Simulator({"customers": customers()}, granted_scopes=("view_customers", "view_messages")) as sim:
        since = datetime.now(UTC)
        sim.create("customers", {"id": "c888", "email": "later@example.com"})
        pulled = connect(sim, fast_http).pull(["customers"], since=since)
        refused = sim.count(status=403, path=f"/{PROJECT_KEY}")
    assert pulled.frames["customers"]["customer_id"].to_list() == ["c888"]
    assert refused == 1


def test_incremental_pull_needs_the_messages_scope(fast_http):
    scopes = ("view_customers", "view_project_settings")
    with (
        Simulator({"customers": customers()}, granted_scopes=scopes) as sim,
        pytest.raises(UserError, match=r"insufficient_scope.*view_messages"),
    ):
        connect(sim, fast_http).pull(["customers"], since=datetime.now(UTC))


def test_when_commercetools_owns_orders_its_deliveries_feed_fulfilment_and_tracking_checks(fast_http, tmp_path):
    """Pulled through the APIs, the storefront's parcels are the shipments fulfilment_events and tracking_sync
    hold the marketing platform and the marketplace to."""
    from driftwatch.config import parse_config
    from driftwatch.engine import audit
    from driftwatch.normalize import coerce
    from driftwatch.pull import pull_sources
    from driftwatch.simulators.klaviyo import KlaviyoSimulator
    from driftwatch.simulators.mirakl import MiraklSimulator
    from driftwatch.store import Store

    def typed(frame: pl.DataFrame, entity: str) -> pl.DataFrame:
        return coerce(frame, entity).good

    now = datetime.now(UTC).replace(microsecond=0)
    days_ago = [(now - timedelta(days=d)).isoformat() for d in range(4)]
    storefront = {
        "orders": pl.DataFrame(
            {
                "order_id": ["W1", "W2", "M1"],
                "external_id": ["W1", "W2", "MRK-1"],
                "channel": ["web", "web", "mirakl"],
                "email": ["a@example.com", "b@example.com", None],
                "status": ["Confirmed/Shipped", "Confirmed/Shipped", "Confirmed/Shipped"],
                "placed_at": [days_ago[3]] * 3,
                "updated_at": [days_ago[2]] * 3,
                "total": ["10.00", "20.00", "30.00"],
                "currency": ["EUR"] * 3,
            }
        ),
        "order_lines": pl.DataFrame(
            {"order_id": ["W1", "W2", "M1"], "line_no": ["1"] * 3, "sku": ["S1"] * 3, "qty_ordered": ["1"] * 3,
             "qty_shipped": ["1"] * 3, "unit_price": ["10.00", "20.00", "30.00"]}
        ),
        "shipments": pl.DataFrame(
            {"shipment_id": ["p-1", "p-2", "p-3"], "order_id": ["W1", "W2", "M1"], "carrier": ["DHL", "DHL", "UPS"],
             "tracking_number": ["T1", "T2", "T3"], "shipped_at": [days_ago[2]] * 3}
        ),
    }  # fmt: skip
    # Klaviyo heard of W1's dispatch, not W2's; Mirakl has MRK-1 but no tracking for it.
    events = pl.DataFrame(
        {
            "event_id": ["e1", "e2", "e3"],
            "metric": ["order_placed", "order_fulfilled", "order_placed"],
            "order_id": ["W1", "W1", "W2"],
            "email": ["a@example.com", "a@example.com", "b@example.com"],
            "occurred_at": [days_ago[3], days_ago[2], days_ago[3]],
            "value": ["10.00", None, "20.00"],
        }
    )
    mirakl_orders = pl.DataFrame(
        {"order_id": ["M1"], "external_id": ["MRK-1"], "channel": ["mirakl"], "status": ["SHIPPING"],
         "placed_at": [days_ago[3]], "total": ["30.00"], "currency": ["EUR"]}
    )  # fmt: skip
    mirakl_lines = storefront["order_lines"].filter(pl.col("order_id") == "M1").with_columns(qty_shipped=pl.lit("0"))
    with (
        Simulator(storefront) as ct,
        KlaviyoSimulator({"events": typed(events, "events")}) as klaviyo,
        MiraklSimulator(
            {"orders": typed(mirakl_orders, "orders"), "order_lines": typed(mirakl_lines, "order_lines")},
            rate_limits={},
        ) as mirakl,
    ):
        cfg = parse_config(
            {
                "sources": {"commercetools": ct.settings(**fast_http), "klaviyo": klaviyo.settings(**fast_http),
                            "mirakl": mirakl.settings(**fast_http)},
                "feeds": [
                    {"source": "commercetools", "target": "klaviyo", "entities": ["events"]},
                    {"source": "commercetools", "target": "mirakl", "entities": ["orders", "shipments"]},
                ],
            }
        )  # fmt: skip
        env = {**ct.env, **klaviyo.env, **mirakl.env}
        with Store(tmp_path / "s.duckdb") as store:
            pulled = pull_sources(store, cfg, env=env, progress=False)
            assert not [r.error for r in pulled if r.error]
            assert {r.entity for r in pulled if r.source == "commercetools"} >= {"orders", "shipments"}
            found = audit(store, cfg, checks=["fulfilment_events", "tracking_sync"]).findings
    assert set(found.select("check_id", "target", "key", "field").rows()) == {
        ("fulfilment_events", "klaviyo", "W2", "order_fulfilled"),
        ("tracking_sync", "mirakl", "M1", "tracking_number"),
    }
