"""Incidents: findings grouped by what their records share, named by their probable cause, followed across
runs. Rules on small hand-built frames first, then generated histories with a known cause injected."""

from __future__ import annotations

import polars as pl
import pytest

from driftwatch.config import Config, parse_config
from driftwatch.engine import latest_run_id
from driftwatch.incidents import group, incident_members, run_incidents
from driftwatch.incidents.attributes import RunSnapshots, population, population_key, population_reads
from driftwatch.incidents.grouping import LIFT, MIN_SHARE, MIN_SIZE
from driftwatch.store import Store
from tests.histories import History, audit_history, open_keys


def findings(keys: list[str], first_run: str | None = "r1") -> pl.DataFrame:
    return pl.DataFrame({"fingerprint": [f"fp-{k}" for k in keys], "key": keys, "first_run": [first_run] * len(keys)})


def records(rows: dict[str, dict[str, list[str]]]) -> pl.DataFrame:
    """{key: {attribute: [values]}} as the population frame (one list column per attribute)."""
    attributes = sorted({a for values in rows.values() for a in values})
    return pl.DataFrame(
        {"key": list(rows), **{a: [rows[k].get(a, []) for k in rows] for a in attributes}},
        schema={"key": pl.String, **{a: pl.List(pl.String) for a in attributes}},
    )


def stock(locations: dict[str, str]) -> pl.DataFrame:
    return records({sku: {"location": [loc]} for sku, loc in locations.items()})


def test_a_location_holding_the_drift_is_the_cause_and_covers_exactly_its_findings():
    population = stock({f"S{i}": ("RET" if i < 5 else "EU") for i in range(20)})
    found = findings(["S0", "S1", "S2", "S3", "S4", "S12"])
    [cause] = group(found, population)
    assert (cause.attribute, cause.value) == ("location", "RET")
    assert cause.members == tuple(f"fp-S{i}" for i in range(5))
    assert (cause.size, cause.findings, cause.drifting_with, cause.records_with) == (5, 6, 5, 5)
    assert (cause.drifting_without, cause.records_without) == (1, 15)


def test_an_attribute_every_record_shares_explains_nothing():
    population = stock({f"S{i}": "EU" for i in range(10)})
    assert group(findings(["S0", "S1", "S2", "S3"]), population) == []


def test_fewer_findings_than_the_minimum_stay_on_their_own():
    population = stock({f"S{i}": ("RET" if i < MIN_SIZE - 1 else "EU") for i in range(20)})
    assert group(findings([f"S{i}" for i in range(MIN_SIZE - 1)]), population) == []


def test_a_value_whose_records_mostly_do_not_drift_is_no_cause():
    # RET holds 10 SKUs; 4 drift (40 %, under the minimum share) while the rest of the catalogue is clean.
    population = stock({f"S{i}": ("RET" if i < 10 else "EU") for i in range(40)})
    assert MIN_SHARE > 4 / 10
    assert group(findings(["S0", "S1", "S2", "S3"]), population) == []


def test_a_value_no_more_drifting_than_the_rest_is_no_cause():
    # Half the records in each location drift: RET is not LIFT times worse than EU.
    population = stock({f"S{i}": ("RET" if i < 10 else "EU") for i in range(20)})
    drifting = [f"S{i}" for i in range(0, 20, 2)]
    assert LIFT * 0.5 > 0.5
    assert group(findings(drifting), population) == []


def test_two_causes_in_one_check_and_target_are_two_incidents_most_findings_first():
    rows = {f"S{i}": {"location": ["RET" if i < 6 else "EU"], "style": ["A" if 10 <= i < 14 else f"s{i}"]}
            for i in range(40)}  # fmt: skip
    found = findings([*(f"S{i}" for i in range(6)), *(f"S{i}" for i in range(10, 14))])
    causes = group(found, records(rows))
    assert [(c.attribute, c.value, c.size) for c in causes] == [("location", "RET", 6), ("style", "A", 4)]
    assert set(causes[0].members).isdisjoint(causes[1].members)
    assert group(found.reverse(), records(rows)) == causes  # deterministic, whatever the order


def test_a_multi_valued_attribute_counts_a_record_once_per_value():
    # SKUs published as one figure are stocked in several locations: RET is what the drifting ones share.
    rows = {f"S{i}": {"location": ["EU", "RET"] if i < 5 else ["EU"]} for i in range(20)}
    [cause] = group(findings([f"S{i}" for i in range(5)]), records(rows))
    assert (cause.attribute, cause.value, cause.size) == ("location", "RET", 5)


def test_ties_go_to_the_more_specific_attribute():
    rows = {f"S{i}": {"location": ["RET" if i < 4 else "EU"], "currency": ["GBP" if i < 4 else "EUR"]}
            for i in range(20)}  # fmt: skip
    [cause] = group(findings([f"S{i}" for i in range(4)]), records(rows))
    assert cause.attribute == "location"
    assert cause.also == (("currency", "GBP", 4),)


