"""Matching payout lines to the ERP, one kind of line at a time.

Each matcher takes the period's lines of its kind and gives every one of them a verdict (`matched`,
`mismatch`, `unmatched` or `duplicate`, with a reason) plus the issues a person must look at. A verdict
other than `matched` names its problem (PROBLEMS) and, for a mismatch, the amounts compared. Amounts are
compared per marketplace order over every document up to the period's end, so an order paid or refunded
in several billing cycles is judged on its total, never line by line.

The lines judged carry `period_end` (PERIOD_END, the end of their document's period): month-end judges one
period's lines, the nightly check every period's at once, and each order is judged per period end on the
documents dated before it, so both give every period the verdicts its own reconciliation gives it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import polars as pl

from driftwatch.entities import MONEY, TIMESTAMP
from driftwatch.money import MoneyTolerance, amounts_as_text, exact, quantize, rounded
from driftwatch.payouts.period import Period
from driftwatch.payouts.settings import PayoutSettings

SALES = ("order_amount", "shipping")
COMMISSIONS = ("commission", "refund_commission")
# Lines that move money the ERP only learns about through a journal entry.
JOURNALLED = ("commission", "refund_commission", "fee", "refund", "adjustment")

# What can be wrong with a line, by the verdict that reports it.
PROBLEMS = {
    "unmatched": ("erp_order", "marketplace_order", "credit_memo", "journal_entry"),
    "mismatch": (
        "order_amount",
        "order_currency",
        "refund_amount",
        "commission_rate",
        "refund_commission_rate",
        "unbalanced_document",
    ),
    "duplicate": ("duplicate_line",),
}
VERDICT_SCHEMA = {
    "line_id": pl.String,
    "status": pl.String,
    "problem": pl.String,  # null when matched
    "reason": pl.String,
    "expected": MONEY,  # for a mismatch: what the ERP or the agreement says, to date
    "actual": MONEY,  # for a mismatch: what the marketplace's lines say, to date
}
ISSUE_SCHEMA = {
    "check": pl.String,
    "payout_id": pl.String,
    "external_id": pl.String,
    "order_id": pl.String,
    "line_ids": pl.String,
    "currency": pl.String,
    "expected": MONEY,
    "actual": MONEY,
    "difference": MONEY,
    "message": pl.String,
}


@dataclass(frozen=True)
class Verdicts:
    lines: pl.DataFrame  # VERDICT_SCHEMA
    issues: pl.DataFrame  # ISSUE_SCHEMA
    assumed_rate_orders: int = 0  # orders judged at the built-in commission rate: none is configured for them

    @staticmethod
    def concat(parts: list[Verdicts]) -> Verdicts:
        return Verdicts(
            pl.concat([_verdicts(p.lines) for p in parts]),
            pl.concat([p.issues.select(list(ISSUE_SCHEMA)).cast(ISSUE_SCHEMA) for p in parts]),
            sum(p.assumed_rate_orders for p in parts),
        )


def _verdicts(frame: pl.DataFrame) -> pl.DataFrame:
    """A matcher's verdicts in VERDICT_SCHEMA; the columns it does not fill are null."""
    missing = [pl.lit(None).alias(name) for name in VERDICT_SCHEMA if name not in frame.columns]
    return frame.with_columns(missing).select(list(VERDICT_SCHEMA)).cast(VERDICT_SCHEMA)


def money_text(expr: pl.Expr, currency: str = "currency") -> pl.Expr:
    """An amount as text, to the minor unit of the currency in column `currency` (finer if it holds more)."""
    return amounts_as_text(expr, pl.col(currency))


def _issues(frame: pl.DataFrame, **columns: pl.Expr) -> pl.DataFrame:
    exprs = {name: columns.get(name, pl.lit(None)) for name in ISSUE_SCHEMA}
    frame = frame.with_columns(**exprs).select(list(ISSUE_SCHEMA)).cast(ISSUE_SCHEMA)
    return frame.with_columns(difference=(pl.col("actual") - pl.col("expected")).cast(MONEY))


def _off(actual: str, expected: str, tolerance: MoneyTolerance, currency: str = "currency") -> pl.Expr:
    """More than the tolerance of the currency in column `currency` apart; a missing side is always apart."""
    limit = tolerance.limit(pl.col(currency), MONEY)
    return ((pl.col(actual) - pl.col(expected)).abs() > limit).fill_null(True)


