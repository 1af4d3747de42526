"""The Mirakl connector against its loopback simulator: round trips, faults, resumption, incremental pulls."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from driftwatch.connectors import get
from driftwatch.connectors.mirakl.client import MiraklClient
from driftwatch.connectors.mirakl.connector import Connector
from driftwatch.connectors.mirakl.mapping import COLUMNS
from driftwatch.entities import ENTITIES
from driftwatch.errors import UserError
from driftwatch.normalize import coerce
from driftwatch.simulators import SIMULATORS
from driftwatch.simulators.mirakl import MiraklSimulator as Simulator
from tests.slow_answers import CLIENT_TIMEOUT, LATE_ANSWER

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "max_attempts": 8}
NO_CEILINGS: dict = {}  # simulator rate limits off, for tests that are not about them
STATES = ["SHIPPED", "WAITING_ACCEPTANCE", "SHIPPING", "RECEIVED", "CLOSED", "CANCELED", "TO_COLLECT"]
SHIPPED_STATES = {"SHIPPED", "RECEIVED", "CLOSED", "TO_COLLECT"}


def _typed(entity: str, rows: list[dict]) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema=dict.fromkeys(COLUMNS[entity], pl.String))
    coerced = coerce(frame, entity)
    assert coerced.bad.height == 0, coerced.bad
    return coerced.good


def make_dataset(*, offers: int = 7, orders: int = 6, payouts: int = 2) -> dict[str, pl.DataFrame]:
    """A small shop: offers (one inactive for stock, one discontinued), orders with and without the ERP
    number, shipments with tracking, and payout documents in two currencies."""
    products, inventory = [], []
    for i in range(offers):
        sku = f"{i:05d}-010-M"
        products.append(
            {
                "sku": sku,
                "style": f"{i:05d}",
                "colour": "010",
                "size": "M",
                "name": f"Shirt {i}",
                "price": f"{10 + (i * 7) % 23}.{i % 10}0",
                "currency": "EUR",
                "status": "discontinued" if i % 5 == 4 else "active",
            }
        )
        inventory.append({"sku": sku, "location": "*", "available": str(0 if i % 3 == 2 else i * 2 + 1)})
    order_rows, lines, shipments, payout_lines = [], [], [], []
    for i in range(orders):
        mirakl_id = f"MRK-{i:06d}-A"
        order_id = f"SO{i:06d}" if i % 3 else mirakl_id  # some orders are not in the ERP yet
        state = STATES[i % len(STATES)]
        placed = T0 + timedelta(hours=i)
        order_rows.append(
            {
                "order_id": order_id,
                "external_id": mirakl_id,
                "channel": "mirakl",
                "customer_id": f"C{i:04d}",
                "status": state,
                "placed_at": placed.isoformat(),
                "updated_at": (placed + timedelta(days=1, minutes=i)).isoformat(),
                "total": f"{20 + i}.50",
                "currency": "EUR" if i % 2 else "GBP",
            }
        )
        for line_no in (1, 2):
            cancelled = 1 if state == "CANCELED" else 0
            lines.append(
                {
                    "order_id": order_id,
                    "line_no": str(line_no),
                    "sku": products[line_no % offers]["sku"],
                    "qty_ordered": "2",
                    "qty_shipped": str(2 - cancelled) if state in SHIPPED_STATES else "0",
                    "qty_cancelled": str(cancelled),
                    "qty_returned": "1" if state == "CLOSED" else "0",
                    "unit_price": "10.25",
                }
            )
        if state in SHIPPED_STATES:
            shipments.append(
                {
                    "shipment_id": mirakl_id,
                    "order_id": order_id,
                    "carrier": "DHL" if i % 2 else "UPS",
                    "tracking_number": f"TRK{i:08d}",
                    "shipped_at": (placed + timedelta(hours=20)).isoformat(),
                }
            )
    for p in range(payouts):
        payout_id = str(7000 + p)
        currency = ["EUR", "GBP"][p % 2]
        when = T0 + timedelta(days=10 * (p + 1))
        amounts = [
            ("order_amount", "41.0000"),
            ("shipping", "4.9900"),
            ("commission", "-6.1500"),
            ("refund", "-10.2500"),
            ("refund_commission", "1.5375"),
            ("fee", "-3.0000"),
        ]
        for n, (line_type, amount) in enumerate(amounts):
            payout_lines.append(
                {
                    "line_id": f"TL-{p}-{n}",
                    "payout_id": payout_id,
                    "external_id": f"MRK-{n:06d}-A" if line_type != "fee" else None,
                    "line_type": line_type,
                    "amount": amount,
                    "currency": currency,
                    "transaction_date": (when + timedelta(minutes=n)).isoformat(),
                }
            )
        total = sum(Decimal(a) for _, a in amounts)
        payout_lines.append(
            {
                "line_id": f"TL-{p}-PAY",
                "payout_id": payout_id,
                "external_id": None,
                "line_type": "payment",
                "amount": str(total),
                "currency": currency,
                "transaction_date": (when + timedelta(hours=2)).isoformat(),
            }
        )
    return {
        "products": _typed("products", products),
        "inventory": _typed("inventory", inventory),
        "orders": _typed("orders", order_rows),
        "order_lines": _typed("order_lines", lines),
        "shipments": _typed("shipments", shipments),
        "payout_lines": _typed("payout_lines", payout_lines),
    }


def assert_same(pulled: dict[str, pl.DataFrame], dataset: dict[str, pl.DataFrame]) -> None:
    """Each pulled entity, once typed by the shared normaliser, holds exactly the dataset's rows."""
    for entity, frame in pulled.items():
        good = coerce(frame, entity).good
        expected = dataset[entity].select(good.columns)
        key = list(ENTITIES[entity].key)
        assert good.sort(key).equals(expected.sort(key)), f"{entity}:\n{good.sort(key)}\n!=\n{expected.sort(key)}"


