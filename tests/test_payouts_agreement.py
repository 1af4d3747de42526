"""One payout engine: the nightly payout_matching check reports, line by line, what month-end
`payouts reconcile` reports for every period to date, on the hand-made fixture, on the demo retailer and on
the generated retailer with two marketplace instances."""

from __future__ import annotations

import csv
import shutil
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from driftwatch.config import Config, load_config, parse_config
from driftwatch.demo import retailers
from driftwatch.demo.generator import generate
from driftwatch.demo.retailers.marketplaces import MARKETPLACES
from driftwatch.demo.run import demo_config
from driftwatch.engine import audit
from driftwatch.errors import UserError
from driftwatch.filedrop import load_directory
from driftwatch.payouts import reconcile
from driftwatch.store import Store

FIXTURE = Path(__file__).parent.parent / "fixtures" / "payouts"
FIXTURE_FEEDS = [{"source": "bluecherry", "target": "mirakl", "entities": ["payout_lines", "orders"]}]


def months_paid(drop: Path) -> list[str]:
    """The months holding a payment, read from the marketplace's file itself."""
    with (drop / "mirakl" / "payout_lines.csv").open() as handle:
        return sorted({row["transaction_date"][:7] for row in csv.DictReader(handle) if row["line_type"] == "payment"})


def nightly(store: Store, cfg: Config, marketplace: str | None = None) -> dict[str, dict[str, str | None]]:
    """The nightly check's findings by payout line (of one marketplace, when several are reconciled)."""
    found = audit(store, cfg, checks=["payout_matching"]).findings.filter(pl.col("check_id") == "payout_matching")
    if marketplace is not None:
        found = found.filter(pl.col("target") == marketplace)
    assert found["key"].is_unique().all(), "one finding per line"
    return {row["key"]: {k: row[k] for k in ("field", "expected", "actual")} for row in found.iter_rows(named=True)}


def caveats(store: Store, cfg: Config) -> list[str]:
    """What the nightly run says about payout matching beside its findings (its notes)."""
    notes = audit(store, cfg, checks=["payout_matching"]).notes
    return notes.filter((pl.col("check_id") == "payout_matching") & (pl.col("kind") == "caveat"))["message"].to_list()


def month_end(
    store: Store, cfg: Config, months: list[str], marketplace: str | None = None
) -> dict[str, dict[str, str | None]]:
    """Month-end's lines that are not matched and name a problem, over every month, as the nightly check
    would word them."""
    flagged = {}
    for month in months:
        result = reconcile(store, cfg, month, marketplace)
        for row in result.unmatched_marketplace.filter(pl.col("problem").is_not_null()).iter_rows(named=True):
            flagged[row["line_id"]] = {"field": row["problem"], "expected": None, "actual": None}
        for row in result.mismatched_lines.iter_rows(named=True):
            flagged[row["line_id"]] = {"field": row["problem"], "expected": row["expected"], "actual": row["actual"]}
    return flagged


def assert_agree(
    store: Store, cfg: Config, months: list[str], marketplace: str | None = None
) -> dict[str, dict[str, str | None]]:
    at_night, at_month_end = nightly(store, cfg, marketplace), month_end(store, cfg, months, marketplace)
    assert at_night.keys() == at_month_end.keys()
    for line_id, night in at_night.items():
        close = at_month_end[line_id]
        assert night["field"] == close["field"], line_id
        if close["expected"] is not None:  # a mismatch: the same amounts compared
            assert (Decimal(night["expected"]), Decimal(night["actual"])) == (close["expected"], close["actual"])
    return at_night


def load_fixture(tmp_path: Path, *, drop_files: tuple[str, ...] = ()) -> tuple[Store, Path]:
    drop = tmp_path / "drop"
    shutil.copytree(FIXTURE / "retailer", drop)
    for name in drop_files:
        (drop / name).unlink()
    store = Store(tmp_path / "driftwatch.duckdb")
    load_directory(store, drop, parse_config({}))
    return store, drop


def fixture_config(payouts: dict | None) -> Config:
    raw = {"feeds": FIXTURE_FEEDS} | ({"payouts": payouts} if payouts is not None else {})
    return parse_config(raw)


FIXTURE_PAYOUTS = load_config(FIXTURE / "driftwatch.toml").raw["payouts"]


