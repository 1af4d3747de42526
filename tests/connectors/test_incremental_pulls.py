"""The proof, platform by platform: nights of incremental pulls, each merged into the records the last pull
kept, store exactly what a full pull of the same platform state stores; records changed while a pull runs
are caught (that night or the next); deletions the platform does not list are caught by the scheduled full
pull. Every pull goes through `driftwatch.pull.pull_sources` into a real store, against the simulators."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest
from nights import Nights, assert_same_stored, full_pull_of

from driftwatch.connectors.klaviyo.connector import update_spans
from driftwatch.normalize import coerce
from driftwatch.simulators.klaviyo import KlaviyoSimulator, _parse_filter
from driftwatch.store import Store

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


def typed(rows: list[dict], entity: str) -> pl.DataFrame:
    return coerce(pl.DataFrame(rows), entity).rows


def changed(frame: pl.DataFrame, key: str, ids: list[str], stamp: str | None = "updated_at", **values) -> pl.DataFrame:
    """`frame` with the rows of `ids` changed as the platform changes them: new values, updated now."""
    match = pl.col(key).is_in(ids)
    now = {stamp: datetime.now(UTC)} if stamp else {}
    return frame.with_columns(
        pl.when(match).then(pl.lit(value, frame.schema[column])).otherwise(pl.col(column)).alias(column)
        for column, value in {**values, **now}.items()
    )


def grown(frame: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """`frame` with `rows` created on the platform (columns they lack are empty)."""
    return pl.concat([frame, rows], how="diagonal_relaxed")


def deleted(frame: pl.DataFrame, key: str, ids: list[str]) -> pl.DataFrame:
    return frame.filter(~pl.col(key).is_in(ids))


def differences(merged: pl.DataFrame, full: pl.DataFrame, key: str) -> tuple[list, list]:
    """The keys of the rows only the merged snapshot has, and of those only the full pull has."""
    only = merged.join(full, on=merged.columns, how="anti", nulls_equal=True)
    missing = full.join(merged, on=merged.columns, how="anti", nulls_equal=True)
    return sorted(only[key].to_list()), sorted(missing[key].to_list())


# --- Klaviyo --------------------------------------------------------------------------------------------------


def klaviyo_dataset() -> dict[str, pl.DataFrame]:
    customers = [
        {
            "customer_id": f"P{i:03d}",
            "erp_customer_id": f"C{i:05d}",
            "email": "nobody-at-example" if i == 0 else f"pat{i}@example.com",  # quarantined from the first night
            "email_consent": i % 2 == 0,
            "sms_consent": i % 3 == 0,
            "first_name": "Pat",
            "last_name": f"Lee {i}",
            "country": "GB",
            "lifetime_value": Decimal("10.50") + i,
            "updated_at": T0 + timedelta(minutes=i),
        }
        for i in range(60)
    ]
    products = [
        {
            "sku": f"{i:05d}-M",
            "name": f"Shirt {i}",
            "price": Decimal("19.90"),
            "currency": "GBP",
            "status": "active",
            "updated_at": T0,
        }
        for i in range(12)
    ]
    inventory = [{"sku": f"{i:05d}-M", "location": "*", "available": i % 5, "updated_at": T0} for i in range(12)]
    events = [
        {"event_id": f"E{i:04d}", "metric": "order_placed", "order_id": f"SO{i:05d}",
         "email": f"pat{i % 60}@example.com", "occurred_at": T0 + timedelta(hours=i), "value": Decimal("59.95")}
        for i in range(30)
    ]  # fmt: skip
    return {
        "customers": typed(customers, "customers"),
        "products": typed(products, "products"),
        "inventory": typed(inventory, "inventory"),
        "events": typed(events, "events"),
    }


def new_profiles(ids: list[str]) -> pl.DataFrame:
    now = datetime.now(UTC)
    rows = [{"customer_id": i, "email": f"{i.lower()}@example.com", "email_consent": True, "updated_at": now}
            for i in ids]  # fmt: skip
    return typed(rows, "customers")


def new_events(ids: list[str], occurred_at: datetime) -> pl.DataFrame:
    rows = [{"event_id": i, "metric": "order_placed", "order_id": f"SO-{i}", "email": "pat7@example.com",
             "occurred_at": occurred_at, "value": Decimal("12.00")} for i in ids]  # fmt: skip
    return typed(rows, "events")


def test_klaviyo(tmp_path, fast_http):
    with KlaviyoSimulator(klaviyo_dataset()) as sim:
        # One listing of changed profiles, so the pages and the cursor are the sequence below; spans of
        # `updated` read side by side have their own test (test_klaviyo_reads_changed_profiles_in_spans...).
        settings = sim.settings(
            **fast_http, page_size=10, update_windows=1, entities=["customers", "events", "products", "inventory"]
        )
        nights = Nights(tmp_path / "nightly", "klaviyo", settings, sim.env)

        first = nights.pull()
        assert nights.kinds(first) == dict.fromkeys(first, "full")
        assert first["customers"].detail == "first pull: no earlier pull to build on"
        assert first["customers"].quarantined == 1

        # During the day: 25 profiles change (one gets an email Klaviyo would never accept, the bad one is
        # fixed), two are created, one is deleted; an order is placed; stock moves.
        customers = sim.dataset["customers"]
        customers = changed(customers, "customer_id", [f"P{i:03d}" for i in range(10, 35)], last_name="Moved")
        customers = changed(customers, "customer_id", ["P005"], email="still-not-an-email")
        customers = changed(customers, "customer_id", ["P000"], email="fixed@example.com")
        sim.dataset["customers"] = deleted(grown(customers, new_profiles(["P900", "P901"])), "customer_id", ["P041"])
        sim.dataset["events"] = grown(sim.dataset["events"], new_events(["E9000"], datetime.now(UTC)))
        sim.dataset["inventory"] = changed(sim.dataset["inventory"], "sku", ["00003-M"], available=40)

        # While the next pull reads its first page of changed profiles, P012 (already read) changes again,
        # P050 (not changed before, so not in the listing yet) changes, and a profile is created.
        def meanwhile(sim: KlaviyoSimulator) -> None:
            customers = changed(sim.dataset["customers"], "customer_id", ["P012", "P050"], last_name="Again")
            sim.dataset["customers"] = grown(customers, new_profiles(["P902"]))

        sim.faults.set(between_pages=(sim.pages_served + 1, meanwhile))
        before = len(sim.requests)
        second = nights.pull()
        profile_requests = [r for r in sim.requests[before:] if r.path == "/api/profiles"]
        sim.faults.set(between_pages=None)
        assert nights.kinds(second) == {"customers": "incremental", "events": "incremental",
                                        "products": "full", "inventory": "full"}  # fmt: skip
        assert second["products"].detail == "Klaviyo documents no update filter on catalog variants"
        # 25 + P000, P005, P900, P901; and P050, P902, which entered the listing ahead of the cursor
        assert second["customers"].detail.startswith("31 changed since")
        assert len(profile_requests) == 4  # pages of 10 profiles, where a full pull reads 7
        assert all(r.query["filter"].startswith("greater-than(updated,") for r in profile_requests)
        stored = nights.stored()["customers"][0]
        assert stored.filter(pl.col("customer_id") == "P012")["last_name"].item() == "Moved"  # read before it changed
        assert stored.filter(pl.col("customer_id") == "P050")["last_name"].item() == "Again"
        # Stored as what changed on the first night's snapshot, read as a complete one (compared below).
        assert nights.store.latest_snapshot("klaviyo", "customers").base_id is not None

        # An event Klaviyo records late (it happened before the last pull) and the deleted profile are not
        # in any listing of changes: the next incremental pull misses them, the scheduled full pull does not.
        sim.dataset["events"] = grown(sim.dataset["events"], new_events(["E9001"], T0))
        third = nights.pull()
        assert nights.kinds(third)["customers"] == "incremental"
        full = full_pull_of(tmp_path / "full-now", "klaviyo", settings, sim.env)
        merged = nights.stored()
        assert merged["customers"][0].filter(pl.col("customer_id") == "P012")["last_name"].item() == "Again"
        assert differences(merged["customers"][0], full["customers"][0], "customer_id") == (["P041"], [])
        assert differences(merged["events"][0], full["events"][0], "event_id") == ([], ["E9001"])
        merged["customers"] = (merged["customers"][0].filter(pl.col("customer_id") != "P041"), merged["customers"][1])
        full["events"] = (full["events"][0].filter(pl.col("event_id") != "E9001"), full["events"][1])
        assert_same_stored(merged, full)  # and nothing else differs

        nights.configure(full_every="0s")  # a week later, say
        fourth = nights.pull()
        assert nights.kinds(fourth) == dict.fromkeys(fourth, "full")
        assert fourth["customers"].detail.startswith("scheduled: full_every 0s")
        assert nights.store.latest_snapshot("klaviyo", "customers").base_id is None  # a fresh base
        assert_same_stored(nights.stored(), full_pull_of(tmp_path / "full-later", "klaviyo", settings, sim.env))
        nights.close()


class SlowKlaviyo(KlaviyoSimulator):
    """Each profile list request takes 50 ms to answer (a far platform); counts the requests it is answering
    at once."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lock, self.answering, self.most_at_once = threading.Lock(), 0, 0

    def handle(self, request):
        if request.path != "/api/profiles":
            return super().handle(request)
        with self.lock:
            self.answering += 1
            self.most_at_once = max(self.most_at_once, self.answering)
        try:
            time.sleep(0.05)
            return super().handle(request)
        finally:
            with self.lock:
                self.answering -= 1