# ---------------------------------------------------------------------------------------------- duplicates


def mark_duplicates(history: pl.DataFrame) -> pl.DataFrame:
    """Add `duplicate_of`: the first earlier line that is the same charge (same order, or same document for
    lines without one; same type, amount, currency and date), null for an original line."""
    # The owner is (order, null) or (null, document): two columns rather than one text built per line.
    document = pl.when(pl.col("external_id").is_null()).then(pl.col("payout_id"))
    same_charge = ["external_id", document, "line_type", "amount", "currency", "transaction_date"]
    first = pl.col("line_id").first().over(same_charge)
    return history.with_columns(duplicate_of=pl.when(first != pl.col("line_id")).then(first))


def duplicates(scope: pl.DataFrame) -> Verdicts:
    dups = scope.filter(pl.col("duplicate_of").is_not_null())
    reason = pl.format("same {} as line {}", "line_type", "duplicate_of")
    return Verdicts(
        dups.select(
            "line_id",
            status=pl.lit("duplicate"),
            problem=pl.lit("duplicate_line"),
            reason=reason,
            expected=pl.lit(0),
            actual="amount",
        ),
        _issues(
            dups,
            check=pl.lit("duplicate_line"),
            payout_id=pl.col("payout_id"),
            external_id=pl.col("external_id"),
            line_ids=pl.format("{} {}", "duplicate_of", "line_id"),
            currency=pl.col("currency"),
            expected=pl.lit(0),
            actual=pl.col("amount"),
            message=pl.format(
                "{} line {} repeats line {}: {} {} charged twice",
                "line_type",
                "line_id",
                "duplicate_of",
                money_text(pl.col("amount")),
                "currency",
            ),
        ),
    )


# ---------------------------------------------------------------------------------------------- documents


def documents(scope: pl.DataFrame, tolerance: MoneyTolerance) -> tuple[pl.DataFrame, Verdicts]:
    """Each accounting document (per currency): its lines must sum to its payment line."""
    is_payment = pl.col("line_type") == "payment"
    docs = (
        scope.group_by("payout_id", "currency")
        .agg(
            document_date=pl.col("document_date").first(),
            lines=pl.len().cast(pl.Int64),
            payment_lines=is_payment.sum().cast(pl.Int64),
            payment=pl.col("amount").filter(is_payment).sum(),
            lines_total=pl.col("amount").filter(~is_payment).sum(),
        )
        .with_columns(pl.col("payment", "lines_total").cast(MONEY))
        .with_columns(difference=(pl.col("payment") - pl.col("lines_total")).cast(MONEY))
        .with_columns(balanced=(pl.col("payment_lines") == 1) & ~_off("lines_total", "payment", tolerance))
        .sort("document_date", "payout_id", "currency")
    )
    problem = (
        pl.when(pl.col("payment_lines") == 0)
        .then(pl.lit("no payment line"))
        .when(pl.col("payment_lines") > 1)
        .then(pl.format("{} payment lines", "payment_lines"))
        .otherwise(
            pl.format(
                "lines sum to {} but the payment is {}",
                money_text(pl.col("lines_total")),
                money_text(pl.col("payment")),
            )
        )
    )
    unbalanced = docs.filter(~pl.col("balanced")).with_columns(problem=problem)
    payments = scope.filter(is_payment & pl.col("duplicate_of").is_null()).join(
        docs.select("payout_id", "currency", "balanced", "lines_total", "payment"), on=["payout_id", "currency"]
    )
    verdicts = payments.select(
        "line_id",
        status=pl.when("balanced").then(pl.lit("matched")).otherwise(pl.lit("mismatch")),
        problem=pl.when("balanced").then(None).otherwise(pl.lit("unbalanced_document")),
        reason=pl.when("balanced")
        .then(pl.lit("equals the sum of the document's lines"))
        .otherwise(pl.lit("the document's lines do not sum to it")),
        expected=pl.when("balanced").then(None).otherwise("lines_total"),
        actual=pl.when("balanced").then(None).otherwise("payment"),
    )
    issues = _issues(
        unbalanced,
        check=pl.lit("unbalanced_document"),
        payout_id=pl.col("payout_id"),
        currency=pl.col("currency"),
        expected=pl.col("lines_total"),
        actual=pl.col("payment"),
        message=pl.format("document {} ({}): {}", "payout_id", "currency", "problem"),
    )
    return docs, Verdicts(verdicts, issues)


