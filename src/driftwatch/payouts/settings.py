"""The `[payouts]` table of driftwatch.toml: agreed commission rates, tolerance, accounts.

```toml
[payouts]
marketplace = "mirakl"          # the source whose payout_lines are reconciled
erp = "bluecherry"              # the system of record holding orders, returns and journal entries
                                # (default: the source of the feed giving the marketplace payout_lines)
channel = "mirakl"              # the ERP channel of this marketplace's orders
tolerance = "0.01"              # money difference still counted as equal, in the line's currency; or
                                # per currency: tolerance = { JPY = "5", default = "0.02" }
                                # (default: one minor unit of the currency, 0.01 EUR, 1 JPY)
delivered_statuses = ["delivered", "closed"]
refunded_statuses = ["refunded"]  # canonical return states that are a credit memo

[payouts.commission]
default = "0.15"                # the agreed rate where nothing more specific applies (unset: 0.15 is
                                # assumed, and every result says so)
shipping = false                # whether the marketplace also takes commission on shipping
[payouts.commission.channels]
mirakl = "0.15"
[payouts.commission.categories.footwear]
rate = "0.12"
skus = ["00412-*", "00413-*"]   # glob patterns over ERP SKUs

[payouts.accounts]              # ERP ledger accounts of the proposed journal entries
receivable = "MKT-RECEIVABLE"

[payouts.marketplaces.mirakl_de]  # one marketplace instance's own settings, over the ones above
channel = "MKP-DE"              # default: the instance's own name
[payouts.marketplaces.mirakl_de.commission]
default = "0.12"
```

Each marketplace is reconciled on its own: `[payouts] marketplace` (default `mirakl`) with the settings
above, and each `[payouts.marketplaces.<source>]` with those settings and its own. Without either, every
marketplace a feed gives payout lines is reconciled.

The nightly `payout_matching` check and month-end `driftwatch payouts reconcile` both read this table and
nothing else: `[checks.payout_matching]` takes only `severity`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fnmatch import fnmatchcase, translate
from typing import Any

import polars as pl

from driftwatch.config import Config
from driftwatch.entities import CANONICAL_STATUSES, RETURN_STATES
from driftwatch.errors import UserError
from driftwatch.money import MoneyTolerance

# Which ledger account each journalled line type posts to; the other side is always the receivable that
# the marketplace owes the seller.
DEFAULT_ACCOUNTS = {
    "receivable": "MKT-RECEIVABLE",
    "commission": "MKT-COMMISSION",
    "refund_commission": "MKT-COMMISSION",
    "fee": "MKT-FEES",
    "refund": "MKT-REFUNDS",
    "adjustment": "MKT-ADJUSTMENTS",
}
DEFAULT_COMMISSION_RATE = Decimal("0.15")
_KEYS = (
    "marketplace",
    "erp",
    "channel",
    "tolerance",
    "delivered_statuses",
    "refunded_statuses",
    "commission",
    "accounts",
    "marketplaces",
)
_INSTANCE_KEYS = tuple(k for k in _KEYS if k not in ("marketplace", "marketplaces"))
_COMMISSION_KEYS = ("default", "shipping", "channels", "categories")
# What the payout_matching check once took in [checks.payout_matching], and where it is set now.
RETIRED_CHECK_OPTIONS = {
    "commission_rate": '[payouts.commission] default = "0.15" (per channel: [payouts.commission.channels]; '
    "per SKU: [payouts.commission.categories.<name>])",
    "money_tolerance": '[payouts] tolerance = "0.01"',
    "refunded_statuses": '[payouts] refunded_statuses = ["refunded"]',
    "accounts": "[payouts.accounts] (the accounts of the proposed journal entries)",
    "journal_line_types": "nothing: fees and adjustments always need a journal entry, and month-end proposes "
    "the ones the ERP lacks",
}


@dataclass(frozen=True)
class Category:
    name: str
    rate: Decimal
    skus: tuple[str, ...]


@dataclass(frozen=True)
class PayoutSettings:
    marketplace: str = "mirakl"
    erp: str = "bluecherry"
    channel: str = "mirakl"
    tolerance: MoneyTolerance = field(default_factory=MoneyTolerance)
    delivered_statuses: tuple[str, ...] = ("delivered", "closed")
    refunded_statuses: tuple[str, ...] = ("refunded",)
    default_rate: Decimal = DEFAULT_COMMISSION_RATE
    default_configured: bool = False  # False: default_rate is the built-in one, assumed rather than agreed
    commission_on_shipping: bool = False
    channel_rates: dict[str, Decimal] = field(default_factory=dict)
    categories: tuple[Category, ...] = ()
    accounts: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ACCOUNTS))

    def channel_rate(self, channel: str | None) -> Decimal:
        return self.channel_rates.get(channel or "", self.default_rate)

    def channel_rate_assumed(self, channel: str | None) -> bool:
        """Whether the channel's rate is the built-in default, because nothing is configured for it."""
        return not self.default_configured and (channel or "") not in self.channel_rates

    def sku_rates(self, sku: pl.Expr, channel: pl.Expr, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
        """Over columns of SKUs and channels: each SKU's agreed rate (its category's, the first that matches,
        else its channel's) as `dtype`, and whether that rate is the built-in default, assumed for want of an
        agreement."""
        channel = channel.fill_null("")
        rate = channel.replace_strict(self.channel_rates, default=self.default_rate, return_dtype=dtype)
        assumed = ~channel.is_in(list(self.channel_rates)) & pl.lit(not self.default_configured)
        for category in reversed(self.categories):  # the first category that matches wins
            matches = pl.any_horizontal(_glob(sku, pattern) for pattern in category.skus).fill_null(False)
            rate = pl.when(matches).then(pl.lit(category.rate, dtype)).otherwise(rate)
            assumed = assumed & ~matches
        return rate, assumed


def _glob(text: pl.Expr, pattern: str) -> pl.Expr:
    """`fnmatchcase(text, pattern)` over a column: fnmatch's own regex, run by polars. A pattern with a
    character class or white space is matched in Python, as fnmatch would (their regex syntax differs)."""
    if "[" in pattern or any(c.isspace() for c in pattern):
        return text.map_elements(lambda value: fnmatchcase(value, pattern), return_dtype=pl.Boolean)
    # fnmatch's atomic groups only save backtracking, which polars' regex engine never does.
    regex = translate(pattern).replace("(?>", "(?:").removesuffix(r"\Z") + r"\z"
    return text.str.contains(f"^{regex}")


def marketplaces(cfg: Config) -> tuple[str, ...]:
    """The marketplaces whose payouts are reconciled, each on its own (see the module's docstring)."""
    table = cfg.section("payouts")
    named = [*([table["marketplace"]] if "marketplace" in table else []), *table.get("marketplaces", {})]
    if named:
        return tuple(dict.fromkeys(named))
    fed = [f.target for f in cfg.feeds if "payout_lines" in f.entities and cfg.is_marketplace(f.target)]
    return tuple(dict.fromkeys(fed)) or (PayoutSettings.marketplace,)


def validate_payouts(cfg: Config) -> None:
    """Every marketplace's settings, when the configuration is read."""
    _known_keys(cfg.section("payouts"), _KEYS, f"{cfg.path or 'configuration'}: payouts")
    for name in cfg.section("payouts").get("marketplaces", {}):
        if name not in cfg.known_sources() or not cfg.is_marketplace(name):
            raise UserError(
                f"{cfg.path or 'configuration'}: payouts.marketplaces.{name}: not a marketplace source; "
                f"expected one of {', '.join(n for n in cfg.known_sources() if cfg.is_marketplace(n))}"
            )
    for name in marketplaces(cfg):
        payout_settings(cfg, name)


def payout_settings(cfg: Config, marketplace: str | None = None) -> PayoutSettings:
    """Read and validate the settings of one marketplace's reconciliation (by default the only one
    reconciled); every problem names the key to fix."""
    _retired_check_options(cfg)
    reconciled = marketplaces(cfg)
    if marketplace is None:
        if len(reconciled) > 1:
            raise UserError(
                f"payouts of several marketplaces are reconciled ({', '.join(reconciled)}): name one "
                "(driftwatch payouts reconcile --marketplace NAME)"
            )
        marketplace = reconciled[0]
    elif marketplace not in cfg.known_sources() or not cfg.is_marketplace(marketplace):
        choices = [name for name in cfg.known_sources() if cfg.is_marketplace(name)]
        raise UserError(f"{marketplace!r} is not a marketplace source; expected one of {', '.join(choices)}")
    top = cfg.section("payouts")
    _known_keys(top, _KEYS, f"{cfg.path or 'configuration'}: payouts")
    own = top.get("marketplaces", {}).get(marketplace, {})
    where = f"{cfg.path or 'configuration'}: payouts" + (f".marketplaces.{marketplace}" if own else "")
    if not isinstance(own, dict):
        raise UserError(f"{where}: expected a table of settings")
    _known_keys(own, _INSTANCE_KEYS, where)
    shared = {k: v for k, v in top.items() if k not in ("marketplace", "marketplaces")}
    # The top-level channel is the channel of the top-level marketplace; another one's is its own name.
    if top.get("marketplace", PayoutSettings.marketplace) != marketplace:
        shared.pop("channel", None)
    table = _merged(shared, own)
    commission = table.get("commission", {})
    _known_keys(table, _KEYS, where)
    _known_keys(commission, _COMMISSION_KEYS, f"{where}.commission")
    _known_keys(table.get("accounts", {}), tuple(DEFAULT_ACCOUNTS), f"{where}.accounts")
    _sources({**table, "marketplace": marketplace}, where, cfg.known_sources())
    defaults = PayoutSettings()
    channel = str(table.get("channel", marketplace))
    return PayoutSettings(
        marketplace=marketplace,
        erp=str(table.get("erp", _feeding_erp(cfg, marketplace) or defaults.erp)),
        channel=channel,
        tolerance=_tolerance(table.get("tolerance"), f"{where}.tolerance"),
        delivered_statuses=_statuses(table, "delivered_statuses", defaults.delivered_statuses, where),
        refunded_statuses=_statuses(table, "refunded_statuses", defaults.refunded_statuses, where, RETURN_STATES),
        default_rate=_decimal(commission.get("default", defaults.default_rate), f"{where}.commission.default"),
        default_configured="default" in commission,
        commission_on_shipping=bool(commission.get("shipping", False)),
        channel_rates={
            name: _decimal(rate, f"{where}.commission.channels.{name}")
            for name, rate in commission.get("channels", {}).items()
        },
        categories=tuple(_category(name, spec, where) for name, spec in commission.get("categories", {}).items()),
        accounts={**DEFAULT_ACCOUNTS, **table.get("accounts", {})},
    )


def _feeding_erp(cfg: Config, marketplace: str) -> str | None:
    """The system of record whose feed gives the marketplace its payout lines, when a feed says so."""
    sources = [f.source for f in cfg.feeds if f.target == marketplace and "payout_lines" in f.entities]
    return sources[0] if sources else None


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` over `base`, tables merged key by key (a marketplace's own commission default keeps the
    shared channel rates and categories)."""
    merged = dict(base)
    for key, value in override.items():
        before = merged.get(key)
        merged[key] = _merged(before, value) if isinstance(before, dict) and isinstance(value, dict) else value
    return merged


def _retired_check_options(cfg: Config) -> None:
    """Payout matching has one set of settings, [payouts]: refuse the options the check once took."""
    table = cfg.raw.get("checks", {}).get("payout_matching", {})
    if not isinstance(table, dict):
        return
    scopes = [("checks.payout_matching", table)]
    scopes += [
        (f"checks.payout_matching.targets.{name}", options)
        for name, options in table.get("targets", {}).items()
        if isinstance(options, dict)
    ]
    for where, options in scopes:
        for key in options:
            if key in RETIRED_CHECK_OPTIONS:
                raise UserError(
                    f"{cfg.path or 'configuration'}: {where}.{key} is no longer read: payout matching, nightly "
                    f"and at month-end, takes its settings from [payouts]; set {RETIRED_CHECK_OPTIONS[key]}"
                )


def _known_keys(table: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(known)}")


def _sources(table: dict[str, Any], where: str, known: tuple[str, ...]) -> None:
    for key in ("marketplace", "erp"):
        if key in table and table[key] not in known:
            raise UserError(f"{where}.{key}: {table[key]!r} is not a source; expected one of {', '.join(known)}")


def _tolerance(value: Any, key: str) -> MoneyTolerance:
    if value is None:
        return MoneyTolerance()
    try:
        return MoneyTolerance.parse(value, key)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _decimal(value: Any, key: str) -> Decimal:
    """A rate: a fraction between 0 and 1."""
    # Floats come through str() so that 0.15 in TOML is exactly 0.15, not its binary neighbour.
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise UserError(f"{key}: {value!r} is not a number") from None
    if not 0 <= number <= 1:
        raise UserError(f"{key}: {value!r} must be between 0 and 1 (a rate is a fraction: 15% is 0.15)")
    return number


def _statuses(
    table: dict[str, Any], key: str, default: tuple[str, ...], where: str, names: tuple[str, ...] = CANONICAL_STATUSES
) -> tuple[str, ...]:
    values = tuple(table.get(key, default))
    unknown = [v for v in values if v not in names]
    if unknown:
        raise UserError(f"{where}.{key}: {unknown} are not canonical statuses; expected some of {names}")
    return values


def _category(name: str, spec: Any, where: str) -> Category:
    key = f"{where}.commission.categories.{name}"
    if not isinstance(spec, dict) or "rate" not in spec or not spec.get("skus"):
        raise UserError(f'{key}: expected a table with rate and skus, e.g. rate = "0.12", skus = ["00412-*"]')
    _known_keys(spec, ("rate", "skus"), key)
    return Category(name, _decimal(spec["rate"], f"{key}.rate"), tuple(spec["skus"]))