def test_klaviyo_reads_changed_profiles_in_spans_of_updated_side_by_side(tmp_path, fast_http):
    """Profiles changed over the day, read as 4 spans of `updated` at once at Klaviyo's documented limits;
    profiles change while the spans are read (one already read, one not yet). That night holds every change
    made before it started; the next incremental night equals a full pull."""
    dataset = klaviyo_dataset()
    profiles = [f"P{i:03d}" for i in range(200)]
    dataset["customers"] = grown(dataset["customers"].head(0), new_profiles(profiles)).with_columns(
        updated_at=pl.lit(T0, pl.Datetime("us", "UTC"))
    )
    with SlowKlaviyo(dataset) as sim:
        settings = sim.settings(**fast_http, page_size=10, update_windows=4, entities=["customers"])
        nights = Nights(tmp_path / "nightly", "klaviyo", settings, sim.env)
        assert nights.pull()["customers"].kind == "full"

        # 80 profiles changed over the last 9 minutes (well inside the 10 minutes of overlap each pull reads
        # back, so the spans share them out).
        now, moved = datetime.now(UTC), profiles[::5] + profiles[1::5]
        stamps = {p: now - timedelta(seconds=540 * (1 - i / len(moved))) for i, p in enumerate(moved)}
        customers = changed(sim.dataset["customers"], "customer_id", moved, stamp=None, last_name="Moved")
        sim.dataset["customers"] = customers.with_columns(
            updated_at=pl.col("customer_id").replace_strict(stamps, default=pl.col("updated_at"))
        )

        def meanwhile(sim: KlaviyoSimulator) -> None:
            customers = changed(sim.dataset["customers"], "customer_id", [moved[0], "P199"], last_name="Again")
            sim.dataset["customers"] = customers

        sim.faults.set(between_pages=(sim.pages_served + 3, meanwhile))
        before = len(sim.requests)
        second = nights.pull()["customers"]
        requests = [r for r in sim.requests[before:] if r.path == "/api/profiles"]
        sim.faults.set(between_pages=None)
        assert second.kind == "incremental"
        spans = {r.query["filter"] for r in requests if "page[cursor]" not in r.query}
        assert len(spans) == 4 and all(f.count("updated,") in (1, 2) for f in spans)
        assert sum("less-than(updated," in f for f in spans) == 3  # the last span is open-ended
        assert all("page[cursor]" in r.query or r.query["filter"] in spans for r in requests)
        assert sim.most_at_once >= 2  # side by side
        assert len(requests) <= 80 // 10 + 4 + 2  # the changed pages, a part-page per span, the mid-pull changes
        assert sim.count(status=429) == 0
        stored = nights.stored()["customers"][0]
        by_name = dict(zip(stored["customer_id"], stored["last_name"], strict=True))
        assert all(by_name[p] in ("Moved", "Again") for p in moved) and by_name[moved[0]] in ("Moved", "Again")
        assert sum(by_name[p] == "Moved" for p in moved[1:]) == len(moved) - 1

        third = nights.pull()["customers"]
        assert third.kind == "incremental"
        assert_same_stored(nights.stored(), full_pull_of(tmp_path / "full-now", "klaviyo", settings, sim.env))
        assert nights.stored()["customers"][0].filter(pl.col("last_name") == "Again").height == 2
        nights.close()