# ---------------------------------------------------------------------------------------------- orders


PERIOD_END = "period_end"
ORDER_PERIOD = ["external_id", PERIOD_END]  # one marketplace order as judged at one period's end


def period_end(date: str = "document_date") -> pl.Expr:
    """The first instant after the period (calendar month, UTC) a date falls in (period.Period.end)."""
    return pl.col(date).dt.month_start().dt.offset_by("1mo").alias(PERIOD_END)


def _to_date(keys: pl.DataFrame, history: pl.DataFrame, line_types: tuple[str, ...]) -> pl.DataFrame:
    """Per marketplace order and period end in `keys`: the sum of such lines over every document dated
    before that end. The order's lines are paired with each of its period ends, so one pass over several
    periods sums exactly what each period's own reconciliation sums."""
    lines = history.filter(
        pl.col("line_type").is_in(line_types) & pl.col("duplicate_of").is_null() & pl.col("external_id").is_not_null()
    ).select("external_id", "document_date", "amount", "currency")
    return (
        keys.select(ORDER_PERIOD)
        .join(lines, on="external_id")
        .filter(pl.col("document_date") < pl.col(PERIOD_END))
        .group_by(ORDER_PERIOD)
        .agg(to_date=pl.col("amount").sum().cast(MONEY), line_currency=pl.col("currency").unique().sort().str.join(","))
    )


def _per_order(scope: pl.DataFrame, history: pl.DataFrame, line_types: tuple[str, ...]) -> pl.DataFrame:
    """Per marketplace order with such lines in a period (ORDER_PERIOD): the total to the period's end."""
    keys = _order_lines(scope, line_types).select(ORDER_PERIOD).unique()
    return _to_date(keys, history, line_types)


def _order_lines(scope: pl.DataFrame, line_types: tuple[str, ...]) -> pl.DataFrame:
    return scope.filter(pl.col("line_type").is_in(line_types) & pl.col("external_id").is_not_null())


def _listed(flagged: pl.DataFrame, scope: pl.DataFrame, line_types: tuple[str, ...]) -> pl.DataFrame:
    """Flagged orders with their documents and lines in the period, as an issue lists them. Only flagged
    orders: listing the lines of every order judged cost more than judging them."""
    lines = _order_lines(scope, line_types).join(flagged.select(ORDER_PERIOD), on=ORDER_PERIOD, how="semi")
    listed = lines.group_by(ORDER_PERIOD).agg(
        payout_id=pl.col("payout_id").unique().sort().str.join(" "), line_ids=pl.col("line_id").sort().str.join(" ")
    )
    return flagged.join(listed, on=ORDER_PERIOD, how="left")


def _orderless(scope: pl.DataFrame, line_types: tuple[str, ...]) -> pl.DataFrame:
    return scope.filter(pl.col("line_type").is_in(line_types) & pl.col("external_id").is_null()).select(
        "line_id",
        status=pl.lit("unmatched"),
        problem=pl.lit("marketplace_order"),
        reason=pl.lit("the line names no marketplace order"),
    )


def _line_verdicts(
    scope: pl.DataFrame, per_order: pl.DataFrame, line_types: tuple[str, ...], expected: str, actual: str
) -> pl.DataFrame:
    """Each line of an order in the period gets the order's verdict; a mismatch shows the amounts compared."""
    mismatch = pl.col("status") == "mismatch"
    verdicts = per_order.select(
        *ORDER_PERIOD,
        "status",
        "problem",
        "reason",
        expected=pl.when(mismatch).then(expected),
        actual=pl.when(mismatch).then(actual),
    )
    lines = _order_lines(scope, line_types).select("line_id", *ORDER_PERIOD)
    return lines.join(verdicts, on=ORDER_PERIOD).drop(ORDER_PERIOD)


def erp_by_external_id(erp_orders: pl.DataFrame) -> pl.DataFrame:
    """One row per marketplace order id (an ERP may split one marketplace order into several orders)."""
    return erp_orders.group_by("external_id").agg(
        order_id=pl.col("order_id").unique().sort().str.join("/"),
        erp_total=pl.col("total").sum().cast(MONEY),
        erp_total_known=pl.col("total").is_not_null().all(),
        erp_currency=pl.col("currency").unique().sort().str.join(","),
    )


