"""A run's findings as files for spreadsheets and data tools: CSV or Parquet, chosen by file suffix."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from driftwatch.errors import UserError
from driftwatch.files import atomic_path
from driftwatch.report.mask import mask_emails
from driftwatch.report.summary import by_attention

EXPORT_FORMATS = (".csv", ".parquet")


def export_findings(findings: pl.DataFrame, path: Path, *, mask: bool = True) -> Path:
    """Write the findings, most urgent first, to `path` (.csv or .parquet). Money stays exact in both."""
    suffix = path.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise UserError(f"cannot export findings to {path}: expected a file name ending in .csv or .parquet")
    frame = by_attention(mask_emails(findings) if mask else findings)
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            frame.write_csv(tmp)
        else:
            frame.write_parquet(tmp)
    return path