def test_klaviyo_spans_of_updated_hold_every_time_after_since_once_apart_from_a_second_at_each_seam():
    since = datetime(2026, 12, 3, 1, 0, 0, 250000, tzinfo=UTC)
    spans = update_spans(since, since + timedelta(hours=2), 5)
    assert len(spans) == 5 and spans[0].startswith("and(greater-than(updated,2026-12-03T01:00:00Z)")
    times = pl.datetime_range(since, since + timedelta(hours=3), timedelta(milliseconds=137), eager=True)
    frame = pl.DataFrame({"updated": times})
    matched = frame.select(pl.sum_horizontal(_parse_filter("/api/profiles", span).cast(pl.Int32) for span in spans))
    matched = matched.to_series()
    assert matched.min() >= 1  # every time after `since` is in a span (the first even reaches back a little)
    twice = frame.filter(matched >= 2)["updated"]
    seams = [since.replace(microsecond=0) + timedelta(seconds=1440 * i) for i in range(1, 5)]
    assert all(any(seam - timedelta(seconds=1) < t < seam for seam in seams) for t in twice)
    assert update_spans(since, since + timedelta(seconds=5), 4) == ["greater-than(updated,2026-12-03T01:00:00Z)"]


def test_a_pull_is_full_whenever_the_kept_records_cannot_be_trusted(tmp_path, fast_http):
    from driftwatch.config import load_config
    from driftwatch.filedrop import MANIFEST, load_directory
    from driftwatch.incremental import FOLDER, STATE

    with KlaviyoSimulator(klaviyo_dataset()) as sim:
        settings = sim.settings(**fast_http, page_size=20, entities=["customers"])
        nights = Nights(tmp_path / "nightly", "klaviyo", settings, sim.env)

        def reason() -> str:
            result = nights.pull()["customers"]
            return result.detail if result.kind == "full" else "incremental"

        assert reason() == "first pull: no earlier pull to build on"
        assert reason() == "incremental"
        assert nights.pull(full=True)["customers"].detail == "full pull asked for (--full)"
        assert reason() == "incremental"

        nights.configure(profile_properties={"lifetime_value": "Lifetime Value"})
        assert reason() == "the source's settings or the connector's mapping changed since the last pull"
        nights.configure(full_every="30d", overlap="1h")  # when to pull in full is not what a pull gives
        assert reason() == "incremental"

        sim.faults.set(server_errors=50)
        failed = pull_failure(nights)
        assert failed.kind == "incremental" and "gave up" in failed.error
        sim.faults.set(server_errors=0)
        assert reason().startswith("the previous pull (started ") and reason() == "incremental"

        state = tmp_path / "nightly" / "pulls" / "klaviyo" / FOLDER / STATE
        ahead = state.read_text().replace(f'"{datetime.now(UTC):%Y-%m-%d}', f'"{datetime.now(UTC).year + 1}-01-01', 2)
        state.write_text(ahead)  # the machine's clock was set back a year since the last pull
        assert reason().startswith("the clock is behind the last pull")
        assert reason() == "incremental"

        drop = tmp_path / "drop" / "klaviyo"
        drop.mkdir(parents=True)
        sim.dataset["customers"].head(3).write_csv(drop / "customers.csv")
        exported = datetime.now(UTC).isoformat()  # after the last pull
        (drop / MANIFEST).write_text(json.dumps({"captured_at": exported}))
        load_directory(nights.store, drop.parent, load_config(nights.folder / "driftwatch.toml"))
        assert reason() == "the store's latest customers snapshot is not the one the last pull wrote"
        assert reason() == "incremental"
        nights.close()

        elsewhere = Nights(tmp_path / "no-folder", "klaviyo", settings, sim.env)
        results = pull_sources_without_a_folder(elsewhere)
        assert results["customers"].detail == "no working folder to keep the last pull's records in"
        elsewhere.close()


