"""Hostile or broken file drops, through the command line: each is refused with one line and exit 2, storing
nothing of the drop, or its bad rows are quarantined with file, line, column and reason. Never a traceback,
and never more than a short, redacted excerpt of what a file holds."""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from driftwatch.cli import run_cli
from driftwatch.config import parse_config
from driftwatch.engine import audit
from driftwatch.errors import DataError
from driftwatch.filedrop import load_directory, loading_at
from driftwatch.store import Store

KEY = "pk_2b9c8e7f6a5d4c3b2a1f0e9d8c7b6a5d4c"
CUSTOMERS = "customer_id,email,email_consent\nC1,ann@example.com,true\nC2,bob@example.com,false\n"
PRODUCTS = "sku,name,price,currency\nP1,Shirt,12.50,GBP\n"
CAPTURED = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def manifest(folder: Path, captured_at: str = CAPTURED) -> None:
    write(folder / "_manifest.json", json.dumps({"captured_at": captured_at}))


def good_drop(root: Path) -> Path:
    """A drop whose ERP part is fine: whatever else is refused, none of it may be stored."""
    drop = root / "drop"
    write(drop / "bluecherry" / "products.csv", "sku,name,price,currency,status\nP1,Shirt,12.50,GBP,active\n")
    manifest(drop / "bluecherry")
    return drop


def load(root: Path, drop: Path, capfd) -> tuple[int, str, str]:
    config = write(root / "driftwatch.toml", "")
    code = run_cli(["--config", str(config), "--db", str(root / "s.duckdb"), "load", str(drop)])
    out, err = capfd.readouterr()
    return code, out, err


def stored_snapshots(root: Path) -> int:
    if not (root / "s.duckdb").exists():
        return 0
    with Store(root / "s.duckdb") as store:
        return store.latest_snapshots().height


# --- refused: one line, exit 2, nothing stored ---------------------------------------------------------------


def _file_linked_outside(drop: Path, outside: Path) -> None:
    secrets = write(outside / "secrets.env", f"KLAVIYO_API_KEY={KEY}\nOTHER=1\n")
    (drop / "klaviyo").mkdir()
    (drop / "klaviyo" / "customers.csv").symlink_to(secrets)


def _folder_linked_outside(drop: Path, outside: Path) -> None:
    write(outside / "elsewhere" / "customers.csv", CUSTOMERS)
    (drop / "klaviyo").symlink_to(outside / "elsewhere", target_is_directory=True)


def _manifest_linked_outside(drop: Path, outside: Path) -> None:
    write(drop / "klaviyo" / "customers.csv", CUSTOMERS)
    (drop / "klaviyo" / "_manifest.json").symlink_to(write(outside / "secrets.json", json.dumps({"key": KEY})))


def _link_loop(drop: Path, outside: Path) -> None:
    (drop / "klaviyo").mkdir()
    (drop / "klaviyo" / "customers.csv").symlink_to(drop / "klaviyo" / "orders.csv")
    (drop / "klaviyo" / "orders.csv").symlink_to(drop / "klaviyo" / "customers.csv")


def _secret_in_a_header(drop: Path, outside: Path) -> None:
    write(drop / "klaviyo" / "customers.csv", f"customer_id,KLAVIYO_API_KEY={KEY},email\nC1,x,ann@example.com\n")


def _captured_in_the_future(drop: Path, outside: Path) -> None:
    write(drop / "klaviyo" / "customers.csv", CUSTOMERS)
    manifest(drop / "klaviyo", "2031-01-01T00:00:00Z")


def _files_dated_in_the_future(drop: Path, outside: Path) -> None:
    path = write(drop / "klaviyo" / "customers.csv", CUSTOMERS)
    future = (datetime.now(UTC) + timedelta(days=30)).timestamp()
    os.utime(path, (future, future))


def _headers_differing_in_case(drop: Path, outside: Path) -> None:
    write(drop / "klaviyo" / "products.csv", "SKU,name,sku\nP1,Shirt,P1\n")


def _the_same_header_twice(drop: Path, outside: Path) -> None:
    write(drop / "klaviyo" / "products.csv", "sku,name,name\nP1,Shirt,Top\n")


def _jsonl_keys_differing_in_case(drop: Path, outside: Path) -> None:
    write(drop / "klaviyo" / "products.jsonl", '{"sku": "P1", "SKU": "P2", "name": "Shirt"}\n')


def _a_row_with_too_many_fields(drop: Path, outside: Path) -> None:
    write(drop / "klaviyo" / "customers.csv", CUSTOMERS + "C3,cat@example.com,true,surplus\n")