def sales(scope: pl.DataFrame, history: pl.DataFrame, erp: pl.DataFrame, tolerance: MoneyTolerance) -> Verdicts:
    """Order amount and shipping lines, to date, against the ERP order's total."""
    per_order = _per_order(scope, history, SALES).join(erp, on="external_id", how="left")
    wrong_currency = pl.col("erp_currency") != pl.col("line_currency")
    off = _off("to_date", "erp_total", tolerance, "line_currency") | ~pl.col("erp_total_known")
    per_order = per_order.with_columns(
        status=pl.when(pl.col("order_id").is_null())
        .then(pl.lit("unmatched"))
        .when(wrong_currency | off)
        .then(pl.lit("mismatch"))
        .otherwise(pl.lit("matched")),
        reason=pl.when(pl.col("order_id").is_null())
        .then(pl.lit("no ERP order carries this marketplace order id"))
        .when(wrong_currency)
        .then(pl.format("paid in {} but the ERP order is in {}", "line_currency", "erp_currency"))
        .when(off)
        .then(
            pl.format(
                "paid {} to date; the ERP order totals {}",
                money_text(pl.col("to_date"), "line_currency"),
                money_text(pl.col("erp_total"), "line_currency"),
            )
        )
        .otherwise(pl.format("ERP order {}", "order_id")),
        problem=pl.when(pl.col("order_id").is_null())
        .then(pl.lit("erp_order"))
        .when(wrong_currency)
        .then(pl.lit("order_currency"))
        .when(off)
        .then(pl.lit("order_amount")),
    )
    issues = _issues(
        _listed(per_order.filter(pl.col("status") == "mismatch"), scope, SALES),
        check=pl.col("problem"),
        payout_id=pl.col("payout_id"),
        external_id=pl.col("external_id"),
        order_id=pl.col("order_id"),
        line_ids=pl.col("line_ids"),
        currency=pl.col("line_currency"),
        expected=pl.col("erp_total"),
        actual=pl.col("to_date"),
        message=pl.format("order {} (ERP {}): {}", "external_id", "order_id", "reason"),
    )
    verdicts = [_line_verdicts(scope, per_order, SALES, "erp_total", "to_date"), _orderless(scope, SALES)]
    return Verdicts(pl.concat(verdicts, how="diagonal_relaxed"), issues)


def refunds(
    scope: pl.DataFrame,
    history: pl.DataFrame,
    erp: pl.DataFrame,
    credit_memos: pl.DataFrame | None,
    tolerance: MoneyTolerance,
) -> Verdicts:
    """Refund lines, to date, against the ERP's credit memos (refunded returns) of the same order processed
    by the period's end. Without the ERP's returns (None) a refund is not matched, and not judged either: it
    has no problem to report."""
    unchecked = credit_memos is None
    if credit_memos is None:
        credit_memos = pl.DataFrame(
            schema={"external_id": pl.String, "amount": MONEY, "return_id": pl.String, "processed_at": TIMESTAMP}
        )
    per_order = _per_order(scope, history, ("refund",))
    processed = pl.col("processed_at").is_null() | (pl.col("processed_at") < pl.col(PERIOD_END))
    credited = (
        per_order.select(ORDER_PERIOD)
        .join(credit_memos.select("external_id", "amount", "return_id", "processed_at"), on="external_id")
        .filter(processed)
        .group_by(ORDER_PERIOD)
        .agg(credited=pl.col("amount").sum().cast(MONEY), return_ids=pl.col("return_id").sort().str.join(" "))
    )
    per_order = (
        per_order.with_columns(refunded=(-pl.col("to_date")).cast(MONEY))
        .join(erp.select("external_id", "order_id"), on="external_id", how="left")
        .join(credited, on=ORDER_PERIOD, how="left")
    )
    off = _off("refunded", "credited", tolerance, "line_currency")
    per_order = per_order.with_columns(
        status=pl.when(pl.col("order_id").is_null() | pl.col("return_ids").is_null())
        .then(pl.lit("unmatched"))
        .when(off)
        .then(pl.lit("mismatch"))
        .otherwise(pl.lit("matched")),
        reason=pl.when(pl.col("order_id").is_null())
        .then(pl.lit("no ERP order carries this marketplace order id"))
        .when(pl.lit(unchecked))
        .then(pl.lit("not checked: the ERP's returns were not loaded"))
        .when(pl.col("return_ids").is_null())
        .then(pl.format("refund without an ERP credit memo on order {}", "order_id"))
        .when(off)
        .then(
            pl.format(
                "refunded {} to date; ERP credit memos total {}",
                money_text(pl.col("refunded"), "line_currency"),
                money_text(pl.col("credited"), "line_currency"),
            )
        )
        .otherwise(pl.format("ERP credit memo {}", "return_ids")),
        problem=pl.when(pl.col("order_id").is_null())
        .then(pl.lit("erp_order"))
        .when(pl.lit(unchecked))
        .then(None)
        .when(pl.col("return_ids").is_null())
        .then(pl.lit("credit_memo"))
        .when(off)
        .then(pl.lit("refund_amount")),
    )
    issues = _issues(
        _listed(per_order.filter(pl.col("status") == "mismatch"), scope, ("refund",)),
        check=pl.lit("refund_amount"),
        payout_id=pl.col("payout_id"),
        external_id=pl.col("external_id"),
        order_id=pl.col("order_id"),
        line_ids=pl.col("line_ids"),
        currency=pl.col("line_currency"),
        expected=pl.col("credited"),
        actual=pl.col("refunded"),
        message=pl.format("order {} (ERP {}): {}", "external_id", "order_id", "reason"),
    )
    verdicts = [_line_verdicts(scope, per_order, ("refund",), "credited", "refunded"), _orderless(scope, ("refund",))]
    return Verdicts(pl.concat(verdicts, how="diagonal_relaxed"), issues)


