"""The findings lifecycle on a real store: an acknowledgement covers the values it was given for, a mute
hides whatever happens until its date, each open finding knows since when, and comparisons of two
sightings (worse, changed, neither) on small hand-built findings."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import polars as pl
import pytest
from helpers_alerts import day, finding

from driftwatch.engine.findings import (
    FINDING_COLUMNS,
    FINDING_SCHEMA,
    acknowledge,
    change_since,
    findings,
    open_since,
    record_run,
    with_gap,
)
from driftwatch.store import Store

CHECKS = ["stock_parity", "order_status_drift"]


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "driftwatch.duckdb") as opened:
        yield opened


def audit(store: Store, n: int, rows: list[dict]) -> pl.DataFrame:
    frame = pl.DataFrame([{c: r[c] for c in FINDING_COLUMNS} for r in rows], schema=FINDING_SCHEMA)
    run_id = record_run(store, frame, checks=CHECKS, snapshot_ids=[], trusted=True, started_at=day(n))
    return findings(store, run_id)


def stock(actual: str, impact: str, severity: str = "critical") -> dict:
    return finding(
        "stock_parity", "klaviyo", "SKU-1", field="available", expected="0", actual=actual, impact=impact,
        severity=severity,
    )  # fmt: skip


def status(actual: str) -> dict:
    return finding(
        "order_status_drift", "mirakl", "SO-1", field="status", expected="cancelled", actual=actual, impact="437.70"
    )


def flags(found: pl.DataFrame, key: str) -> tuple[bool, bool]:
    row = found.filter(pl.col("key") == key).row(0, named=True)
    return row["acknowledged"], row["muted"]


def test_an_acknowledgement_covers_what_was_acknowledged_and_no_worse(store):
    first = audit(store, 1, [stock("6", "359.40"), status("accepted")])
    for fingerprint in first["fingerprint"]:
        acknowledge(store, fingerprint, note="supplier fix due")

    same = audit(store, 2, [stock("6", "359.40"), status("accepted")])
    assert flags(same, "SKU-1") == (True, False) and flags(same, "SO-1") == (True, False)

    better = audit(store, 3, [stock("4", "239.60"), status("accepted")])
    assert flags(better, "SKU-1") == (True, False)

    # Four times the money at risk, and the cancelled order moved on to shipped: neither is what was acknowledged.
    worse = audit(store, 4, [stock("24", "1437.60"), status("shipped")])
    assert flags(worse, "SKU-1") == (False, False) and flags(worse, "SO-1") == (False, False)
    assert worse["ack_outgrown"].to_list() == [True, True]

    # Back to what was acknowledged: covered again.
    back = audit(store, 5, [stock("6", "359.40"), status("accepted")])
    assert flags(back, "SKU-1") == (True, False) and flags(back, "SO-1") == (True, False)
    assert not back["ack_outgrown"].any()


def test_a_new_acknowledgement_covers_the_values_of_its_day(store):
    audit(store, 1, [stock("6", "359.40")])
    fingerprint = audit(store, 2, [stock("24", "1437.60")])["fingerprint"].item()
    acknowledge(store, fingerprint)
    assert flags(audit(store, 3, [stock("24", "1437.60")]), "SKU-1") == (True, False)


def test_a_mute_hides_the_finding_whatever_it_does_until_its_date(store):
    first = audit(store, 1, [stock("6", "359.40"), status("accepted")])
    by_key = dict(zip(first["key"], first["fingerprint"], strict=True))
    acknowledge(store, by_key["SKU-1"], mute=True, until=date.today())
    acknowledge(store, by_key["SO-1"], mute=True, until=date.today() - timedelta(days=1))
    later = audit(store, 2, [stock("60", "3594.00"), status("shipped")])
    assert flags(later, "SKU-1") == (False, True)
    assert flags(later, "SO-1") == (False, False)


def test_an_acknowledgement_with_a_past_date_covers_nothing(store):
    fingerprint = audit(store, 1, [stock("6", "359.40")])["fingerprint"].item()
    acknowledge(store, fingerprint, until=date.today() - timedelta(days=1))
    assert flags(audit(store, 2, [stock("6", "359.40")]), "SKU-1") == (False, False)


def test_open_since_is_the_start_of_the_current_spell(store):
    audit(store, 1, [stock("6", "359.40"), status("accepted")])
    audit(store, 2, [stock("6", "359.40")])  # SO-1 resolved
    run = audit(store, 3, [stock("6", "359.40"), status("accepted")])  # SO-1 back
    since = open_since(store, run["run_id"][0])
    by_key = dict(zip(run["fingerprint"], run["key"], strict=True))
    spells = {by_key[f]: (s, st) for f, s, st in since.iter_rows()}
    assert spells == {"SKU-1": (day(1), "new"), "SO-1": (day(3), "regressed")}


def compare(before: dict, now: dict) -> str | None:
    frame = pl.DataFrame(
        [{**{f"{k}_was": v for k, v in before.items()}, **now}],
        schema={
            "severity": pl.String, "impact": pl.Decimal(18, 4), "expected": pl.String, "actual": pl.String,
            "severity_was": pl.String, "impact_was": pl.Decimal(18, 4), "expected_was": pl.String,
            "actual_was": pl.String,
        },
    )  # fmt: skip
    return with_gap(with_gap(frame), "_was").select(change_since("_was")).item()


def side(actual: str | None, expected: str | None = "0", severity: str = "high", impact: str | None = None) -> dict:
    return {"severity": severity, "impact": Decimal(impact) if impact else None, "expected": expected, "actual": actual}


@pytest.mark.parametrize(
    ("before", "now", "expected"),
    [
        (side("4"), side("6"), "worse"),  # a wider gap
        (side("6"), side("4"), None),  # narrower
        (side("6", expected="10"), side("8", expected="12"), None),  # both sides moved, same gap
        (side("6", expected="4"), side("4", expected="6"), "changed"),  # oversold became hidden stock
        (side("accepted", "cancelled"), side("shipped", "cancelled"), "changed"),  # status only
        (side("accepted", "cancelled"), side("accepted", "refunded"), None),  # the ERP's side alone moved
        (side(None, "2026-10-15T03:09:23Z"), side("2026-10-16T03:09:23Z", "2026-10-15T03:09:23Z"), "changed"),
        (side("true", "false", "medium"), side("true", "false", "critical"), "worse"),
        (side("true", "false", impact="10"), side("true", "false", impact="40"), "worse"),
        (side("true", "false"), side("true", "false", impact="40"), "worse"),  # money at risk appeared
        (side("true", "false", impact="-40"), side("true", "false", impact="10"), None),
        (side("-13.31", "-16.64"), side("-13.31", "-16.64"), None),
    ],
)
def test_two_sightings_compare_as_worse_changed_or_neither(before, now, expected):
    assert compare(before, now) == expected


def test_acknowledgements_made_before_values_were_kept_cover_their_last_sighting(tmp_path):
    path = tmp_path / "old.duckdb"
    with Store(path) as store:
        audit(store, 1, [stock("6", "359.40")])
        fingerprint = audit(store, 2, [stock("8", "479.20")])["fingerprint"].item()
        # The store as it was before acknowledgements kept values: an acknowledgement of the day-two finding.
        store.query("DELETE FROM schema_migrations WHERE version = 110")
        for column in ("severity", "impact", "expected", "actual"):
            store.query(f"ALTER TABLE finding_acks DROP COLUMN {column}")
        acked_at = day(2) + timedelta(hours=1)
        store.query("INSERT INTO finding_acks VALUES (?, 'ack', NULL, ?, NULL)", [fingerprint, acked_at])
    with Store(path) as store:
        store.migrate()
        kept = store.query("SELECT severity, impact, expected, actual FROM finding_acks").fetchall()
        assert kept == [("critical", Decimal("479.2000"), "0", "8")]
        assert flags(audit(store, 3, [stock("8", "479.20")]), "SKU-1") == (True, False)
        assert flags(audit(store, 4, [stock("9", "539.10")]), "SKU-1") == (False, False)
