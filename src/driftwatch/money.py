"""Money: exact amounts in a currency, to that currency's minor unit (2 decimals for GBP, 0 for JPY).

Every part that rounds, compares or shows money asks here, so a tolerance, a journal line and a report
agree on what "one unit" is in each currency.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from babel.core import UnknownLocaleError
from babel.numbers import get_currency_precision

DEFAULT_DIGITS = 2  # an unknown or absent currency is shown and rounded like most currencies


def minor_digits(currency: str | None) -> int:
    """How many decimals the currency has (ISO 4217): 2 for GBP, 0 for JPY, 3 for KWD."""
    if not currency:
        return DEFAULT_DIGITS
    try:
        return get_currency_precision(currency.strip().upper())
    except (UnknownLocaleError, ValueError, KeyError):
        return DEFAULT_DIGITS


def minor_unit(currency: str | None) -> Decimal:
    """The smallest amount of the currency: Decimal('0.01') for GBP, Decimal('1') for JPY."""
    return Decimal(1).scaleb(-minor_digits(currency))


def quantize(amount: Decimal, currency: str | None) -> Decimal:
    """The amount rounded half-up to the currency's minor unit."""
    return Decimal(amount).quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def format_money(amount: Decimal | None, currency: str | None) -> str:
    """`1,234.50 GBP`, `1,235 JPY`; empty for no amount."""
    if amount is None:
        return ""
    text = f"{quantize(Decimal(amount), currency):,}"
    return f"{text} {currency}" if currency else text
