"""Month-end payout reconciliation on the hand-made retailer in fixtures/payouts (its README lists the cases)."""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from driftwatch.config import Config, load_config, parse_config
from driftwatch.errors import UserError
from driftwatch.filedrop import load_directory
from driftwatch.payouts import lock, parse_period, reconcile, write_outputs
from driftwatch.payouts.inputs import read_inputs
from driftwatch.payouts.settings import payout_settings
from driftwatch.store import Store

FIXTURE = Path(__file__).parent.parent / "fixtures" / "payouts"
OCTOBER = "2026-10"


@dataclass
class Loaded:
    store: Store
    cfg: Config
    drop: Path
    db: Path


@pytest.fixture
def loaded(tmp_path: Path):
    drop = tmp_path / "drop"
    shutil.copytree(FIXTURE / "retailer", drop)
    cfg = load_config(FIXTURE / "driftwatch.toml")
    db = tmp_path / "driftwatch.duckdb"
    store = Store(db)
    report = load_directory(store, drop, cfg)
    assert report.quarantine.height == 0
    yield Loaded(store, cfg, drop, db)
    store.close()


def fixture_lines() -> list[dict[str, str]]:
    with (FIXTURE / "retailer" / "mirakl" / "payout_lines.csv").open() as handle:
        return list(csv.DictReader(handle))


def october_lines() -> list[dict[str, str]]:
    """The lines of documents whose payment falls in October, worked out from the file itself."""
    lines = fixture_lines()
    paid_in = {row["payout_id"]: row["transaction_date"][:7] for row in lines if row["line_type"] == "payment"}
    return [row for row in lines if paid_in[row["payout_id"]] == OCTOBER]


def line_ids(frame: pl.DataFrame) -> set[str]:
    return set(frame["line_id"].to_list())


def issue_keys(frame: pl.DataFrame) -> set[tuple[str, str]]:
    return {(row["check"], row["external_id"] or row["payout_id"]) for row in frame.iter_rows(named=True)}


# ------------------------------------------------------------------------------------------------ matching


def test_every_line_of_the_period_is_matched_unmatched_or_mismatched(loaded: Loaded) -> None:
    result = reconcile(loaded.store, loaded.cfg, OCTOBER)
    matched, unmatched = line_ids(result.matched), line_ids(result.unmatched_marketplace)
    mismatched = line_ids(result.mismatched_lines)
    assert not matched & unmatched and not matched & mismatched and not unmatched & mismatched
    october = {row["line_id"] for row in october_lines()}
    assert matched | unmatched | mismatched == october
    # M-5's overpaid order amount, M-3's off-rate commission, the repeated fee, P-103's payment line.
    problems = dict(zip(result.mismatched_lines["line_id"], result.mismatched_lines["problem"], strict=True))
    assert problems == {
        "L7": "order_amount",
        "L11": "commission_rate",
        "L21": "duplicate_line",
        "L26": "unbalanced_document",
    }
    in_issues = {line for ids in result.mismatches["line_ids"].drop_nulls() for line in ids.split()}
    assert {"L7", "L11", "L21"} <= in_issues
    # What each unmatched line lacks: M-99 an ERP order, M-7's refund a credit memo, three a journal entry.
    lacking = dict(zip(result.unmatched_marketplace["line_id"], result.unmatched_marketplace["problem"], strict=True))
    assert lacking == {
        "L43": "erp_order",
        "L12": "credit_memo",
        "L14": "journal_entry",
        "L25": "journal_entry",
        "L33": "journal_entry",
    }


def test_mismatches_name_each_fault_once(loaded: Loaded) -> None:
    result = reconcile(loaded.store, loaded.cfg, OCTOBER)
    assert issue_keys(result.mismatches) == {
        ("order_amount", "M-5"),
        ("commission_rate", "M-3"),
        ("duplicate_line", "P-102"),
        ("unbalanced_document", "P-103"),
    }
    by_check = {row["check"]: row for row in result.mismatches.iter_rows(named=True)}
    assert (by_check["order_amount"]["expected"], by_check["order_amount"]["actual"]) == (Decimal(40), Decimal(45))
    assert by_check["order_amount"]["order_id"] == "SO-5"
    commission = by_check["commission_rate"]
    assert (commission["expected"], commission["actual"]) == (Decimal("-12.00"), Decimal("-9.60"))
    assert "12.00%" in commission["message"] and "15.00%" in commission["message"]
    assert by_check["duplicate_line"]["line_ids"] == "L20 L21"
    assert by_check["unbalanced_document"]["difference"] == Decimal(15)


