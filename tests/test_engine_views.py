"""Derived figures, each against a hand-worked example."""

from datetime import UTC, datetime
from decimal import Decimal

import polars as pl
import pytest

from driftwatch.engine.findings import as_text
from driftwatch.engine.views import available_to_sell, net_lifetime_value, orders_from_events, with_canonical_status
from driftwatch.entities import MONEY, TIMESTAMP


def _inventory(rows: list[tuple]) -> pl.LazyFrame:
    cols = ["sku", "location", "on_hand", "allocated", "safety_stock", "on_order"]
    return pl.LazyFrame(rows, schema=cols, orient="row")


def _ats(frame: pl.LazyFrame) -> dict:
    return {tuple(row[:-1]): row[-1] for row in frame.collect().iter_rows()}


def test_ats_sums_free_stock_over_locations_and_never_counts_on_order():
    inventory = _inventory(
        [
            ("A", "W1", 10, 2, 1, 50),  # 7 free
            ("A", "W2", 3, 5, 0, 50),  # negative: contributes 0, not -2
            ("B", "W1", 4, None, None, 0),  # missing buckets count as 0
        ]
    )
    assert _ats(available_to_sell(inventory)) == {("A",): 7, ("B",): 4}


def test_ats_only_from_the_feeding_locations_and_per_location():
    inventory = _inventory([("A", "W1", 10, 0, 0, 0), ("A", "W2", 5, 0, 0, 0)])
    assert _ats(available_to_sell(inventory, locations=("W2",))) == {("A",): 5}
    assert _ats(available_to_sell(inventory, by_location=True)) == {("A", "W1"): 10, ("A", "W2"): 5}


def test_pack_ats_is_the_minimum_over_components_of_floor_ats_over_qty():
    inventory = _inventory([("A", "W1", 7, 0, 0, 0), ("B", "W1", 9, 0, 0, 0)])
    packs = pl.LazyFrame({"pack_sku": ["P", "P", "Q"], "component_sku": ["A", "B", "Z"], "qty": [2, 3, 1]})
    ats = _ats(available_to_sell(inventory, packs))
    assert ats[("P",)] == 3  # min(7 // 2, 9 // 3)
    assert ats[("Q",)] == 0  # a component with no stock row leaves the pack unbuildable


def test_pack_ats_per_location_needs_every_component_there():
    inventory = _inventory([("A", "W1", 4, 0, 0, 0), ("B", "W1", 4, 0, 0, 0), ("A", "W2", 8, 0, 0, 0)])
    packs = pl.LazyFrame({"pack_sku": ["P", "P"], "component_sku": ["A", "B"], "qty": [2, 1]})
    ats = _ats(available_to_sell(inventory, packs, by_location=True))
    assert ats[("P", "W1")] == 2
    assert ats[("P", "W2")] == 0


def _ts(day: int) -> datetime:
    return datetime(2026, 10, day, tzinfo=UTC)


def test_net_lifetime_value_drops_cancelled_orders_and_refunded_returns():
    orders = pl.LazyFrame(
        {
            "order_id": ["O1", "O2", "O3", "O4"],
            "customer_id": ["C1", "C1", "C1", "C2"],
            "status": ["50", "90", "50", "90"],
            "total": [Decimal("100.00"), Decimal("40.00"), Decimal("19.90"), Decimal("10.00")],
            "placed_at": [_ts(1), _ts(9), _ts(5), _ts(2)],
        },
        schema_overrides={"total": MONEY, "placed_at": TIMESTAMP},
    )
    returns = pl.LazyFrame(
        {"order_id": ["O1", "O3"], "amount": [Decimal("30.00"), Decimal("5.00")], "status": ["refunded", "authorised"]},
        schema_overrides={"amount": MONEY},
    )
    value = net_lifetime_value(orders, returns, {"50": "shipped", "90": "cancelled"}).collect()
    rows = {r["customer_id"]: r for r in value.iter_rows(named=True)}
    assert rows["C1"]["lifetime_value"] == Decimal("89.90")  # 100 + 19.90 - 30 refunded; O2 cancelled
    assert rows["C1"]["order_count"] == 2
    assert rows["C1"]["last_order_at"] == _ts(5)  # the cancelled O2 is later but does not count
    assert "C2" not in rows  # only a cancelled order: nothing to count
    assert rows["C1"]["currency"] is None  # the orders name no currency