def pull_failure(nights: Nights):
    from driftwatch.config import load_config
    from driftwatch.pull import pull_sources

    config = load_config(nights.folder / "driftwatch.toml")
    results = pull_sources(nights.store, config, ["klaviyo"], env=nights.env, checkpoint_dir=nights.folder / "pulls",
                           progress=False)  # fmt: skip
    (failed,) = results
    return failed


def pull_sources_without_a_folder(nights: Nights):
    from driftwatch.config import load_config
    from driftwatch.pull import pull_sources

    config = load_config(nights.folder / "driftwatch.toml")
    return {r.entity: r for r in pull_sources(nights.store, config, ["klaviyo"], env=nights.env, progress=False)}


# --- Mirakl ---------------------------------------------------------------------------------------------------


def after_pages_of(sim, path: str, pages: int, change) -> None:
    """Change the platform's data once `pages` pages of `path` have been served, before the next one."""
    seen = sim.count(path=path)

    def hook(sim) -> None:
        if sim.count(path=path) - seen >= pages:
            change(sim)
        else:
            sim.faults.set(between_pages=(sim.pages_served + 1, hook))

    sim.faults.set(between_pages=(sim.pages_served + 1, hook))


def test_mirakl(tmp_path):
    from test_mirakl import make_dataset

    from driftwatch.simulators.mirakl import MiraklSimulator

    now = lambda: datetime.now(UTC)  # noqa: E731
    with MiraklSimulator(make_dataset(offers=7, orders=8, payouts=2), rate_limits={}) as sim:
        ceilings = {call: [[1000, 1]] for call in ("OR11", "TL02", "OF52", "OF53")}  # the simulator enforces none
        settings = sim.settings(backoff_initial=0.01, max_attempts=8, offset_page_size=2, call_limits=ceilings,
                                entities=["products", "inventory", "orders", "order_lines", "shipments",
                                          "payout_lines"])  # fmt: skip
        nights = Nights(tmp_path / "nightly", "mirakl", settings, sim.env)
        assert set(nights.kinds(nights.pull()).values()) == {"full"}

        # During the day: orders 1, 3 and 4 move on; order 0 gets its ERP number (its key moves from the Mirakl
        # id to SO000000); order 2 loses its second line; a new order is placed; a payout is made; an offer's
        # price changes, another's stock, a third is deleted and a new one created.
        data = sim.dataset
        orders = changed(data["orders"], "external_id", ["MRK-000001-A", "MRK-000003-A", "MRK-000004-A"],
                         status="SHIPPED")  # fmt: skip
        orders = changed(orders, "external_id", ["MRK-000002-A"])
        renumbered = {"MRK-000000-A": "SO000000"}
        data["orders"] = changed(orders, "order_id", list(renumbered), order_id="SO000000")
        lines = data["order_lines"].filter(~((pl.col("order_id") == "SO000002") & (pl.col("line_no") == 2)))
        data["order_lines"] = lines.with_columns(pl.col("order_id").replace(renumbered))
        data["shipments"] = data["shipments"].with_columns(pl.col("order_id").replace(renumbered))
        new_order = {**data["orders"].row(5, named=True), "order_id": "SO000099", "external_id": "MRK-000099-A",
                     "placed_at": now(), "updated_at": now()}  # fmt: skip
        data["orders"] = pl.concat([data["orders"], pl.DataFrame([new_order], schema=data["orders"].schema)])
        data["order_lines"] = pl.concat(
            [data["order_lines"], data["order_lines"].filter(pl.col("order_id") == "SO000005").with_columns(
                order_id=pl.lit("SO000099"))]
        )  # fmt: skip
        payout = (
            data["payout_lines"]
            .filter(pl.col("payout_id") == "7001")
            .with_columns(
                line_id=pl.col("line_id").str.replace("TL-1", "TL-2"), payout_id=pl.lit("7002"), transaction_date=now()
            )
        )
        data["payout_lines"] = pl.concat([data["payout_lines"], payout])
        products = deleted(changed(data["products"], "sku", ["00001-010-M"], stamp=None, price=Decimal("99")),
                           "sku", ["00006-010-M"])  # fmt: skip
        new_offer = {**products.row(0, named=True), "sku": "00042-010-M", "name": "Brand new shirt"}
        data["products"] = pl.concat([products, pl.DataFrame([new_offer], schema=products.schema)])
        inventory = changed(deleted(data["inventory"], "sku", ["00006-010-M"]), "sku", ["00003-010-M"], stamp=None,
                            available=55)  # fmt: skip
        stock = pl.DataFrame([{"sku": "00042-010-M", "location": "*", "available": 4}], schema=inventory.schema)
        data["inventory"] = pl.concat([inventory, stock])

        # While the next pull reads its changed orders, order 1 (on a page already read) and order 5 (not
        # changed before) change.
        def meanwhile(sim) -> None:
            sim.dataset["orders"] = changed(sim.dataset["orders"], "external_id", ["MRK-000001-A", "MRK-000005-A"],
                                            status="CLOSED")  # fmt: skip

        after_pages_of(sim, "/api/orders", 1, meanwhile)
        second = nights.pull()
        sim.faults.set(between_pages=None)
        assert set(nights.kinds(second).values()) == {"incremental"}
        assert second["products"].detail.startswith("3 changed, 1 deleted since")  # 00001, 00003, 00042; 00006
        sent = [r.query for r in sim.requests if r.path == "/api/orders"][-1]
        assert "start_update_date" in sent
        stored = nights.stored()
        assert "MRK-000000-A" not in stored["orders"][0]["order_id"].to_list()  # its key moved to SO000000
        names = dict(zip(stored["products"][0]["sku"], stored["products"][0]["name"], strict=True))
        assert (names["00001-010-M"], names["00042-010-M"]) == ("Shirt 1", "Brand new shirt")  # kept; from OF21
        assert "00006-010-M" not in names
        assert stored["order_lines"][0].filter(pl.col("order_id") == "SO000002").height == 1
        status = dict(zip(stored["orders"][0]["external_id"], stored["orders"][0]["status"], strict=True))
        assert (status["MRK-000001-A"], status["MRK-000005-A"]) == ("SHIPPED", "CLOSED")  # read before / after

        third = nights.pull()  # order 1's second change, made behind the cursor, arrives now
        assert nights.kinds(third)["orders"] == "incremental"
        assert "CLOSED" in nights.stored()["orders"][0].filter(pl.col("external_id") == "MRK-000001-A")["status"]
        assert_same_stored(nights.stored(), full_pull_of(tmp_path / "full-now", "mirakl", settings, sim.env))

        nights.configure(full_every="0s")
        assert set(nights.kinds(nights.pull()).values()) == {"full"}
        assert_same_stored(nights.stored(), full_pull_of(tmp_path / "full-later", "mirakl", settings, sim.env))
        nights.close()


