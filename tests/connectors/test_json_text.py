"""The one JSON-value-to-text helper every connector mapping uses."""

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from driftwatch.connectors._json import text

PARIS_WINTER = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),  # an empty JSON string is no value, as a blank cell is
        ("ABC-01", "ABC-01"),
        (" 007", " 007"),  # text is kept as the platform wrote it: trimming is the normaliser's job
        (True, "true"),
        (False, "false"),
        (0, "0"),  # a zero is a value, never mistaken for "no value"
        (Decimal("19.90"), "19.90"),  # exact digits, trailing zero kept
        (12, "12"),
        (datetime(2026, 11, 23, 3, 0, tzinfo=PARIS_WINTER), "2026-11-23T02:00:00+00:00"),  # one instant, in UTC
        (datetime(2026, 11, 23, 2, 0), "2026-11-23T02:00:00"),  # naive: left for the source's timezone
        (date(2026, 11, 23), "2026-11-23"),
    ],
)
def test_a_json_value_as_canonical_text(value, expected):
    assert text(value) == expected


def test_every_mapping_uses_it():
    from driftwatch.connectors.commercetools import mapping as ct
    from driftwatch.connectors.emarsys import mapping as em
    from driftwatch.connectors.klaviyo import mapping as kl
    from driftwatch.connectors.mirakl import mapping as mi
    from driftwatch.connectors.ometria import mapping as om

    assert all(module.text is text for module in (ct, em, kl, mi, om))
    assert not any(hasattr(module, "_text") for module in (ct, mi))
