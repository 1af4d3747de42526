"""unmapped_codes beyond order statuses: carrier codes a target does not know (the root cause of rejected
tracking, reported once per code, not per shipment) and ERP locations that feed no target."""

from __future__ import annotations

import polars as pl
from audit_helpers import keys, run_audit, snap

ORDERS = ["M1", "M2", "M3", "M4", "M5", "M6"]


def _shipping(mirakl_shipments: dict[str, tuple[str, str]]) -> list:
    """Six marketplace orders the ERP shipped; `mirakl_shipments`: ERP order -> (carrier, tracking) there."""
    erp_carriers = ["DHL", "DHL", "COLI", "COLI", "UPS", "DHL"]
    return [
        snap("bluecherry", "orders", order_id=ORDERS, external_id=[f"X{o}" for o in ORDERS], channel=["mirakl"] * 6),
        snap("bluecherry", "shipments", shipment_id=[f"S{o}" for o in ORDERS], order_id=ORDERS, carrier=erp_carriers,
             tracking_number=[f"T{o}" for o in ORDERS], shipped_at=["2026-11-10T10:00:00Z"] * 6),
        snap("mirakl", "orders", order_id=ORDERS, external_id=[f"X{o}" for o in ORDERS], channel=["mirakl"] * 6),
        snap("mirakl", "shipments", shipment_id=[f"X{o}" for o in mirakl_shipments],
             order_id=[f"X{o}" for o in mirakl_shipments], carrier=[c for c, _ in mirakl_shipments.values()],
             tracking_number=[t for _, t in mirakl_shipments.values()]),
    ]  # fmt: skip


# M3's tracking went up relabelled, M4's was rejected; M6 (a DHL parcel) shows UPS: a real wrong carrier.
ON_MIRAKL = {
    "M1": ("DHL", "TM1"),
    "M2": ("DHL", "TM2"),
    "M3": ("colissimo", "TM3"),
    "M5": ("UPS", "TM5"),
    "M6": ("UPS", "TM6"),
}
FEEDS = [{"source": "bluecherry", "target": "mirakl", "entities": ["orders", "shipments"]}]


def test_a_carrier_code_the_target_never_uses_is_one_finding_not_one_per_shipment(tmp_path):
    found = run_audit(tmp_path, _shipping(ON_MIRAKL), {"feeds": FEEDS}, ["tracking_sync", "unmapped_codes"])
    assert keys(found) == {
        ("unmapped_codes", "mirakl", "COLI", "carrier"),
        ("tracking_sync", "mirakl", "M6", "carrier"),
    }
    code = found.filter(pl.col("check_id") == "unmapped_codes").row(0, named=True)
    assert code["severity"] == "high" and code["source"] == "bluecherry"
    assert "2 shipment(s) of mirakl orders (e.g. order M3: 1 missing there, 1 under another carrier)" in code["message"]
    assert "never uses (DHL, UPS, colissimo)" in code["message"] and "[sources.mirakl] carrier_map" in code["message"]


def test_once_the_code_is_mapped_each_shipment_is_judged_on_its_own(tmp_path):
    config = {"feeds": FEEDS, "sources": {"mirakl": {"carrier_map": {"COLI": "colissimo"}}}}
    found = run_audit(tmp_path, _shipping(ON_MIRAKL), config, ["tracking_sync", "unmapped_codes"])
    assert keys(found) == {
        ("tracking_sync", "mirakl", "M4", "tracking_number"),  # no longer explained by an unknown code
        ("tracking_sync", "mirakl", "M6", "carrier"),
    }


def test_no_target_shipments_no_verdict_on_carrier_codes(tmp_path):
    # With nothing posted at all, nothing says which codes the marketplace knows: every shipment is missing.
    found = run_audit(tmp_path, _shipping({}), {"feeds": FEEDS}, ["tracking_sync", "unmapped_codes"])
    assert keys(found, "unmapped_codes") == set()
    assert len(keys(found, "tracking_sync")) == 6


def _stock() -> list:
    locations = ["W1", "W2", "W2", "W3", "OUTLET"]
    return [
        snap("bluecherry", "inventory", sku=["S1", "S1", "S2", "S1", "S3"], location=locations,
             on_hand=[5, 3, 2, 1, 9]),
        snap("mirakl", "inventory", sku=["S1"], location=["W1"], available=[5]),
        snap("ometria", "inventory", sku=["S1"], location=["*"], available=[6]),
    ]  # fmt: skip


def test_an_erp_location_no_feed_lists_is_reported_once(tmp_path):
    feeds = [
        {"source": "bluecherry", "target": "mirakl", "entities": ["inventory"], "locations": ["W1"]},
        {"source": "bluecherry", "target": "ometria", "entities": ["inventory"], "locations": ["W1", "W3"]},
    ]
    found = run_audit(tmp_path, _stock(), {"feeds": feeds}, ["unmapped_codes"])
    assert keys(found) == {
        ("unmapped_codes", "bluecherry", "W2", "location"),
        ("unmapped_codes", "bluecherry", "OUTLET", "location"),
    }
    w2 = found.filter(pl.col("key") == "W2")["message"][0]
    assert "holds stock of 2 SKU(s) (e.g. S1) but no [[feeds]] lists it" in w2

    on_purpose = {"feeds": feeds, "checks": {"unmapped_codes": {"unfed_locations": ["OUTLET"]}}}
    assert keys(run_audit(tmp_path / "b", _stock(), on_purpose, ["unmapped_codes"])) == {
        ("unmapped_codes", "bluecherry", "W2", "location")
    }


def test_a_feed_without_locations_takes_every_location(tmp_path):
    feeds = [
        {"source": "bluecherry", "target": "mirakl", "entities": ["inventory"], "locations": ["W1"]},
        {"source": "bluecherry", "target": "ometria", "entities": ["inventory"]},
    ]
    assert keys(run_audit(tmp_path, _stock(), {"feeds": feeds}, ["unmapped_codes"])) == set()


def test_a_feed_location_the_erp_never_names_is_reported_for_its_target(tmp_path):
    feeds = [
        {"source": "bluecherry", "target": "mirakl", "entities": ["inventory"], "locations": ["W1", "W-2"]},
        {"source": "bluecherry", "target": "ometria", "entities": ["inventory"]},  # takes every location
    ]
    found = run_audit(tmp_path, _stock(), {"feeds": feeds}, ["unmapped_codes"])
    assert keys(found) == {("unmapped_codes", "mirakl", "W-2", "location")}
    message = found["message"][0]
    assert "the feed to mirakl takes stock from location 'W-2'" in message
    assert "(OUTLET, W1, W2, W3)" in message