def test_the_run_findings_first_appeared_in_is_a_cause_only_against_a_baseline():
    found = findings([f"K{i}" for i in range(6)], first_run="r5")
    assert group(found, None, None) == []  # no earlier run audited the target: everything arrives at once
    quiet = pl.DataFrame({"run_id": ["r2", "r3", "r4"], "arrived": [0, 1, 0]})
    [cause] = group(found, None, quiet)
    assert (cause.attribute, cause.value, cause.size) == ("first_run", "r5", 6)
    busy = pl.DataFrame({"run_id": ["r2", "r3", "r4"], "arrived": [5, 6, 7]})
    assert group(found, None, busy) == []  # six new findings is an ordinary night there


def test_every_check_drifting_on_a_target_reads_one_population_forgotten_after_its_last_reader(tmp_path):
    orders = pl.Series(["O1", "O2", "O3"])
    # Order, shipment and event findings all read a target's orders: one population per target.
    assert population_key("erp", "shop", "orders", orders) == population_key("erp", "shop", "shipments", orders)
    assert population_key("erp", "shop", "orders", orders) != population_key("erp", "market", "orders", orders)
    per_sku, per_location = pl.Series(["A", "B"]), pl.Series(["A/W1", "B/W2"])
    assert population_key("erp", "shop", "inventory", per_sku) != population_key(
        "erp", "shop", "inventory", per_location
    )
    with Store(tmp_path / "s.duckdb") as store:
        snaps = RunSnapshots(store, "no-such-run")
        built = []

        def build() -> object:
            built.append(object())
            return built[-1]

        first = snaps.shared(("orders", "erp", "shop"), build, uses=2)
        assert snaps.shared(("orders", "erp", "shop"), build, uses=2) is first and len(built) == 1
        assert snaps.shared(("orders", "erp", "shop"), build, uses=2) is not first  # forgotten after the second


def _history_run(tmp_path) -> tuple[Store, str, Config]:
    history = History(nights=2)
    store = audit_history(history, tmp_path / "history.duckdb")
    return store, latest_run_id(store), parse_config(history.config())


LENS_CASES = [  # target, entity of the findings, their keys
    ("mirakl", "inventory", ["00100-010-S"]),
    ("mirakl", "inventory", ["00100-010-S/WH-EU"]),
    ("klaviyo", "products", ["00100-010-S"]),
    ("mirakl", "orders", ["SO000000"]),
    ("ometria", "events", ["SO000001"]),
    ("ometria", "customers", ["C1"]),
    ("mirakl", "payout_lines", ["L1"]),
]


@pytest.mark.parametrize(("target", "entity", "keys"), LENS_CASES, ids=[f"{t}-{e}" for t, e, _ in LENS_CASES])
def test_a_lens_reads_no_snapshot_but_those_it_declares(tmp_path, target, entity, keys):
    """What a population declares it reads is what lets a run forget a snapshot after its last reader: a
    lens reading more would find it gone and read it out of the store again."""
    store, run, cfg = _history_run(tmp_path)
    with store:
        snaps = RunSnapshots(store, run)
        asked: list[tuple[str, str]] = []
        read = snaps.frame
        snaps.frame = lambda source, wanted: asked.append((source, wanted)) or read(source, wanted)
        population(snaps, cfg, "bluecherry", target, entity, pl.Series(keys))
    assert asked
    assert set(asked) <= set(population_reads(population_key("bluecherry", target, entity, pl.Series(keys))))


def test_a_snapshot_is_read_once_and_forgotten_after_the_last_population_reading_it(tmp_path, monkeypatch):
    store, run, cfg = _history_run(tmp_path)
    with store:
        reads: list[tuple[str, str]] = []
        rows = store.rows
        monkeypatch.setattr(
            store, "rows", lambda info, columns: reads.append((info.source, info.entity)) or rows(info, columns)
        )
        snaps = RunSnapshots(store, run)
        skus = pl.Series(["00100-010-S"])
        mirakl, klaviyo = (population_key("bluecherry", t, "inventory", skus) for t in ("mirakl", "klaviyo"))
        snaps.plan([mirakl, klaviyo])
        stock = ("bluecherry", "inventory")
        derived = snaps.derived(("from stock",), lambda: pl.DataFrame({"n": [1]}), (stock,))

        def build(target: str, key: tuple) -> None:
            snaps.shared(key, lambda: population(snaps, cfg, "bluecherry", target, "inventory", skus), uses=1)

        build("mirakl", mirakl)
        # The ERP's stock, read by both, is kept for klaviyo; mirakl's own stock, read by nobody else, is not.
        assert snaps.derived(("from stock",), lambda: pl.DataFrame({"n": [2]}), (stock,)) is derived
        snaps.frame("mirakl", "inventory")
        assert reads.count(("mirakl", "inventory")) == 2 and reads.count(stock) == 1
        build("klaviyo", klaviyo)
        assert reads.count(stock) == 1
        # After its last reader, the ERP's stock and what was derived from it are gone.
        assert snaps.derived(("from stock",), lambda: pl.DataFrame({"n": [2]}), (stock,))["n"].to_list() == [2]
        snaps.frame(*stock)
        assert reads.count(stock) == 2