def connect(sim: Simulator, tmp_path: Path | None = None, **settings) -> Connector:
    return Connector(sim.settings(**{**FAST, **settings}), env=sim.env, checkpoint_dir=tmp_path)


def test_registry_names_the_mirakl_connector_and_simulator():
    assert get("mirakl") is Connector
    assert SIMULATORS["mirakl"] is Simulator


def test_round_trip_gives_back_every_record_with_the_raw_key_header(tmp_path):
    dataset = make_dataset()
    with Simulator(dataset) as sim:
        pulled = connect(sim, tmp_path).pull()
        assert_same(pulled.frames, dataset)
        assert {r.headers["authorization"] for r in sim.requests} == {sim.api_key}  # no "Bearer "
        assert sim.count(status=429) == 0
        assert sim.count(path="/api/invoices") == 0  # every TL02 line carried its document number
    assert set(pulled.frames) == set(Connector.entities)
    assert not any(tmp_path.rglob("*.parquet")), "a completed pull clears its staging"


def test_pages_cover_more_than_one_page_of_every_listing():
    dataset = make_dataset(offers=23, orders=17, payouts=3)
    with Simulator(dataset, rate_limits=NO_CEILINGS) as sim:
        pulled = connect(sim, offset_page_size=5, seek_page_size=4).pull()
        assert sim.count(path="/api/offers") >= 5
        assert sim.count(path="/api/sellerpayment/transactions_logs") >= 6
    assert_same(pulled.frames, dataset)


