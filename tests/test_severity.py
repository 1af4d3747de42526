"""Severities and the fail_on decision: one definition, used by the config, check files, findings and exits."""

import polars as pl
import pytest

from driftwatch.severity import SEVERITIES, at_or_above, fails, severity_rank


def test_at_or_above_counts_the_threshold_and_everything_worse():
    assert at_or_above("critical") == ("critical",)
    assert at_or_above("medium") == ("critical", "high", "medium")
    assert at_or_above("low") == SEVERITIES


@pytest.mark.parametrize(
    ("counts", "fail_on", "expected"),
    [
        ({"low": 3}, "medium", False),
        ({"low": 3}, "low", True),
        ({"critical": 1}, "high", True),
        ({"high": 0, "medium": 4}, "high", False),
        ({}, "low", False),  # a run with nothing counted is clean, whatever the threshold
    ],
)
def test_fails_decides_from_the_counts_at_or_above_fail_on(counts, fail_on, expected):
    assert fails(counts, fail_on) is expected


def test_rank_orders_worst_first_and_an_unknown_word_lowest():
    frame = pl.DataFrame({"severity": ["low", "critical", "bogus", "high"]})
    ranked = frame.sort(severity_rank(), descending=True)["severity"].to_list()
    assert ranked == ["critical", "high", "low", "bogus"]
