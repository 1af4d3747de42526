"""A value read from (or written to) a platform's JSON as canonical text, the one way every mapping does it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any


def text(value: Any) -> str | None:
    """None for null or an empty string; `true`/`false` for booleans (whatever case a platform writes,
    the canonical form is lower-case); ISO 8601 for timestamps (in UTC when they carry a zone) and dates;
    everything else as `str` gives it (numbers arrive as int or Decimal, so the digits are exact)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo is not None else value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