@pytest.mark.parametrize(
    ("faults", "retry_after"),
    [
        ({"rate_limit_storm": 3, "storm_retry_after": None}, "none"),
        ({"rate_limit_storm": 2, "storm_retry_after": 0.02}, "fractional"),
        ({"server_errors": 3, "server_error_status": 503}, "none"),
        ({"server_errors": 2, "server_error_status": 502}, "none"),
        ({"timeouts": 1, "timeout_delay": LATE_ANSWER}, "none"),
        ({"truncated": 2}, "none"),
        ({"unknown_enums": True}, "none"),
    ],
    ids=["429-no-retry-after", "429-retry-after", "503", "502", "timeout", "truncated-json", "unknown-enums"],
)
def test_every_fault_still_pulls_exactly_the_records_held(faults, retry_after):
    dataset = make_dataset()
    with Simulator(dataset, rate_limits=NO_CEILINGS, retry_after=retry_after) as sim:
        sim.faults.set(**faults)
        pulled = connect(sim, timeout=CLIENT_TIMEOUT, seek_page_size=3).pull()
    assert_same(pulled.frames, dataset)


def test_a_new_transaction_type_is_kept_raw_and_quarantined_by_name():
    with Simulator(make_dataset(), rate_limits=NO_CEILINGS) as sim:
        sim.faults.set(unknown_enums=True)
        frame = connect(sim).pull(["payout_lines"]).frames["payout_lines"]
    bad = coerce(frame, "payout_lines").bad
    assert bad["column"].to_list() == ["line_type"]
    assert bad["value"].to_list() == ["NEW_VALUE_NOT_IN_THE_DOCUMENTATION"]
    assert bad["reason"][0].startswith("not an allowed value")


def test_an_undocumented_order_state_is_kept_raw():
    dataset = make_dataset()
    dataset["orders"] = dataset["orders"].with_columns(
        pl.when(pl.col("status") == "SHIPPING").then(pl.lit("WAITING_SCORING")).otherwise("status").alias("status")
    )
    with Simulator(dataset) as sim:
        pulled = connect(sim).pull(["orders"])
    assert "WAITING_SCORING" in pulled.frames["orders"]["status"].to_list()
    assert_same(pulled.frames, dataset)


def test_the_client_keeps_under_the_call_ceilings_the_simulator_enforces():
    # OR11 once per listing window, TL02 per call: the simulator enforces them as the documentation says.
    window = 0.4
    ceilings = {"OR11": [(1, window)], "TL02": [(3, window)]}
    with Simulator(make_dataset(), rate_limits=ceilings) as sim:
        connector = connect(sim, seek_page_size=2, call_limits={op: list(w) for op, w in ceilings.items()})
        connector.pull(["orders", "payout_lines"])
        connector.pull(["orders"])
        assert sim.count(status=429) == 0
        assert sim.count(path="/api/sellerpayment/transactions_logs") == 7


def test_a_client_that_ignores_the_ceilings_waits_out_the_429s():
    dataset = make_dataset()
    with Simulator(dataset, rate_limits={"OR11": [(1, 1.0)]}, retry_after="fractional") as sim:
        connector = connect(sim, call_limits={"OR11": [[100, 1.0]]})
        # Three listings in quick succession: at least two of them fall in one of Mirakl's windows.
        pulls = [connector.pull(["orders"]) for _ in range(3)]
        assert sim.count(status=429) >= 1
    for pulled in pulls:
        assert_same(pulled.frames, dataset)


def test_offers_re_sorted_while_paging_are_neither_lost_nor_duplicated():
    dataset = make_dataset(offers=12)

    def cheapen_the_dearest(sim: Simulator) -> None:
        products = sim.dataset["products"]
        dearest = products.sort("price")["sku"][-1]
        sim.dataset["products"] = products.with_columns(
            pl.when(pl.col("sku") == dearest).then(Decimal("0.01")).otherwise("price").alias("price")
        )

    with Simulator(dataset, rate_limits=NO_CEILINGS) as sim:
        sim.faults.set(between_pages=(1, cheapen_the_dearest))
        pulled = connect(sim, offset_page_size=5).pull(["products", "inventory"])
        starts = [r for r in sim.requests if r.path == "/api/offers" and r.query["offset"] == "0"]
        assert len(starts) == 2, "the shift was noticed and the listing read again"
        assert_same(pulled.frames, sim.dataset)
    assert pulled.frames["products"].height == 12