# ---------------------------------------------------------------------------------------------- commission


def exact_scale(settings: PayoutSettings) -> pl.Decimal:
    """A decimal type that holds an amount of money times any configured rate exactly: sums of such
    products are then the same to the last digit as Python's Decimal arithmetic."""
    rates = (settings.default_rate, *settings.channel_rates.values(), *(c.rate for c in settings.categories))
    rate_digits = max(max(-rate.as_tuple().exponent, 0) for rate in rates)
    return pl.Decimal(38, MONEY.scale + rate_digits)


def agreed_commissions(
    external_ids: pl.Series, erp_orders: pl.DataFrame, order_lines: pl.DataFrame, settings: PayoutSettings
) -> pl.DataFrame:
    """Per marketplace order with priced ERP lines (external_id, agreed_base, agreed_commission,
    agreed_assumed): its merchandise net of cancellations at each SKU's agreed rate, plus its shipping at the
    channel's rate where the marketplace charges commission on shipping. `agreed_assumed`: some of it at the
    built-in rate, because no rate is configured for it.

    Judging commission on the ERP's amounts, not on what the payout says was sold, keeps one fault one
    finding: an order amount paid wrong is reported once, by the order check. A quantity cancelled that the
    ERP does not export counts as none cancelled."""
    dtype = exact_scale(settings)
    orders = erp_orders.filter(pl.col("external_id").is_in(external_ids.implode()))
    lines = (
        order_lines.join(orders.select("order_id", "external_id", "channel"), on="order_id")
        .select(
            "external_id",
            "sku",
            "channel",
            value=((pl.col("qty_ordered") - pl.col("qty_cancelled").fill_null(0)) * pl.col("unit_price")).cast(MONEY),
        )
        .filter(pl.col("value").is_not_null())
    )
    rate, assumed = settings.sku_rates(pl.col("sku"), pl.col("channel"), dtype)
    agreed = (
        lines.with_columns(rate=rate, assumed=assumed)
        .group_by("external_id")
        .agg(
            agreed_base=pl.col("value").sum().cast(dtype),
            agreed_commission=(pl.col("value").cast(dtype) * pl.col("rate")).sum().cast(dtype),
            agreed_assumed=pl.col("assumed").any(),
        )
    )
    if settings.commission_on_shipping:
        agreed = _with_shipping(agreed, orders, settings, dtype)
    return agreed.filter(pl.col("agreed_base") > 0)


