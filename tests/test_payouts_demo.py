"""Payout reconciliation on the demo retailer: clean data reconciles, every injected payout fault is found."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import polars as pl
import pytest

from driftwatch.config import Config, parse_config
from driftwatch.demo.generator import generate
from driftwatch.demo.run import demo_config as demo_tables
from driftwatch.filedrop import load_directory
from driftwatch.payouts import Reconciliation, reconcile
from driftwatch.store import Store

SOURCES = ("bluecherry", "mirakl")  # all a payout reconciliation reads


def demo_config(drop: Path) -> Config:
    """The demo's own status codes and agreed commission, as a finance team would configure them."""
    return parse_config(demo_tables(drop))


def reconciled_months(tmp: Path, *, drift: bool) -> tuple[dict[str, Reconciliation], Path]:
    """Every month that has a payment, reconciled, from a generated retailer."""
    generated = tmp / "generated"
    generate(generated, seed=7, scale=1, drift=drift)
    drop = tmp / "drop"
    for source in SOURCES:
        shutil.copytree(generated / source, drop / source)
    cfg = demo_config(drop)
    payments = pl.read_csv(drop / "mirakl" / "payout_lines.csv", infer_schema=False).filter(
        pl.col("line_type") == "payment"
    )
    months = sorted({date[:7] for date in payments["transaction_date"]})
    with Store(tmp / "driftwatch.duckdb") as store:
        load_directory(store, drop, cfg)
        return {month: reconcile(store, cfg, month) for month in months}, generated


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Reconciliation]:
    return reconciled_months(tmp_path_factory.mktemp("clean"), drift=False)[0]


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Reconciliation], Path]:
    return reconciled_months(tmp_path_factory.mktemp("drifted"), drift=True)


def test_clean_demo_payouts_reconcile_month_after_month(clean: dict[str, Reconciliation]) -> None:
    assert len(clean) >= 6
    currencies = set()
    for month, result in clean.items():
        assert result.mismatches.height == 0, (month, result.mismatches)
        assert result.unmatched_marketplace.height == 0, (month, result.unmatched_marketplace)
        assert result.documents["balanced"].all(), month
        currencies |= set(result.summary["currency"])
        # The demo ERP journals commissions, fees and adjustments; only refunds are left to propose.
        assert set(result.journal_entries["memo"].str.extract(r"^(\w+)").unique()) <= {"refund"}, month
    assert currencies == {"EUR", "GBP"}


def test_clean_demo_has_a_reversed_payout_and_a_manual_credit(clean: dict[str, Reconciliation]) -> None:
    documents = pl.concat([r.documents for r in clean.values()])
    matched = pl.concat([r.matched for r in clean.values()])
    adjustments = matched.filter(pl.col("line_type") == "adjustment")
    reversed_payments = documents.filter(pl.col("payment") < 0)
    assert reversed_payments.height >= 1 and adjustments.height >= 2
    assert (adjustments["amount"] > 0).any() and (adjustments["amount"] < 0).any()


def test_every_injected_payout_fault_is_found(drifted: tuple[dict[str, Reconciliation], Path]) -> None:
    results, generated = drifted
    with (generated / "answer_key.csv").open() as handle:
        injected = {row["key"] for row in csv.DictReader(handle) if row["check_id"] == "payout_matching"}
    assert len(injected) >= 8
    flagged: set[str] = set()
    for result in results.values():
        flagged |= set(result.unmatched_marketplace["line_id"])
        flagged |= {line for ids in result.mismatches["line_ids"].drop_nulls() for line in ids.split()}
    assert flagged == injected