def test_an_order_inserted_while_paging_is_pulled_once():
    dataset = make_dataset(orders=11)

    def insert_an_early_order(sim: Simulator) -> None:
        orders = sim.dataset["orders"]
        new = orders.head(1).with_columns(
            pl.lit("MRK-999999-A").alias("order_id"),
            pl.lit("MRK-999999-A").alias("external_id"),
            pl.lit(T0 - timedelta(days=1)).alias("placed_at"),
        )
        sim.dataset["orders"] = pl.concat([orders, new])

    with Simulator(dataset, rate_limits=NO_CEILINGS) as sim:
        sim.faults.set(between_pages=(1, insert_an_early_order))
        pulled = connect(sim, offset_page_size=4, call_limits={"OR11": [[5, 1.0]]}).pull(["orders"])
        assert_same(pulled.frames, sim.dataset)
    assert "MRK-999999-A" in pulled.frames["orders"]["external_id"].to_list()


def test_a_transaction_added_while_paging_is_pulled():
    def add_a_line(sim: Simulator) -> None:
        lines = sim.dataset["payout_lines"]
        late = lines.head(1).with_columns(
            pl.lit("TL-LATE").alias("line_id"), pl.lit(T0 + timedelta(days=90)).alias("transaction_date")
        )
        sim.dataset["payout_lines"] = pl.concat([lines, late])

    with Simulator(make_dataset(), rate_limits=NO_CEILINGS) as sim:
        sim.faults.set(between_pages=(1, add_a_line))
        pulled = connect(sim, seek_page_size=3).pull(["payout_lines"])
        assert_same(pulled.frames, sim.dataset)
    assert "TL-LATE" in pulled.frames["payout_lines"]["line_id"].to_list()


@pytest.mark.parametrize(
    ("entity", "method", "path"),
    [("orders", "offset_page", "/api/orders"), ("payout_lines", "seek_page", "/api/sellerpayment/transactions_logs")],
)
def test_an_interrupted_pull_resumes_from_its_last_page(tmp_path, monkeypatch, entity, method, path):
    dataset = make_dataset(orders=14, payouts=3)
    with Simulator(dataset, rate_limits=NO_CEILINGS) as sim:
        real, calls = getattr(MiraklClient, method), []

        def dies_on_the_fourth_page(*args, **kwargs):
            calls.append(1)
            if len(calls) == 4:
                raise KeyboardInterrupt("killed")
            return real(*args, **kwargs)

        with monkeypatch.context() as patched:
            patched.setattr(MiraklClient, method, dies_on_the_fourth_page)
            with pytest.raises(KeyboardInterrupt):
                connect(sim, tmp_path, offset_page_size=3, seek_page_size=3).pull([entity])
        assert len(list((tmp_path / "mirakl" / entity).glob("page-*.parquet"))) == 3
        before = len(sim.requests)

        pulled = connect(sim, tmp_path, offset_page_size=3, seek_page_size=3).pull([entity])
        resumed = [r for r in sim.requests[before:] if r.path == path]
        assert "page_token" in resumed[0].query or resumed[0].query["offset"] != "0", "resumed, not restarted"
    frame = pulled.frames[entity]
    assert frame.select(ENTITIES[entity].key).is_duplicated().sum() == 0
    assert_same(pulled.frames, dataset)
    assert not (tmp_path / "mirakl" / entity).exists()


def test_a_resumed_seek_token_that_expired_reads_the_lines_again(tmp_path, monkeypatch):
    dataset = make_dataset(payouts=3)
    with Simulator(dataset, rate_limits=NO_CEILINGS) as sim:
        real = MiraklClient.seek_page

        def dies_on_the_third_page(self, path, params, token, **kwargs):
            if sim.count(path=path) == 2:
                raise KeyboardInterrupt("killed")
            return real(self, path, params, token, **kwargs)

        with monkeypatch.context() as patched:
            patched.setattr(MiraklClient, "seek_page", dies_on_the_third_page)
            with pytest.raises(KeyboardInterrupt):
                connect(sim, tmp_path, seek_page_size=4).pull(["payout_lines"])
        state = tmp_path / "mirakl" / "payout_lines" / "state.json"
        saved = json.loads(state.read_text())
        state.write_text(json.dumps({**saved, "cursor": {"page_token": "expired"}}))

        pulled = connect(sim, tmp_path, seek_page_size=4).pull(["payout_lines"])
        assert sim.count(path="/api/sellerpayment/transactions_logs", status=400) == 1
    assert_same(pulled.frames, dataset)


