"""The generated retailers of other shapes: deterministic, exported the way each platform exports, clean
copies equal to what the system of record implies (recomputed here from the written files), an answer key
only where drift was injected, and a score that counts found, missed and extra per check."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from driftwatch.demo.retailers import RETAILERS, generate
from driftwatch.demo.retailers.score import score
from driftwatch.errors import UserError

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module", params=sorted(RETAILERS))
def pair(request, tmp_path_factory):
    """A retailer and its clean twin, as file drops."""
    root = tmp_path_factory.mktemp(request.param)
    return (
        generate(request.param, root / "drifted"),
        generate(request.param, root / "clean", drift=False),
    )


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def answer_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_same_seed_writes_the_same_files(pair, tmp_path):
    drifted, _ = pair
    again = generate(drifted.shape.NAME, tmp_path / "again")
    assert files(again.written.root) == files(drifted.written.root)


def test_the_clean_twin_has_no_answer_rows_and_the_drifted_one_covers_its_checks(pair):
    drifted, clean = pair
    assert answer_rows(clean.written.answer_key) == []
    rows = answer_rows(drifted.written.answer_key)
    assert {r["check_id"] for r in rows} >= {
        "stock_parity", "ats_inflation", "stock_staleness", "catalogue_parity", "order_presence",
        "order_status_drift", "order_value_drift", "unmapped_codes", "fulfilment_events", "consent_parity",
        "customer_master_parity", "returns_sync",
    }  # fmt: skip
    assert len({(r["check_id"], r["target"], r["key"]) for r in rows}) == len(rows)


def test_bluecherry_arrives_as_raw_report_exports(pair):
    drop = pair[0].written.drop
    for entity in ("products", "inventory"):
        raw = (drop / "bluecherry" / f"{entity}.csv").read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
        text = raw.decode("utf-8-sig")
        assert "Color #" in text and re.search(r",\d{2}/\d{2}/2026\r\n", text)
    assert '"1,250.00"' in (drop / "bluecherry" / "products.csv").read_text(encoding="utf-8-sig")
    inventory = (drop / "bluecherry" / "inventory.csv").read_text(encoding="utf-8-sig").splitlines()
    assert "," not in inventory[0] and inventory[1].startswith("Div,Style,Color #,Style Name")
    assert any('"1,' in line for line in inventory[2:])  # thousands separators on quantities


def _report(path: Path) -> list[dict[str, str]]:
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    header = next(i for i, line in enumerate(lines) if line.count(",") > 1)
    return list(csv.DictReader(lines[header:]))


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def test_clean_stock_copies_equal_available_to_sell_recomputed_from_the_export(tmp_path):
    """The storefront's Klaviyo and Emarsys publish one figure: the sum over DC1 and DC2 of
    max(0, QOH - Open - Safety)."""
    clean = generate("storefront", tmp_path, drift=False)
    ats: dict[str, int] = {}
    for row in _report(clean.written.drop / "bluecherry" / "inventory.csv"):
        sku = f"{row['Style']}-{row['Color #']}-{row['Size']}"
        free = _number(row["Total QOH"]) - _number(row["Total Open"]) - _number(row["Safety Stock"] or "0")
        if row["Location"] in ("DC1", "DC2"):
            ats[sku] = ats.get(sku, 0) + max(0, free)
    for target in ("klaviyo", "emarsys"):
        served = pl.read_csv(clean.written.served / target / "inventory.csv", infer_schema=False)
        published = {r["sku"]: int(r["available"]) for r in served.iter_rows(named=True)}
        assert published == {sku: ats.get(sku, 0) for sku in published}
        assert len(published) > 40


def test_pulled_every_api_source_is_captured_at_once(tmp_path):
    generated = generate("storefront", tmp_path / "pull", mode="pull", now=NOW)
    manifests = {json.loads(p.read_text())["captured_at"] for p in generated.written.drop.glob("*/_manifest.json")}
    assert manifests == {"2026-11-23T02:00:00Z"}
    placed = pl.read_csv(generated.written.served / "commercetools" / "orders.csv")["placed_at"]
    assert placed.str.to_datetime(time_zone="UTC").max() < NOW  # no order between captures: there are none


def test_unknown_retailer_or_mode_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="unknown retailer"):
        generate("nope", tmp_path)
    with pytest.raises(UserError, match="mode must be"):
        generate("storefront", tmp_path, mode="api")


def test_score_counts_found_missed_and_extra_per_check(tmp_path):
    key = tmp_path / "answer_key.csv"
    key.write_text(
        "check_id,target,key,field,note\n"
        "stock_parity,klaviyo,A,available,\n"
        "stock_parity,emarsys,B,available,\n"
        "consent_parity,emarsys,C1,email_consent,\n"
    )
    findings = pl.DataFrame(
        {
            "check_id": ["stock_parity", "stock_parity", "order_presence", "consent_parity"],
            "target": ["klaviyo", "klaviyo", "emarsys", "emarsys"],
            "key": ["A", "Z", "O1", "C1"],
            "field": ["available", "available", "", "sms_consent"],
            "status": ["new", "new", "new", "resolved"],
        }
    )
    result = score(findings, key, quarantined=2)
    assert {c: (len(s.found), len(s.missed), len(s.extra)) for c, s in result.checks.items()} == {
        "consent_parity": (0, 1, 0),  # a resolved finding is not an open one
        "order_presence": (0, 0, 1),
        "stock_parity": (1, 1, 1),
    }
    assert (result.expected, result.found, result.extra) == (3, 1, 2)
    assert result.recall == pytest.approx(1 / 3) and result.precision == pytest.approx(1 / 3)
    assert not result.exact
    assert "missed stock_parity emarsys B" in result.differences()
    assert result.table().splitlines()[-1].endswith("quarantined rows 2")
