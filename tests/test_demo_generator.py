"""The demo retailer generator: deterministic, valid file drops, a clean retailer whose every copy equals
what the ERP implies (recomputed here from the written files), and drift that breaks exactly the records
its answer key names."""

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from driftwatch.config import parse_config
from driftwatch.demo import generator
from driftwatch.demo.generator import generate
from driftwatch.entities import ENTITIES
from driftwatch.errors import UserError
from driftwatch.filedrop import load_directory
from driftwatch.store import Store

CAPTURED = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
STOCK_TARGETS = ("mirakl", "klaviyo", "ometria", "emarsys")
CATALOGUE = {
    "stock_parity", "ats_inflation", "stock_staleness", "catalogue_parity", "order_presence", "order_status_drift",
    "order_value_drift", "unmapped_codes", "fulfilment_events", "tracking_sync", "acceptance_sla", "consent_parity",
    "customer_master_parity", "ltv_after_refunds", "returns_sync", "payout_matching", "negative_stock",
}  # fmt: skip
MONEY = pl.Decimal(18, 2)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("clean"), drift=False, captured_at=CAPTURED).out_dir


@pytest.fixture(scope="module")
def drifted(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("drifted"), captured_at=CAPTURED).out_dir


@pytest.fixture(scope="module")
def drifted_parquet(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("parquet"), captured_at=CAPTURED, file_format="parquet").out_dir


def read(directory: Path, source: str, entity: str) -> pl.DataFrame:
    """A written file as text, the way an export arrives."""
    return pl.read_csv(directory / source / f"{entity}.csv", infer_schema=False)


def answer_key(directory: Path) -> pl.DataFrame:
    return pl.read_csv(directory / "answer_key.csv", infer_schema=False).with_columns(pl.col("field").fill_null(""))


def keyed(directory: Path, check_id: str) -> set[tuple[str, str]]:
    rows = answer_key(directory).filter(pl.col("check_id") == check_id)
    return set(rows.select("target", "key").iter_rows())


def timestamps(column: str) -> pl.Expr:
    return pl.col(column).str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC")


# --- recomputing the ERP's derived figures from the files ---------------------------------------------
def erp_stock(directory: Path) -> pl.DataFrame:
    return read(directory, "bluecherry", "inventory").select(
        sku=pl.concat_str("Style", "Color #", "Size", separator="-"),
        location="Location",
        **{name: pl.col(header).cast(pl.Int64) for name, header in (
            ("on_hand", "Total QOH"), ("allocated", "Total Open"), ("on_order", "Total Ship To WIP"),
            ("safety_stock", "Safety Stock"), ("available", "Avail QOH"))},
    )  # fmt: skip


