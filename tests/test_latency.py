"""Sync latency: the estimator on hand-built histories, then generated histories of a slow sync audited for
real, and the objectives of `[slo]`."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from driftwatch.auditing import audit
from driftwatch.config import parse_config
from driftwatch.errors import UserError
from driftwatch.latency import events, format_duration, percentile, run_latency, slo_settings
from driftwatch.store import Store
from tests.audit_helpers import snap

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def side(rows: list[tuple]) -> pl.DataFrame:
    """(hours after T0 captured, key, value[, hours after T0 changed]) rows."""
    return pl.DataFrame(
        [
            {
                "captured_at": T0 + timedelta(hours=r[0]),
                "key": r[1],
                "value": r[2],
                "changed_at": T0 + timedelta(hours=r[3]) if len(r) > 3 else None,
            }
            for r in rows
        ],
        schema={"captured_at": pl.Datetime("us", "UTC"), "key": pl.String, "value": pl.String,
                "changed_at": pl.Datetime("us", "UTC")},
    )  # fmt: skip


def hours(frame: pl.DataFrame) -> list[float]:
    return [round(s / 3600, 3) for s in frame["lag_seconds"]]


def test_a_change_timed_on_both_sides_is_exact():
    erp = side([(0, "A", "5", -5), (1, "A", "7", 0.5)])
    target = side([(0, "A", "5", -4), (1, "A", "5", -4), (2, "A", "5", -4), (3, "A", "7", 2.75)])
    assert hours(events(erp, target)) == [2.25]


def test_a_target_showing_a_change_at_the_same_instant_has_no_lag():
    erp = side([(0, "A", "5", -5), (1, "A", "7", 0.5)])
    target = side([(0, "A", "5", -5), (1, "A", "7", 0.5)])
    assert hours(events(erp, target)) == [0.0]


def test_without_own_times_each_side_is_known_to_half_its_interval():
    # The ERP changed between 0 and 1 (taken as 0.5); the target showed it between 2 and 3 (taken as 2.5).
    erp = side([(0, "A", "5"), (1, "A", "7")])
    target = side([(0, "A", "5"), (1, "A", "5"), (2, "A", "5"), (3, "A", "7")])
    assert hours(events(erp, target)) == [2.0]


def test_a_record_out_of_sync_before_the_change_is_not_a_measure_of_the_sync():
    erp = side([(0, "A", "5"), (1, "A", "7")])
    target = side([(0, "A", "9"), (3, "A", "7")])
    assert events(erp, target).height == 0


def test_a_change_overwritten_before_it_appeared_is_dropped_and_one_not_shown_yet_is_pending():
    erp = side([(0, "A", "5"), (1, "A", "7"), (2, "A", "8"), (0, "B", "1"), (1, "B", "2")])
    target = side([(0, "A", "5"), (1, "A", "5"), (2, "A", "5"), (3, "A", "8"), (0, "B", "1"), (3, "B", "1")])
    timed = events(erp, target)
    assert timed.select("key", "pending").rows() == [("B", True), ("A", False)]
    assert hours(timed) == [2.5, 1.0]  # B waits since 0.5; A's 8 came between 2 and 3 (from 1.5)


def test_percentiles_are_values_that_were_observed():
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0
    assert percentile([], 50) is None


# -- generated histories ------------------------------------------------------------------------------


def slow_sync(tmp_path, lag: timedelta, *, target_times: bool, every: timedelta, slo: dict | None = None):
    """Two days of stock: the ERP changes SKUs at random instants; the target shows each value `lag` later.
    Snapshots of both sides every `every`; an audit after each day. Returns the store and its last run."""
    rng = random.Random(3)
    skus = [f"SKU{i:03d}" for i in range(60)]
    history = {sku: [(T0 - timedelta(days=3), rng.randint(0, 20))] for sku in skus}
    end = T0 + timedelta(days=2)
    for sku in skus:
        at = T0
        while (at := at + timedelta(hours=rng.uniform(3, 12))) < end:
            history[sku].append((at, rng.randint(0, 20)))

    def value_at(sku: str, at: datetime) -> tuple[datetime, int]:
        return [(t, v) for t, v in history[sku] if t <= at][-1]

    target = "klaviyo" if target_times else "mirakl"
    config = {"feeds": [{"source": "bluecherry", "target": target, "entities": ["products", "inventory"]}]}
    if slo:
        config["slo"] = {target: slo}
    cfg = parse_config(config)
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = Store(tmp_path / "latency.duckdb")
    at, next_audit = T0, T0 + timedelta(days=1)
    while at <= end:
        erp = [value_at(s, at) for s in skus]
        shown = [value_at(s, at - lag) for s in skus]
        products = dict(sku=skus, name=skus, price=["10.00"] * len(skus), currency=["EUR"] * len(skus))
        store.ingest([
            snap("bluecherry", "products", at, **products, status=["A"] * len(skus)),
            snap("bluecherry", "inventory", at, sku=skus, location=["WH"] * len(skus), on_hand=[v for _, v in erp],
                 allocated=[0] * len(skus), safety_stock=[0] * len(skus),
                 updated_at=[t.isoformat() for t, _ in erp]),
            snap(target, "products", at, **products),
            snap(target, "inventory", at, sku=skus, location=["*"] * len(skus), available=[v for _, v in shown],
                 **({"updated_at": [(t + lag).isoformat() for t, _ in shown]} if target_times else {})),
        ])  # fmt: skip
        if at >= next_audit:
            run = audit(store, cfg, checks=["stock_parity"]).run_id
            next_audit += timedelta(days=1)
        at += every
    return store, run, target


@pytest.mark.parametrize("target_times", [False, True], ids=["target without times", "target with updated_at"])
def test_a_slow_sync_is_measured_within_ten_percent_of_its_lag(tmp_path, target_times):
    lag = timedelta(hours=6)
    store, run, target = slow_sync(tmp_path, lag, target_times=target_times, every=timedelta(minutes=30))
    [row] = run_latency(store, run).filter(pl.col("entity") == "inventory").to_dicts()
    assert (row["target"], row["entity"]) == (target, "inventory")
    assert row["measured"] >= 20
    assert row["p50_seconds"] == pytest.approx(lag.total_seconds(), rel=0.10)
    assert row["p95_seconds"] == pytest.approx(lag.total_seconds(), rel=0.10)
    assert row["resolution_seconds"] == (0 if target_times else 15 * 60)
    assert row["pending"] > 0  # changes of the last six hours are still on their way
    assert row["window_start"] is not None  # the second day's run measures what arrived since the first


def test_an_objective_is_breached_by_a_slow_sync_and_kept_by_a_fast_one(tmp_path):
    store, run, _ = slow_sync(tmp_path / "slow", timedelta(hours=6), target_times=True, every=timedelta(hours=1),
                              slo={"inventory": "2h"})  # fmt: skip
    [slow] = run_latency(store, run).filter(pl.col("entity") == "inventory").to_dicts()
    assert slow["breached"] and slow["p95_objective_seconds"] == 7200
    store, run, _ = slow_sync(tmp_path / "fast", timedelta(minutes=30), target_times=True, every=timedelta(hours=1),
                              slo={"inventory": {"p95": "2h", "p50": "1h"}})  # fmt: skip
    [fast] = run_latency(store, run).filter(pl.col("entity") == "inventory").to_dicts()
    assert not fast["breached"]
    assert fast["p50_seconds"] == pytest.approx(1800, rel=0.10)


# -- order status: the ERP's status changes, shown on the target in its own words ---------------------------

ERP_CODES = {"10": "placed", "20": "accepted", "40": "shipped", "60": "delivered"}  # BlueCherry's are per client
STAGES = ("placed", "accepted", "shipped", "delivered")
SAME_WORDS = {stage: stage for stage in STAGES}


def order_history(
    tmp_path,
    lag: timedelta,
    *,
    target: str,
    shown_as: dict[str, str],
    target_times: bool = True,
    every: timedelta = timedelta(minutes=30),
    slo: dict | None = None,
):
    """Two days of 60 orders, each placed at a random instant and moving through placed, accepted, shipped and
    delivered in the ERP hours apart; the target shows each stage `lag` after the ERP, in its own words
    (`shown_as`: stage -> its raw status; a stage it has no word for is never shown: it cannot tell it from
    the one before). A target keeping events (Klaviyo) gets an event per shown stage instead, `shown_as`
    naming the metric. Snapshots of both sides every `every`; an audit after each day."""
    rng = random.Random(11)
    ids = [f"B{i:03d}" for i in range(60)]
    history: dict[str, list[tuple[datetime, int]]] = {}
    for order in ids:
        at = T0 + timedelta(hours=rng.uniform(-12, 24))
        history[order] = [(at, 0)]
        for stage in range(1, len(STAGES)):
            at += timedelta(hours=rng.uniform(2, 10))
            history[order].append((at, stage))

    def shown(order: str, at: datetime) -> tuple[datetime, str] | None:
        """The latest stage the target can say, as of `at`, with when it arrived."""
        said = [(t, shown_as[STAGES[s]]) for t, s in history[order] if t + lag <= at and STAGES[s] in shown_as]
        return (said[-1][0] + lag, said[-1][1]) if said else None

    events = target in ("klaviyo", "emarsys")
    marketplace = target == "mirakl"
    config = {
        "feeds": [{"source": "bluecherry", "target": target, "entities": ["events" if events else "orders"]}],
        "statuses": {"bluecherry": ERP_CODES},
    }
    if slo:
        config["slo"] = {target: slo}
    cfg = parse_config(config)
    code = {stage: raw for raw, stage in ERP_CODES.items()}
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = Store(tmp_path / "orders.duckdb")
    at, end, next_audit = T0, T0 + timedelta(days=2), T0 + timedelta(days=1)
    while at <= end:
        erp = {o: [(t, s) for t, s in history[o] if t <= at] for o in ids}
        erp = {o: steps[-1] for o, steps in erp.items() if steps}
        channel = "mirakl" if marketplace else "web"
        snapshots = [
            snap("bluecherry", "orders", at, order_id=list(erp), external_id=[f"M-{o}" for o in erp],
                 channel=[channel] * len(erp), status=[code[STAGES[s]] for _, s in erp.values()],
                 updated_at=[t.isoformat() for t, _ in erp.values()]),
        ]  # fmt: skip
        if events:
            said = [(o, t + lag, shown_as[STAGES[s]]) for o in ids for t, s in history[o]
                    if t + lag <= at and STAGES[s] in shown_as]  # fmt: skip
            snapshots.append(
                snap(target, "events", at, event_id=[f"{o}-{m}" for o, _, m in said], metric=[m for _, _, m in said],
                     order_id=[o for o, _, _ in said], occurred_at=[t.isoformat() for _, t, _ in said])
            )  # fmt: skip
        else:
            on_target = {o: s for o in ids if (s := shown(o, at))}
            times = {"updated_at": [t.isoformat() for t, _ in on_target.values()]} if target_times else {}
            snapshots.append(
                snap(target, "orders", at, order_id=list(on_target), external_id=[f"M-{o}" for o in on_target],
                     channel=[channel] * len(on_target), status=[w for _, w in on_target.values()], **times)
            )  # fmt: skip
        store.ingest(snapshots)
        if at >= next_audit:
            run = audit(store, cfg, checks=["order_status_drift"]).run_id
            next_audit += timedelta(days=1)
        at += every
    [row] = run_latency(store, run).filter(pl.col("entity") == "orders").to_dicts()
    return row


@pytest.mark.parametrize("target_times", [False, True], ids=["target without times", "target with updated_at"])
def test_an_order_status_sync_is_measured_within_ten_percent_of_its_lag(tmp_path, target_times):
    lag = timedelta(hours=4)
    row = order_history(tmp_path, lag, target="commercetools", shown_as=SAME_WORDS, target_times=target_times)
    assert (row["source"], row["target"]) == ("bluecherry", "commercetools")
    assert row["measured"] >= 30
    assert row["p50_seconds"] == pytest.approx(lag.total_seconds(), rel=0.10)
    assert row["p95_seconds"] == pytest.approx(lag.total_seconds(), rel=0.10)
    assert row["resolution_seconds"] == (0 if target_times else 15 * 60)
    assert row["window_start"] is not None


def test_a_clean_order_history_shows_every_status_at_once_and_keeps_its_objective(tmp_path):
    row = order_history(tmp_path, timedelta(0), target="commercetools", shown_as=SAME_WORDS, slo={"orders": "1h"})
    assert row["measured"] >= 30
    assert (row["p50_seconds"], row["p95_seconds"], row["pending"]) == (0, 0, 0)
    assert not row["breached"]


@pytest.mark.parametrize(
    ("target", "shown_as"),
    [
        # Mirakl: the seller moves an order up to SHIPPED; RECEIVED comes from the customer, never the ERP.
        ("mirakl", {"placed": "WAITING_ACCEPTANCE", "accepted": "SHIPPING", "shipped": "SHIPPED"}),
        # Klaviyo keeps events: placed and fulfilled, nothing for accepted or delivered.
        ("klaviyo", {"placed": "order_placed", "shipped": "order_fulfilled"}),
    ],
)
def test_stages_a_platform_cannot_tell_apart_are_no_change_to_wait_for(tmp_path, target, shown_as):
    # Delivered in the ERP never shows on either platform: read stage by stage it would wait forever, be
    # pending for more than a day by the last run and breach the objective.
    lag = timedelta(hours=3)
    row = order_history(tmp_path, lag, target=target, shown_as=shown_as, slo={"orders": "6h"})
    assert row["pending"] == 0 and not row["breached"]
    assert row["measured"] >= 15
    assert row["p50_seconds"] == pytest.approx(lag.total_seconds(), rel=0.10)
    assert row["p95_seconds"] == pytest.approx(lag.total_seconds(), rel=0.10)


@pytest.mark.parametrize(
    ("slo", "message"),
    [
        ({"shopify": {"inventory": "6h"}}, "[slo.shopify]: 'shopify' is not a target of any feed"),
        ({"klaviyo": {"orders": "6h"}}, "[slo.klaviyo] orders: no measured sync of that name to klaviyo"),
        ({"klaviyo": {"inventory": "six hours"}}, "[slo.klaviyo] inventory: 'six hours' is not a duration"),
        ({"klaviyo": {"inventory": {"p99": "6h"}}}, "[slo.klaviyo] inventory: unknown setting(s) p99"),
        ({"klaviyo": {"inventory": "0h"}}, "is not a duration"),
        ({"klaviyo": "6h"}, "[slo.klaviyo]: expected a table of entities"),
    ],
)
def test_objectives_are_validated_and_unknown_keys_refused(tmp_path, slo, message):
    path = tmp_path / "driftwatch.toml"
    feeds = '[[feeds]]\nsource = "bluecherry"\ntarget = "klaviyo"\nentities = ["inventory", "customers"]\n'
    import tomli_w

    path.write_text(feeds + tomli_w.dumps({"slo": slo}), encoding="utf-8")
    from driftwatch.config import load_config

    with pytest.raises(UserError) as raised:
        load_config(path)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_objectives_parse_to_seconds():
    cfg = parse_config(
        {
            "feeds": [
                {"source": "bluecherry", "target": "klaviyo", "entities": ["inventory", "customers", "events"]},
                {"source": "bluecherry", "target": "mirakl", "entities": ["orders"]},
            ],
            "slo": {
                "klaviyo": {"inventory": "6h", "customers": {"p50": "90m", "p95": "1d"}, "orders": "2h"},
                "mirakl": {"orders": {"p50": "30m"}},
            },
        }
    )
    objectives = slo_settings(cfg)
    assert objectives[("klaviyo", "inventory")].p95_seconds == 6 * 3600
    assert objectives[("klaviyo", "customers")].p50_seconds == 90 * 60
    assert objectives[("klaviyo", "customers")].p95_seconds == 86400
    assert objectives[("klaviyo", "orders")].p95_seconds == 2 * 3600  # order status, from its events
    assert objectives[("mirakl", "orders")].p50_seconds == 30 * 60


def test_durations_read_in_one_unit():
    assert [format_duration(s) for s in (30, 600, 5400, 6 * 3600, 36 * 3600, 3 * 86400)] == [
        "30 s",
        "10 min",
        "1.5 h",
        "6 h",
        "36 h",
        "3 d",
    ]