_PULL_IN_A_CHILD = """
import json, sys
from pathlib import Path
from driftwatch.connectors.mirakl.connector import Connector
settings, env, checkpoints = json.loads(sys.argv[1]), json.loads(sys.argv[2]), Path(sys.argv[3])
Connector(settings, env=env, checkpoint_dir=checkpoints).pull(["orders"])
"""


def test_a_killed_pull_resumes_without_losing_or_repeating_an_order(tmp_path):
    dataset = make_dataset(orders=20)
    with Simulator(dataset, rate_limits=NO_CEILINGS) as sim:
        settings = sim.settings(**FAST, offset_page_size=3)
        child = subprocess.Popen(
            [sys.executable, "-c", _PULL_IN_A_CHILD, json.dumps(settings), json.dumps(sim.env), str(tmp_path)]
        )
        # The fifth page is never answered: the process dies while it waits for it.
        sim.faults.set(between_pages=(5, lambda _: child.kill()))
        assert child.wait(timeout=60) == -signal.SIGKILL
        staged = list((tmp_path / "mirakl" / "orders").glob("page-*.parquet"))
        assert len(staged) == 4
        before = len(sim.requests)
        pulled = Connector(settings, env=sim.env, checkpoint_dir=tmp_path).pull(["orders"])
        # Pages of 3 after the first re-read the previous page's last order: 3 + 2 + 2 + 2 orders were staged,
        # and the resumed listing re-reads the ninth to check nothing moved.
        assert sim.requests[before].query["offset"] == "8", "resumed after the fourth page"
    assert pulled.frames["orders"]["order_id"].is_duplicated().sum() == 0
    assert_same(pulled.frames, dataset)


def test_incremental_pulls_overlap_and_keep_each_order_once():
    dataset = make_dataset(orders=12)
    updated = sorted(dataset["orders"]["updated_at"].to_list())
    since = updated[6] + timedelta(minutes=2)  # Mirakl reaches back a few minutes before this
    with Simulator(dataset, rate_limits={"OR11": [(1, 0.2)]}) as sim:
        connector = connect(sim, call_limits={"OR11": [[1, 0.2]]})
        full = connector.pull(["orders", "order_lines"])
        recent = connector.pull(["orders", "order_lines", "payout_lines"], since=since)
        sent = [r.query for r in sim.requests if r.path == "/api/orders"][-1]
        tl02 = [r.query for r in sim.requests if r.path == "/api/sellerpayment/transactions_logs"][-1]
    assert sent["start_update_date"] == since.isoformat().replace("+00:00", "Z")
    assert tl02["last_updated_from"] == sent["start_update_date"]
    orders = recent.frames["orders"]
    assert orders["external_id"].is_duplicated().sum() == 0
    expected = {
        o["external_id"] for o in dataset["orders"].to_dicts() if o["updated_at"] >= since - timedelta(minutes=5)
    }
    assert set(orders["external_id"]) == expected
    assert len(expected) == len(updated) - 6, "the overlap brought back the order updated just before `since`"
    assert set(orders["order_id"]) <= set(full.frames["orders"]["order_id"])
    assert set(recent.frames["order_lines"]["order_id"]) == set(orders["order_id"])
    assert (
        recent.frames["payout_lines"].height
        == dataset["payout_lines"].filter(pl.col("transaction_date") >= since).height
    )