@pytest.mark.parametrize(
    "payouts",
    [
        FIXTURE_PAYOUTS,
        None,  # no rate configured: 15% assumed
        {"commission": {"default": "0.12"}},
        {"tolerance": "5.00", "commission": {"default": "0.15", "shipping": True}},
    ],
    ids=["fixture-config", "no-config", "flat-12", "loose-on-shipping"],
)
def test_nightly_and_month_end_agree_line_by_line_on_the_fixture(tmp_path: Path, payouts: dict | None) -> None:
    store, drop = load_fixture(tmp_path)
    with store:
        flagged = assert_agree(store, fixture_config(payouts), months_paid(drop))
    assert flagged  # the fixture holds a case of every kind: agreeing on nothing would prove nothing


def test_the_fixture_as_it_ships_gives_every_case_its_readme_lists(tmp_path: Path) -> None:
    store, _ = load_fixture(tmp_path)
    with store:
        found = nightly(store, fixture_config(FIXTURE_PAYOUTS))
    assert {line: row["field"] for line, row in found.items()} == {
        "L7": "order_amount",  # M-5 paid 45.00 on a 40.00 order
        "L43": "erp_order",  # M-99
        "L11": "commission_rate",  # 12% where 15% is agreed
        "L12": "credit_memo",  # M-7 refunded without a credit memo
        "L14": "journal_entry",  # the manual credit
        "L21": "duplicate_line",  # the fee charged twice
        "L25": "journal_entry",  # P-103's fee
        "L26": "unbalanced_document",  # P-103's payment
        "L33": "journal_entry",  # the adjustment reversing P-099
    }
    # M-8's footwear commission at its 12% category rate, and the lines J-1..J-4 book, are not findings.
    assert not {"L24", "L2", "L6", "L20", "L31"} & found.keys()


@pytest.mark.parametrize(
    ("drop_files", "not_judged"),
    [
        (
            ("bluecherry/returns.csv", "bluecherry/journal_entries.csv"),
            {"L6", "L12", "L14", "L18", "L20", "L25", "L33"},
        ),
        (("bluecherry/order_lines.csv",), set()),  # commission falls back to the amounts paid
    ],
)
def test_agreement_holds_without_the_erp_entities_a_reconciliation_can_do_without(
    tmp_path: Path, drop_files: tuple[str, ...], not_judged: set[str]
) -> None:
    store, drop = load_fixture(tmp_path, drop_files=drop_files)
    cfg = fixture_config(FIXTURE_PAYOUTS)
    with store:
        flagged = assert_agree(store, cfg, months_paid(drop))
        result = reconcile(store, cfg, "2026-10")
    # Month-end says what it could not check; a line it could not judge is unmatched, with no problem named,
    # and the nightly check does not report it (a source not snapshotted for an entity is not compared on it).
    for path in drop_files:
        assert any(w.startswith(f"without bluecherry {Path(path).stem}, ") for w in result.warnings)
    unjudged = result.unmatched_marketplace.filter(pl.col("problem").is_null())
    assert set(unjudged["line_id"]) == not_judged and not not_judged & flagged.keys()
    assert all(reason.startswith("not checked: ") for reason in unjudged["reason"])
    assert {"L7", "L11", "L43"} <= flagged.keys()  # what the ERP's orders alone can show is still found


@pytest.mark.parametrize("convention", ["debit positive", "as the seller's balance sees it"])
def test_a_journal_entry_books_its_line_whichever_sign_the_erp_exports(tmp_path: Path, convention: str) -> None:
    store, drop = load_fixture(tmp_path)
    journal = drop / "bluecherry" / "journal_entries.csv"
    if convention != "debit positive":  # the fixture books +15.00 for a -15.00 commission; flip it
        frame = pl.read_csv(journal, infer_schema=False)
        journal.write_text(frame.with_columns(amount="-" + pl.col("amount")).write_csv())
        (drop / "bluecherry" / "_manifest.json").write_text('{"captured_at": "2026-11-06T06:00:00Z"}')
        load_directory(store, drop, parse_config({}))
    cfg = fixture_config(FIXTURE_PAYOUTS)
    with store:
        found = assert_agree(store, cfg, months_paid(drop))
        matched = reconcile(store, cfg, "2026-10").matched
    booked = dict(zip(matched["line_id"], matched["journal_entry_id"], strict=True))
    assert (booked["L2"], booked["L6"], booked["L20"]) == ("J-1", "J-2", "J-3")
    assert "L2" not in found and "L6" not in found


