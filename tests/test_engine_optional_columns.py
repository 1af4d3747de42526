"""Every non-key column is optional. A check that needs a column a snapshot does not hold says so once, in
a note stored with the run, and runs for every other feed; an absent column with a documented default
counts as it; a field no record of a side holds is one that side does not sync, and is not compared; a
record without a field that others hold is reported as missing, not as 0."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import polars as pl
import tomli_w
from click.testing import CliRunner
from engine_frames import CAPTURED, audited, snapshot

from driftwatch.cli import audit as audit_cli
from driftwatch.cli import cli
from driftwatch.config import parse_config
from driftwatch.engine import latest_run_id, run_notes
from driftwatch.report.build import build_report, report_settings
from driftwatch.store import Store

DAY = timedelta(days=1)
ORDER_FEEDS = [
    {"source": "bluecherry", "target": "mirakl", "entities": ["orders"]},
    {"source": "bluecherry", "target": "ometria", "entities": ["orders"]},
]


def erp_orders(**extra) -> dict:
    columns = {
        "order_id": ["SO1", "SO2", "SO3"],
        "channel": ["web", "web", "mirakl"],
        "status": ["shipped", "shipped", "shipped"],
        "placed_at": [CAPTURED - 3 * DAY] * 3,
        "total": [Decimal("10.00"), Decimal("20.00"), Decimal("30.00")],
    }
    return {**columns, **extra}


def test_erp_orders_without_external_id_skip_the_marketplace_with_a_note_and_audit_the_rest(tmp_path):
    result = audited(
        tmp_path,
        [
            snapshot("bluecherry", "orders", **erp_orders(currency=["GBP"] * 3)),
            snapshot("mirakl", "orders", order_id=["SO3"], external_id=["M3"], status=["SHIPPED"]),
            snapshot(
                "ometria",
                "orders",
                order_id=["SO1"],
                status=["shipped"],
                total=[Decimal("10.00")],
                currency=["GBP"],
                placed_at=[CAPTURED - 3 * DAY],
            ),
        ],
        ORDER_FEEDS,
        checks=["order_presence", "order_status_drift", "order_value_drift"],
    )
    # The marketplace is matched on the order id it gave, which the ERP's orders do not hold.
    assert result.rows("check_id", "target", "key") == [("order_presence", "ometria", "SO2")]
    assert set(result.messages()) >= {
        f"{check} cannot run for mirakl: the bluecherry orders snapshot holds no external_id"
        for check in ("order_presence", "order_status_drift", "order_value_drift")
    }
    assert result.notes.filter(pl.col("target") == "ometria").height == 0


def test_a_column_no_record_fills_is_the_same_as_an_absent_one(tmp_path):
    empty = pl.Series([None, None, None], dtype=pl.String)
    result = audited(
        tmp_path,
        [snapshot("bluecherry", "orders", **erp_orders(external_id=empty)), snapshot("mirakl", "orders",
                  order_id=["SO3"], external_id=["M3"], status=["SHIPPED"])],
        ORDER_FEEDS[:1],
        checks=["order_presence"],
    )  # fmt: skip
    assert result.rows() == []
    assert result.messages() == [
        "order_presence cannot run for mirakl: the bluecherry orders snapshot holds no external_id"
    ]


def test_absent_safety_stock_and_allocated_count_as_zero_and_say_so(tmp_path):
    feeds = [{"source": "bluecherry", "target": "klaviyo", "entities": ["inventory"]}]
    result = audited(
        tmp_path,
        [
            snapshot("bluecherry", "inventory", sku=["S1", "S2"], location=["W1", "W1"], on_hand=[5, 2]),
            snapshot("klaviyo", "inventory", sku=["S1", "S2"], location=["*", "*"], available=[5, 1]),
        ],
        feeds,
        checks=["stock_parity"],
    )
    assert result.rows() == [("stock_parity", "klaviyo", "S2", "available", "2", "1")]
    assert sorted(result.messages()) == [
        "stock_parity on klaviyo: the bluecherry inventory snapshot holds no allocated, so it counts as 0",
        "stock_parity on klaviyo: the bluecherry inventory snapshot holds no safety_stock, so it counts as 0",
    ]


def test_erp_inventory_without_on_hand_cannot_be_audited_for_stock(tmp_path):
    feeds = [{"source": "bluecherry", "target": "klaviyo", "entities": ["inventory"]}]
    result = audited(
        tmp_path,
        [
            snapshot("bluecherry", "inventory", sku=["S1"], location=["W1"], available=[3]),
            snapshot("klaviyo", "inventory", sku=["S1"], location=["*"], available=[5]),
        ],
        feeds,
        checks=["stock_parity", "ats_inflation"],
    )
    assert result.rows() == []
    assert sorted(result.messages()) == [
        "ats_inflation cannot run for bluecherry: the bluecherry inventory snapshot holds no on_hand",
        "stock_parity cannot run for klaviyo: the bluecherry inventory snapshot holds no on_hand",
    ]


def _customer_value_snapshots(**profile_values) -> list:
    placed = [CAPTURED - 5 * DAY, CAPTURED - 4 * DAY]
    return [
        snapshot("bluecherry", "customers", customer_id=["C1", "C2", "C3"], email=["a@x.io", "b@x.io", "c@x.io"]),
        snapshot("bluecherry", "orders", order_id=["SO1", "SO2"], customer_id=["C1", "C2"], status=["shipped"] * 2,
                 placed_at=placed, total=[Decimal("120.00"), Decimal("80.00")]),
        snapshot("klaviyo", "customers", customer_id=["K1", "K2", "K3"], erp_customer_id=["C1", "C2", "C3"],
                 email=["a@x.io", "b@x.io", "c@x.io"], **profile_values),
    ]  # fmt: skip


LTV_FEEDS = [{"source": "bluecherry", "target": "klaviyo", "entities": ["customers"]}]


def test_a_figure_no_profile_holds_is_not_compared_and_not_read_as_zero(tmp_path):
    """The Klaviyo connector emits lifetime_value, order_count and last_order_at for every profile, null
    where no custom property holds them: no customer is worth 0.00 for it."""
    nothing = {
        "lifetime_value": pl.Series([None] * 3, dtype=pl.Decimal(18, 4)),
        "order_count": pl.Series([None] * 3, dtype=pl.Int64),
        "last_order_at": pl.Series([None] * 3, dtype=pl.Datetime("us", "UTC")),
    }
    result = audited(tmp_path, _customer_value_snapshots(**nothing), LTV_FEEDS, checks=["ltv_after_refunds"])
    assert result.rows() == []
    assert sorted(result.messages()) == [
        f"ltv_after_refunds on klaviyo: the klaviyo customers snapshot holds no {field} in any record, "
        f"so {field} is not compared"
        for field in ("last_order_at", "lifetime_value", "order_count")
    ]


def test_a_profile_without_a_figure_others_hold_is_missing_not_zero(tmp_path):
    values = {"lifetime_value": pl.Series([Decimal("120.00"), None, None], dtype=pl.Decimal(18, 4))}
    result = audited(tmp_path, _customer_value_snapshots(**values), LTV_FEEDS, checks=["ltv_after_refunds"])
    # C2 is worth 80.00 in the ERP and has no value on Klaviyo; C3 has no orders, so no value agrees with 0.
    found = result.findings.select("key", "field", "expected", "actual", "message").rows()
    assert found == [
        ("C2", "lifetime_value", "80.00", None, "customer C2 has no lifetime value on klaviyo; the ERP's is 80.00 net")
    ]


def test_a_target_without_returned_quantities_skips_returns_sync_with_a_note(tmp_path):
    feeds = [{"source": "bluecherry", "target": "ometria", "entities": ["orders", "order_lines"]}]
    snapshots = [
        snapshot("bluecherry", "orders", order_id=["SO1"], channel=["web"], placed_at=[CAPTURED - 9 * DAY]),
        snapshot("bluecherry", "returns", return_id=["R1"], order_id=["SO1"], sku=["S1"], qty=[1],
                 status=["refunded"], processed_at=[CAPTURED - 5 * DAY]),
        snapshot("ometria", "orders", order_id=["SO1"]),
        snapshot("ometria", "order_lines", order_id=["SO1"], line_no=[1], sku=["S1"], qty_ordered=[1]),
    ]  # fmt: skip
    result = audited(tmp_path, snapshots, feeds, checks=["returns_sync"])
    assert result.rows() == []
    assert result.messages() == [
        "returns_sync cannot run for ometria: the ometria order_lines snapshot holds no qty_returned"
    ]


def test_erp_orders_without_channels_are_all_expected_on_a_marketing_platform(tmp_path):
    result = audited(
        tmp_path,
        [
            snapshot("bluecherry", "orders", order_id=["SO1", "SO2"], placed_at=[CAPTURED - 3 * DAY] * 2),
            snapshot("ometria", "orders", order_id=["SO1"], placed_at=[CAPTURED - 3 * DAY]),
        ],
        ORDER_FEEDS[1:],
        checks=["order_presence"],
    )
    assert result.rows("key") == [("SO2",)]
    assert result.messages() == [
        "order_presence on ometria: the bluecherry orders snapshot holds no channel, "
        "so every order counts as meant for this target"
    ]


def test_notes_are_stored_with_the_run_and_printed_by_audit_findings_and_the_report(tmp_path):
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest([snapshot("bluecherry", "orders", **erp_orders()),
                      snapshot("mirakl", "orders", order_id=["SO3"], external_id=["M3"])])  # fmt: skip
    config = tmp_path / "driftwatch.toml"
    config.write_text(tomli_w.dumps({"feeds": ORDER_FEEDS[:1], "report": {"out_dir": "reports"}}))
    base = ["--config", str(config), "--db", str(tmp_path / "s.duckdb")]
    if "audit" not in cli.commands:
        audit_cli.register(cli)
    runner = CliRunner()
    table = runner.invoke(cli, [*base, "audit", "--check", "order_presence"], catch_exceptions=False)
    note = "info: order_presence cannot run for mirakl: the bluecherry orders snapshot holds no external_id"
    assert table.exit_code == 0 and note in table.stdout
    listed = runner.invoke(cli, [*base, "findings", "--format", "json"], catch_exceptions=False)
    assert json.loads(listed.stdout) == [] and note in listed.stderr  # stdout stays JSON for scripts
    with Store(tmp_path / "s.duckdb") as store:
        stored = run_notes(store, latest_run_id(store))
        report = build_report(store, report_settings(parse_config({}, config))).read_text(encoding="utf-8")
    assert stored.select("check_id", "target", "source", "entity", "column", "kind").rows() == [
        ("order_presence", "mirakl", "bluecherry", "orders", "external_id", "skipped")
    ]
    assert "Not checked in this run" in report and "the bluecherry orders snapshot holds no external_id" in report
