"""Money is equal within one minor unit of its own currency (0.01 GBP, 1 JPY, 0.001 KWD) unless the
configuration says otherwise, per check, per target and per currency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest

from driftwatch.config import parse_config
from driftwatch.engine import audit
from driftwatch.money import MoneyTolerance
from driftwatch.store import IncomingSnapshot, Store

CAPTURED = datetime(2026, 11, 23, 2, tzinfo=UTC)
# Order -> (currency, ERP total, Ometria's total): each off by a little, in its own currency's terms.
ORDERS = {
    "G1": ("GBP", "10.00", "10.01"),  # one minor unit: equal
    "G2": ("GBP", "10.00", "10.03"),
    "J1": ("JPY", "1000", "1001"),  # one minor unit: equal
    "J2": ("JPY", "1000", "1003"),
    "K1": ("KWD", "5.000", "5.001"),  # one minor unit: equal
    "K2": ("KWD", "5.000", "5.004"),  # under the old flat 0.01, this was hidden
}


def orders(side: int) -> pl.DataFrame:
    placed = CAPTURED - timedelta(days=2)
    return pl.DataFrame(
        {
            "order_id": list(ORDERS),
            "channel": ["web"] * len(ORDERS),
            "status": ["shipped"] * len(ORDERS),
            "placed_at": [placed] * len(ORDERS),
            "currency": [c for c, *_ in ORDERS.values()],
            "total": [Decimal(values[side]) for values in ORDERS.values()],
        },
        schema_overrides={"total": pl.Decimal(18, 4)},
    )


def drifted(tmp_path, checks: dict | None = None) -> set[str]:
    cfg = parse_config(
        {"feeds": [{"source": "bluecherry", "target": "ometria", "entities": ["orders"]}], "checks": checks or {}}
    )
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest([IncomingSnapshot("bluecherry", "orders", CAPTURED, orders(1)),
                      IncomingSnapshot("ometria", "orders", CAPTURED, orders(2))])  # fmt: skip
        found = audit(store, cfg, checks=["order_value_drift"]).findings
    return set(found.filter(pl.col("check_id") == "order_value_drift")["key"])


def test_by_default_one_minor_unit_of_each_currency_is_equal(tmp_path):
    assert drifted(tmp_path) == {"G2", "J2", "K2"}


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        # Per currency: five yen is nothing; the other currencies keep their minor unit.
        ({"order_value_drift": {"money_tolerance": {"JPY": "5"}}}, {"G2", "K2"}),
        # One amount for every currency: 0.05 swallows the GBP and KWD differences, and is finer than a yen.
        ({"order_value_drift": {"money_tolerance": 0.05}}, {"J1", "J2"}),
        # A default for the currencies not named.
        ({"order_value_drift": {"money_tolerance": {"default": "0.05", "JPY": "2"}}}, {"J2"}),
        # Per target: Ometria's own setting adds to the check's, currency by currency...
        ({"order_value_drift": {"money_tolerance": {"JPY": "5"},
                                "targets": {"ometria": {"money_tolerance": {"GBP": "0.05"}}}}}, {"K2"}),
        # ...and a single amount for the target replaces the check's per-currency amounts.
        ({"order_value_drift": {"money_tolerance": {"JPY": "5"}, "targets": {"ometria": {"money_tolerance": "0"}}}},
         {"G1", "G2", "J1", "J2", "K1", "K2"}),
        # Another target's setting does not touch Ometria.
        ({"order_value_drift": {"targets": {"klaviyo": {"money_tolerance": "100"}}}}, {"G2", "J2", "K2"}),
    ],
)  # fmt: skip
def test_tolerance_set_per_check_target_and_currency(tmp_path, checks, expected):
    assert drifted(tmp_path, checks) == expected


def test_a_tolerance_reads_as_its_currency_says():
    tolerance = MoneyTolerance.parse({"jpy": 5, "default": "0.02"})
    assert (tolerance.of("JPY"), tolerance.of(" jpy "), tolerance.of("GBP")) == (
        Decimal(5),
        Decimal(5),
        Decimal("0.02"),
    )
    plain = MoneyTolerance.parse({})
    assert (plain.of("GBP"), plain.of("JPY"), plain.of("KWD"), plain.of(None)) == (
        Decimal("0.01"), Decimal(1), Decimal("0.001"), Decimal("0.01"))  # fmt: skip
    assert MoneyTolerance.parse(0.1).of("JPY") == Decimal("0.1")  # a float from TOML is read exactly
    for bad, words in (({"JYP": 5}, "did you mean JPY"), ("-1", "at least 0"), (True, "not an amount")):
        with pytest.raises(ValueError, match=words):
            MoneyTolerance.parse(bad)