def available_to_sell(directory: Path) -> pl.DataFrame:
    """sku, ats for every active ERP SKU, as DESIGN.md pins it (packs from their components)."""
    stock = erp_stock(directory)
    garments = stock.group_by("sku").agg(
        ats=pl.max_horizontal(pl.col("on_hand") - pl.col("allocated") - pl.col("safety_stock"), 0).sum()
    )
    packs = (
        read(directory, "bluecherry", "pack_components")
        .join(garments, left_on="component_sku", right_on="sku")
        .group_by("pack_sku")
        .agg(ats=(pl.col("ats") // pl.col("qty").cast(pl.Int64)).min())
        .rename({"pack_sku": "sku"})
    )
    active = read(directory, "bluecherry", "products").filter(pl.col("Status") == "active")
    active = active.select(sku=pl.concat_str("Style", "Color #", "Size", separator="-"))
    return active.join(pl.concat([garments, packs]), on="sku", how="left")


def lifetime_values(directory: Path) -> pl.DataFrame:
    """erp_customer_id, lifetime_value, order_count, last_order_at from ERP orders and returns."""
    codes = json.loads((directory / "bluecherry" / "_status_map.json").read_text())
    orders = read(directory, "bluecherry", "orders").filter(
        pl.col("status").replace_strict(codes, default="unmapped") != "cancelled"
    )
    refunds = (
        read(directory, "bluecherry", "returns")
        .filter(pl.col("status") == "refunded")
        .join(orders.select("order_id", "customer_id"), on="order_id")
        .group_by("customer_id")
        .agg(refunded=pl.col("amount").cast(MONEY).sum())
    )
    per_customer = orders.group_by("customer_id").agg(
        gross=pl.col("total").cast(MONEY).sum(), order_count=pl.len(), last_order_at=pl.col("placed_at").max()
    )
    return (
        read(directory, "bluecherry", "customers")
        .select(erp_customer_id="customer_id")
        .join(per_customer.join(refunds, on="customer_id", how="left"), left_on="erp_customer_id",
              right_on="customer_id", how="left")
        .select(
            "erp_customer_id",
            lifetime_value=pl.col("gross").fill_null(0) - pl.col("refunded").fill_null(0),
            order_count=pl.col("order_count").fill_null(0).cast(pl.Int64),
            last_order_at="last_order_at",
        )
    )  # fmt: skip


def stock_mismatches(directory: Path) -> set[tuple[str, str]]:
    truth = available_to_sell(directory)
    found = set()
    for target in STOCK_TARGETS:
        copy = read(directory, target, "inventory").select("sku", copy=pl.col("available").cast(pl.Int64))
        both = truth.join(copy, on="sku")
        found |= {(target, sku) for sku in both.filter(pl.col("ats") != pl.col("copy"))["sku"]}
    return found


def value_mismatches(directory: Path) -> set[tuple[str, str]]:
    truth = lifetime_values(directory)
    found = set()
    for target in ("klaviyo", "ometria"):
        copy = read(directory, target, "customers").select(
            "erp_customer_id", copy_value=pl.col("lifetime_value").cast(MONEY),
            copy_count=pl.col("order_count").cast(pl.Int64), copy_last="last_order_at",
        )  # fmt: skip
        both = truth.join(copy, on="erp_customer_id")
        differs = (
            (pl.col("lifetime_value") != pl.col("copy_value"))
            | (pl.col("order_count") != pl.col("copy_count"))
            | pl.col("last_order_at").ne_missing(pl.col("copy_last"))
        )
        found |= {(target, c) for c in both.filter(differs)["erp_customer_id"]}
    return found


def consent_mismatches(directory: Path) -> set[tuple[str, str]]:
    truth = read(directory, "bluecherry", "customers").select(erp_customer_id="customer_id", truth="email_consent")
    found = set()
    for target in ("klaviyo", "ometria", "emarsys", "commercetools"):
        copy = read(directory, target, "customers").select("erp_customer_id", "email_consent")
        both = truth.join(copy, on="erp_customer_id")
        found |= {(target, c) for c in both.filter(pl.col("truth") != pl.col("email_consent"))["erp_customer_id"]}
    return found


# --- determinism and shape ------------------------------------------------------------------------------
def test_the_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path, drifted):
    again = generate(tmp_path / "again", captured_at=CAPTURED).out_dir
    files = sorted(p.relative_to(drifted) for p in drifted.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((drifted / f).read_bytes() == (again / f).read_bytes() for f in files)

    other = generate(tmp_path / "other", seed=8, captured_at=CAPTURED).out_dir
    assert (other / "bluecherry" / "orders.csv").read_bytes() != (drifted / "bluecherry" / "orders.csv").read_bytes()


def test_chunked_generation_writes_the_same_rows_as_one_chunk(tmp_path, clean, monkeypatch):
    monkeypatch.setattr(generator, "SKU_CHUNK", 64)
    monkeypatch.setattr(generator, "CUSTOMER_CHUNK", 45)
    chunked = generate(tmp_path / "chunked", drift=False, captured_at=CAPTURED).out_dir
    for path in clean.rglob("*.csv"):
        whole = pl.read_csv(path, infer_schema=False)
        parts = pl.read_csv(chunked / path.relative_to(clean), infer_schema=False)
        assert whole.columns == parts.columns, path
        assert whole.sort(whole.columns).equals(parts.sort(parts.columns)), path


def test_rows_grow_linearly_with_scale(tmp_path, clean):
    doubled = generate(tmp_path / "x2", drift=False, scale=2, captured_at=CAPTURED)
    single = {path: pl.read_csv(path, infer_schema=False).height for path in clean.rglob("*.csv")}
    for entity in ("products", "customers"):
        assert doubled.row_counts["bluecherry", entity] == 2 * single[clean / "bluecherry" / f"{entity}.csv"]
    ratio = doubled.row_counts["bluecherry", "orders"] / single[clean / "bluecherry" / "orders.csv"]
    assert 1.8 < ratio < 2.2


def test_bluecherry_exports_use_report_headers_codes_with_zeros_and_us_dates(clean):
    products = read(clean, "bluecherry", "products")
    assert products.columns == [
        "Style", "Color #", "Size", "Style Name", "Retail Price", "Currency", "Status", "Last Modified",
    ]  # fmt: skip
    inventory = read(clean, "bluecherry", "inventory")
    assert inventory.columns == [
        "Style", "Color #", "Size", "Location", "Total QOH", "Total Open", "Total Ship To WIP", "Safety Stock",
        "Avail QOH", "Last Modified",
    ]  # fmt: skip
    garments = products.filter(~pl.col("Style").str.starts_with("P"))
    assert garments["Style"].str.contains(r"^\d{5}$").all()
    assert garments["Style"].str.starts_with("00").all()
    assert garments["Color #"].str.contains(r"^\d{3}$").all()
    assert set(garments["Size"]) <= {"XS", "S", "M", "L", "XL", "08", "10", "12", "14", "16"}
    for frame in (products, inventory):
        assert frame["Last Modified"].str.contains(r"^\d{2}/\d{2}/\d{4}$").all()
    assert set(inventory["Location"]) == {"001", "002", "003"}


def test_every_file_uses_canonical_columns_and_every_source_has_a_manifest(clean):
    for source_dir in (p for p in clean.iterdir() if p.is_dir()):
        manifest = json.loads((source_dir / "_manifest.json").read_text())
        assert manifest == {"captured_at": "2026-11-02T06:00:00Z"}
        for path in source_dir.glob("*.csv"):
            if source_dir.name == "bluecherry" and path.stem in ("products", "inventory"):
                continue
            header = pl.read_csv(path, n_rows=0).columns
            entity = ENTITIES[path.stem]
            assert set(header) <= set(entity.columns), path
            assert set(entity.key) <= set(header), path


def test_every_retailer_loads_through_the_file_drop_reader_without_a_quarantined_row(
    tmp_path, clean, drifted, drifted_parquet
):
    for directory in (clean, drifted, drifted_parquet):
        codes = json.loads((directory / "bluecherry" / "_status_map.json").read_text())
        with Store(tmp_path / f"{directory.name}.duckdb") as store:
            report = load_directory(store, directory, parse_config({"statuses": {"bluecherry": codes}}))
        assert report.quarantine.height == 0, report.quarantine.head(5)
        assert {(f.source, f.entity) for f in report.files} >= {("bluecherry", "products"), ("mirakl", "payout_lines")}


def test_parquet_holds_the_same_values_as_csv(drifted, drifted_parquet):
    for source, entity, money in (("mirakl", "payout_lines", "amount"), ("bluecherry", "orders", "total")):
        from_parquet = pl.read_parquet(drifted_parquet / source / f"{entity}.parquet")
        assert from_parquet.schema[money] == pl.Decimal(18, 4)
        from_csv = read(drifted, source, entity)
        assert from_parquet.height == from_csv.height
        assert (from_parquet[money] == from_csv[money].cast(pl.Decimal(18, 4))).all()
    assert (drifted_parquet / "answer_key.csv").read_bytes() == (drifted / "answer_key.csv").read_bytes()


# --- the clean retailer ---------------------------------------------------------------------------------
def test_clean_copies_publish_exactly_the_erp_available_to_sell(clean):
    truth = available_to_sell(clean)
    assert truth["ats"].null_count() == 0
    for target in STOCK_TARGETS:
        copy = read(clean, target, "inventory")
        assert set(copy["location"]) == {"*"}
        assert set(copy["sku"]) == set(truth["sku"]) == set(read(clean, target, "products")["sku"])
    assert stock_mismatches(clean) == set()


def test_clean_erp_available_nets_allocations_and_safety_stock_but_never_wip(clean):
    stock = erp_stock(clean)
    assert (stock["available"] == stock["on_hand"] - stock["allocated"] - stock["safety_stock"]).all()
    assert (stock["on_order"] > 0).any() and (stock["available"] < 0).any()  # both traps are exercised


def test_clean_lifetime_values_are_net_of_cancellations_and_refunds(clean):
    assert value_mismatches(clean) == set()
    assert consent_mismatches(clean) == set()
    truth = lifetime_values(clean)
    assert (truth["order_count"] > 0).any() and (truth["lifetime_value"] > 0).any()


def test_clean_payout_documents_balance_and_every_fee_is_journalled(clean):
    lines = read(clean, "mirakl", "payout_lines").with_columns(pl.col("amount").cast(MONEY))
    payments = lines.filter(pl.col("line_type") == "payment").select("payout_id", paid="amount")
    others = lines.filter(pl.col("line_type") != "payment").group_by("payout_id").agg(pl.col("amount").sum())
    assert payments.join(others, on="payout_id").filter(pl.col("paid") != pl.col("amount")).height == 0
    assert payments.height == others.height == lines["payout_id"].n_unique()
    assert set(lines["currency"]) == {"EUR", "GBP"}

    journal = read(clean, "bluecherry", "journal_entries").with_columns(pl.col("amount").cast(MONEY))
    booked = lines.filter(pl.col("line_type").is_in(["commission", "refund_commission", "fee", "adjustment"]))
    matched = booked.join(journal, on=["payout_id", "amount", "currency"], how="semi")
    assert matched.height == booked.height > 0

    percent = int(Decimal(json.loads((clean / "mirakl" / "_commission_rates.json").read_text())["default"]) * 100)
    per_order = lines.filter(pl.col("external_id").is_not_null()).pivot(
        "line_type", index="external_id", values="amount", aggregate_function="sum"
    )
    cents = (pl.col("order_amount") * 100).cast(pl.Int64)
    agreed = -((cents * percent + 50) // 100)  # half up, to the cent
    assert per_order.filter((pl.col("commission") * 100).cast(pl.Int64) != agreed).height == 0
    erp = read(clean, "bluecherry", "orders").select("external_id", total=pl.col("total").cast(MONEY))
    paid_orders = per_order.join(erp, on="external_id")
    assert paid_orders.height == per_order.height
    gross = pl.col("order_amount") + pl.col("shipping").fill_null(0)
    assert paid_orders.filter(gross != pl.col("total")).height == 0
    reversals = lines.filter(pl.col("payout_id").str.ends_with("-R"))
    assert reversals.filter(pl.col("line_type") == "adjustment")["amount"].to_list() == [-50]


def test_clean_time_rules_hold_against_the_capture(clean):
    captured = pl.lit(CAPTURED)
    for target in STOCK_TARGETS:
        updated = read(clean, target, "inventory").select(timestamps("updated_at"))["updated_at"]
        assert ((CAPTURED - updated) < timedelta(hours=24)).all() and (updated <= CAPTURED).all()
    shipments = read(clean, "bluecherry", "shipments").select("order_id", timestamps("shipped_at"))
    fulfilled = read(clean, "klaviyo", "events").filter(pl.col("metric") == "order_fulfilled")
    lag = fulfilled.select("order_id", timestamps("occurred_at")).join(shipments, on="order_id")
    assert lag.height == fulfilled.height > 0
    assert lag.select(
        ((pl.col("occurred_at") - pl.col("shipped_at")) / timedelta(hours=1)).is_between(0, 24).all()
    ).item()
    mirakl = read(clean, "mirakl", "orders")
    waiting = mirakl.filter(pl.col("status") == "WAITING_ACCEPTANCE").select("order_id", timestamps("placed_at"))
    assert waiting.height > 0
    assert waiting.select((captured - pl.col("placed_at") < timedelta(hours=24)).all()).item()
    assert set(waiting["order_id"]) <= set(read(clean, "bluecherry", "orders")["order_id"])
    for source, entity, column in (("bluecherry", "orders", "updated_at"), ("ometria", "customers", "updated_at")):
        assert (read(clean, source, entity).select(timestamps(column))[column] <= CAPTURED).all()


def test_a_clean_generation_leaves_no_answer_key(tmp_path):
    out = tmp_path / "retailer"
    assert generate(out, captured_at=CAPTURED).answer_key.exists()
    result = generate(out, drift=False, captured_at=CAPTURED)
    assert result.answer_key is None and not (out / "answer_key.csv").exists()


# --- the drift and its answer key -----------------------------------------------------------------------
def test_the_answer_key_covers_every_check_but_snapshot_health_two_times_or_more(drifted):
    key = answer_key(drifted)
    assert key.columns == ["check_id", "target", "key", "field", "note"]
    counts = dict(key.group_by("check_id").len().iter_rows())
    assert set(counts) == CATALOGUE
    assert min(counts.values()) >= 2
    assert key.filter(pl.col("note").str.len_chars() < 10).height == 0
    assert key.select("check_id", "target", "key", "field").is_duplicated().sum() == 0


def test_every_answer_key_names_a_record_in_the_data(drifted):
    def column(source: str, entity: str, name: str) -> set[str]:
        path = drifted / source / f"{entity}.csv"
        return set(pl.read_csv(path, infer_schema=False)[name].drop_nulls()) if path.exists() else set()

    erp_skus = set(available_to_sell(drifted)["sku"]) | set(
        read(drifted, "bluecherry", "products").select(pl.concat_str("Style", "Color #", "Size", separator="-"))
        .to_series()
    )  # fmt: skip
    erp_orders = column("bluecherry", "orders", "order_id")
    customers = column("bluecherry", "customers", "customer_id")
    for check_id, target, key, *_ in answer_key(drifted).iter_rows():
        if check_id in ("ats_inflation", "negative_stock"):
            sku, location = key.split("/")
            assert (sku, location) in set(erp_stock(drifted).select("sku", "location").iter_rows())
        elif check_id in ("stock_parity", "stock_staleness", "catalogue_parity"):
            assert key in erp_skus | column(target, "products", "sku"), (check_id, key)
        elif check_id == "unmapped_codes":
            assert key in column(target, "orders", "status")
            assert key not in json.loads((drifted / target / "_status_map.json").read_text())
        elif check_id in ("consent_parity", "customer_master_parity", "ltv_after_refunds"):
            assert key in customers
        elif check_id == "payout_matching":
            assert key in column("mirakl", "payout_lines", "line_id")
        elif key.startswith("MRK-"):
            assert key in column("mirakl", "orders", "external_id") and key not in column(
                "bluecherry", "orders", "external_id"
            )
        else:
            assert key in erp_orders, (check_id, key)


def test_drift_breaks_exactly_the_records_the_answer_key_names(drifted):
    assert stock_mismatches(drifted) == keyed(drifted, "stock_parity")
    assert value_mismatches(drifted) == keyed(drifted, "ltv_after_refunds")
    assert consent_mismatches(drifted) == keyed(drifted, "consent_parity")
    stock = erp_stock(drifted)
    inflated = stock.filter(pl.col("available") != pl.col("on_hand") - pl.col("allocated") - pl.col("safety_stock"))
    assert {("bluecherry", f"{s}/{loc}") for s, loc in inflated.select("sku", "location").iter_rows()} == keyed(
        drifted, "ats_inflation"
    )
    stale = read(drifted, "klaviyo", "inventory").filter(timestamps("updated_at") < CAPTURED - timedelta(hours=24))
    assert {("klaviyo", sku) for sku in stale["sku"]} == keyed(drifted, "stock_staleness")


def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="scale"):
        generate(tmp_path, scale=0)
    with pytest.raises(UserError, match="format"):
        generate(tmp_path, file_format="xlsx")


def test_the_command_line_writes_a_snapshot_and_reports_its_rows(tmp_path, capsys):
    generator.main(["--out", str(tmp_path / "cli"), "--no-drift", "--seed", "3"])
    printed = capsys.readouterr().out
    assert re.search(r"bluecherry products\s+300", printed)
    assert (tmp_path / "cli" / "klaviyo" / "events.csv").exists()
    assert not (tmp_path / "cli" / "answer_key.csv").exists()


def test_drift_lands_in_the_first_chunk_when_output_is_chunked(tmp_path, monkeypatch):
    monkeypatch.setattr(generator, "SKU_CHUNK", 200)  # the packs sit in the last SKUs
    monkeypatch.setattr(generator, "CUSTOMER_CHUNK", 300)
    chunked = generate(tmp_path / "chunked", captured_at=CAPTURED).out_dir
    assert set(answer_key(chunked)["check_id"]) == CATALOGUE
    assert stock_mismatches(chunked) == keyed(chunked, "stock_parity")
    assert value_mismatches(chunked) == keyed(chunked, "ltv_after_refunds")
