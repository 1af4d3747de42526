"""Email masking for everything a person reads outside the store: reports, exports and alert digests."""

from __future__ import annotations

import re

import polars as pl

# Keep the first character and the domain: enough for a person to recognise the record, not to harvest it.
_EMAIL = r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
_EMAIL_RE = re.compile(_EMAIL)

TEXT_COLUMNS = ("key", "expected", "actual", "message")


def mask_email_text(text: str) -> str:
    """`jane.doe@example.com` -> `j***@example.com`, wherever an address appears in the text."""
    return _EMAIL_RE.sub(r"\1***@\2", text)


def mask_emails(findings: pl.DataFrame, columns: tuple[str, ...] = TEXT_COLUMNS) -> pl.DataFrame:
    """The findings with every email address in the free-text columns masked."""
    present = [c for c in columns if c in findings.columns]
    return findings.with_columns(pl.col(c).str.replace_all(_EMAIL, "${1}***@${2}") for c in present)
