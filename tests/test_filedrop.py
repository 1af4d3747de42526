"""File-drop loading: every error class gets one clear line, bad rows are quarantined, loads are atomic."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from driftwatch import filedrop
from driftwatch import store as store_module
from driftwatch.cli import cli
from driftwatch.config import Config, default_feeds
from driftwatch.errors import DataError, UserError
from driftwatch.filedrop import load_directory
from driftwatch.store import IncomingSnapshot, Store

CAPTURED = "2026-11-23T02:00:00Z"
INVENTORY_EXPORT = (
    "Style,Color #,Size,Location,Total QOH,Total Open,Total Ship To WIP,Safety Stock,Avail QOH,Last Modified,Div\n"
    "00412,010,M,WH01,10,2,5,1,7,11/01/2026,A\n"
    "00412,010,L,WH01,1,200,0,0,0,11/01/2026,A\n"
)


def write(root: Path, rel: str, content: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def manifest(root: Path, source: str, captured_at: str = CAPTURED) -> None:
    write(root, f"{source}/_manifest.json", json.dumps({"captured_at": captured_at}))


@pytest.fixture
def cfg() -> Config:
    return Config(feeds=default_feeds())


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "store.duckdb") as s:
        yield s


def test_bluecherry_export_headers_map_to_canonical_columns(tmp_path, store, cfg):
    write(tmp_path / "drop", "bluecherry/inventory.csv", INVENTORY_EXPORT)
    manifest(tmp_path / "drop", "bluecherry")
    load_directory(store, tmp_path / "drop", cfg)
    rows = store.latest("bluecherry", "inventory").sort("sku")
    assert rows["sku"].to_list() == ["00412-010-L", "00412-010-M"]  # leading zeros kept, SKU composed
    assert rows.row(1, named=True) == {
        "sku": "00412-010-M",
        "location": "WH01",
        "on_hand": 10,
        "allocated": 2,
        "on_order": 5,
        "safety_stock": 1,
        "available": 7,
        "updated_at": datetime(2026, 11, 1, tzinfo=UTC),
    }
    assert store.latest_snapshot("bluecherry", "inventory").captured_at == datetime(2026, 11, 23, 2, tzinfo=UTC)


def test_report_title_lines_above_the_header_are_skipped_and_lines_still_point_at_the_file(tmp_path, store, cfg):
    """A report exported to CSV with its name and run date above the table (UTF-8 BOM, CRLF line ends)."""
    export = "\ufeffInventory Quantities by Location\r\nRun 11/02/2026 02:30\r\n\r\n" + INVENTORY_EXPORT.replace(
        "0,0,11/01", "x,0,11/01"
    ).replace("\n", "\r\n")
    path = write(tmp_path / "drop", "bluecherry/inventory.csv", export.encode("utf-8"))
    manifest(tmp_path / "drop", "bluecherry")
    report = load_directory(store, tmp_path / "drop", cfg)
    assert store.latest("bluecherry", "inventory")["sku"].to_list() == ["00412-010-M"]
    assert report.quarantine.select("origin", "line", "column").rows() == [(str(path), 6, "safety_stock")]


def test_a_one_column_file_has_no_title_line(tmp_path, store, cfg):
    write(tmp_path / "drop", "mirakl/products.csv", "sku\nA\nB\n")
    load_directory(store, tmp_path / "drop", cfg)
    assert store.latest("mirakl", "products")["sku"].sort().to_list() == ["A", "B"]


def test_client_column_map_and_timezone_override(tmp_path, store):
    write(
        tmp_path / "drop",
        "bluecherry/products.csv",
        "Item Code,Descr,Price,Status,Changed\n0007,Tee,19.9,active,2026-10-15 09:30:00\n",
    )
    manifest(tmp_path / "drop", "bluecherry")
    cfg = Config(
        feeds=default_feeds(),
        raw={
            "sources": {
                "bluecherry": {
                    "timezone": "America/New_York",
                    "column_map": {
                        "products": {"Item Code": "sku", "Descr": "name", "Price": "price", "Changed": "updated_at"}
                    },
                }
            }
        },
    )
    load_directory(store, tmp_path / "drop", cfg)
    row = store.latest("bluecherry", "products").row(0, named=True)
    assert row["sku"] == "0007"
    assert row["price"] == Decimal("19.90")
    assert row["updated_at"] == datetime(2026, 10, 15, 13, 30, tzinfo=UTC)  # 09:30 EDT


def test_bad_rows_are_quarantined_with_file_line_column_and_reason(tmp_path, store, cfg):
    path = write(
        tmp_path / "drop",
        "klaviyo/customers.csv",
        "customer_id,email,email_consent,lifetime_value,updated_at\n"
        "C1, Ann@Example.COM ,true,10.50,2026-11-01T10:00:00+01:00\n"
        "C2,not-an-email,maybe,12,2026-11-01\n"
        ",x@y.com,false,abc,31/31/2026\n"
        "C3,z@y.com,no,1,\n",
    )
    manifest(tmp_path / "drop", "klaviyo")
    report = load_directory(store, tmp_path / "drop", cfg)
    good = store.latest("klaviyo", "customers").sort("customer_id")
    assert good["customer_id"].to_list() == ["C1", "C3"]
    assert good["email"][0] == "ann@example.com"
    problems = {(r["line"], r["column"]): r["reason"] for r in report.quarantine.iter_rows(named=True)}
    assert problems == {
        (3, "email"): "not a valid email address",
        (3, "email_consent"): "not a valid true/false value",
        (4, "customer_id"): "required value is missing",
        (4, "lifetime_value"): "not a valid decimal amount",
        (4, "updated_at"): "not a valid date or timestamp (ISO 8601 or MM/DD/YYYY)",
    }
    assert set(report.quarantine["origin"]) == {str(path)}
    stored = store.quarantine()
    assert stored.height == 5 and set(stored["line"]) == {3, 4}
    assert report.files[0].quarantined == 2


def test_duplicate_keys_hold_back_every_copy(tmp_path, store, cfg):
    write(tmp_path / "drop", "mirakl/products.csv", "sku,price\nA,1\nA,2\nB,3\n")
    report = load_directory(store, tmp_path / "drop", cfg)
    assert store.latest("mirakl", "products")["sku"].to_list() == ["B"]
    assert report.quarantine["reason"].str.starts_with("duplicate key").all()
    assert sorted(report.quarantine["line"]) == [2, 3]


@pytest.mark.parametrize(
    ("rel", "content", "expected"),
    [
        ("shopify/orders.csv", "order_id\n1\n", "unknown source folder 'shopify'"),
        ("klaviyo/widgets.csv", "id\n1\n", "unknown entity 'widgets'"),
        ("klaviyo/orders.xlsx", "x", "unsupported file type '.xlsx'"),
        ("klaviyo/orders.csv", "order_id,colour_of_box\n1,red\n", "unknown column 'colour_of_box'"),
        ("klaviyo/orders.csv", "email,total\na@b.co,1\n", "missing key column(s) 'order_id'"),
        ("klaviyo/orders.csv", "", "empty file"),
        ("klaviyo/orders.csv", b"order_id\n\x00\x01\x02\x03", "binary content"),
        ("klaviyo/orders.csv", "order_id,email\n1,ren\xe9@x.com\n".encode("latin-1"), "not UTF-8"),
        ("klaviyo/orders.parquet", b"PAR1 definitely not parquet", "not a readable Parquet file"),
        ("klaviyo/orders.jsonl", '{"order_id": "1"\n', "cannot parse as JSONL"),
        ("klaviyo/_manifest.json", '{"captured": 1}', 'expected {"captured_at"'),
    ],
)
def test_unreadable_input_stops_with_one_clear_line_and_stores_nothing(tmp_path, store, cfg, rel, content, expected):
    write(tmp_path / "drop", "bluecherry/inventory.csv", INVENTORY_EXPORT)  # a good file loaded in the same go
    write(tmp_path / "drop", "klaviyo/customers.csv", "customer_id\nC1\n")
    write(tmp_path / "drop", rel, content)
    with pytest.raises(DataError) as err:
        load_directory(store, tmp_path / "drop", cfg)
    message = str(err.value)
    assert expected in message
    assert "\n" not in message
    assert store.snapshots().height == 0


def test_cli_reports_user_errors_without_traceback(tmp_path):
    write(tmp_path / "drop", "klaviyo/orders.csv", "order_id,colour_of_box\n1,red\n")
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "s.duckdb"), "load", str(tmp_path / "drop")])
    assert result.exit_code != 0
    assert "colour_of_box" in str(result.exception)
    # main() is what the console script runs: it turns the error into one line and exit code 2.
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "driftwatch", "--db", str(tmp_path / "s.duckdb"), "load", str(tmp_path / "drop")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "unknown column 'colour_of_box'" in proc.stderr


def test_reloading_the_same_files_changes_nothing(tmp_path, store, cfg):
    write(tmp_path / "drop", "bluecherry/inventory.csv", INVENTORY_EXPORT)
    manifest(tmp_path / "drop", "bluecherry")
    first = load_directory(store, tmp_path / "drop", cfg)
    before = store.snapshots()
    second = load_directory(store, tmp_path / "drop", cfg)
    assert first.loaded == 1 and second.loaded == 0
    assert store.snapshots().equals(before)
    assert store.frame("SELECT count(*) AS n FROM snap_inventory")["n"][0] == 2


def test_reordered_rows_are_the_same_snapshot(tmp_path, store, cfg):
    header, *lines = INVENTORY_EXPORT.splitlines()
    write(tmp_path / "a", "bluecherry/inventory.csv", "\n".join([header, *lines]) + "\n")
    write(tmp_path / "b", "bluecherry/inventory.csv", "\n".join([header, *reversed(lines)]) + "\n")
    manifest(tmp_path / "a", "bluecherry")
    manifest(tmp_path / "b", "bluecherry")
    load_directory(store, tmp_path / "a", cfg)
    assert load_directory(store, tmp_path / "b", cfg).loaded == 0


def test_a_new_capture_is_a_new_snapshot_and_latest_follows_it(tmp_path, store, cfg):
    write(tmp_path / "d1", "mirakl/products.csv", "sku,price\nA,1\nB,2\n")
    manifest(tmp_path / "d1", "mirakl", "2026-11-22T02:00:00Z")
    write(tmp_path / "d2", "mirakl/products.csv", "sku,price\nA,1\n")
    manifest(tmp_path / "d2", "mirakl", "2026-11-23T02:00:00Z")
    load_directory(store, tmp_path / "d1", cfg)
    load_directory(store, tmp_path / "d2", cfg)
    assert store.latest("mirakl", "products")["sku"].to_list() == ["A"]
    assert store.previous_snapshot("mirakl", "products").row_count == 2
    assert store.latest_snapshots()["snapshots"].to_list() == [2]


def test_a_failure_in_the_middle_of_a_load_leaves_the_store_as_it_was(tmp_path, store, cfg):
    write(tmp_path / "drop", "mirakl/products.csv", "sku,price\nA,1\n")
    load_directory(store, tmp_path / "drop", cfg)
    before = store.snapshots()
    frame = pl.DataFrame({"sku": ["X"]})
    captured = datetime(2026, 11, 24, tzinfo=UTC)

    def snapshots_then_crash():
        yield IncomingSnapshot("mirakl", "products", captured, frame)
        yield IncomingSnapshot("klaviyo", "products", captured, frame)
        raise RuntimeError("disk went away")

    with pytest.raises(RuntimeError):
        store.ingest(snapshots_then_crash())
    assert store.snapshots().equals(before)
    assert store.frame("SELECT count(*) AS n FROM snap_products")["n"][0] == 1


@pytest.mark.parametrize("commit_rows", [1_000_000, 0])  # one transaction; a commit after every file
def test_a_drop_is_stored_file_by_file_and_a_bad_file_late_in_it_rolls_back_the_rest(
    tmp_path, store, cfg, monkeypatch, commit_rows
):
    monkeypatch.setattr(store_module, "COMMIT_ROWS", commit_rows)
    write(tmp_path / "drop", "klaviyo/customers.csv", "customer_id,email\nC1,a@x.com\n")
    manifest(tmp_path / "drop", "klaviyo")
    write(tmp_path / "drop", "ometria/orders.parquet", b"PAR1 definitely not parquet")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_directory(store, tmp_path / "drop", cfg)  # klaviyo's file is good, and is not stored either
    assert store.snapshots().height == 0
    assert store.frame("SELECT count(*) AS n FROM snap_customers")["n"][0] == 0


def test_a_drop_is_seen_whole_or_not_at_all_and_a_killed_load_leaves_nothing_behind(tmp_path, cfg, monkeypatch):
    monkeypatch.setattr(store_module, "COMMIT_ROWS", 0)  # every file's rows committed as it is stored
    captured = datetime(2026, 11, 23, tzinfo=UTC)
    customers = IncomingSnapshot("klaviyo", "customers", captured, pl.DataFrame({"customer_id": ["C1", "C2"]}))
    orders = IncomingSnapshot("klaviyo", "orders", captured, pl.DataFrame({"order_id": ["O1"]}))
    with Store(tmp_path / "s.duckdb") as store:
        seen = []

        def drop():
            yield customers
            # The first file's rows are stored (and committed) by now, but no reader sees them yet.
            seen.append(store.latest_snapshot("klaviyo", "customers"))
            yield orders

        store.ingest(drop())
        assert seen == [None]
        assert store.latest("klaviyo", "customers")["customer_id"].to_list() == ["C1", "C2"]
        # A load killed between two files: its first file's rows are stored, never recorded.
        with store.transaction() as cur:
            killed = store._stage(cur, dataclasses.replace(customers, frame=pl.DataFrame({"customer_id": ["C3"]})))
    with Store(tmp_path / "s.duckdb") as store:
        assert store.latest("klaviyo", "customers")["customer_id"].to_list() == ["C1", "C2"]
        store.ingest([orders])  # the next load removes what the killed one left
        left = store.frame(
            "SELECT count(*) AS n FROM snap_customers WHERE snapshot_id = ?", [killed.snapshot.snapshot_id]
        )
        assert left["n"][0] == 0
        assert store.frame("SELECT count(*) AS n FROM snap_customers")["n"][0] == 2


def test_missing_directory_and_empty_directory(tmp_path, store, cfg):
    with pytest.raises(UserError, match="not a directory"):
        load_directory(store, tmp_path / "nope", cfg)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no snapshot files found"):
        load_directory(store, tmp_path / "empty", cfg)


def test_jsonl_and_parquet_drops(tmp_path, store, cfg):
    write(
        tmp_path / "drop",
        "ometria/orders.jsonl",
        '{"order_id": "SO-1", "total": 19.9, "placed_at": "2026-11-01T10:00:00Z", "status": "pending"}\n',
    )
    pl.DataFrame({"sku": ["001"], "location": ["*"], "available": [3]}).write_parquet(
        tmp_path / "drop" / "ometria" / "inventory.parquet"
    )
    load_directory(store, tmp_path / "drop", cfg)
    assert store.latest("ometria", "orders")["total"][0] == Decimal("19.90")
    assert store.latest("ometria", "inventory")["sku"][0] == "001"
    # A source that did not provide a column does not pretend to hold it.
    assert store.latest("ometria", "inventory").columns == ["sku", "location", "available"]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_a_file_read_in_batches_is_stored_as_read_whole_with_lines_across_batches(tmp_path, cfg, monkeypatch, fmt):
    rows = [("C1", "a@x.com", "10.50"), ("C2", "b@x.com", "1"), ("C3", "not-an-email", "2"), ("C4", "d@x.com", "x"),
            ("C2", "e@x.com", "3"), ("C6", "f@x.com", "4"), ("C7", "g@x.com", "5")]  # fmt: skip
    frame = pl.DataFrame(rows, schema=["customer_id", "email", "lifetime_value"], orient="row")
    path = tmp_path / "drop" / "klaviyo" / f"customers.{fmt}"
    path.parent.mkdir(parents=True)
    {"csv": frame.write_csv, "parquet": frame.write_parquet, "jsonl": frame.write_ndjson}[fmt](path)
    manifest(tmp_path / "drop", "klaviyo")

    def load(batch_rows: int) -> tuple[pl.DataFrame, pl.DataFrame]:
        monkeypatch.setattr(filedrop, "BATCH_ROWS", batch_rows)
        with Store(tmp_path / f"store-{batch_rows}.duckdb") as store:
            report = load_directory(store, tmp_path / "drop", cfg)
            return store.latest("klaviyo", "customers").sort("customer_id"), report.quarantine

    whole, whole_bad = load(1_000)
    batched, batched_bad = load(2)
    assert batched.equals(whole) and batched["customer_id"].to_list() == ["C1", "C6", "C7"]
    assert batched_bad.equals(whole_bad)
    first = 2 if fmt == "csv" else 1  # a CSV's first record is on the line after its header
    assert sorted(set(batched_bad["line"])) == [first + 1, first + 2, first + 3, first + 4]  # C2 twice, C3, C4


def test_a_bad_row_in_a_later_batch_refuses_the_whole_file(tmp_path, store, cfg, monkeypatch):
    monkeypatch.setattr(filedrop, "BATCH_ROWS", 2)
    write(tmp_path / "drop", "klaviyo/customers.csv", "customer_id,email\nC1,a@x.com\nC2,b@x.com\nC3,c@x.com,extra\n")
    manifest(tmp_path / "drop", "klaviyo")
    with pytest.raises(DataError, match="line 4 has 3 fields"):
        load_directory(store, tmp_path / "drop", cfg)
    assert store.snapshots().height == 0


def test_a_header_only_file_is_an_empty_snapshot(tmp_path, store, cfg):
    write(tmp_path / "drop", "klaviyo/customers.csv", "customer_id,email\n")
    manifest(tmp_path / "drop", "klaviyo")
    report = load_directory(store, tmp_path / "drop", cfg)
    assert [(f.rows, f.loaded) for f in report.files] == [(0, True)]
    assert store.latest("klaviyo", "customers").height == 0