def test_document_numbers_come_from_iv01_when_lines_carry_only_the_document_id():
    dataset = make_dataset(payouts=3)
    dataset["payout_lines"] = dataset["payout_lines"].with_columns(
        pl.when(pl.col("payout_id") == "7001").then(pl.lit("DRAFT-7001")).otherwise("payout_id").alias("payout_id")
    )
    with Simulator(dataset) as sim:
        sim.unnumbered_documents = True
        pulled = connect(sim, offset_page_size=2).pull(["payout_lines"])
        assert sim.count(path="/api/invoices") >= 2
    assert_same(pulled.frames, dataset)


def test_carriers_given_by_name_are_coded_through_sh21():
    dataset = make_dataset()
    with Simulator(dataset) as sim:
        sim.carriers_by_name = True
        pulled = connect(sim).pull(["shipments"])
        assert sim.count(path="/api/shipping/carriers") == 1
    assert_same(pulled.frames, dataset)


def test_a_refused_key_is_a_clear_error_that_never_shows_the_key(assert_no_secret):
    with Simulator(make_dataset()) as sim:
        wrong = "shop-key-that-was-revoked-1234"
        connector = Connector(sim.settings(**FAST), env={"MIRAKL_API_KEY": wrong})
        with pytest.raises(UserError) as error:
            connector.pull(["products"])
    message = str(error.value)
    assert "MIRAKL_API_KEY" in message and "401" in message
    assert_no_secret(wrong, message)


def test_a_missing_key_variable_is_named():
    with pytest.raises(UserError, match="MIRAKL_API_KEY"):
        Connector({"base_url": "http://127.0.0.1:9", "api_key_env": "MIRAKL_API_KEY"}, env={})


def test_no_log_line_or_error_carries_the_key(caplog, assert_no_secret):
    with Simulator(make_dataset(), rate_limits=NO_CEILINGS) as sim:
        sim.faults.set(rate_limit_storm=1, storm_retry_after=None, server_errors=1, truncated=1)
        connector = connect(sim, max_attempts=4)
        connector.pull()
        sim.faults.set(server_errors=10)
        with pytest.raises(UserError) as error:
            connector.pull(["products"])
        key = sim.api_key
    assert "gave up" in str(error.value)
    assert caplog.records, "retries were logged"
    assert_no_secret(key, str(error.value))


@pytest.mark.parametrize(
    ("path", "settings", "message"),
    [
        ("/v2", {}, "404: No resource found for GET /v2/api/offers"),
        ("", {"offset_page_size": 500}, "400: max must be between 1 and 100"),
    ],
)
def test_mirakl_error_json_reaches_the_user(path, settings, message):
    with Simulator(make_dataset()) as sim:
        connector = Connector(sim.settings(**FAST, **settings, base_url=sim.url + path), env=sim.env)
        with pytest.raises(UserError, match=message):
            connector.pull(["products"])


def test_the_demo_retailer_round_trips_except_what_the_api_does_not_carry(tmp_path):
    from driftwatch.demo.generator import generate

    generate(tmp_path, seed=7, scale=1)
    with Simulator.from_snapshot_dir(tmp_path) as sim:
        pulled = connect(sim).pull()
        dataset = sim.dataset
    # OF21 carries no update date, and OR11 no shipment id: Mirakl's shipment is its order's tracking.
    not_carried = {"products": {"updated_at"}, "inventory": {"updated_at"}, "shipments": {"shipment_id"}}
    for entity, frame in pulled.frames.items():
        good = coerce(frame, entity).good
        columns = [c for c in dataset[entity].columns if c not in not_carried.get(entity, ())]
        assert set(columns) <= set(good.columns), entity
        assert good.select(columns).sort(columns).equals(dataset[entity].select(columns).sort(columns)), entity
    shipments = pulled.frames["shipments"].join(pulled.frames["orders"], on="order_id")
    assert (shipments["shipment_id"] == shipments["external_id"]).all()
    assert "WAITING_REFUND" in pulled.frames["orders"]["status"].to_list()  # deprecated, still kept raw