def test_documents_balance_against_their_payment_line(loaded: Loaded) -> None:
    documents = reconcile(loaded.store, loaded.cfg, OCTOBER).documents
    assert documents["payout_id"].to_list() == ["P-100", "P-101", "P-104", "P-102", "P-103"]
    for row in documents.iter_rows(named=True):
        lines = [r for r in october_lines() if r["payout_id"] == row["payout_id"]]
        payment = sum(Decimal(r["amount"]) for r in lines if r["line_type"] == "payment")
        others = sum(Decimal(r["amount"]) for r in lines if r["line_type"] != "payment")
        assert (row["payment"], row["lines_total"]) == (payment, others)
        assert row["balanced"] == (payment == others)
    reversal = documents.filter(pl.col("payout_id") == "P-104").row(0, named=True)
    assert reversal["payment"] == Decimal("-76.50") and reversal["balanced"]


def test_money_is_summed_per_currency_never_across(loaded: Loaded) -> None:
    summary = reconcile(loaded.store, loaded.cfg, OCTOBER).summary
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in october_lines():
        expected[row["currency"], row["line_type"]] += Decimal(row["amount"])
    assert summary["currency"].to_list() == ["EUR", "GBP"]
    for row in summary.iter_rows(named=True):
        currency = row["currency"]
        assert row["paid_out"] == expected[currency, "payment"]
        for line_type in ("order_amount", "shipping", "commission", "refund", "refund_commission", "fee", "adjustment"):
            assert row[line_type] == expected[currency, line_type], (currency, line_type)
        assert isinstance(row["paid_out"], Decimal)
    assert summary.schema["paid_out"] == pl.Decimal(18, 4)


def test_partial_refund_matches_its_credit_memo_and_a_refund_without_one_does_not(loaded: Loaded) -> None:
    result = reconcile(loaded.store, loaded.cfg, OCTOBER)
    matched = {row["line_id"]: row["reason"] for row in result.matched.iter_rows(named=True)}
    unmatched = {row["line_id"]: row["reason"] for row in result.unmatched_marketplace.iter_rows(named=True)}
    assert "R-6" in matched["L18"]  # 10.00 refunded of a 30.00 order
    assert "L19" in matched  # the commission given back at the agreed rate
    assert "without an ERP credit memo" in unmatched["L12"]


def test_a_line_for_an_order_the_erp_does_not_know_is_unmatched(loaded: Loaded) -> None:
    unmatched = reconcile(loaded.store, loaded.cfg, OCTOBER).unmatched_marketplace.filter(pl.col("line_id") == "L43")
    assert unmatched["reason"].to_list() == ["no ERP order carries this marketplace order id"]


def test_commission_follows_the_category_rate_of_the_order(loaded: Loaded) -> None:
    result = reconcile(loaded.store, loaded.cfg, OCTOBER)
    assert "12.00%" in result.matched.filter(pl.col("line_id") == "L24")["reason"][0]
    # Without the footwear category, M-8's 12% commission is off the 15% default.
    flat = parse_config({"payouts": {"commission": {"default": "0.15"}}})
    flat_result = reconcile(loaded.store, flat, OCTOBER)
    assert ("commission_rate", "M-8") in issue_keys(flat_result.mismatches)
    assert "L24" not in line_ids(flat_result.matched)


def test_commission_on_shipping_when_the_marketplace_charges_it(loaded: Loaded) -> None:
    on_shipping = parse_config({"payouts": {"commission": {"default": 0.15, "shipping": True}}})
    mismatches = reconcile(loaded.store, on_shipping, OCTOBER).mismatches
    # M-2 paid 45.00 + 5.00 shipping; 15% of 50.00 is 7.50, not the 6.75 charged.
    m2 = mismatches.filter((pl.col("check") == "commission_rate") & (pl.col("external_id") == "M-2"))
    assert m2["expected"].to_list() == [Decimal("-7.50")]


def test_tolerance_decides_what_counts_as_a_difference(loaded: Loaded) -> None:
    loose = parse_config({"payouts": {"tolerance": "5.00", "commission": {"default": 0.15}}})
    assert ("order_amount", "M-5") not in issue_keys(reconcile(loaded.store, loose, OCTOBER).mismatches)