def test_net_lifetime_value_marks_customers_whose_cancellations_or_refunds_cannot_be_told():
    """An order or return status no mapping names may be a cancellation or a refund: the customer's figures
    are unknown, not computed as if it were neither."""
    orders = pl.LazyFrame(
        {
            "order_id": ["O1", "O2", "O3"],
            "customer_id": ["C1", "C2", "C3"],
            "status": ["50", "77", "50"],
            "total": [Decimal("100.00"), Decimal("40.00"), Decimal("10.00")],
        },
        schema_overrides={"total": MONEY},
    )
    returns = pl.LazyFrame(
        {"order_id": ["O1", "O3"], "amount": [Decimal("30.00"), Decimal("5.00")], "status": ["CM", "refunded"]},
        schema_overrides={"amount": MONEY},
    )
    value = net_lifetime_value(orders, returns, {"50": "shipped"}).collect()
    assert dict(value.select("customer_id", "unmapped").iter_rows()) == {"C1": True, "C2": True, "C3": False}
    assert value.filter(pl.col("customer_id") == "C3")["lifetime_value"].item() == Decimal("5.00")


def test_net_lifetime_value_is_in_the_currency_of_the_customers_orders_when_they_share_one():
    orders = pl.LazyFrame(
        {
            "order_id": ["O1", "O2", "O3", "O4"],
            "customer_id": ["C1", "C1", "C2", "C2"],
            "status": ["50", "50", "50", "50"],
            "total": [Decimal("100.00"), Decimal("40.00"), Decimal("19.90"), Decimal("10.00")],
            "currency": ["EUR", "EUR", "EUR", "GBP"],
            "placed_at": [_ts(1), _ts(9), _ts(5), _ts(2)],
        },
        schema_overrides={"total": MONEY, "placed_at": TIMESTAMP},
    )
    value = net_lifetime_value(orders, None, {"50": "shipped"}).collect()
    assert dict(value.select("customer_id", "currency").iter_rows()) == {"C1": "EUR", "C2": None}


def test_canonical_status_maps_patterns_and_canonical_names_and_leaves_unmapped_null():
    orders = pl.LazyFrame({"status": ["Confirmed/Shipped", "Open/Pending", "shipped", "Weird"]})
    mapping = {"*/Shipped": "shipped", "Open/*": "placed"}
    mapped = with_canonical_status(orders, mapping).collect()["status_canonical"].to_list()
    assert mapped == ["shipped", "placed", "shipped", None]


def test_orders_from_events_take_the_latest_lifecycle_event_and_only_whole_refunds():
    events = pl.LazyFrame(
        {
            "order_id": ["O1", "O1", "O1", "O2", "O2", "O2", "O3", "O3"],
            "metric": ["order_placed", "order_fulfilled", "order_refunded"] * 2 + ["order_placed", "order_cancelled"],
            "occurred_at": [_ts(1), _ts(2), _ts(3), _ts(1), _ts(2), _ts(3), _ts(1), _ts(1)],
            "value": [Decimal(v) for v in ("50", "50", "10", "50", "50", "50", "20", "20")],
            "email": ["a@x.io"] * 8,
        },
        schema_overrides={"value": MONEY, "occurred_at": TIMESTAMP},
    )
    orders = {r["order_id"]: r for r in orders_from_events(events).collect().iter_rows(named=True)}
    assert orders["O1"]["status"] == "order_fulfilled"  # a partial refund leaves it fulfilled
    assert orders["O2"]["status"] == "order_refunded"
    assert orders["O3"]["status"] == "order_cancelled"  # same instant: the later lifecycle stage wins
    assert orders["O1"]["total"] == Decimal("50") and orders["O1"]["placed_at"] == _ts(1)


def test_text_form_is_one_per_value():
    money = pl.DataFrame(
        {"v": [Decimal("19.9"), Decimal("19.90"), Decimal("0.125"), Decimal("20")]}, schema={"v": MONEY}
    )
    assert money.select(as_text(pl.col("v"), MONEY))["v"].to_list() == ["19.90", "19.90", "0.125", "20.00"]
    instant = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
    times = pl.DataFrame({"t": [instant]}).with_columns(pl.col("t").dt.convert_time_zone("Europe/Paris"))
    assert times.select(as_text(pl.col("t"), times.schema["t"]))["t"].item() == "2026-11-02T06:00:00Z"