def test_a_pull_lands_in_the_store_with_nothing_quarantined(tmp_path):
    from driftwatch.config import load_config
    from driftwatch.pull import pull_sources
    from driftwatch.store import Store

    dataset = make_dataset()
    with Simulator(dataset) as sim:
        settings = sim.settings(**FAST)
        table = "\n".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())
        (tmp_path / "driftwatch.toml").write_text(f"[sources.mirakl]\n{table}\n")
        store = Store(tmp_path / "driftwatch.duckdb")
        results = pull_sources(store, load_config(tmp_path / "driftwatch.toml"), ["mirakl"], env=sim.env)
    assert [(r.error, r.quarantined, r.loaded) for r in results] == [(None, 0, True)] * len(Connector.entities)
    for entity, frame in dataset.items():
        stored = store.latest("mirakl", entity)
        assert stored.select(frame.columns).sort(frame.columns).equals(frame.sort(frame.columns)), entity


def test_offers_changed_since_come_from_the_differential_export_and_deleted_ones_are_named():
    dataset = make_dataset()
    with Simulator(dataset, rate_limits=NO_CEILINGS) as sim:
        connector = connect(sim, call_limits={"OF52": [[100, 1]], "OF53": [[100, 1]]})
        since = datetime.now(UTC)
        data = sim.dataset
        data["products"] = (
            data["products"]
            .with_columns(price=pl.when(pl.col("sku") == "00002-010-M").then(Decimal("77")).otherwise("price"))
            .filter(pl.col("sku") != "00004-010-M")
        )
        pulled = connector.pull(["products", "inventory"], since=since)
        exports = [r for r in sim.requests if r.path.startswith("/api/offers/export/async")]
        listed = [r for r in sim.requests if r.path == "/api/offers"]
    assert [r.method for r in exports][:2] == ["POST", "GET"] and "/file/" in exports[-1].path
    assert not listed  # no new offer: OF21 is not read at all
    assert pulled.frames["products"]["sku"].to_list() == ["00002-010-M"]
    assert [Decimal(p) for p in pulled.frames["products"]["price"]] == [Decimal("77")]
    assert pulled.frames["products"]["name"].to_list() == [None]  # the export carries no title
    assert pulled.deltas["products"].gone == {"00004-010-M"} and pulled.deltas["products"].carried == {"name"}


def test_the_differential_export_refuses_inactive_offers_and_a_failed_export_is_a_clear_error():
    with Simulator(make_dataset(), rate_limits=NO_CEILINGS) as sim:
        body = {"last_request_date": "2026-11-01T00:00:00Z", "include_inactive_offers": True}
        with (
            MiraklClient(sim.url, sim.api_key, key_variable="K", limiters={}) as client,
            pytest.raises(UserError, match="cannot be used in differential mode"),
        ):
            client.post("/api/offers/export/async", body)
        sim.export_failure = "Internal error"
        connector = connect(sim, call_limits={"OF52": [[100, 1]], "OF53": [[100, 1]]})
        with pytest.raises(UserError, match=r"offer export \(OF52 \w+\) failed: Internal error"):
            connector.pull(["products"], since=datetime.now(UTC))


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ({"active": "true", "quantity": "3"}, "active"),
        ({"active": "false", "quantity": "0"}, "active"),  # inactive for want of stock only
        ({"active": "false", "quantity": "1", "min-order-quantity": "2"}, "active"),
        ({"active": "false", "quantity": "5"}, "discontinued"),  # inactive for another reason
        ({"active": "false", "quantity": "0", "available-end-date": "2026-01-01T00:00:00Z"}, "discontinued"),
        ({"active": "false", "quantity": "0", "available-start-date": "2027-01-01T00:00:00Z"}, "discontinued"),
    ],
)
def test_an_export_line_is_listed_as_the_same_offer_from_of21_would_be(line, status):
    from driftwatch.connectors.mirakl.mapping import export_line_to_product

    at = datetime(2026, 12, 1, tzinfo=UTC)
    assert export_line_to_product({"shop-sku": "S1", **line}, at)["status"] == status