# --- commercetools --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("messages", [True, False], ids=["messages", "last-modified"])
def test_commercetools(tmp_path, fast_http, messages):
    from test_commercetools import dataset

    from driftwatch.simulators.commercetools import PROJECT_KEY, CommercetoolsSimulator

    with CommercetoolsSimulator(dataset(), messages_enabled=messages) as sim:
        entities = ["customers", "orders", "order_lines", "returns", "shipments", "inventory", "products"]
        settings = sim.settings(page_size=2, **fast_http, entities=entities)
        nights = Nights(tmp_path / "nightly", "commercetools", settings, sim.env)
        assert set(nights.kinds(nights.pull()).values()) == {"full"}

        # During the day: customers change, one is created, one deleted; an order completes, another loses a
        # line; stock moves; a product is deleted.
        def rename(customer_id: str, name: str) -> None:
            sim.update("customers", customer_id, "CustomerFirstNameSet", lambda r: r.update(firstName=name))

        for customer_id in ("c001", "c003", "c005"):
            rename(customer_id, "Changed")
        sim.create("customers", {"id": "c777", "email": "new@example.com"})
        sim.delete("customers", "c002")
        orders = {r.get("orderNumber"): r["id"] for r in sim.resources["orders"].values()}
        sim.update("orders", orders["WEB-000002"], "OrderStateChanged", lambda r: r.update(orderState="Complete"))
        sim.update("orders", orders["WEB-000001"], "LineItemRemoved", lambda r: r["lineItems"].pop())
        entry = next(iter(sim.resources["inventory"]))
        sim.update("inventory", entry, "InventoryEntryQuantitySet", lambda r: r.update(availableQuantity=77))
        product = next(iter(sim.resources["product-projections"].values()))
        variants = [product["masterVariant"], *product.get("variants", [])]
        product_skus = sorted(v["sku"] for v in variants if v.get("sku"))
        sim.delete("product-projections", product["id"])

        # While the next pull reads the changed customers, c001 (already read) and c006 (not changed before)
        # change again.
        after_pages_of(sim, f"/{PROJECT_KEY}/customers", 1, lambda _: [rename(c, "Again") for c in ("c001", "c006")])
        second = nights.pull()
        sim.faults.set(between_pages=None)
        assert set(nights.kinds(second).values()) == {"incremental"}
        customers = nights.stored()["customers"][0]
        if messages:  # Messages name the deleted customer: it is gone tonight
            assert second["customers"].detail.startswith("4 changed, 1 deleted since") and "by Messages" in \
                second["customers"].detail  # fmt: skip
            assert "c002" not in customers["customer_id"].to_list()
        else:
            assert "by lastModifiedAt: Messages are disabled" in second["customers"].detail
            assert "c002" in customers["customer_id"].to_list()
        assert customers.filter(pl.col("customer_id") == "c001")["first_name"].item() == "Changed"

        third = nights.pull()
        assert set(nights.kinds(third).values()) == {"incremental"}
        full = full_pull_of(tmp_path / "full-now", "commercetools", settings, sim.env)
        merged = nights.stored()
        if not messages:  # nothing lists a deletion: the deleted customer and product wait for the full pull
            assert differences(merged["customers"][0], full["customers"][0], "customer_id") == (["c002"], [])
            assert differences(merged["products"][0], full["products"][0], "sku") == (product_skus, [])
            merged["customers"] = full["customers"]
            merged["products"] = full["products"]
        assert_same_stored(merged, full)

        nights.configure(full_every="0s")
        assert set(nights.kinds(nights.pull()).values()) == {"full"}
        assert_same_stored(nights.stored(), full_pull_of(tmp_path / "full-later", "commercetools", settings, sim.env))
        nights.close()


