"""Files people open in a spreadsheet: every CSV and xlsx driftwatch writes holds data, never a formula.

Excel, LibreOffice and Google Sheets read a cell whose text starts with `=`, `+`, `-`, `@`, a tab or a
carriage return as a formula, so a payout reference or an order note written `=HYPERLINK(...)` would run
when finance opens the file (CSV injection). The rule, as OWASP recommends: in a CSV such text gets a
leading single quote, which every spreadsheet shows as text; in an xlsx, text is written as a text cell
(never parsed for formulas or links) and marked quote-prefixed, so editing it in Excel keeps it text. A
plain decimal number (`-15.00`, `+3`) is not text that needs it: numbers stay numbers.

Cells are also made for the people who open them: money to its currency's minor unit (45.00 EUR, 4500
JPY, through driftwatch.money), finer only where an amount holds more (a sub-cent commission of -1.5375
stays whole: money is never rounded on its way out), dates as dates (`2026-10-31`), times as
`2026-10-31 23:00:00` (UTC), which spreadsheets and ERP imports read without help.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import xlsxwriter

from driftwatch.files import atomic_path
from driftwatch.money import amounts_as_text, exact

# OWASP's formula triggers: = + - @ tab and carriage return, after any quotes already escaping them.
_FORMULA = r"^'*[=+\-@\t\r]"
_NUMBER = r"^'*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
CURRENCY_COLUMN = "currency"
DATE_TEXT = "%Y-%m-%d"
TIME_TEXT = "%Y-%m-%d %H:%M:%S"
XLSX_DATE = "yyyy-mm-dd"
XLSX_TIME = "yyyy-mm-dd hh:mm:ss"
# Text is text: never turned into a formula, a link or a number on the way into the workbook.
XLSX_OPTIONS = {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False}
MAX_COLUMN_WIDTH = 60


def formula_like(text: pl.Expr) -> pl.Expr:
    """Whether a spreadsheet would read the text as a formula (a quote-escaped one counts, so escaping is
    reversible): it starts with a trigger and is not a plain number."""
    return text.str.contains(_FORMULA) & ~text.str.contains(_NUMBER)


def neutralised(text: pl.Expr) -> pl.Expr:
    """The text with a leading quote where a spreadsheet would take it for a formula."""
    return pl.when(formula_like(text)).then(pl.lit("'") + text).otherwise(text)


def restored(text: pl.Expr) -> pl.Expr:
    """The text as it was before `neutralised`, for reading driftwatch's own files back."""
    escaped = text.str.starts_with("'") & formula_like(text.str.slice(1))
    return pl.when(escaped).then(text.str.slice(1)).otherwise(text)


def csv_cells(frame: pl.DataFrame, dates: Iterable[str] = ()) -> pl.DataFrame:
    """The frame as CSV cells: text neutralised, money at its row's currency minor unit or finer, never
    rounded (the frame's `currency` column; two decimals without one), the `dates` columns as dates, other
    times to the second in UTC. Numbers and booleans stay as they are."""
    dates = set(dates)
    currency = pl.col(CURRENCY_COLUMN) if CURRENCY_COLUMN in frame.columns else pl.lit(None, pl.String)
    cells = []
    for name, dtype in frame.schema.items():
        column = pl.col(name)
        if dtype == pl.String:
            column = neutralised(column)
        elif dtype.is_decimal():
            column = amounts_as_text(column, currency)
        elif isinstance(dtype, pl.Datetime):
            utc = column.dt.convert_time_zone("UTC") if dtype.time_zone else column
            column = utc.dt.strftime(DATE_TEXT if name in dates else TIME_TEXT)
        elif dtype == pl.Date:
            column = column.dt.strftime(DATE_TEXT)
        cells.append(column.alias(name))
    return frame.select(cells)


def to_csv(frame: pl.DataFrame, dates: Iterable[str] = ()) -> str:
    return csv_cells(frame, dates).write_csv()


def write_csv(
    frame: pl.DataFrame, path: Path, dates: Iterable[str] = (), headers: dict[str, str] | None = None
) -> Path:
    """Write the frame as CSV a spreadsheet opens as data, `headers` renaming columns on the way out; whole or
    not at all."""
    with atomic_path(path) as tmp:
        csv_cells(frame, dates).rename(headers or {}).write_csv(tmp)
    return path


