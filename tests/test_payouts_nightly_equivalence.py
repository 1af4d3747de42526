"""The nightly payout check judges every period to date in one lean pass (only the ERP records the payout
lines reach, reasons written for mismatches only, each order's agreed commission worked out once). What it
reports must be exactly what month-end's reconciliation of each period flags: the same lines, problems,
amounts and reasons, and the same caveats. Checked on a small hand-built retailer spanning several months."""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from fnmatch import fnmatchcase
from pathlib import Path

import polars as pl
import pytest

from driftwatch.config import Config, parse_config
from driftwatch.engine import audit
from driftwatch.filedrop import load_directory
from driftwatch.payouts import reconcile
from driftwatch.payouts.inputs import read_inputs
from driftwatch.payouts.reconcile import flagged_to_date, periods, reconcile_inputs
from driftwatch.payouts.settings import payout_settings
from driftwatch.statuses import RETURNS
from driftwatch.store import Store

ORDERS = [  # order_id, external_id, channel, status, updated_at, total, currency
    ("SO-1", "M-1", "mirakl", "delivered", "2026-08-02", "100.00", "EUR"),
    ("SO-2", "M-2", "mirakl", "delivered", "2026-08-03", "60.00", "EUR"),
    ("SO-3", "M-3", "mirakl", "delivered", "2026-08-04", "80.00", "EUR"),
    # One marketplace order the ERP split in two, on two channels, paid in pounds.
    ("SO-4", "M-4", "mirakl", "delivered", "2026-10-02", "50.00", "GBP"),
    ("SO-5", "M-4", "web", "delivered", "2026-10-02", "30.00", "GBP"),
    ("SO-6", "M-6", "mirakl", "delivered", "2026-10-03", "10.10", "EUR"),
    ("SO-7", "M-7", "mirakl", "delivered", "2026-08-05", "40.00", "EUR"),
    ("SO-8", "M-8", "mirakl", "delivered", "2026-08-06", "30.00", "EUR"),
    ("SO-9", "M-9", "mirakl", "delivered", "2026-10-04", "4800", "JPY"),
    ("SO-10", "M-10", "mirakl", "on_hold", "2026-11-02", "20.00", "EUR"),  # delivered, never paid
    ("SO-11", None, "web", "delivered", "2026-10-05", "99.00", "EUR"),  # a web order: no marketplace id
]
ORDER_LINES = [  # order_id, line_no, sku, qty_ordered, qty_cancelled, unit_price
    ("SO-1", 1, "AP-1", 2, 0, "30.00"),
    ("SO-1", 2, "FW-1", 1, 0, "40.00"),  # footwear: its category's rate
    ("SO-2", 1, "AP-2", 1, 0, "60.00"),
    ("SO-3", 1, "AP-3", 3, 1, "40.00"),  # one of three cancelled
    ("SO-4", 1, "FW-4", 1, 0, "50.00"),
    ("SO-5", 1, "AC-5", 1, 0, "30.00"),  # the web channel's rate
    ("SO-6", 1, "AP-6", 1, 0, "10.10"),  # 15% is 1.515: rounded half up
    ("SO-7", 1, "AP-7", 1, 0, "40.00"),
    ("SO-8", 1, "FW-8", 1, 0, "30.00"),
    ("SO-9", 1, "AP-9", 3, 0, "1500"),
    ("SO-10", 1, "AP-10", 1, 0, "20.00"),
    ("SO-11", 1, "AP-11", 1, 0, "99.00"),
]
RETURNS_ROWS = [  # return_id, order_id, amount, status, processed_at
    ("R-1", "SO-1", "40.00", "refunded", "2026-10-05T10:00:00Z"),  # refunded two months after the sale
    ("R-8", "SO-8", "30.00", "refunded", "2026-10-06T10:00:00Z"),  # credited after August's refund
    ("R-9", "SO-9", "1500", "requested", "2026-11-03T10:00:00Z"),
]
JOURNAL = [  # entry_id, order_id, payout_id, account, amount, currency, posted_at
    ("J-1", "SO-1", "P-A1", "6100", "13.80", "EUR", "2026-08-21T00:00:00Z"),
    ("J-2", None, "P-O1", "6200", "5.00", "EUR", "2026-10-21T00:00:00Z"),
    ("J-3", "SO-4", "P-O2", "6100", "-11.70", "GBP", "2026-10-21T00:00:00Z"),
]
# Documents in August, October and November; none in September.
LINES = [  # line_id, payout_id, external_id, line_type, amount, currency, transaction_date
    ("A01", "P-A1", "M-1", "order_amount", "100.00", "EUR", "2026-08-02"),
    ("A02", "P-A1", "M-1", "commission", "-13.80", "EUR", "2026-08-02"),
    ("A03", "P-A1", "M-2", "order_amount", "35.00", "EUR", "2026-08-03"),  # 25.00 more in October
    ("A04", "P-A1", "M-2", "commission", "-9.00", "EUR", "2026-08-03"),
    ("A05", "P-A1", "M-3", "order_amount", "80.00", "EUR", "2026-08-04"),
    ("A06", "P-A1", "M-3", "commission", "-12.00", "EUR", "2026-08-04"),
    ("A07", "P-A1", "M-7", "order_amount", "40.00", "EUR", "2026-08-05"),
    ("A08", "P-A1", "M-7", "commission", "-6.00", "EUR", "2026-08-05"),
    ("A09", "P-A1", "M-8", "order_amount", "30.00", "EUR", "2026-08-06"),
    ("A10", "P-A1", "M-8", "refund", "-30.00", "EUR", "2026-08-20"),  # its credit memo comes in October
    ("A11", "P-A1", "M-8", "refund_commission", "3.60", "EUR", "2026-08-20"),
    ("A12", "P-A1", None, "fee", "-2.00", "EUR", "2026-08-20"),
    ("O01", "P-O1", "M-2", "order_amount", "25.00", "EUR", "2026-10-02"),
    ("O02", "P-O1", "M-1", "refund", "-40.00", "EUR", "2026-10-05"),
    ("O03", "P-O1", "M-1", "refund_commission", "5.52", "EUR", "2026-10-05"),
    ("O04", "P-O1", "M-3", "commission", "-12.00", "EUR", "2026-08-04"),  # August's commission charged again
    ("O05", "P-O1", "M-6", "order_amount", "10.10", "EUR", "2026-10-03"),
    ("O06", "P-O1", "M-6", "commission", "-1.52", "EUR", "2026-10-03"),
    ("O07", "P-O1", None, "fee", "-5.00", "EUR", "2026-10-20"),
    ("O08", "P-O2", "M-4", "order_amount", "80.00", "GBP", "2026-10-02"),
    ("O09", "P-O2", "M-4", "commission", "-11.70", "GBP", "2026-10-02"),
    ("O10", "P-O3", "M-9", "order_amount", "4800", "JPY", "2026-10-04"),
    ("O11", "P-O3", "M-9", "commission", "-675", "JPY", "2026-10-04"),
    ("N01", "P-N1", "M-7", "refund", "-40.00", "EUR", "2026-11-02"),  # refunded, but no credit memo
    ("N02", "P-N1", "M-7", "refund_commission", "6.00", "EUR", "2026-11-02"),
    ("N03", "P-N1", "M-99", "order_amount", "15.00", "EUR", "2026-11-03"),  # no ERP order
    ("N04", "P-N1", None, "adjustment", "3.00", "EUR", "2026-11-04"),
    ("N05", "P-N1", "M-6", "shipping", "4.90", "EUR", "2026-11-04"),
    ("U01", None, "M-9", "commission", "-1", "JPY", "2026-11-05"),  # not yet on a document
]
UNBALANCED = {"P-N1": Decimal("1.00")}  # the payment is a euro more than its lines