def test_an_order_line_export_without_qty_cancelled_counts_none_cancelled(tmp_path: Path) -> None:
    store, drop = load_fixture(tmp_path)
    assert "qty_cancelled" not in (drop / "bluecherry" / "order_lines.csv").read_text()
    with store:
        found = nightly(store, fixture_config(FIXTURE_PAYOUTS))
    assert found["L11"]["expected"] == "-12.00"  # 15% of SO-3's 2 x 40.00, nothing cancelled


def test_with_no_rate_configured_the_run_says_once_which_rate_it_assumed(tmp_path: Path) -> None:
    store, drop = load_fixture(tmp_path)
    assert len(months_paid(drop)) == 3  # three periods reconciled, one note
    with store:
        found = nightly(store, fixture_config(None))
        notes = [note for note in caveats(store, fixture_config(None)) if "assumed" in note]
        result = reconcile(store, fixture_config(None), "2026-10")
    assert len(notes) == 1 and "15.00%" in notes[0] and "[payouts.commission]" in notes[0]
    # M-8's 12% is off the assumed 15%: the finding says assumed, never agreed.
    assert found["L24"]["field"] == "commission_rate"
    judged = pl.concat([result.matched, result.mismatched_lines], how="diagonal")
    reasons = judged.filter(pl.col("line_type") == "commission")["reason"]
    assert reasons.len() == 6 and all("assumed 15.00%" in r and "agreed" not in r for r in reasons)
    assert [f"payout_matching on mirakl: {w}" for w in result.warnings if "assumed" in w] == notes


# ------------------------------------------------------------------------------------------------ demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Config, Path]:
    tmp = tmp_path_factory.mktemp("demo")
    generated = generate(tmp / "generated", seed=7, scale=1).out_dir
    drop = tmp / "drop"
    for source in ("bluecherry", "mirakl"):
        shutil.copytree(generated / source, drop / source)
    cfg = parse_config(demo_config(drop))
    store = Store(tmp / "driftwatch.duckdb")
    load_directory(store, drop, cfg)
    yield store, cfg, generated
    store.close()


def test_nightly_and_month_end_agree_line_by_line_on_the_demo(demo: tuple[Store, Config, Path]) -> None:
    store, cfg, generated = demo
    flagged = assert_agree(store, cfg, months_paid(generated))
    with (generated / "answer_key.csv").open() as handle:
        injected = {row["key"] for row in csv.DictReader(handle) if row["check_id"] == "payout_matching"}
    assert injected <= flagged.keys()


# ------------------------------------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    ("table", "where", "points_to"),
    [
        (
            "[checks.payout_matching]\ncommission_rate = 0.12\n",
            "checks.payout_matching.commission_rate",
            "[payouts.commission]",
        ),
        (
            "[checks.payout_matching.targets.mirakl]\nmoney_tolerance = 1\n",
            "targets.mirakl.money_tolerance",
            "[payouts] tolerance",
        ),
    ],
)
def test_the_checks_own_payout_settings_are_refused_with_where_they_live_now(
    tmp_path: Path, table: str, where: str, points_to: str
) -> None:
    path = tmp_path / "driftwatch.toml"
    path.write_text(table)
    with pytest.raises(UserError) as refused:
        load_config(path)
    message = str(refused.value)
    assert where in message and points_to in message and "\n" not in message
    path.write_text('[checks.payout_matching]\nseverity = "critical"\n')
    assert load_config(path).check_options("payout_matching") == {"severity": "critical"}


# ------------------------------------------------------------------------------------------------ marketplaces


def test_agreement_holds_for_each_marketplace_on_its_own_settings(tmp_path: Path) -> None:
    """The generated retailer with two marketplace instances, each reconciled on its own channel and agreed
    rate ([payouts.marketplaces.<source>]), nightly and at month-end alike."""
    generated = retailers.generate("marketplaces", tmp_path / "retailer")
    cfg = parse_config(generated.config())
    with (generated.written.answer_key).open() as handle:
        injected = [row for row in csv.DictReader(handle) if row["check_id"] == "payout_matching"]
    with Store(tmp_path / "driftwatch.duckdb") as store:
        load_directory(store, generated.written.drop, cfg)
        for marketplace in MARKETPLACES:
            lines = store.latest(marketplace, "payout_lines")
            months = sorted({f"{moment:%Y-%m}" for moment in lines["transaction_date"].drop_nulls()})
            flagged = assert_agree(store, cfg, months, marketplace)
            assert flagged, marketplace
            assert {row["key"] for row in injected if row["target"] == marketplace} == flagged.keys(), marketplace