def read_csv(path: Path) -> pl.DataFrame:
    """A CSV driftwatch wrote, as text, with neutralised text restored."""
    frame = pl.read_csv(path, infer_schema=False)
    return frame.with_columns(restored(pl.col(name)) for name in frame.columns)


# ---------------------------------------------------------------------------------------------- xlsx


def workbook(path: Path, created: datetime, title: str) -> xlsxwriter.Workbook:
    """A workbook that writes text as text, to `path` (a temporary path from driftwatch.files.atomic_path).
    A fixed creation date keeps a rerun's file byte-for-byte the same."""
    book = xlsxwriter.Workbook(str(path), XLSX_OPTIONS)
    book.set_properties({"title": title, "created": created.replace(tzinfo=None)})
    return book


class Formats:
    """The cell formats of one workbook, made once each."""

    def __init__(self, book: xlsxwriter.Workbook):
        self.book = book
        self.header = book.add_format({"bold": True, "bottom": 1})
        self.date = book.add_format({"num_format": XLSX_DATE})
        self.time = book.add_format({"num_format": XLSX_TIME})
        self.text_as_typed = book.add_format({"quote_prefix": True})
        self._money: dict[tuple[str | None, int], object] = {}

    def money(self, currency: str | None, digits: int):
        """Amounts of the currency shown with `digits` decimals."""
        if (currency, digits) not in self._money:
            number = "#,##0" + ("." + "0" * digits if digits else "")
            suffix = f' "{currency}"' if currency else ""
            shown = f"{number}{suffix};-{number}{suffix}"
            self._money[currency, digits] = self.book.add_format({"num_format": shown})
        return self._money[currency, digits]


def write_sheet(sheet, frame: pl.DataFrame, formats: Formats, dates: Iterable[str] = ()) -> None:
    """One table per sheet: a frozen header with a filter, money as numbers in each row's currency, dates
    and times as date cells, text as text."""
    dates = set(dates)
    write_text_row(sheet, 0, frame.columns, formats.header)
    currencies = frame[CURRENCY_COLUMN].to_list() if CURRENCY_COLUMN in frame.columns else [None] * frame.height
    for col, name in enumerate(frame.columns):
        width = len(name)
        values = frame[name].to_list()
        quoted = _formula_mask(frame[name])
        for row, value in enumerate(values, start=1):
            cell = _Cell(row, col, currencies[row - 1], as_date=name in dates, quoted=quoted[row - 1])
            width = max(width, cell.write(sheet, value, formats))
        sheet.set_column(col, col, min(width + 2, MAX_COLUMN_WIDTH))
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(frame.height, 1), max(frame.width - 1, 0))


def write_text_row(sheet, row: int, texts: Iterable[str], cell_format=None) -> None:
    for col, text in enumerate(texts):
        sheet.write_string(row, col, text, cell_format)


def _formula_mask(column: pl.Series) -> list[bool]:
    if column.dtype != pl.String:
        return [False] * column.len()
    return column.to_frame().select(formula_like(pl.col(column.name)).fill_null(False)).to_series().to_list()


@dataclass(frozen=True)
class _Cell:
    row: int
    col: int
    currency: str | None  # the row's, for money
    as_date: bool  # a time shown as its UTC date
    quoted: bool  # text a spreadsheet would take for a formula

    def write(self, sheet, value: object, formats: Formats) -> int:
        """Write the value as a typed cell; gives the column width it needs."""
        row, col = self.row, self.col
        if value is None:
            return 0
        if isinstance(value, Decimal):
            # Shown to the currency's minor unit, or finer where the amount holds more (never rounded). Excel
            # stores every number as a double; the exact amount stays in the CSV beside the workbook.
            amount = exact(value, self.currency)
            digits = -int(amount.as_tuple().exponent)
            sheet.write_number(row, col, float(amount), formats.money(self.currency, digits))
            return len(f"{amount:,}") + 4
        if isinstance(value, bool):
            sheet.write_boolean(row, col, value)
            return 5
        if isinstance(value, int | float):
            sheet.write_number(row, col, value)
            return len(str(value))
        if isinstance(value, datetime):
            moment = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
            if not self.as_date:
                sheet.write_datetime(row, col, moment, formats.time)
                return len(XLSX_TIME)
            value = moment.date()
        if isinstance(value, date):
            sheet.write_datetime(row, col, datetime(value.year, value.month, value.day), formats.date)
            return len(XLSX_DATE)
        text = str(value)
        sheet.write_string(row, col, text, formats.text_as_typed if self.quoted else None)
        return len(text)