def payout_lines() -> list[tuple]:
    """The lines, and one payment line per document (dated after its last line) equal to their sum."""
    rows = [(*row[:6], f"{row[6]}T10:00:00Z") for row in LINES]
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    dates: dict[str, str] = {}
    for _, payout_id, _, _, amount, currency, date in LINES:
        if payout_id is not None:
            totals[payout_id, currency] += Decimal(amount)
            dates[payout_id] = max(dates.get(payout_id, date), date)
    for (payout_id, currency), total in totals.items():
        payment = total + UNBALANCED.get(payout_id, Decimal(0))
        rows.append(
            (f"{payout_id}-PAY", payout_id, None, "payment", str(payment), currency, f"{dates[payout_id]}T23:00:00Z")
        )
    return rows


def write(folder: Path, name: str, columns: list[str], rows: list[tuple]) -> None:
    pl.DataFrame(rows, schema=dict.fromkeys(columns, pl.String), orient="row").write_csv(folder / f"{name}.csv")


def build_drop(root: Path, without: tuple[str, ...]) -> Path:
    erp, marketplace = root / "bluecherry", root / "mirakl"
    for folder in (erp, marketplace):
        folder.mkdir(parents=True)
        (folder / "_manifest.json").write_text(json.dumps({"captured_at": "2026-11-20T06:00:00Z"}))
    orders = [(*row[:4], f"{row[4]}T09:00:00Z", *row[5:]) for row in ORDERS]
    write(erp, "orders", ["order_id", "external_id", "channel", "status", "updated_at", "total", "currency"], orders)
    tables = {
        "order_lines": (["order_id", "line_no", "sku", "qty_ordered", "qty_cancelled", "unit_price"], ORDER_LINES),
        "returns": (["return_id", "order_id", "amount", "status", "processed_at"], RETURNS_ROWS),
        "journal_entries": (
            ["entry_id", "order_id", "payout_id", "account", "amount", "currency", "posted_at"],
            JOURNAL,
        ),
    }
    for name, (columns, rows) in tables.items():
        if name not in without:
            write(erp, name, columns, [tuple(None if v is None else str(v) for v in row) for row in rows])
    columns = ["line_id", "payout_id", "external_id", "line_type", "amount", "currency", "transaction_date"]
    write(marketplace, "payout_lines", columns, payout_lines())
    return root


