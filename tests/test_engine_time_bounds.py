"""A target is only expected to hold what existed in the system of record before the target's own
captured_at (and the ERP only what existed before its own): an order placed, a change, a refund or an
opt-out recorded after a snapshot is not drift on that snapshot, in every check."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import polars as pl
from engine_frames import CAPTURED, audited, snapshot

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# The platform's snapshot was taken the evening before the ERP's.
EVENING = CAPTURED - 2 * HOUR - 15 * timedelta(minutes=1)


def _orders_feeds(target: str = "ometria") -> list[dict]:
    return [{"source": "bluecherry", "target": target, "entities": ["orders", "order_lines", "events"]}]


def test_an_order_placed_after_the_targets_capture_is_not_missing_there(tmp_path):
    snapshots = [
        snapshot("bluecherry", "orders", order_id=["SO1", "SO2"], channel=["web"] * 2,
                 placed_at=[EVENING - 3 * HOUR, EVENING + 40 * timedelta(minutes=1)]),
        snapshot("ometria", "orders", EVENING, order_id=["SO0"], placed_at=[EVENING - DAY]),
    ]  # fmt: skip
    result = audited(tmp_path, snapshots, _orders_feeds(), checks=["order_presence"])
    # SO1 was placed before Ometria's capture and is missing; SO2 came 40 minutes after it. SO0 is a
    # lost order (placed before the ERP's capture, not in the ERP).
    assert result.rows("key", "expected", "actual") == [("SO0", "absent", "present"), ("SO1", "present", "absent")]


def test_an_order_a_target_took_after_the_erps_capture_is_not_lost(tmp_path):
    snapshots = [
        snapshot("bluecherry", "orders", EVENING, order_id=["SO1"], channel=["web"], placed_at=[EVENING - DAY]),
        snapshot("ometria", "orders", order_id=["SO1", "SO2"], status=["shipped", "shipped"],
                 placed_at=[EVENING - DAY, EVENING + HOUR]),
    ]  # fmt: skip
    result = audited(tmp_path, snapshots, _orders_feeds(), checks=["order_presence"])
    assert result.rows() == []


def test_status_and_value_changed_after_the_targets_capture_are_not_compared(tmp_path):
    snapshots = [
        snapshot("bluecherry", "orders", order_id=["SO1", "SO2"], channel=["web"] * 2,
                 status=["cancelled", "cancelled"], placed_at=[EVENING - 2 * DAY] * 2,
                 updated_at=[EVENING + HOUR, EVENING - HOUR], total=[Decimal("10.00"), Decimal("20.00")]),
        snapshot("ometria", "orders", EVENING, order_id=["SO1", "SO2"], status=["pending", "pending"],
                 total=[Decimal("12.00"), Decimal("20.00")]),
    ]  # fmt: skip
    result = audited(tmp_path, snapshots, _orders_feeds(), checks=["order_status_drift", "order_value_drift"])
    # SO1 was cancelled (and amended) after Ometria's snapshot: Ometria could not know. SO2 was not.
    assert result.rows("check_id", "key", "field") == [("order_status_drift", "SO2", "status")]


def test_lifetime_value_counts_orders_and_refunds_the_target_could_know(tmp_path):
    feeds = [{"source": "bluecherry", "target": "klaviyo", "entities": ["customers"]}]
    snapshots = [
        snapshot("bluecherry", "customers", customer_id=["C1", "C2"], email=["a@x.io", "b@x.io"]),
        snapshot("bluecherry", "orders", order_id=["SO1", "SO2", "SO3"], customer_id=["C1", "C1", "C2"],
                 status=["shipped"] * 3, placed_at=[EVENING - 5 * DAY, EVENING + HOUR, EVENING - 5 * DAY],
                 total=[Decimal("100.00"), Decimal("40.00"), Decimal("60.00")]),
        snapshot("bluecherry", "returns", return_id=["R1"], order_id=["SO3"], sku=["S1"], qty=[1],
                 amount=[Decimal("60.00")], status=["refunded"], processed_at=[EVENING + HOUR]),
        snapshot("klaviyo", "customers", EVENING, customer_id=["K1", "K2"], erp_customer_id=["C1", "C2"],
                 email=["a@x.io", "b@x.io"], lifetime_value=[Decimal("100.00"), Decimal("60.00")],
                 order_count=[1, 1], last_order_at=[EVENING - 5 * DAY] * 2),
    ]  # fmt: skip
    result = audited(tmp_path, snapshots, feeds, checks=["ltv_after_refunds"])
    # At Klaviyo's capture C1 had one order (100.00) and C2's refund had not happened.
    assert result.rows() == []


def test_an_opt_out_recorded_after_the_targets_capture_is_not_drift_there(tmp_path):
    feeds = [{"source": "bluecherry", "target": "klaviyo", "entities": ["customers"]}]
    snapshots = [
        snapshot("bluecherry", "customers", customer_id=["C1", "C2"], email=["a@x.io", "b@x.io"],
                 email_consent=[False, False], consent_updated_at=[EVENING + HOUR, EVENING - HOUR]),
        snapshot("klaviyo", "customers", EVENING, customer_id=["K1", "K2"], erp_customer_id=["C1", "C2"],
                 email=["a@x.io", "b@x.io"], email_consent=[True, True]),
    ]  # fmt: skip
    result = audited(tmp_path, snapshots, feeds, checks=["consent_parity"])
    assert result.rows("key", "severity") == [("C2", "critical")]


def test_stock_a_target_changed_after_the_erps_capture_is_not_compared(tmp_path):
    """Klaviyo captured after the ERP: a figure it changed since may carry what the ERP did since. The ERP's
    own export dates (the day of the export) say nothing of when a figure changed: they bound nothing."""
    feeds = [{"source": "bluecherry", "target": "klaviyo", "entities": ["inventory"]}]
    snapshots = [
        snapshot("bluecherry", "inventory", EVENING, sku=["S1", "S2", "S3"], location=["W1"] * 3, on_hand=[9, 9, 9],
                 updated_at=[EVENING + DAY] * 3),
        snapshot("klaviyo", "inventory", sku=["S1", "S2", "S3"], location=["*"] * 3, available=[4, 4, 9],
                 updated_at=[EVENING + HOUR, EVENING - HOUR, EVENING - HOUR]),
    ]  # fmt: skip
    result = audited(tmp_path, snapshots, feeds, checks=["stock_parity"])
    assert result.rows("key", "expected", "actual") == [("S2", "9", "4")]


def test_a_fulfilment_event_after_the_erps_capture_is_not_early(tmp_path):
    """Klaviyo captured after the ERP: a dispatch the ERP recorded after its own capture is not in its
    snapshot, so an event sent after that capture cannot be judged early; one sent before it can."""
    feeds = [{"source": "bluecherry", "target": "klaviyo", "entities": ["events"]}]
    snapshots = [
        snapshot("bluecherry", "orders", EVENING, order_id=["SO1", "SO2"], channel=["web"] * 2,
                 status=["accepted"] * 2, placed_at=[EVENING - DAY] * 2, updated_at=[EVENING - DAY] * 2),
        snapshot("bluecherry", "shipments", EVENING, shipment_id=["X"], order_id=["SO0"],
                 shipped_at=[EVENING - DAY]),
        snapshot("klaviyo", "events", event_id=["E1", "E2", "E3", "E4"], order_id=["SO1", "SO1", "SO2", "SO2"],
                 metric=["order_placed", "order_fulfilled"] * 2,
                 occurred_at=[EVENING - DAY, EVENING + HOUR, EVENING - DAY, EVENING - HOUR]),
    ]  # fmt: skip
    result = audited(tmp_path, snapshots, feeds, checks=["fulfilment_events"])
    assert result.rows("key", "severity") == [("SO2", "critical")]


def test_a_stock_line_at_zero_where_the_other_side_has_no_record_is_no_finding(tmp_path):
    feeds = [{"source": "bluecherry", "target": "ometria", "entities": ["inventory"]}]
    snapshots = [
        snapshot("bluecherry", "inventory", sku=["S1", "S2"], location=["W1", "W2"], on_hand=[3, 2],
                 allocated=[3, 0]),
        snapshot("ometria", "inventory", sku=["S2", "S3", "S4"], location=["W2", "W1", "W1"],
                 available=[2, 0, -1]),
    ]  # fmt: skip
    result = audited(tmp_path, snapshots, feeds, checks=["stock_parity"])
    # S1/W1: ERP 0 free, no Ometria record; S3/W1: Ometria 0, no ERP record: 0 either way. S4 publishes a
    # negative figure the ERP has no record for: reported, low.
    assert result.rows("key", "actual", "severity") == [("S4/W1", "-1", "low")]
    assert result.findings.filter(pl.col("key") == "S4/W1")["severity"].item() == "low"
