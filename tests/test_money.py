from decimal import Decimal

import pytest

from driftwatch.money import format_money, minor_unit, quantize


@pytest.mark.parametrize(
    ("currency", "unit"),
    [("GBP", "0.01"), ("eur", "0.01"), ("JPY", "1"), ("KWD", "0.001"), (None, "0.01"), ("NOPE", "0.01")],
)
def test_the_minor_unit_follows_iso_4217(currency, unit):
    assert minor_unit(currency) == Decimal(unit)


def test_amounts_round_half_up_to_the_currencys_minor_unit():
    assert quantize(Decimal("2.345"), "GBP") == Decimal("2.35")
    assert quantize(Decimal("-2.345"), "GBP") == Decimal("-2.35")
    assert quantize(Decimal("1234.5"), "JPY") == Decimal("1235")
    assert str(quantize(Decimal("45"), "EUR")) == "45.00"


def test_money_is_shown_with_its_currencys_decimals_and_code():
    assert format_money(Decimal("1234.5"), "GBP") == "1,234.50 GBP"
    assert format_money(Decimal("1234.5"), "JPY") == "1,235 JPY"
    assert format_money(Decimal("7"), None) == "7.00"
    assert format_money(None, "GBP") == ""
