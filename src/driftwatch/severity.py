"""Finding severities, worst first, and the one decision made from them: does a run fail?"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

SEVERITIES = ("critical", "high", "medium", "low")
SEVERITY_RANK = {name: len(SEVERITIES) - i for i, name in enumerate(SEVERITIES)}  # critical 4 .. low 1


def severity_rank(column: str = "severity") -> pl.Expr:
    """Higher is worse (unknown severities rank lowest)."""
    return pl.col(column).replace_strict(SEVERITY_RANK, default=0, return_dtype=pl.Int8)


def at_or_above(threshold: str) -> tuple[str, ...]:
    """The severities as bad as `threshold` or worse: `at_or_above("high")` is critical and high."""
    return SEVERITIES[: SEVERITIES.index(threshold) + 1]


def fails(counts: Mapping[str, int], fail_on: str) -> bool:
    """`audit.fail_on`: whether open findings counted per severity make a run exit with drift."""
    return any(counts.get(severity, 0) for severity in at_or_above(fail_on))
