"""What finance files: one Excel workbook, the same tables as CSV, and the ERP journal import file.

Every cell is written through driftwatch.spreadsheet: money to its currency's minor unit, accounting dates
as dates, real number and date cells in the workbook, and no text from the data ever read as a formula.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

from driftwatch import spreadsheet
from driftwatch.errors import UserError
from driftwatch.files import atomic_path
from driftwatch.payouts.journal import balances
from driftwatch.payouts.result import Reconciliation

# Columns that are an accounting date (when a document was paid, when an entry posts), not a moment.
DATE_COLUMNS = ("document_date", "posted_at")
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
        written.append(spreadsheet.write_csv(frame, out_dir / f"{name}.csv", dates=DATE_COLUMNS))
    written.append(write_journal_import(reconciliation.journal_entries, out_dir / f"journal-import-{period}.csv"))
    return written


def write_journal_import(journal: pl.DataFrame, path: Path) -> Path:
    """The proposed entries as an ERP import file; refuses to write one whose payouts do not balance."""
    unbalanced = balances(journal).filter(~pl.col("balanced"))
    if unbalanced.height:
        payouts = ", ".join(unbalanced["payout_id"].cast(pl.String).to_list())
        raise UserError(f"proposed journal entries do not balance for payout(s) {payouts}; nothing was written")
    rows = journal.with_columns(posted_at=pl.col("posted_at").dt.strftime("%m/%d/%Y")).select(list(IMPORT_COLUMNS))
    return spreadsheet.write_csv(rows, path, headers=IMPORT_COLUMNS)


def write_workbook(tables: dict[str, pl.DataFrame], path: Path, created: datetime) -> Path:
    """One sheet per table. The summary sheet also says, beneath its table, what limits the result (a
    commission rate assumed, ERP statuses unmapped), so whoever files the workbook reads it there."""
    with atomic_path(path) as tmp:
        book = spreadsheet.workbook(tmp, created, title=path.stem)
        formats = spreadsheet.Formats(book)
        try:
            for name, frame in tables.items():
                sheet = book.add_worksheet(name)
                spreadsheet.write_sheet(sheet, frame, formats, dates=DATE_COLUMNS)
                if name == "summary" and "warnings" in tables:
                    below = frame.height + 2
                    spreadsheet.write_text_row(sheet, below, ["warnings"], formats.header)
                    for offset, warning in enumerate(tables["warnings"]["warning"], start=1):
                        spreadsheet.write_text_row(sheet, below + offset, [warning])
        finally:
            book.close()
    return path