# -- generated histories ------------------------------------------------------------------------------


def audited(tmp_path, history: History):
    store = audit_history(history, tmp_path / "history.duckdb")
    run = latest_run_id(store)
    return store, run, run_incidents(store, run), incident_members(store, run)


def covered_keys(store, run: str, members: pl.DataFrame, incident_id: str) -> set[tuple[str, str, str]]:
    fingerprints = members.filter(pl.col("incident_id") == incident_id)["fingerprint"].to_list()
    rows = store.frame(
        "SELECT check_id, target, key FROM findings WHERE run_id = ? AND list_contains(?, fingerprint)",
        [run, fingerprints],
    )
    return set(rows.rows())


def test_a_location_dropped_from_a_feed_is_one_incident_naming_it(tmp_path):
    history = History(nights=3, drop_location=("mirakl", "WH-RET", 1))
    store, run, incidents, members = audited(tmp_path, history)
    [incident] = incidents.filter(pl.col("status") != "resolved").to_dicts()
    assert (incident["check_id"], incident["target"], incident["attribute"], incident["value"]) == (
        "stock_parity",
        "mirakl",
        "location",
        "WH-RET",
    )
    n = len(history.injected)
    noise = {k for k in history.noisy if k[:2] == ("stock_parity", "mirakl")}
    assert noise and noise <= open_keys(store, run) and not noise & history.injected
    total = n + len(noise)
    assert incident["cause"] == f"{n} of {total} stock figures are in location WH-RET, which feeds mirakl in the ERP"
    assert covered_keys(store, run, members, incident["incident_id"]) == history.injected
    assert incident["owner"] == "ecommerce-ops"
    assert incident["money"] == [{"currency": "EUR", "amount": pytest.approx(incident["money"][0]["amount"])}]
    assert f"Records without it: {len(noise)} of" in incident["explanation"]  # the noisy SKUs, left out


def test_an_unmapped_status_is_one_incident_naming_the_code(tmp_path):
    history = History(nights=3, unmapped_status=("ometria", "91", 1))
    store, run, incidents, members = audited(tmp_path, history)
    [incident] = incidents.filter(pl.col("status") != "resolved").to_dicts()
    assert (incident["check_id"], incident["target"], incident["attribute"], incident["value"]) == (
        "order_status_drift",
        "ometria",
        "status",
        "91",
    )
    assert "have status 91 (cancelled) in the ERP" in incident["cause"]
    assert covered_keys(store, run, members, incident["incident_id"]) == history.injected


def test_a_stopped_job_is_named_by_when_the_target_stopped_changing(tmp_path):
    history = History(nights=3, stopped_job=("klaviyo", 1))
    store, run, incidents, members = audited(tmp_path, history)
    [incident] = incidents.filter(pl.col("status") != "resolved").to_dicts()
    assert (incident["check_id"], incident["target"], incident["attribute"]) == ("stock_parity", "klaviyo", "stalled")
    assert incident["cause"].startswith(f"every klaviyo stock figure stopped changing after {incident['value']}")
    assert incident["value"] == "2026-11-01 23:30"  # the last ERP change klaviyo took, 30 minutes later
    assert covered_keys(store, run, members, incident["incident_id"]) == history.injected


def test_a_clean_history_has_no_incident(tmp_path):
    store, run, incidents, members = audited(tmp_path, History(nights=4))
    assert incidents.height == 0 and members.height == 0
    assert open_keys(store, run)  # the noise is there, on its own


def test_an_incident_keeps_its_identity_across_runs_and_follows_the_lifecycle(tmp_path):
    history = History(nights=6, drop_location=("mirakl", "WH-RET", 1), fixed_on=3, again_on=5)
    store = audit_history(history, tmp_path / "history.duckdb")
    runs = store.frame("SELECT run_id FROM audit_runs ORDER BY started_at")["run_id"].to_list()
    seen = [run_incidents(store, run).select("incident_id", "status").rows() for run in runs]
    assert seen[0] == []  # the first night is clean
    ids = {iid for rows in seen for iid, _ in rows}
    assert len(ids) == 1  # one identity throughout: the cause
    statuses = [rows[0][1] if rows else None for rows in seen[1:]]
    assert statuses[0] == "new" and statuses[1] in ("ongoing", "worsened")
    assert statuses[2:] == ["resolved", None, "regressed"]
