"""Writing a generated retailer to disk, the two ways driftwatch meets data:

- `drop/<source>/<entity>.csv` (+ `_manifest.json`): the file drop a user would make, each file as its
  platform exports it (BlueCherry report exports with their own headers, title lines, BOM, CRLF,
  MM/DD/YYYY dates and thousands separators; platform-coded values; columns a platform does not have left
  out);
- `served/<source>/<entity>.csv`: the same records in canonical form, which the loopback simulators serve
  through each platform's API for the connectors to pull;
- `answer_key.csv`: one row per finding the injected drift must cause.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from driftwatch.demo.retailers._base import ANSWER_COLUMNS, Record, Retailer
from driftwatch.files import write_bytes, write_text

TIMESTAMP = "%Y-%m-%dT%H:%M:%SZ"
ANSWER_KEY = "answer_key.csv"
DROP, SERVED = "drop", "served"
Getter = Callable[[Record], Any]


@dataclass(frozen=True)
class Export:
    """How one platform exports one entity: its columns (header, value of a record) and its file format."""

    columns: Sequence[tuple[str, Getter]]
    title: Sequence[str] = ()  # report title lines above the table
    date_format: str = TIMESTAMP
    thousands: frozenset[str] = field(default_factory=frozenset)  # headers written as 1,234 / 1,234.50
    bom: bool = False
    crlf: bool = False


def canonical(*columns: str) -> Export:
    return Export([(c, _getter(c)) for c in columns])


def _getter(column: str) -> Getter:
    return lambda record: record.get(column)


# How a platform may write a value that is the same value: representation, never drift.
def local_time(column: str, zone: str) -> Getter:
    """A timestamp in a local zone with its offset (2026-11-02T03:10:00+01:00)."""
    return lambda record: None if record.get(column) is None else record[column].astimezone(ZoneInfo(zone)).isoformat()


def bare_number(column: str) -> Getter:
    """An amount without trailing zeros (39 for 39.00, 49.9 for 49.90)."""

    def bare(record: Record) -> str | None:
        value = record.get(column)
        return None if value is None else f"{value.normalize():f}"

    return bare


def upper(column: str) -> Getter:
    return lambda record: None if record.get(column) is None else record[column].upper()


@dataclass(frozen=True)
class Written:
    root: Path
    drop: Path
    served: Path
    answer_key: Path


def write(retailer: Retailer, out: Path, exports: dict[tuple[str, str], Export]) -> Written:
    """Every source's drop and served copy, and the answer key (empty for a clean twin)."""
    out = Path(out)
    drop, served = out / DROP, out / SERVED
    for (source, entity), rows in retailer.held.items():
        columns = _columns(rows)
        export = exports.get((source, entity), canonical(*columns))
        write_export(drop / source / f"{entity}.csv", rows, export)
        if retailer.kinds[source] != "bluecherry":  # BlueCherry is read from its exports, not served
            write_export(served / source / f"{entity}.csv", rows, canonical(*columns))
    for source, captured in retailer.captures.items():
        write_json(drop / source / "_manifest.json", {"captured_at": captured.astimezone(UTC).strftime(TIMESTAMP)})
    answer_key = out / ANSWER_KEY
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ANSWER_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(retailer.answers)
    write_text(answer_key, buffer.getvalue())
    return Written(out, drop, served, answer_key)


def write_export(path: Path, rows: Sequence[Record], export: Export) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if export.crlf else "\n")
    for line in export.title:
        writer.writerow([line])
    writer.writerow([header for header, _ in export.columns])
    for row in rows:
        writer.writerow(
            [_cell(get(row), export.date_format, header in export.thousands) for header, get in export.columns]
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, (("\ufeff" if export.bom else "") + buffer.getvalue()).encode("utf-8"))


def write_json(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def _columns(rows: Sequence[Record]) -> list[str]:
    """Every column some record of the entity has, in first-seen order."""
    return list(dict.fromkeys(column for row in rows for column in row))


def _cell(value: Any, date_format: str, thousands: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(date_format)
    if isinstance(value, Decimal):
        return f"{value:,}" if thousands else str(value)
    if isinstance(value, int):
        return f"{value:,}" if thousands else str(value)
    return str(value)