SETTINGS = {
    "categories-and-channels": {
        "commission": {
            "channels": {"mirakl": "0.15"},  # the web channel has no rate: 15% assumed there
            "categories": {"footwear": {"rate": "0.12", "skus": ["FW-*"]}},
        }
    },
    "nothing-configured": None,
    "on-shipping-per-currency": {
        "tolerance": {"JPY": "5", "default": "0.01"},
        "commission": {"default": "0.15", "shipping": True, "categories": {"shoes": {"rate": "0.1", "skus": ["FW-?"]}}},
    },
}


def config(payouts: dict | None) -> Config:
    feeds = [{"source": "bluecherry", "target": "mirakl", "entities": ["payout_lines", "orders"]}]
    return parse_config({"feeds": feeds} | ({"payouts": payouts} if payouts is not None else {}))


def month_end_flagged(store: Store, cfg: Config) -> tuple[pl.DataFrame, set[str]]:
    """Every period's month-end reconciliation, on its own: the lines it flags and its warnings."""
    settings = payout_settings(cfg)
    inputs = read_inputs(store.latest, cfg.status_map("bluecherry"), settings, cfg.status_map("bluecherry", RETURNS))
    tables, warnings = [], set()
    for period in periods(inputs):
        result = reconcile(store, cfg, period.name)
        tables += [result.unmatched_marketplace.filter(pl.col("problem").is_not_null()), result.mismatched_lines]
        warnings |= set(result.warnings) - set(inputs.warnings)
    return pl.concat(tables, how="diagonal_relaxed").sort("line_id"), warnings


