"""Shared fixtures for the connector tests of every platform."""

from __future__ import annotations

import logging
from collections.abc import Callable

import polars as pl
import pytest

from driftwatch.normalize import coerce

# HTTP timings that keep retry tests fast; a connector reads them from its settings. The timeout is generous:
# a test that is not about timeouts must not fail because a busy machine answered slowly (a test that is
# sets its own, below the delay of the timeout it injects).
FAST_HTTP = {"timeout": 10.0, "max_attempts": 5, "backoff_initial": 0.001, "backoff_max": 0.01, "max_retry_after": 1.0}


@pytest.fixture
def fast_http() -> dict[str, float]:
    return dict(FAST_HTTP)


def _canonical(frame: pl.DataFrame, entity: str) -> pl.DataFrame:
    """A frame after the shared normaliser, sorted by every column, for exact comparison."""
    coerced = coerce(frame, entity)
    assert coerced.bad.height == 0, coerced.bad
    good = coerced.good
    return good.select(sorted(good.columns)).sort(sorted(good.columns), nulls_last=True)


@pytest.fixture
def canonical() -> Callable[[pl.DataFrame, str], pl.DataFrame]:
    """canonical(frame, entity): compare a pulled frame with the dataset a simulator served."""
    return _canonical


@pytest.fixture
def assert_no_secret(caplog: pytest.LogCaptureFixture) -> Callable[..., None]:
    """assert_no_secret(secret, *texts): the secret is in no captured log line and none of the texts."""
    caplog.set_level(logging.DEBUG)

    def check(secret: str, *texts: str) -> None:
        assert secret
        for record in caplog.records:
            assert secret not in record.getMessage(), record.getMessage()
        for text in texts:
            assert secret not in text, text

    return check