def _with_shipping(agreed: pl.DataFrame, orders: pl.DataFrame, settings: PayoutSettings, dtype: pl.Decimal):
    """The ERP order's total is the base: what it holds beyond the merchandise (shipping) at the channel's
    rate. An ERP that split the marketplace order in several takes each order's channel in turn."""
    terms = {external_id: (base, commission, assumed) for external_id, base, commission, assumed in agreed.iter_rows()}
    for external_id, channel, total in orders.select("external_id", "channel", "total").iter_rows():
        if external_id in terms and total is not None:
            base, commission, assumed = terms[external_id]
            terms[external_id] = (
                total,
                commission + (total - base) * settings.channel_rate(channel),
                assumed or settings.channel_rate_assumed(channel),
            )
    rows = [(external_id, *order) for external_id, order in terms.items()]
    return pl.DataFrame(rows, schema=agreed.schema, orient="row")


def commissions(
    scope: pl.DataFrame, history: pl.DataFrame, agreed: pl.DataFrame, settings: PayoutSettings, explain_all: bool = True
) -> Verdicts:
    """Commission charged to date on each order against the agreed rate; refunded commission against the
    same rate on what was refunded. Every judgement gets its reason, or (not `explain_all`) only a mismatch:
    the nightly check reports mismatches alone, and writing a reason costs more than judging."""
    sales_types = SALES if settings.commission_on_shipping else ("order_amount",)
    judged, verdicts, issues = [], [_orderless(scope, COMMISSIONS)], []
    for kind, base_types in (("commission", sales_types), ("refund_commission", ("refund",))):
        per_order = _per_order(scope, history, (kind,))
        base = _to_date(per_order, history, base_types).select(*ORDER_PERIOD, base="to_date")
        per_order = _judge_commissions(
            per_order.join(base, on=ORDER_PERIOD, how="left"), kind, agreed, settings, explain_all
        )
        judged.append(per_order)
        verdicts.append(_line_verdicts(scope, per_order, (kind,), "expected", "to_date"))
        issues.append(
            _issues(
                _listed(per_order.filter(pl.col("status") == "mismatch"), scope, (kind,)),
                check=pl.col("problem"),
                payout_id=pl.col("payout_id"),
                external_id=pl.col("external_id"),
                line_ids=pl.col("line_ids"),
                currency=pl.col("line_currency"),
                expected=pl.col("expected"),
                actual=pl.col("to_date"),
                message=pl.format("order {}: {}", "external_id", "reason"),
            )
        )
    # Counted per period, as each period's reconciliation counts them.
    assumed = pl.concat(judged).filter("assumed").select(ORDER_PERIOD).unique().height
    return Verdicts(pl.concat(verdicts, how="diagonal_relaxed"), pl.concat(issues), assumed)


def _judge_commissions(
    per_order: pl.DataFrame, kind: str, agreed: pl.DataFrame, settings: PayoutSettings, explain_all: bool
) -> pl.DataFrame:
    # The marketplace takes commission on sales (negative to the seller) and gives it back on refunds.
    sign = -1 if kind == "commission" else 1
    dtype = exact_scale(settings)
    currency = pl.col("line_currency")
    judged = per_order.join(agreed, on="external_id", how="left")
    on_agreement = pl.col("agreed_base").is_not_null()
    # Without an agreed order, the channel's rate on what was paid (or refunded) to date.
    paid = pl.col("base").fill_null(0).abs().cast(dtype)
    at_channel_rate = rounded(paid * pl.lit(settings.channel_rate(settings.channel), dtype), currency) * sign
    expected = (
        pl.when(on_agreement & pl.lit(kind == "commission"))
        .then(-rounded(pl.col("agreed_commission"), currency))
        .when(on_agreement)
        .then(pl.col("refunded_at_agreed_rate"))
        .otherwise(at_channel_rate)
        .cast(MONEY)
    )
    within = (pl.col("to_date") - pl.col("expected")).abs() <= settings.tolerance.limit(currency, MONEY)
    judged = (
        judged.with_columns(refunded_at_agreed_rate=_refunded_at_agreed_rate(judged, kind))
        .with_columns(expected=expected)
        .with_columns(
            status=pl.when(within).then(pl.lit("matched")).otherwise(pl.lit("mismatch")),
            problem=pl.when(within).then(None).otherwise(pl.lit(f"{kind}_rate")),
            assumed=pl.when(on_agreement)
            .then("agreed_assumed")
            .otherwise(pl.lit(settings.channel_rate_assumed(settings.channel))),
            kind=pl.lit(kind),
        )
    )
    explained = judged if explain_all else judged.filter(pl.col("status") == "mismatch")
    reasons = explained.select(ORDER_PERIOD).with_columns(
        reason=pl.Series(
            [_commission_reason(row, kind, settings) for row in explained.iter_rows(named=True)], dtype=pl.String
        )
    )
    columns = [*per_order.columns, "status", "problem", "reason", "expected", "assumed", "kind"]
    return judged.join(reasons, on=ORDER_PERIOD, how="left").select(columns)


