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


COMMON_CHECKS = {
    "stock_parity", "ats_inflation", "stock_staleness", "catalogue_parity", "order_presence", "order_status_drift",
    "order_value_drift", "unmapped_codes", "consent_parity", "customer_master_parity", "returns_sync",
}  # fmt: skip
# Every kind of drift each retailer's feeds can carry: the storefront has an event platform (Klaviyo) but no
# marketplace and no platform holding a lifetime value; the marketplaces retailer has two marketplaces and
# Ometria's lifetime values, but no platform keeping events.
CHECKS = {
    "storefront": COMMON_CHECKS | {"fulfilment_events"},
    "marketplaces": COMMON_CHECKS | {"tracking_sync", "acceptance_sla", "ltv_after_refunds", "payout_matching"},
}


def test_the_clean_twin_has_no_answer_rows_and_the_drifted_one_covers_its_checks(pair):
    drifted, clean = pair
    assert answer_rows(clean.written.answer_key) == []
    rows = answer_rows(drifted.written.answer_key)
    assert {r["check_id"] for r in rows} == CHECKS[drifted.shape.NAME]
    assert len({(r["check_id"], r["target"], r["key"]) for r in rows}) == len(rows)


def test_the_storefronts_bluecherry_arrives_as_raw_report_exports(tmp_path):
    drop = generate("storefront", tmp_path).written.drop
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


def test_the_marketplaces_retailer_carries_its_traps_in_its_own_vocabulary(tmp_path):
    """Client headers, Emarsys 1/2 and Ometria opt-in words, Ometria stock without a location column, a
    merged pair sharing an email, a negative-availability location, a web order placed after Emarsys'
    capture, and two Mirakl instances each with its own warehouse and payouts."""
    generated = generate("marketplaces", tmp_path, drift=False)
    drop = generated.written.drop
    products = pl.read_csv(drop / "bluecherry" / "products.csv", infer_schema=False)
    assert {"Item Number", "Item Status", "Retail EUR"} <= set(products.columns)
    assert set(products["Item Status"]) == {"A", "S", "D"}
    stock = pl.read_csv(drop / "bluecherry" / "inventory.csv", infer_schema=False)
    short = stock.filter(pl.col("On Hand").cast(int) < pl.col("Allocated").cast(int))
    assert short.height >= 1 and set(short["Avail To Sell"]) == {"0"}
    assert set(pl.read_csv(drop / "emarsys" / "customers.csv", infer_schema=False)["email_consent"]) == {"1", "2"}
    ometria = pl.read_csv(drop / "ometria" / "customers.csv", infer_schema=False)
    assert set(ometria["email_consent"]) == {"EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT"}
    assert "location" not in pl.read_csv(drop / "ometria" / "inventory.csv", infer_schema=False).columns
    customers = pl.read_csv(drop / "bluecherry" / "customers.csv", infer_schema=False)
    merged = customers.filter(pl.col("merged_into").is_not_null())
    survivors = customers.join(merged.select("email", customer_id="merged_into"), on=["customer_id", "email"])
    assert merged.height == 2 and survivors.height == 1  # one pair shares its email, the other does not
    captured = {p.parent.name: json.loads(p.read_text())["captured_at"] for p in drop.glob("*/_manifest.json")}
    erp_orders = pl.read_csv(drop / "bluecherry" / "orders.csv", infer_schema=False)
    late = erp_orders.filter((pl.col("channel") == "web") & (pl.col("placed_at") > captured["emarsys"]))
    assert late.height >= 2
    assert not set(late["order_id"]) & set(pl.read_csv(drop / "emarsys" / "orders.csv")["order_id"])
    for source, warehouse in (("mirakl_fr", "FR1"), ("mirakl_de", "DE1")):
        assert pl.read_csv(drop / source / "payout_lines.csv").height > 10
        assert warehouse in set(stock["Whse"])


def test_the_packs_share_their_sock_and_each_marketplace_sells_from_its_own_warehouse(tmp_path):
    """A pack's stock on a marketplace is the minimum over its components of floor(component ATS / qty),
    the component's ATS taken at that marketplace's warehouse, recomputed here from the exports."""
    generated = generate("marketplaces", tmp_path, drift=False)
    drop, served = generated.written.drop, generated.written.served
    components = pl.read_csv(drop / "bluecherry" / "pack_components.csv", infer_schema=False)
    assert components.filter(pl.col("component_sku") == "29001-01-OS").height == 3
    stock = pl.read_csv(drop / "bluecherry" / "inventory.csv", infer_schema=False)
    for source, warehouse in (("mirakl_fr", "FR1"), ("mirakl_de", "DE1")):
        here = stock.filter(pl.col("Whse") == warehouse)
        free = {
            r["Item Number"]: max(0, int(r["On Hand"]) - int(r["Allocated"]) - int(r["Min Qty"]))
            for r in here.iter_rows(named=True)
        }
        published = dict(
            pl.read_csv(served / source / "inventory.csv", infer_schema=False).select("sku", "available").iter_rows()
        )
        for pack in set(components["pack_sku"]):
            parts = components.filter(pl.col("pack_sku") == pack).iter_rows(named=True)
            expected = min(free.get(p["component_sku"], 0) // int(p["qty"]) for p in parts)
            assert int(published[pack]) == expected, (source, pack)
