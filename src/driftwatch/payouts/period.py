"""An accounting period: one calendar month in UTC, written YYYY-MM."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from driftwatch.errors import UserError

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, order=True)
class Period:
    year: int
    month: int

    @property
    def name(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the period."""
        if self.month == 12:
            return datetime(self.year + 1, 1, 1, tzinfo=UTC)
        return datetime(self.year, self.month + 1, 1, tzinfo=UTC)

    def __str__(self) -> str:
        return self.name


def period_of(moment: datetime) -> Period:
    """The period a moment falls in, by its UTC date."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment
    return Period(moment.year, moment.month)


def parse_period(text: str) -> Period:
    match = _PERIOD.match(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise UserError(f"period {text!r} is not a month: expected YYYY-MM, e.g. 2026-10")
    return Period(int(match.group(1)), int(match.group(2)))