def _refunded_at_agreed_rate(judged: pl.DataFrame, kind: str) -> pl.Series:
    """Commission given back on an agreed order: its agreed rate (commission over base, in Python's decimal
    context, as month-end has always divided) on what was refunded to date."""
    values: list[Decimal | None] = [None] * judged.height
    if kind == "refund_commission":
        columns = judged.select("base", "line_currency", "agreed_base", "agreed_commission")
        for i, (base, currency, order_base, commission) in enumerate(columns.iter_rows()):
            if order_base is not None:
                values[i] = quantize(abs(base or Decimal(0)) * (commission / order_base), currency)
    return pl.Series("refunded_at_agreed_rate", values, dtype=MONEY)


def _commission_reason(row: dict, kind: str, settings: PayoutSettings) -> str:
    """What was charged, on what basis, at which rate (agreed, or assumed where nothing is configured)."""
    currency, actual, expected = row["line_currency"], row["to_date"], row["expected"]
    on_agreement = row["agreed_base"] is not None
    rate = row["agreed_commission"] / row["agreed_base"] if on_agreement else settings.channel_rate(settings.channel)
    if kind == "commission" and on_agreement:
        base = row["agreed_base"]
        basis = f"the ERP's {exact(base, currency)}"
    else:
        base = abs(row["base"] or Decimal(0))
        basis = f"the {exact(base, currency)} {'refunded' if kind == 'refund_commission' else 'paid'}"
    # Commission taken is shown negative, even when it is nothing (-0.00).
    shown = -quantize(-expected, currency) if kind == "commission" else quantize(expected, currency)
    charged = f"{abs(actual / base):.2%}" if base else "charged on nothing"
    # A rate nobody configured is the built-in default: say so rather than call it agreed.
    terms = f"the assumed {rate:.2%} (no rate configured)" if row["assumed"] else f"the agreed {rate:.2%}"
    within = row["status"] == "matched"
    return f"charged {exact(actual, currency)} to date on {basis} " + (
        f"at {terms}" if within else f"is {charged}; at {terms} it is {shown}"
    )


# ---------------------------------------------------------------------------------------------- journal


def match_journal(lines: pl.DataFrame, erp_journal: pl.DataFrame, order_ids: pl.DataFrame) -> pl.DataFrame:
    """Pair journalled lines one-to-one with ERP journal entries of the same document, currency and size.

    The size, not the sign: a journal entry is one posting on one account, and its sign says which side of
    the ledger the ERP's export shows (a commission debited to the expense account as +15.00, or the same
    commission exported as the seller's balance sees it, -15.00), not which way the money moved. Both book
    the same line. Entries naming the line's ERP order (or, for a line of no order, naming none) pair
    first; the rest pair on size alone. A ledger posts whole minor units, so a sub-cent line (-1.5375 EUR)
    is booked by an entry of its size rounded half up (1.54), the entry month-end proposes for it. Gives
    line_id, journal_entry_id for the lines that pair."""
    candidates = (
        lines.filter(pl.col("line_type").is_in(JOURNALLED))
        .join(order_ids, on="external_id", how="left")
        .select(
            "line_id",
            "payout_id",
            "currency",
            "order_id",
            size=rounded(pl.col("amount").abs(), pl.col("currency")).cast(MONEY),
        )
        .sort("line_id")
    )
    posted = (
        erp_journal.filter(pl.col("payout_id").is_not_null())
        .select(
            journal_entry_id="entry_id",
            payout_id="payout_id",
            currency="currency",
            order_id="order_id",
            size=pl.col("amount").abs(),
        )
        .sort("journal_entry_id")
    )
    pairs = []
    for key in (["payout_id", "currency", "size", "order_id"], ["payout_id", "currency", "size"]):
        paired = _pair(candidates, posted, key)
        pairs.append(paired)
        candidates = candidates.join(paired, on="line_id", how="anti")
        posted = posted.join(paired, on="journal_entry_id", how="anti")
    return pl.concat(pairs)