@pytest.mark.parametrize(
    "without",
    [(), ("returns", "journal_entries"), ("order_lines",)],
    ids=["all", "no-returns-journal", "no-order-lines"],
)
@pytest.mark.parametrize("settings", list(SETTINGS), ids=list(SETTINGS))
def test_the_nightly_check_reports_exactly_what_each_month_end_flags(
    tmp_path: Path, settings: str, without: tuple[str, ...]
) -> None:
    cfg = config(SETTINGS[settings])
    with Store(tmp_path / "driftwatch.duckdb") as store:
        load_directory(store, build_drop(tmp_path / "drop", without), parse_config({}))
        flagged, warnings = month_end_flagged(store, cfg)
        run = audit(store, cfg, checks=["payout_matching"])
        # The same lines, column for column, from the library's one pass over every period.
        inputs = read_inputs(
            store.latest, cfg.status_map("bluecherry"), payout_settings(cfg), cfg.status_map("bluecherry", RETURNS)
        )
        in_one_pass, said = flagged_to_date(inputs, payout_settings(cfg))
    assert [p.name for p in periods(inputs)] == ["2026-08", "2026-10", "2026-11"]
    assert in_one_pass.sort("line_id").select(flagged.columns).to_dicts() == flagged.to_dicts()
    assert set(said) - set(inputs.warnings) == warnings

    found = run.findings.filter(pl.col("check_id") == "payout_matching").sort("key")
    assert found["key"].to_list() == flagged["line_id"].to_list()
    assert found["field"].to_list() == flagged["problem"].to_list()
    for finding, line in zip(found.iter_rows(named=True), flagged.iter_rows(named=True), strict=True):
        assert finding["message"].endswith(f": {line['reason']}"), line["line_id"]
        if line["expected"] is not None:  # a mismatch: the very amounts month-end compared
            assert (Decimal(finding["expected"]), Decimal(finding["actual"])) == (line["expected"], line["actual"])
    caveats = run.notes.filter((pl.col("check_id") == "payout_matching") & (pl.col("kind") == "caveat"))
    assert set(caveats["message"]) == {f"payout_matching on mirakl: {w}" for w in warnings}


def test_the_hand_built_retailer_holds_the_cases_it_is_meant_to(tmp_path: Path) -> None:
    """What the equivalence above is exercised on, so that agreeing cannot mean agreeing on nothing."""
    cfg = config(SETTINGS["categories-and-channels"])
    with Store(tmp_path / "driftwatch.duckdb") as store:
        load_directory(store, build_drop(tmp_path / "drop", ()), parse_config({}))
        flagged, warnings = month_end_flagged(store, cfg)
    problems = dict(zip(flagged["line_id"], flagged["problem"], strict=True))
    assert problems == {
        "A03": "order_amount",  # August: 35.00 of M-2's 60.00 paid so far (the rest in October)
        "A10": "credit_memo",  # August's refund: the credit memo was processed in October
        "A12": "journal_entry",  # August's fee
        "N01": "credit_memo",  # November's refund of an August sale, no credit memo
        "N03": "erp_order",  # M-99
        "N04": "journal_entry",
        "N05": "order_amount",  # shipping paid on top of M-6's total
        "O04": "duplicate_line",  # August's commission on M-3 charged again in October
        "O09": "commission_rate",  # M-4: 11.70 where 6.00 + 4.50 is agreed across its two ERP orders
        "P-N1-PAY": "unbalanced_document",
    }
    # M-1's blended 13.8% (15% and footwear's 12%) on the sale and on the refund two months later, M-6's
    # 1.515 rounded half up to 1.52, the yen commission: judged and agreed.
    assert not {"A02", "O03", "O06", "O11"} & problems.keys()
    assert any("assumed" in w for w in warnings)  # the web channel's rate


# Category globs as a person writes them: regex metacharacters, `?`, a character class, white space, a
# pattern naming nothing. SKUs that match some, several or none, and a missing SKU.
GLOBS = {
    "dotted": ("00412.*", "A+B-?"),
    "classes": ("FW-[0-9]*", "gift card*"),
    "symbols": ("#1&~(x)|*", "*$^{2}"),
    "everything": ("*",),
}
GLOB_SKUS = ["00412.7", "X00412.7", "004127", "A+B-1", "A+B-12", "FW-9X", "FW-X9", "gift card 50", "gift  card",
             "#1&~(x)|z", "a$^{2}", "ÄÖ-1", "", None]  # fmt: skip


def _agreed_rate(settings, sku: str | None, channel: str | None) -> tuple[Decimal, bool]:
    """The rule as [payouts.commission] states it, one SKU at a time with fnmatch: the first category any
    of whose globs matches the SKU, else the channel's rate, else the default (assumed unless configured)."""
    for category in settings.categories:
        if sku is not None and any(fnmatchcase(sku, glob) for glob in category.skus):
            return category.rate, False
    return settings.channel_rate(channel), settings.channel_rate_assumed(channel)