def test_a_shared_result_is_computed_once_for_its_readers_and_then_forgotten(tmp_path):
    from driftwatch.config import Config
    from driftwatch.engine.context import AuditContext
    from driftwatch.store import Store

    computed = []

    def compute() -> int:
        computed.append(1)
        return len(computed)

    with Store(tmp_path / "s.duckdb") as store, AuditContext(store, Config()) as ctx:
        assert [ctx.shared(("k",), compute, uses=2) for _ in range(2)] == [1, 1]
        assert ctx.shared(("k",), compute, uses=2) == 2  # a third reader finds it gone and computes it again


def test_an_audit_caps_duckdbs_cache_while_it_runs_and_puts_the_limit_back(tmp_path):
    from driftwatch.config import Config
    from driftwatch.engine.context import AuditContext
    from driftwatch.store import Store

    def limit(store: Store) -> str:
        return store.query("SELECT current_setting('memory_limit')").fetchall()[0][0]

    with Store(tmp_path / "s.duckdb") as store:
        before = limit(store)
        with AuditContext(store, Config()):
            assert limit(store) == "953.6 MiB"  # 1GB, as DuckDB prints it
        assert limit(store) == before != "953.6 MiB"


def test_an_audit_that_cannot_start_puts_the_limit_back_and_removes_its_scratch(tmp_path, monkeypatch):
    from driftwatch.config import Config, EngineSettings
    from driftwatch.engine import context
    from driftwatch.store import Store

    def refused(*_args):
        raise RuntimeError("the shared folder refused us")

    monkeypatch.setattr(context, "Partitioned", refused)
    cfg = Config(engine=EngineSettings(partitions=2))
    with Store(tmp_path / "s.duckdb") as store:
        before = store.query("SELECT current_setting('memory_limit')").fetchall()[0][0]
        try:
            with context.AuditContext(store, cfg):
                pass
        except RuntimeError:
            # Read while the error is in hand: its traceback keeps the half-entered context alive, as a
            # caller reporting the error would, so nothing but the context itself can have put it back.
            assert store.query("SELECT current_setting('memory_limit')").fetchall()[0][0] == before
        else:
            pytest.fail("the audit started")
    assert not any(p.name.startswith("audit") for p in tmp_path.rglob("*") if p.is_dir())


