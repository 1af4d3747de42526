"""Money in payout matching and in what finance files: each currency's own minor unit (a yen has no cents),
a tolerance of one minor unit unless set, and amounts never rounded on their way out, while the journal
proposes what a ledger can post. Small hand-built drops, read back from the files written."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from driftwatch.config import parse_config
from driftwatch.filedrop import load_directory
from driftwatch.payouts import Reconciliation, reconcile, write_outputs
from driftwatch.store import Store

CAPTURED = {"captured_at": "2026-11-05T06:00:00Z"}
LINE_HEADER = "line_id,payout_id,external_id,line_type,amount,currency,transaction_date"
# A yen document: MJ-1's commission is one yen off 15 % of 4501 (675.15, so 675), MJ-2's ten yen off.
YEN_LINES = """
Y1,PJ-1,MJ-1,order_amount,4501,JPY,2026-10-02T10:00:00Z
Y2,PJ-1,MJ-1,commission,-676,JPY,2026-10-02T10:00:00Z
Y3,PJ-1,MJ-2,order_amount,2000,JPY,2026-10-03T10:00:00Z
Y4,PJ-1,MJ-2,commission,-310,JPY,2026-10-03T10:00:00Z
Y5,PJ-1,,fee,-100,JPY,2026-10-09T00:00:00Z
Y6,PJ-1,,payment,5415,JPY,2026-10-10T00:00:00Z
"""
# A euro document at the marketplace's sub-cent precision: 15 % of 10.25 is 1.5375.
SUB_CENT_LINES = """
E1,PE-1,ME-1,order_amount,10.25,EUR,2026-10-04T10:00:00Z
E2,PE-1,ME-1,commission,-1.5375,EUR,2026-10-04T10:00:00Z
E3,PE-1,,fee,-0.125,EUR,2026-10-09T00:00:00Z
E4,PE-1,,payment,8.5875,EUR,2026-10-10T00:00:00Z
"""
ORDERS = """order_id,external_id,channel,status,updated_at,total,currency
SO-J1,MJ-1,mirakl,delivered,2026-10-02T09:00:00Z,4501,JPY
SO-J2,MJ-2,mirakl,delivered,2026-10-03T09:00:00Z,2000,JPY
SO-E1,ME-1,mirakl,delivered,2026-10-04T09:00:00Z,10.25,EUR
"""
# The ERP booked the sub-cent commission as a ledger can: 1.54.
JOURNAL = """entry_id,order_id,payout_id,account,amount,currency,posted_at
J-E1,SO-E1,PE-1,6100,1.54,EUR,2026-10-10T00:00:00Z
"""


def write_drop(root: Path) -> Path:
    drop = root / "drop"
    files = {
        "mirakl/payout_lines.csv": LINE_HEADER + YEN_LINES + SUB_CENT_LINES.lstrip("\n"),
        "bluecherry/orders.csv": ORDERS,
        "bluecherry/journal_entries.csv": JOURNAL,
    }
    for name, text in files.items():
        path = drop / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("\n\n", "\n").lstrip("\n"))
        (path.parent / "_manifest.json").write_text(json.dumps(CAPTURED))
    return drop


@pytest.fixture
def october(tmp_path: Path) -> tuple[Reconciliation, list[Path]]:
    cfg = parse_config({"payouts": {"commission": {"default": "0.15"}}})
    with Store(tmp_path / "driftwatch.duckdb") as store:
        assert load_directory(store, write_drop(tmp_path), cfg).quarantine.height == 0
        result = reconcile(store, cfg, "2026-10")
    return result, write_outputs(result, tmp_path / "out")


def rows_of(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {row["line_id"]: row for row in csv.DictReader(handle)}


def test_commission_in_yen_is_judged_to_the_yen_within_one_yen_unless_set(october) -> None:
    result, _ = october
    judged = {
        row["line_id"]: row
        for row in pl.concat([result.matched, result.mismatched_lines], how="diagonal").iter_rows(named=True)
    }
    assert judged["Y2"]["problem"] is None  # 675.15 is 675 yen; 676 is within the default tolerance, one yen
    assert judged["Y4"]["problem"] == "commission_rate"
    assert (judged["Y4"]["expected"], judged["Y4"]["actual"]) == (Decimal(-300), Decimal(-310))
    assert judged["Y4"]["reason"] == "charged -310 to date on the 2000 paid is 15.50%; at the agreed 15.00% it is -300"


def test_a_tolerance_per_currency(tmp_path: Path) -> None:
    drop = write_drop(tmp_path)
    strict = parse_config(
        {"payouts": {"tolerance": {"JPY": "0", "default": "0.01"}, "commission": {"default": "0.15"}}}
    )
    loose = parse_config({"payouts": {"tolerance": {"JPY": "10"}, "commission": {"default": "0.15"}}})
    with Store(tmp_path / "driftwatch.duckdb") as store:
        load_directory(store, drop, strict)
        off = {
            cfg_name: set(reconcile(store, cfg, "2026-10").mismatched_lines["line_id"])
            for cfg_name, cfg in (("strict", strict), ("loose", loose))
        }
    assert off == {"strict": {"Y2", "Y4"}, "loose": set()}


def test_a_sub_cent_commission_is_booked_by_the_cent_rounded_entry_the_erp_posted(october) -> None:
    result, _ = october
    matched = {row["line_id"]: row for row in result.matched.iter_rows(named=True)}
    assert matched["E2"]["journal_entry_id"] == "J-E1" and matched["E2"]["amount"] == Decimal("-1.5375")
    assert "E1" in matched and "E4" in matched  # the document balances to the ten-thousandth


def test_the_journal_proposes_what_a_ledger_can_post_in_each_currency(october) -> None:
    result, written = october
    proposed = result.journal_entries
    assert set(proposed["line_id"]) == {"Y2", "Y4", "Y5", "E3"}
    with (written[-1]).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_journal = {(row["Journal No"], row["Line No"]): row for row in rows}
    fee = (by_journal["DW-E3", "1"], by_journal["DW-E3", "2"])
    assert [(row["Debit"], row["Credit"]) for row in fee] == [("0.13", "0.00"), ("0.00", "0.13")]
    yen = by_journal["DW-Y2", "1"], by_journal["DW-Y2", "2"]
    assert [(row["Debit"], row["Credit"]) for row in yen] == [("676", "0"), ("0", "676")]


def test_csvs_keep_every_digit_at_least_to_the_minor_unit(october) -> None:
    _, written = october
    out = written[0].parent
    matched = rows_of(out / "matched.csv")
    assert (matched["Y1"]["amount"], matched["Y2"]["amount"]) == ("4501", "-676")
    assert (matched["E1"]["amount"], matched["E2"]["amount"], matched["E4"]["amount"]) == ("10.25", "-1.5375", "8.5875")
    mismatched = rows_of(out / "mismatched_lines.csv")
    assert (mismatched["Y4"]["expected"], mismatched["Y4"]["actual"]) == ("-300", "-310")
    with (out / "summary.csv").open(newline="") as handle:
        summary = {row["currency"]: row for row in csv.DictReader(handle)}
    assert (summary["JPY"]["paid_out"], summary["EUR"]["paid_out"]) == ("5415", "8.5875")
    assert summary["EUR"]["fee"] == "-0.125" and summary["JPY"]["fee"] == "-100"


def test_the_workbook_holds_the_amounts_shown_in_their_currencys_digits(october) -> None:
    _, written = october
    sheet = openpyxl.load_workbook(written[0])["matched"]
    header = [cell.value for cell in sheet[1]]
    cells = {row[header.index("line_id")].value: row[header.index("amount")] for row in sheet.iter_rows(min_row=2)}
    assert cells["Y2"].value == -676 and cells["Y2"].number_format.startswith('#,##0 "JPY"')
    assert cells["E1"].value == 10.25 and cells["E1"].number_format.startswith('#,##0.00 "EUR"')
    assert cells["E2"].value == -1.5375 and cells["E2"].number_format.startswith('#,##0.0000 "EUR"')


# Whole amounts as marketplaces send them (12, 45): a dinar has three decimals, a euro two, and a file that
# says 12 KWD or 45 EUR is written 12.000 and 45.00, never 12 nor 45.0000 (the store keeps four decimals).
WHOLE_LINES = """
K1,PK-1,MK-1,order_amount,12,KWD,2026-10-05T10:00:00Z
K2,PK-1,MK-1,commission,-1.8,KWD,2026-10-05T10:00:00Z
K3,PK-1,,fee,-0.25,KWD,2026-10-09T00:00:00Z
K4,PK-1,,payment,9.95,KWD,2026-10-10T00:00:00Z
W1,PW-1,MW-1,order_amount,45,EUR,2026-10-06T10:00:00Z
W2,PW-1,MW-1,commission,-7,EUR,2026-10-06T10:00:00Z
W3,PW-1,,payment,38,EUR,2026-10-10T00:00:00Z
"""
WHOLE_ORDERS = """order_id,external_id,channel,status,updated_at,total,currency
SO-K1,MK-1,mirakl,delivered,2026-10-05T09:00:00Z,12,KWD
SO-W1,MW-1,mirakl,delivered,2026-10-06T09:00:00Z,45,EUR
"""


@pytest.fixture
def whole(tmp_path: Path) -> tuple[Reconciliation, list[Path]]:
    drop = tmp_path / "drop"
    for name, text in {
        "mirakl/payout_lines.csv": LINE_HEADER + WHOLE_LINES,
        "bluecherry/orders.csv": WHOLE_ORDERS,
    }.items():
        path = drop / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        (path.parent / "_manifest.json").write_text(json.dumps(CAPTURED))
    cfg = parse_config({"payouts": {"commission": {"default": "0.15"}}})
    with Store(tmp_path / "driftwatch.duckdb") as store:
        assert load_directory(store, drop, cfg).quarantine.height == 0
        result = reconcile(store, cfg, "2026-10")
    return result, write_outputs(result, tmp_path / "out")


def test_whole_amounts_are_written_with_their_currencys_trailing_zeros(whole) -> None:
    result, written = whole
    # 15 % of 45 is 6.75: W2's 7 is off by 0.25, judged and told in euro cents; 15 % of 12 KWD is 1.800.
    assert set(result.mismatched_lines["line_id"]) == {"W2"}
    (reason,) = result.mismatched_lines["reason"]
    assert "-7.00" in reason and "-6.75" in reason and "45.00" in reason
    out = written[0].parent
    matched = rows_of(out / "matched.csv")
    assert [matched[k]["amount"] for k in ("K1", "K2", "K4")] == ["12.000", "-1.800", "9.950"]
    # Without the ERP's journal entries the fee is not checked, and listed with one proposed.
    assert rows_of(out / "unmatched_marketplace.csv")["K3"]["amount"] == "-0.250"
    assert [matched[k]["amount"] for k in ("W1", "W3")] == ["45.00", "38.00"]
    mismatched = rows_of(out / "mismatched_lines.csv")
    assert (mismatched["W2"]["expected"], mismatched["W2"]["actual"]) == ("-6.75", "-7.00")
    with (out / "summary.csv").open(newline="") as handle:
        summary = {row["currency"]: row for row in csv.DictReader(handle)}
    assert (summary["KWD"]["paid_out"], summary["EUR"]["paid_out"]) == ("9.950", "38.00")
    assert (summary["KWD"]["journal_debit"], summary["EUR"]["journal_debit"]) == ("2.050", "7.00")


def test_the_journal_posts_dinars_to_the_fils(whole) -> None:
    _, written = whole
    with (written[-1]).open(newline="") as handle:
        rows = {(row["Journal No"], row["Line No"]): row for row in csv.DictReader(handle)}
    fee = rows["DW-K3", "1"], rows["DW-K3", "2"]
    assert [(row["Debit"], row["Credit"]) for row in fee] == [("0.250", "0.000"), ("0.000", "0.250")]
    commission = rows["DW-K2", "1"], rows["DW-K2", "2"]
    assert [(row["Debit"], row["Credit"]) for row in commission] == [("1.800", "0.000"), ("0.000", "1.800")]


def test_the_workbook_shows_whole_amounts_with_their_currencys_decimals(whole) -> None:
    _, written = whole
    sheet = openpyxl.load_workbook(written[0])["matched"]
    header = [cell.value for cell in sheet[1]]
    cells = {row[header.index("line_id")].value: row[header.index("amount")] for row in sheet.iter_rows(min_row=2)}
    assert cells["K1"].value == 12 and cells["K1"].number_format.startswith('#,##0.000 "KWD"')
    assert cells["W1"].value == 45 and cells["W1"].number_format.startswith('#,##0.00 "EUR"')
    assert cells["K1"].data_type == "n" and cells["W1"].data_type == "n"