def _a_list_on_some_lines_only(drop: Path, outside: Path) -> None:
    write(
        drop / "klaviyo" / "customers.jsonl",
        '{"customer_id": "C1", "email": "ann@example.com"}\n{"customer_id": "C2", "email": ["a@x.com", "b@x.com"]}\n',
    )


def _utf16_without_a_byte_order_mark(drop: Path, outside: Path) -> None:
    write(drop / "klaviyo" / "customers.csv", CUSTOMERS.encode("utf-16-le"))


def _binary(drop: Path, outside: Path) -> None:
    write(drop / "klaviyo" / "customers.csv", bytes(range(256)) * 4)


REFUSED: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "a file linked outside the drop": (_file_linked_outside, r"customers\.csv: a symbolic link leading outside"),
    "a source folder linked outside the drop": (_folder_linked_outside, r"klaviyo: a symbolic link leading outside"),
    "a manifest linked outside the drop": (_manifest_linked_outside, r"_manifest\.json: a symbolic link leading"),
    "a link loop": (_link_loop, r"a symbolic link leading outside the drop"),
    "a secret in a header": (_secret_in_a_header, r"unknown column 'KLAVIYO_API_KEY=\*\*\*' for customers"),
    "captured_at in the future": (_captured_in_the_future, r"captured_at 2031-01-01T00:00:00Z is in the future"),
    "files dated in the future": (_files_dated_in_the_future, r"its newest file .* is in the future"),
    "headers differing only in case": (_headers_differing_in_case, r"headers 'SKU' and 'sku' name the same column"),
    "the same header twice": (_the_same_header_twice, r"headers 'name' and 'name' name the same column"),
    "JSONL keys differing only in case": (_jsonl_keys_differing_in_case, r"headers 'sku' and 'SKU' name the same"),
    "a row with too many fields": (_a_row_with_too_many_fields, r"line 4 has 4 fields, the header has 3"),
    "a list on some lines only": (_a_list_on_some_lines_only, r"line 2: column 'email' holds a list on some lines"),
    "UTF-16 without a byte-order mark": (_utf16_without_a_byte_order_mark, r"UTF-16 text without a byte-order mark"),
    "binary content": (_binary, r"binary content"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_hostile_or_broken_drop_is_refused_in_one_line_and_stores_nothing(tmp_path, capfd, case):
    build, message = REFUSED[case]
    drop = good_drop(tmp_path)
    build(drop, tmp_path / "outside")
    code, out, err = load(tmp_path, drop, capfd)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(message, lines[0]), lines[0]
    assert len(lines[0]) < 400 and "Traceback" not in out + err
    assert KEY not in out + err and "OTHER=1" not in out + err  # nothing of a secrets file is shown
    assert stored_snapshots(tmp_path) == 0


def test_a_link_that_stays_inside_the_drop_is_followed(tmp_path, capfd):
    drop = good_drop(tmp_path)
    shared = write(drop / "_shared" / "customers.csv", CUSTOMERS)  # a folder starting with _ is not a source
    (drop / "klaviyo").mkdir()
    (drop / "klaviyo" / "customers.csv").symlink_to(shared)
    manifest(drop / "klaviyo")
    code, _, err = load(tmp_path, drop, capfd)
    assert code == 0, err
    assert stored_snapshots(tmp_path) == 2


def test_a_capture_time_within_the_clock_skew_is_accepted(tmp_path, capfd):
    drop = good_drop(tmp_path)
    write(drop / "klaviyo" / "customers.csv", CUSTOMERS)
    manifest(drop / "klaviyo", (datetime.now(UTC) + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    code, _, err = load(tmp_path, drop, capfd)
    assert code == 0, err


# --- quarantined: the rest loads -------------------------------------------------------------------------------


def quarantine(tmp_path: Path, capfd) -> list[dict]:
    code = run_cli(["--db", str(tmp_path / "s.duckdb"), "db", "quarantine", "--format", "json"])
    out, err = capfd.readouterr()
    assert code == 0, err
    return [{k: row[k] for k in ("line", "column", "value", "reason")} for row in json.loads(out)]


def test_money_with_more_decimals_than_its_currency_is_quarantined_never_rounded(tmp_path, capfd):
    drop = good_drop(tmp_path)
    write(
        drop / "klaviyo" / "products.csv",
        "sku,name,price,currency\nP1,Shirt,12.345678,GBP\nP2,Top,12.345,GBP\nP3,Hat,1250.5,JPY\nP4,Cap,12.30,GBP\n"
        "P5,Bag,1250,JPY\nP6,Pin,1.234,KWD\n",
    )
    manifest(drop / "klaviyo")
    code, _, err = load(tmp_path, drop, capfd)
    assert code == 0, err
    assert quarantine(tmp_path, capfd) == [
        {"line": 2, "column": "price", "value": "12.345678",
         "reason": "more decimals than driftwatch keeps (4); an amount is never rounded"},
        {"line": 3, "column": "price", "value": "12.345",
         "reason": "more decimals than GBP has (2); an amount is never rounded"},
        {"line": 4, "column": "price", "value": "1250.5",
         "reason": "more decimals than JPY has (0); an amount is never rounded"},
    ]  # fmt: skip
    with Store(tmp_path / "s.duckdb") as store:
        kept = store.latest("klaviyo", "products").sort("sku")
    assert kept["sku"].to_list() == ["P4", "P5", "P6"]
    assert [str(p) for p in kept["price"]] == ["12.3000", "1250.0000", "1.2340"]


def test_a_record_or_a_list_where_one_value_belongs_is_quarantined_with_its_line(tmp_path, capfd):
    drop = good_drop(tmp_path)
    write(
        drop / "klaviyo" / "customers.jsonl",
        '{"customer_id": "C1", "email": "ann@example.com", "country": {"code": "GB"}}\n'
        '{"customer_id": "C2", "email": "bob@example.com", "country": null}\n',
    )
    manifest(drop / "klaviyo")
    code, _, err = load(tmp_path, drop, capfd)
    assert code == 0, err
    assert quarantine(tmp_path, capfd) == [
        {"line": 1, "column": "country", "value": '{"code": "GB"}', "reason": "a record, where one code was expected"}
    ]
    with Store(tmp_path / "s.duckdb") as store:
        assert store.latest("klaviyo", "customers")["customer_id"].to_list() == ["C2"]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_text_with_its_byte_order_mark_is_read_as_such(tmp_path, capfd, encoding):
    bom = codecs.BOM_UTF16_LE if encoding == "utf-16-le" else codecs.BOM_UTF16_BE
    drop = good_drop(tmp_path)
    text = "Customer report 11/23/2026\n\n" + CUSTOMERS.replace("ann@", "änn@")  # a title line and non-ASCII
    write(drop / "klaviyo" / "customers.csv", bom + text.encode(encoding))
    manifest(drop / "klaviyo")
    code, _, err = load(tmp_path, drop, capfd)
    assert code == 0, err
    with Store(tmp_path / "s.duckdb") as store:
        rows = store.latest("klaviyo", "customers").sort("customer_id")
    assert rows["email"].to_list() == ["änn@example.com", "bob@example.com"]


def test_negative_stock_is_kept_as_the_erp_said_it_and_reported_not_clamped(tmp_path, capfd):
    """ERPs go negative. The figure is stored as given; the audit reports it as a data-quality finding, and
    available-to-sell counts that location as 0, without lowering what the other location can sell."""
    drop = tmp_path / "drop"
    write(
        drop / "bluecherry" / "inventory.csv",
        "sku,location,on_hand,allocated,safety_stock\nP1,WH1,-4,0,0\nP1,WH2,6,1,0\n",
    )
    write(drop / "klaviyo" / "inventory.csv", "sku,location,available\nP1,*,5\n")
    manifest(drop / "bluecherry")
    manifest(drop / "klaviyo")
    code, _, err = load(tmp_path, drop, capfd)
    assert code == 0, err
    cfg = parse_config({"feeds": [{"source": "bluecherry", "target": "klaviyo", "entities": ["inventory"]}]})
    with Store(tmp_path / "s.duckdb") as store:
        held = store.latest("bluecherry", "inventory").sort("location")
        assert held["on_hand"].to_list() == [-4, 6]
        found = audit(store, cfg, checks=["negative_stock", "stock_parity"]).findings
    assert found.select("check_id", "target", "key", "field", "expected", "actual", "severity").rows() == [
        ("negative_stock", "bluecherry", "P1/WH1", "on_hand", ">= 0", "-4", "low")
    ]  # and no stock_parity finding: ATS is max(0, -4) + (6 - 1) = 5, what klaviyo publishes
    assert "available-to-sell counts that location as 0" in found["message"][0]
    assert found["status"].to_list() == ["new"]


def test_a_simulated_night_may_load_its_drops_as_of_its_own_time(tmp_path):
    """`loading_at` is for simulations replaying a night at once (a generated retailer's pull): the drop is
    judged as if loaded at the given moment. The command line never sets it."""
    drop = good_drop(tmp_path)
    write(drop / "klaviyo" / "customers.csv", CUSTOMERS)
    later = datetime.now(UTC) + timedelta(hours=1)
    manifest(drop / "klaviyo", later.strftime("%Y-%m-%dT%H:%M:%SZ"))
    cfg = parse_config({})
    with Store(tmp_path / "s.duckdb") as store:
        with pytest.raises(DataError, match="is in the future"):
            load_directory(store, drop, cfg)
        with loading_at(later):
            assert load_directory(store, drop, cfg).loaded == 2