def _pair(candidates: pl.DataFrame, posted: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """The n-th line and the n-th entry with the same key pair up, so each entry pays for one line only."""
    rank = pl.int_range(pl.len()).over(key).alias("rank")
    return (
        candidates.with_columns(rank)
        .join(posted.with_columns(rank), on=[*key, "rank"], how="inner", nulls_equal=True)
        .select("line_id", "journal_entry_id")
    )


def journal_only(scope: pl.DataFrame, journal: pl.DataFrame, checked: bool = True) -> Verdicts:
    """Fees and adjustments have nothing to match but the ERP's journal entry for them. Without the ERP's
    journal entries (not `checked`) such a line is not matched, and not judged either."""
    lines = scope.filter(pl.col("line_type").is_in(("fee", "adjustment"))).join(journal, on="line_id", how="left")
    posted = pl.col("journal_entry_id").is_not_null()
    verdicts = lines.select(
        "line_id",
        status=pl.when(posted).then(pl.lit("matched")).otherwise(pl.lit("unmatched")),
        problem=pl.when(posted | ~pl.lit(checked)).then(None).otherwise(pl.lit("journal_entry")),
        reason=pl.when(posted)
        .then(pl.format("ERP journal entry {}", "journal_entry_id"))
        .when(~pl.lit(checked))
        .then(pl.lit("not checked: the ERP's journal entries were not loaded (one is proposed)"))
        .otherwise(pl.format("no ERP journal entry for this {} (one is proposed)", "line_type")),
    )
    return Verdicts(verdicts, pl.DataFrame(schema=ISSUE_SCHEMA))


# ---------------------------------------------------------------------------------------------- ERP side


def unpaid_erp(
    erp_orders: pl.DataFrame,
    credit_memos: pl.DataFrame,
    history: pl.DataFrame,
    later: pl.DataFrame,
    settings: PayoutSettings,
    period: Period,
) -> pl.DataFrame:
    """ERP records the marketplace has not paid by the period's end: orders delivered in the period with no
    order amount paid, and credit memos of the period with no marketplace refund. Each says whether a later
    document settles it (a timing difference) or nothing does yet."""
    paid = history.filter(pl.col("duplicate_of").is_null())
    sold = paid.filter(pl.col("line_type").is_in(SALES))["external_id"].unique().implode()
    refunded = paid.filter(pl.col("line_type") == "refund")["external_id"].unique().implode()
    delivered = erp_orders.filter(
        (pl.col("channel") == settings.channel)
        & pl.col("canonical_status").is_in(settings.delivered_statuses)
        & ~pl.col("external_id").is_in(sold)
    ).select(
        kind=pl.lit("delivered_not_paid"),
        record_id="order_id",
        order_id="order_id",
        external_id="external_id",
        date="updated_at",
        amount="total",
        currency="currency",
        settled_by=_settled_by(later, SALES),
    )
    credits = credit_memos.filter((pl.col("channel") == settings.channel) & ~pl.col("external_id").is_in(refunded))
    credits = credits.select(
        kind=pl.lit("credit_memo_not_refunded"),
        record_id="return_id",
        order_id="order_id",
        external_id="external_id",
        date="processed_at",
        amount="amount",
        currency="currency",
        settled_by=_settled_by(later, ("refund",)),
    )
    reason = (
        pl.when(pl.col("settled_by").is_not_null())
        .then(pl.format("settled after the period's end by document {}", "settled_by"))
        .otherwise(pl.lit("no marketplace document settles it yet"))
    )
    return (
        pl.concat([delivered, credits])
        .filter(pl.col("date").is_between(period.start, period.end, closed="left"))
        .with_columns(reason=reason)
        .drop("settled_by")
        .sort("kind", "date", "record_id")
    )


def _settled_by(later: pl.DataFrame, line_types: tuple[str, ...]) -> pl.Expr:
    """The first later document holding such a line for the row's marketplace order."""
    first = (
        later.filter(pl.col("line_type").is_in(line_types) & pl.col("external_id").is_not_null())
        .group_by("external_id")
        .agg(pl.col("payout_id").first())
    )
    lookup = dict(first.iter_rows())
    return pl.col("external_id").replace_strict(lookup, default=None, return_dtype=pl.String)