def test_erp_records_not_paid_by_the_marketplace(loaded: Loaded) -> None:
    unmatched = reconcile(loaded.store, loaded.cfg, OCTOBER).unmatched_erp
    assert set(zip(unmatched["kind"], unmatched["record_id"], strict=True)) == {
        ("delivered_not_paid", "SO-4"),  # paid only in November's P-105
        ("credit_memo_not_refunded", "R-8"),
    }
    reasons = dict(zip(unmatched["record_id"], unmatched["reason"], strict=True))
    assert reasons["SO-4"] == "settled after the period's end by document P-105"
    assert reasons["R-8"] == "no marketplace document settles it yet"
    # In November, SO-4 is paid: it is no longer an open item there.
    november = reconcile(loaded.store, loaded.cfg, "2026-11").unmatched_erp
    assert "SO-4" not in november["record_id"].to_list()


def test_unmapped_erp_statuses_are_a_warning_not_a_silent_gap(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    shutil.copytree(FIXTURE / "retailer", drop)
    orders = drop / "bluecherry" / "orders.csv"
    orders.write_text(orders.read_text().replace("SO-4,M-4,mirakl,delivered", "SO-4,M-4,mirakl,60"))
    with Store(tmp_path / "db.duckdb") as store:
        rates = {"commission": {"default": "0.15"}}
        load_directory(store, drop, parse_config({}))
        unmapped = reconcile(store, parse_config({"payouts": rates}), OCTOBER)
        mapped = reconcile(
            store, parse_config({"statuses": {"bluecherry": {"60": "delivered"}}, "payouts": rates}), OCTOBER
        )
    assert "SO-4" not in unmapped.unmatched_erp["record_id"].to_list()
    assert unmapped.warnings and "statuses 60 of 1 mirakl order(s)" in unmapped.warnings[0]
    assert "SO-4" in mapped.unmatched_erp["record_id"].to_list() and not mapped.warnings
    assert unmapped.tables()["warnings"]["warning"].to_list() == list(unmapped.warnings)
    assert "warnings" not in mapped.tables()


# ------------------------------------------------------------------------------------------------ journal


def test_journal_entries_are_proposed_for_unposted_lines_and_balance(loaded: Loaded) -> None:
    journal = reconcile(loaded.store, loaded.cfg, OCTOBER).journal_entries
    # Posted already: L2 (J-1), L6 (J-2), L20 (J-3). L21 is a duplicate charge: disputed, not posted.
    assert set(journal["line_id"]) == {"L5", "L8", "L11", "L12", "L13", "L14", "L17", "L18", "L19", "L24", "L25", "L33"}
    assert journal.group_by("entry_id").len()["len"].to_list() == [2] * 12
    manual_credit = journal.filter(pl.col("line_id") == "L14").sort("line_no")
    assert manual_credit["account"].to_list() == ["MKT-ADJUSTMENTS", "MKT-RECEIVABLE"]
    assert manual_credit["credit"].to_list() == [Decimal(25), Decimal(0)]
    assert manual_credit["debit"].to_list() == [Decimal(0), Decimal(25)]


def test_journal_import_file_balances_per_payout_and_currency(loaded: Loaded, tmp_path: Path) -> None:
    result = reconcile(loaded.store, loaded.cfg, OCTOBER)
    write_outputs(result, tmp_path / "out")
    with (tmp_path / "out" / f"journal-import-{OCTOBER}.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    totals: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for row in rows:
        totals[row["Reference"], row["Currency"]][0] += Decimal(row["Debit"])
        totals[row["Reference"], row["Currency"]][1] += Decimal(row["Credit"])
    assert set(totals) == {("P-100", "EUR"), ("P-101", "GBP"), ("P-102", "EUR"), ("P-103", "EUR"), ("P-104", "EUR")}
    assert all(debit == credit > 0 for debit, credit in totals.values())
    assert {row["Posting Date"] for row in rows if row["Reference"] == "P-104"} == {"10/15/2026"}


# ------------------------------------------------------------------------------------------------ outputs


def test_workbook_has_every_table_with_frozen_headers_and_money_as_numbers(loaded: Loaded, tmp_path: Path) -> None:
    result = reconcile(loaded.store, loaded.cfg, OCTOBER)
    written = write_outputs(result, tmp_path / "out")
    book = openpyxl.load_workbook(written[0])
    assert book.sheetnames == [
        "summary",
        "documents",
        "matched",
        "unmatched_marketplace",
        "mismatched_lines",
        "unmatched_erp",
        "mismatches",
        "journal_entries",
    ]
    for sheet in book.worksheets:
        assert sheet.freeze_panes == "A2"
        assert sheet.auto_filter.ref
        assert [c.value for c in sheet[1]] == list(result.tables()[sheet.title].columns)
    matched = book["matched"]
    header = [c.value for c in matched[1]]
    amount = matched.cell(row=2, column=header.index("amount") + 1)
    currency = matched.cell(row=2, column=header.index("currency") + 1).value
    assert isinstance(amount.value, int | float) and amount.value == float(result.matched["amount"][0])
    assert currency in amount.number_format
    for name, frame in result.tables().items():
        assert pl.read_csv(tmp_path / "out" / f"{name}.csv", infer_schema=False).height == frame.height


def test_rerun_gives_the_same_result_and_the_same_files(loaded: Loaded, tmp_path: Path) -> None:
    first = reconcile(loaded.store, loaded.cfg, OCTOBER)
    second = reconcile(loaded.store, loaded.cfg, OCTOBER)
    for name, frame in first.tables().items():
        assert frame.equals(second.tables()[name]), name
    one = write_outputs(first, tmp_path / "one")
    two = write_outputs(second, tmp_path / "two")
    for a, b in zip(one, two, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


# ------------------------------------------------------------------------------------------------ locks


def add_late_line(loaded: Loaded) -> None:
    """A later Mirakl snapshot: P-103 gains the manual credit that balances it."""
    path = loaded.drop / "mirakl" / "payout_lines.csv"
    lines = pl.read_csv(path, infer_schema=False)
    late = pl.DataFrame(
        [("L27", "P-103", None, "adjustment", "15.00", "EUR", "2026-10-31T12:00:00Z")],
        schema=lines.columns,
        orient="row",
    )
    pl.concat([lines, late]).write_csv(path)
    (loaded.drop / "mirakl" / "_manifest.json").write_text(json.dumps({"captured_at": "2026-11-09T06:00:00Z"}))
    load_directory(loaded.store, loaded.drop, loaded.cfg)


def test_a_locked_period_keeps_its_close_and_shows_new_data_as_variances(loaded: Loaded) -> None:
    closed = reconcile(loaded.store, loaded.cfg, OCTOBER)
    lock(loaded.store, closed)
    add_late_line(loaded)

    result = reconcile(loaded.store, loaded.cfg, OCTOBER)
    assert result.locked_at is not None
    for name, frame in closed.tables().items():
        assert frame.equals(result.tables()[name]), name
    changes = {(row["table"], row["key"], row["change"]) for row in result.variances.iter_rows(named=True)}
    assert changes >= {
        ("unmatched_marketplace", "L27", "new"),
        ("journal_entries", "DW-L27/1", "new"),
        ("mismatches", "unbalanced_document/P-103//", "gone"),
        ("documents", "P-103/EUR", "changed"),
    }
    document = result.variances.filter(pl.col("key") == "P-103/EUR")["detail"][0]
    assert "balanced: False -> True" in document


def test_a_locked_period_without_new_data_has_no_variances_and_cannot_be_locked_twice(loaded: Loaded) -> None:
    lock(loaded.store, reconcile(loaded.store, loaded.cfg, OCTOBER))
    result = reconcile(loaded.store, loaded.cfg, OCTOBER)
    assert result.locked_at is not None and result.variances.height == 0
    assert "variances" in result.tables()
    with pytest.raises(UserError, match="already locked"):
        lock(loaded.store, result)


def test_a_lock_survives_reopening_the_store(loaded: Loaded) -> None:
    closed = reconcile(loaded.store, loaded.cfg, OCTOBER)
    lock(loaded.store, closed)
    loaded.store.close()
    loaded.store = Store(loaded.db)
    reopened = reconcile(loaded.store, loaded.cfg, OCTOBER)
    assert reopened.locked_at is not None
    assert reopened.mismatches.equals(closed.mismatches)


# ------------------------------------------------------------------------------------------------ input


def test_an_empty_store_is_a_user_error(tmp_path: Path) -> None:
    with Store(tmp_path / "empty.duckdb") as store, pytest.raises(UserError, match="no mirakl payout_lines"):
        reconcile(store, parse_config({}), OCTOBER)


@pytest.mark.parametrize("text", ["2026-13", "Oct 2026", "2026-1", "202610", ""])
def test_bad_period_is_a_user_error(text: str) -> None:
    with pytest.raises(UserError, match="YYYY-MM"):
        parse_period(text)


def test_period_bounds() -> None:
    december = parse_period("2026-12")
    assert (december.start.isoformat(), december.end.isoformat()) == (
        "2026-12-01T00:00:00+00:00",
        "2027-01-01T00:00:00+00:00",
    )


@pytest.mark.parametrize(
    ("payouts_table", "key"),
    [
        ({"commission": {"default": "fifteen"}}, "payouts.commission.default"),
        ({"commission": {"default": 15}}, "payouts.commission.default"),
        ({"commission": {"categories": {"shoes": {"rate": 0.1}}}}, "payouts.commission.categories.shoes"),
        ({"delivered_statuses": ["gone"]}, "payouts.delivered_statuses"),
        ({"tolerance": "-1"}, "payouts.tolerance"),
        ({"tolerence": "0.05"}, "payouts: unknown key(s) tolerence"),
        ({"commission": {"rate": 0.1}}, "payouts.commission: unknown key(s) rate"),
        ({"accounts": {"fees": "6200"}}, "payouts.accounts: unknown key(s) fees"),
        ({"marketplace": "amazon"}, "payouts.marketplace"),
    ],
)
def test_bad_settings_name_the_key(payouts_table: dict, key: str) -> None:
    with pytest.raises(UserError, match=re.escape(key)):
        payout_settings(parse_config({"payouts": payouts_table}))


def test_lines_are_in_date_order_and_a_repeated_charge_points_at_its_first_line() -> None:
    """A document is dated by its payment line (by its latest line while it has none); lines come in date
    order, a document's lines by id. A charge repeated (same order, or same document for a line of no order;
    same type, amount, currency and date) points at its first line in that order."""
    columns = ["line_id", "payout_id", "external_id", "line_type", "amount", "currency", "transaction_date"]
    rows = [
        ("A3", "P-1", None, "fee", "-2.00", "EUR", "2026-09-05"),  # the same fee twice in one document
        ("A2", "P-1", None, "fee", "-2.00", "EUR", "2026-09-05"),
        ("A1", "P-1", "M-1", "commission", "-3.00", "EUR", "2026-08-02"),  # charged again, a month later
        ("P1-PAY", "P-1", None, "payment", "-7.00", "EUR", "2026-09-20"),
        ("Z1", "P-9", "M-1", "commission", "-3.00", "EUR", "2026-08-02"),
        ("P9-PAY", "P-9", None, "payment", "-3.00", "EUR", "2026-08-20"),
        ("B2", "P-5", "M-3", "order_amount", "10.00", "EUR", "2026-09-25"),  # no payment line yet
        ("B1", "P-5", None, "fee", "-2.00", "EUR", "2026-09-05"),  # that fee in another document: its own
        ("U1", None, "M-3", "commission", "-1.50", "EUR", "2026-09-26"),  # on no document yet
    ]
    lines = pl.DataFrame(rows, schema=columns, orient="row", infer_schema_length=None).with_columns(
        pl.col("amount").cast(pl.Decimal(18, 4)), pl.col("transaction_date").str.to_datetime(time_zone="UTC")
    )
    cfg = parse_config({"feeds": [{"source": "bluecherry", "target": "mirakl", "entities": ["payout_lines"]}]})
    snapshots = {("mirakl", "payout_lines"): lines}
    inputs = read_inputs(lambda source, entity: snapshots.get((source, entity)), {}, payout_settings(cfg))
    got = inputs.lines.select("line_id", pl.col("document_date").dt.strftime("%m-%d"), "duplicate_of").rows()
    assert got == [
        ("P9-PAY", "08-20", None),
        ("Z1", "08-20", None),
        ("A1", "09-20", "Z1"),
        ("A2", "09-20", None),
        ("A3", "09-20", "A2"),
        ("P1-PAY", "09-20", None),
        ("B1", "09-25", None),
        ("B2", "09-25", None),
    ]
