"""Money: exact amounts in a currency, to that currency's minor unit (2 decimals for GBP, 0 for JPY).

Every part that rounds, compares or shows money asks here, so a tolerance, a journal line and a report
agree on what "one unit" is in each currency.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache, lru_cache

import polars as pl
from babel.core import UnknownLocaleError
from babel.numbers import get_currency_precision, list_currencies

DEFAULT_DIGITS = 2  # an unknown or absent currency is shown and rounded like most currencies


@lru_cache(maxsize=1024)  # asked once per amount by payout matching: a lookup in babel costs 15 us
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


@cache
def currencies() -> frozenset[str]:
    """Every ISO 4217 code babel knows (current and historic)."""
    return frozenset(list_currencies())


@dataclass(frozen=True)
class MoneyTolerance:
    """How far apart two amounts of one currency may be and still count as equal: the amount set for the
    currency, else the `default` amount, else one minor unit of the currency (0.01 GBP, 1 JPY)."""

    per_currency: Mapping[str, Decimal] = field(default_factory=dict)
    default: Decimal | None = None

    @classmethod
    def parse(cls, value: object, name: str = "money_tolerance") -> MoneyTolerance:
        """From a setting (`name`): one amount for every currency (`0.05` or `"0.05"`), or a table of amounts
        per currency code with an optional `default` (`{ JPY = "5", default = "0.02" }`). A ValueError says
        what is wrong, naming the entry."""
        if not isinstance(value, Mapping):
            return cls({}, _amount(value, name))
        amounts: dict[str, Decimal] = {}
        for code, amount in value.items():
            if code != "default" and code.upper() not in currencies():
                swapped = [c for c in sorted(currencies()) if sorted(c) == sorted(code.upper())]  # JYP -> JPY
                close = swapped or difflib.get_close_matches(code.upper(), sorted(currencies()), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ValueError(f"{code!r} is not an ISO 4217 currency code{hint}; or use `default` for the rest")
            amounts[code if code == "default" else code.upper()] = _amount(amount, code)
        default = amounts.pop("default", None)
        return cls(amounts, default)

    def of(self, currency: str | None) -> Decimal:
        code = (currency or "").strip().upper()
        if code in self.per_currency:
            return self.per_currency[code]
        if self.default is not None:
            return self.default
        return minor_unit(code or None)

    def table(self) -> dict[str, Decimal]:
        """The tolerance of every known currency, and of each one named in the option."""
        return {code: self.of(code) for code in currencies() | set(self.per_currency)}

    def limit(self, codes: pl.Expr, dtype: pl.DataType) -> pl.Expr:
        """Per row, the tolerance of the row's currency (the codes in `codes`), as `dtype`."""
        code = codes.cast(pl.String).str.strip_chars().str.to_uppercase()
        return code.replace_strict(self.table(), default=self.of(None), return_dtype=dtype)


def _amount(value: object, name: str) -> Decimal:
    # Floats come through str(): 0.01 in TOML is exactly 0.01, not its binary neighbour.
    try:
        amount = None if isinstance(value, bool) else Decimal(str(value))
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or amount < 0:
        raise ValueError(f'{name}: {value!r} is not an amount of money of at least 0, e.g. "0.05"')
    return amount


def exact(amount: Decimal, currency: str | None) -> Decimal:
    """The amount to its currency's minor unit or finer, never rounded: 45.0000 EUR is 45.00, 4500 JPY is
    4500, and a sub-cent commission of -1.5375 EUR stays -1.5375."""
    amount = Decimal(amount)
    digits = max(minor_digits(currency), -min(amount.normalize().as_tuple().exponent, 0))
    return amount.quantize(Decimal(1).scaleb(-digits))


def rounded(amounts: pl.Expr, codes: pl.Expr) -> pl.Expr:
    """`quantize` over a column: each amount rounded half up to its row's currency minor unit, by the
    currency codes in `codes`."""
    return _per_currency(codes, lambda digits: amounts.round(digits, mode="half_away_from_zero"))


def amounts_as_text(amounts: pl.Expr, codes: pl.Expr) -> pl.Expr:
    """`exact` over a column, as text: each amount to its row's currency minor unit (45.00 for EUR, 4500 for
    JPY), and finer only where it holds more decimals (-1.5375): trailing zeros go, digits never do."""
    # Not a whole number of minor units: a non-zero digit lies beyond them, so only zeros are cut.
    finer = amounts.cast(pl.String).str.replace(r"0+$", "")

    def text(digits: int) -> pl.Expr:
        whole = amounts.round(digits)
        return pl.when(amounts == whole).then(whole.cast(pl.Decimal(38, digits)).cast(pl.String)).otherwise(finer)

    return _per_currency(codes, text)


@cache
def _codes_by_digits() -> dict[int, tuple[str, ...]]:
    """The currency codes whose minor unit is not the usual hundredth, by their number of decimals."""
    groups: dict[int, list[str]] = {}
    for code in sorted(currencies()):
        if (digits := minor_digits(code)) != DEFAULT_DIGITS:
            groups.setdefault(digits, []).append(code)
    return {digits: tuple(codes) for digits, codes in sorted(groups.items())}


def _per_currency(codes: pl.Expr, by_digits: Callable[[int], pl.Expr]) -> pl.Expr:
    """`by_digits(n)` on each row whose currency has n decimals (an unknown or absent one: the default)."""
    code = codes.cast(pl.String).str.strip_chars().str.to_uppercase()
    result = by_digits(DEFAULT_DIGITS)
    for digits, named in _codes_by_digits().items():
        result = pl.when(code.is_in(named)).then(by_digits(digits)).otherwise(result)
    return result