def test_grouping_a_runs_findings_caps_duckdbs_cache_too(tmp_path, monkeypatch):
    from driftwatch import auditing
    from driftwatch.config import Config
    from driftwatch.store import Store

    seen = []

    def limit(store: Store, *_) -> None:
        seen.append(store.query("SELECT current_setting('memory_limit')").fetchall()[0][0])

    monkeypatch.setattr(auditing, "record_incidents", limit)
    monkeypatch.setattr(auditing, "record_latency", limit)
    with Store(tmp_path / "s.duckdb") as store:
        auditing.follow_up(store, Config(), "run-1")
        after = store.query("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert seen == ["953.6 MiB", "953.6 MiB"] and after != "953.6 MiB"


def _order_views(tmp_path, feed: dict) -> dict[str, pl.DataFrame]:
    """The order views of one feed over hand-built snapshots, and the columns their scratch files hold."""
    from engine_frames import snapshot

    from driftwatch.config import parse_config
    from driftwatch.engine import views
    from driftwatch.engine.context import AuditContext, Scope
    from driftwatch.engine.runner import load_catalogue
    from driftwatch.store import Store

    erp = snapshot(
        "bluecherry", "orders", order_id=["E1", "E2", "E3", "E4"], external_id=["M-1", "M-2", None, None],
        channel=["mirakl", "mirakl", "web", "web"], status=["open", "open", "open", "open"],
        total=["10", "20", "30", "40"], currency=["EUR"] * 4,
    )  # fmt: skip
    erp_lines = snapshot("bluecherry", "order_lines", order_id=["E1", "E3"], line_no=[1, 1], sku=["A", "B"])
    target = feed["target"]
    ref = ["M-1", "M-9"] if target == "mirakl" else ["E3", "E9"]
    theirs = snapshot(target, "orders", order_id=ref, status=["open", "open"], total=["10", "5"])
    if target == "mirakl":
        theirs = snapshot(target, "orders", order_id=ref, external_id=ref, status=["open", "open"], total=["10", "5"])
    their_lines = snapshot(target, "order_lines", order_id=ref[:1], line_no=[1], sku=["A"])
    cfg = parse_config({"feeds": [feed]})
    with Store(tmp_path / f"{target}.duckdb") as store, AuditContext(store, cfg) as ctx:
        store.ingest([erp, erp_lines, theirs, their_lines])
        check = load_catalogue(cfg)["order_value_drift"]
        scope = Scope(ctx, check, "bluecherry", target, cfg.feeds[0], {})
        frames = {
            "source": views.source_orders(scope).select("order_ref", "key", "order_id", "total").collect(),
            "target": views.target_orders(scope).select("order_ref", "key", "total").collect(),
            "lines": views.source_order_lines(scope).select("order_ref", "key", "order_id", "sku").collect(),
            "copy_lines": views.target_order_lines(scope).select("order_ref", "key", "sku").collect(),
        }
        stored = [pl.read_parquet_schema(path) for path in sorted(ctx._workdir.glob("derived-*.parquet"))]
    frames["stored"] = stored
    return frames


def test_derived_orders_store_each_id_once_and_read_back_with_order_ref_and_key(tmp_path):
    """The ERP's and a target's orders (and the orders both hold) are written to scratch with each id once;
    as they are read, order_ref is the id orders are matched on and key the ERP's order number."""
    storefront = _order_views(tmp_path, {"source": "bluecherry", "target": "ometria",
                                          "entities": ["orders", "order_lines"]})  # fmt: skip
    assert sorted(storefront["source"].rows()) == [("E3", "E3", "E3", Decimal("30")), ("E4", "E4", "E4", Decimal("40"))]
    assert sorted(storefront["target"].rows()) == [("E3", "E3", Decimal("10")), ("E9", "E9", Decimal("5"))]
    assert storefront["lines"].rows() == [("E3", "E3", "E3", "B")]
    assert storefront["copy_lines"].rows() == [("E3", "E3", "A")]

    marketplace = _order_views(tmp_path, {"source": "bluecherry", "target": "mirakl",
                                          "entities": ["orders", "order_lines"]})  # fmt: skip
    erp_orders = [("M-1", "E1", "E1", Decimal("10")), ("M-2", "E2", "E2", Decimal("20"))]
    assert sorted(marketplace["source"].rows()) == erp_orders
    assert sorted(marketplace["target"].rows()) == [("M-1", "M-1", Decimal("10")), ("M-9", "M-9", Decimal("5"))]
    assert marketplace["lines"].rows() == [("M-1", "E1", "E1", "A")]
    assert marketplace["copy_lines"].rows() == [("M-1", "E1", "A")]

    # The key (the ERP's order number) is never written again beside order_id; off a marketplace, neither is
    # order_ref (that same number).
    assert len(storefront["stored"]) == len(marketplace["stored"]) == 3  # ERP orders, target orders, common orders
    assert not any("key" in schema for schema in storefront["stored"] + marketplace["stored"])
    assert not any("order_ref" in schema for schema in storefront["stored"])


def test_the_customer_master_stores_the_erp_customer_once_and_reads_it_back_as_the_key(tmp_path):
    from engine_frames import snapshot

    from driftwatch.config import parse_config
    from driftwatch.engine import views
    from driftwatch.engine.context import AuditContext, Scope
    from driftwatch.engine.runner import load_catalogue
    from driftwatch.store import Store

    erp = snapshot("bluecherry", "customers", customer_id=["C1", "C2"], email=["a@x.io", "b@x.io"])
    profiles = snapshot(
        "klaviyo", "customers", customer_id=["P1", "P2", "P3"], erp_customer_id=["C1", None, "C2"],
        email=["a@x.io", "b@x.io", "b@x.io"], email_consent=[True, False, True],
    )  # fmt: skip
    cfg = parse_config({"feeds": [{"source": "bluecherry", "target": "klaviyo", "entities": ["customers"]}]})
    with Store(tmp_path / "s.duckdb") as store, AuditContext(store, cfg) as ctx:
        store.ingest([erp, profiles])
        check = load_catalogue(cfg)["consent_parity"]
        options = cfg.check_options(check.id, "klaviyo", defaults=check.options)
        scope = Scope(ctx, check, "bluecherry", "klaviyo", cfg.feeds[0], options)
        master = views.target_customer_master(scope).select("customer_ref", "key", "profiles", "email_consent")
        rows = sorted(master.collect().rows())
        stored = [pl.read_parquet_schema(path) for path in ctx._workdir.glob("derived-*.parquet")]
    assert rows == [("C1", "C1", 1, True), ("C2", "C2", 2, True)]
    assert stored and not any("key" in schema for schema in stored)