# --- Emarsys and Ometria: no listing of changes, every pull is whole -------------------------------------------


def test_emarsys(tmp_path, fast_http):
    from test_emarsys import EXTRA_FIELDS, dataset

    from driftwatch.simulators.emarsys import EmarsysSimulator

    with EmarsysSimulator(dataset(customers=9), rate_limits={}, field_ids=EXTRA_FIELDS) as sim:
        settings = sim.settings(page_size=3, **fast_http, entities=["customers", "products", "inventory", "orders"])
        nights = Nights(tmp_path / "nightly", "emarsys", settings, sim.env)
        nights.pull()
        customers = sim.dataset["customers"]
        sim.dataset["customers"] = customers.filter(pl.col("customer_id") != customers["customer_id"][2]).with_columns(
            first_name=pl.lit("Changed")
        )  # fmt: skip
        sim.upload_sales_data("sales_second_day.csv", sim.dataset["order_lines"].head(0))
        second = nights.pull()
        assert nights.kinds(second) == dict.fromkeys(second, "full")
        assert second["customers"].detail.startswith("Emarsys' export of changed contacts (contact/getchanges)")
        assert second["orders"].detail == "sales data is the archive of uploaded files, read whole"
        assert_same_stored(nights.stored(), full_pull_of(tmp_path / "full", "emarsys", settings, sim.env))
        nights.close()


