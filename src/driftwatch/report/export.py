"""A run's findings as files for spreadsheets and data tools: CSV or Parquet, chosen by file suffix."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from driftwatch.errors import UserError
from driftwatch.files import atomic_path
from driftwatch.report.mask import mask_emails
from driftwatch.report.summary import by_attention
from driftwatch.spreadsheet import write_csv

EXPORT_FORMATS = (".csv", ".parquet")


def export_findings(findings: pl.DataFrame, path: Path, *, mask: bool = True) -> Path:
    """Write the findings, most urgent first, to `path` (.csv or .parquet). Parquet keeps money exact; the
    CSV is for spreadsheets: money to its currency's minor unit, and no value read as a formula."""
    suffix = path.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise UserError(f"cannot export findings to {path}: expected a file name ending in .csv or .parquet")
    frame = by_attention(mask_emails(findings) if mask else findings)
    if suffix == ".csv":
        write_csv(frame, path)
    else:
        with atomic_path(path) as tmp:
            frame.write_parquet(tmp)
    return path
