"""What finance files: one Excel workbook, the same tables as CSV, and the ERP journal import file."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import xlsxwriter

from driftwatch.errors import UserError
from driftwatch.files import atomic_path
from driftwatch.payouts.journal import balances
from driftwatch.payouts.result import Reconciliation

MAX_COLUMN_WIDTH = 60
DATE_FORMAT = "yyyy-mm-dd hh:mm"
# Header names an ERP import template can map column by column; dates in the US style BlueCherry exports use.
IMPORT_COLUMNS = {
    "entry_id": "Journal No",
    "line_no": "Line No",
    "posted_at": "Posting Date",
    "account": "Account",
    "debit": "Debit",
    "credit": "Credit",
    "currency": "Currency",
    "payout_id": "Reference",
    "order_id": "Order No",
    "external_id": "Marketplace Order",
    "memo": "Memo",
}


def write_outputs(reconciliation: Reconciliation, out_dir: Path) -> list[Path]:
    """Write the workbook, one CSV per table and the journal import file; returns their paths."""
    period = reconciliation.period.name
    tables = reconciliation.tables()
    written = [write_workbook(tables, out_dir / f"payouts-{period}.xlsx", reconciliation.period.start)]
    for name, frame in tables.items():
        path = out_dir / f"{name}.csv"
        with atomic_path(path) as tmp:
            frame.write_csv(tmp)
        written.append(path)
    written.append(write_journal_import(reconciliation.journal_entries, out_dir / f"journal-import-{period}.csv"))
    return written


def write_journal_import(journal: pl.DataFrame, path: Path) -> Path:
    """The proposed entries as an ERP import file; refuses to write one whose payouts do not balance."""
    unbalanced = balances(journal).filter(~pl.col("balanced"))
    if unbalanced.height:
        payouts = ", ".join(unbalanced["payout_id"].cast(pl.String).to_list())
        raise UserError(f"proposed journal entries do not balance for payout(s) {payouts}; nothing was written")
    rows = journal.select(
        *(pl.col(c) for c in IMPORT_COLUMNS if c != "posted_at"),
        posted_at=pl.col("posted_at").dt.strftime("%m/%d/%Y"),
    ).with_columns(pl.col("debit", "credit").round(2).cast(pl.Decimal(18, 2)))
    with atomic_path(path) as tmp:
        rows.select(list(IMPORT_COLUMNS)).rename(IMPORT_COLUMNS).write_csv(tmp)
    return path


def write_workbook(tables: dict[str, pl.DataFrame], path: Path, created: datetime) -> Path:
    """One sheet per table: frozen header, autofilter, money as numbers in each row's currency."""
    with atomic_path(path) as tmp:
        workbook = xlsxwriter.Workbook(str(tmp))
        # A fixed creation date keeps a rerun's workbook byte-for-byte the same.
        workbook.set_properties({"title": path.stem, "created": created.replace(tzinfo=None)})
        formats = _Formats(workbook)
        try:
            for name, frame in tables.items():
                _write_sheet(workbook.add_worksheet(name), frame, formats)
        finally:
            workbook.close()
    return path


class _Formats:
    def __init__(self, workbook: xlsxwriter.Workbook):
        self.workbook = workbook
        self.header = workbook.add_format({"bold": True, "bottom": 1})
        self.date = workbook.add_format({"num_format": DATE_FORMAT})
        self._money: dict[str | None, object] = {}

    def money(self, currency: str | None):
        if currency not in self._money:
            suffix = f' "{currency}"' if currency else ""
            self._money[currency] = self.workbook.add_format({"num_format": f"#,##0.00{suffix};-#,##0.00{suffix}"})
        return self._money[currency]


def _write_sheet(sheet, frame: pl.DataFrame, formats: _Formats) -> None:
    sheet.write_row(0, 0, frame.columns, formats.header)
    currencies = frame["currency"].to_list() if "currency" in frame.columns else [None] * frame.height
    for col, name in enumerate(frame.columns):
        width = len(name)
        for row, value in enumerate(frame[name].to_list(), start=1):
            if value is None:
                continue
            if isinstance(value, Decimal):
                # Excel stores every number as a double; the exact Decimal stays in the CSV beside it.
                sheet.write_number(row, col, float(value), formats.money(currencies[row - 1]))
                width = max(width, len(f"{value:,.2f}") + 4)
            elif isinstance(value, datetime):
                sheet.write_datetime(row, col, value.replace(tzinfo=None), formats.date)
                width = max(width, len(DATE_FORMAT))
            else:
                sheet.write(row, col, value)
                width = max(width, len(str(value)))
        sheet.set_column(col, col, min(width + 2, MAX_COLUMN_WIDTH))
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(frame.height, 1), max(frame.width - 1, 0))