def test_ometria(tmp_path, fast_http):
    from test_ometria import dataset

    from driftwatch.simulators.ometria import OmetriaSimulator

    with OmetriaSimulator(dataset(customers=9), rate_limits={}) as sim:
        settings = sim.settings(page_size=2, read_rate=1000, **fast_http)
        nights = Nights(tmp_path / "nightly", "ometria", settings, sim.env)
        nights.pull()
        customers = sim.dataset["customers"]
        sim.dataset["customers"] = customers.filter(pl.col("customer_id") != customers["customer_id"][2])
        second = nights.pull()
        assert nights.kinds(second) == dict.fromkeys(second, "full")
        assert second["customers"].detail.startswith("Ometria documents no updated-since filter")
        assert_same_stored(nights.stored(), full_pull_of(tmp_path / "full", "ometria", settings, sim.env))
        nights.close()


def test_a_pull_into_another_store_is_full(tmp_path, fast_http):
    with KlaviyoSimulator(klaviyo_dataset()) as sim:
        settings = sim.settings(**fast_http, page_size=20, entities=["customers"])
        nights = Nights(tmp_path / "nightly", "klaviyo", settings, sim.env)
        nights.pull()
        nights.store.close()
        (tmp_path / "nightly" / "driftwatch.duckdb").unlink()  # the store was replaced, its working folder kept
        nights.store = Store(tmp_path / "nightly" / "driftwatch.duckdb")
        assert nights.pull()["customers"].detail == "the store holds no customers snapshot of this source"
        nights.close()