@pytest.mark.parametrize("default", [None, "0.15"])
def test_sku_rates_over_columns_agree_with_fnmatch_one_sku_at_a_time(default: str | None) -> None:
    commission = {
        "channels": {"web": "0.08"},
        "categories": {
            name: {"rate": f"0.{i + 1}", "skus": list(globs)} for i, (name, globs) in enumerate(GLOBS.items())
        },
        **({"default": default} if default else {}),
    }
    settings = payout_settings(config({"commission": commission}))
    pairs = [(sku, channel) for sku in GLOB_SKUS for channel in ("mirakl", "web", None)]
    frame = pl.DataFrame({"sku": [s for s, _ in pairs], "channel": [c for _, c in pairs]})
    rate, assumed = settings.sku_rates(pl.col("sku"), pl.col("channel"), pl.Decimal(10, 4))
    got = frame.select(rate=rate, assumed=assumed).rows()
    expected = [_agreed_rate(settings, sku, channel) for sku, channel in pairs]
    assert got == expected


def test_one_pass_judges_an_order_charged_in_two_periods_at_each_periods_end() -> None:
    """An order's commission charged wrong in August and again in October: judged in one pass over both
    periods, each line gets the verdict and reason of its own period's reconciliation (August's total to
    August's end, October's to October's), never the other period's."""
    when = {"A": "2026-08-02T10:00:00Z", "A-PAY": "2026-08-20T10:00:00Z", "O": "2026-10-02T10:00:00Z"}
    lines = pl.DataFrame(
        [
            ("A1", "P-A", "M-1", "order_amount", "100.00", "EUR", when["A"]),
            ("A2", "P-A", "M-1", "commission", "-20.00", "EUR", when["A"]),
            ("A3", "P-A", None, "payment", "80.00", "EUR", when["A-PAY"]),
            ("O1", "P-O", "M-1", "commission", "-1.00", "EUR", when["O"]),
            ("O2", "P-O", None, "payment", "-1.00", "EUR", when["O"]),
            ("O0", "P-Q", "M-1", "commission", "-0.50", "EUR", when["O"]),  # and in a second October document
            ("Q1", "P-Q", None, "payment", "-0.50", "EUR", when["O"]),
        ],
        schema=["line_id", "payout_id", "external_id", "line_type", "amount", "currency", "transaction_date"],
        orient="row",
    )
    orders = pl.DataFrame(
        {
            "order_id": ["SO-1"],
            "external_id": ["M-1"],
            "channel": ["mirakl"],
            "status": ["delivered"],
            "total": [Decimal("100.00")],
            "currency": ["EUR"],
        }
    )
    order_lines = pl.DataFrame(
        {"order_id": ["SO-1"], "sku": ["AP-1"], "qty_ordered": [1], "unit_price": [Decimal("100.00")]}
    )
    frames = {
        ("mirakl", "payout_lines"): lines.with_columns(
            pl.col("amount").cast(pl.Decimal(18, 4)), pl.col("transaction_date").str.to_datetime(time_zone="UTC")
        ),
        ("bluecherry", "orders"): orders,
        ("bluecherry", "order_lines"): order_lines,
        ("bluecherry", "returns"): None,
        ("bluecherry", "journal_entries"): None,
    }
    cfg = config({"commission": {"default": "0.15"}})
    settings = payout_settings(cfg)
    inputs = read_inputs(lambda source, entity: frames[source, entity], {"delivered": "delivered"}, settings)

    flagged, _ = flagged_to_date(inputs, settings)

    august = "charged -20.00 to date on the ERP's 100.00 is 20.00%; at the agreed 15.00% it is -15.00"
    october = "charged -21.50 to date on the ERP's 100.00 is 21.50%; at the agreed 15.00% it is -15.00"
    assert flagged.select("line_id", "problem", "reason", "actual").rows() == [
        ("A2", "commission_rate", august, Decimal("-20.00")),
        ("O1", "commission_rate", october, Decimal("-21.50")),
        ("O0", "commission_rate", october, Decimal("-21.50")),
    ]
    month_end = [reconcile_inputs(inputs, settings, period) for period in periods(inputs)]
    assert pl.concat([r.mismatched_lines for r in month_end]).select(flagged.columns).to_dicts() == flagged.to_dicts()
    # Month-end's issue names the order's lines and documents of its own period, each once, in order.
    issues = [r.mismatches.select("check", "payout_id", "line_ids").rows() for r in month_end]
    assert issues == [[("commission_rate", "P-A", "A2")], [("commission_rate", "P-O P-Q", "O0 O1")]]
