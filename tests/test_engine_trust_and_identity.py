"""A snapshot snapshot_health distrusts is reported once and held back from the other checks; the ERP's
published available is clamped at 0 per location like available-to-sell; a profile is matched to the
survivor of a merge among the ERP customers sharing its email, and a remaining ambiguity is reported as
such."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
from engine_frames import CAPTURED, audited, snapshot

from driftwatch.normalize import QUARANTINE_SCHEMA

CUSTOMER_FEEDS = [
    {"source": "bluecherry", "target": "klaviyo", "entities": ["customers"]},
    {"source": "bluecherry", "target": "ometria", "entities": ["customers"]},
]
IDS = [f"C{i}" for i in range(10)]
EMAILS = [f"c{i}@x.io" for i in range(10)]


def _quarantined(snap, lines: int):
    """The snapshot as a load that held `lines` rows back."""
    snap.quarantine = pl.DataFrame(
        {"origin": ["f.csv"] * lines, "line": list(range(2, 2 + lines)), "column": ["email"] * lines,
         "value": ["bad"] * lines, "reason": ["not a valid email address"] * lines},
        schema=QUARANTINE_SCHEMA,
    )  # fmt: skip
    return snap


def test_a_mostly_quarantined_target_snapshot_is_reported_once_not_per_customer(tmp_path):
    # Klaviyo kept 2 of 10 profiles (8 quarantined); Ometria is complete, with one real difference.
    klaviyo = _quarantined(
        snapshot("klaviyo", "customers", customer_id=["K0", "K1"], erp_customer_id=IDS[:2], email=EMAILS[:2]), 8
    )
    ometria_emails = [*EMAILS[:9], "old@x.io"]
    snapshots = [
        snapshot("bluecherry", "customers", customer_id=IDS, email=EMAILS, email_consent=[True] * 10),
        klaviyo,
        snapshot("ometria", "customers", customer_id=IDS, erp_customer_id=IDS, email=ometria_emails),
    ]
    checks = ["customer_master_parity", "consent_parity", "ltv_after_refunds"]
    result = audited(tmp_path, snapshots, CUSTOMER_FEEDS, checks=checks)
    assert not result.trusted
    assert result.rows("check_id", "target", "key", "field") == [
        ("customer_master_parity", "ometria", "C9", "email"),
        ("snapshot_health", "klaviyo", "customers", "quarantined_rows"),
    ]
    held = result.notes.filter(pl.col("kind") == "held_back")
    assert held.select("check_id", "target").sort("check_id").rows() == [
        ("consent_parity", "klaviyo"),
        ("customer_master_parity", "klaviyo"),
        ("ltv_after_refunds", "klaviyo"),
    ]
    assert "snapshot_health distrusts klaviyo customers (8 of 10 rows quarantined)" in held["message"][0]


def test_a_truncated_erp_snapshot_holds_back_every_check_reading_it(tmp_path):
    earlier = CAPTURED - timedelta(days=1)
    snapshots = [
        snapshot("bluecherry", "customers", earlier, customer_id=IDS, email=EMAILS),
        snapshot("bluecherry", "customers", customer_id=IDS[:2], email=EMAILS[:2]),
        snapshot("klaviyo", "customers", customer_id=IDS, erp_customer_id=IDS, email=EMAILS),
    ]
    result = audited(tmp_path, snapshots, CUSTOMER_FEEDS[:1], checks=["customer_master_parity"])
    # Without holding back, Klaviyo's 8 other profiles would each be "not in the ERP" or worse.
    assert result.rows("check_id", "key", "field") == [("snapshot_health", "customers", "row_count")]
    assert result.notes.select("check_id", "target", "source", "kind").rows() == [
        ("customer_master_parity", "klaviyo", "bluecherry", "held_back")
    ]


def test_ats_inflation_compares_against_available_clamped_at_zero(tmp_path):
    feeds = [{"source": "bluecherry", "target": "klaviyo", "entities": ["inventory"]}]
    erp = snapshot(
        "bluecherry", "inventory", sku=["S1", "S2", "S3", "S4"], location=["W1"] * 4,
        on_hand=[3, 3, 5, 5], allocated=[5, 5, 1, 1], on_order=[0, 4, 0, 3], available=[0, 2, 4, 7],
    )  # fmt: skip
    result = audited(tmp_path, [erp], feeds, checks=["ats_inflation"])
    # S1: 3 - 5 is short of stock, so 0 is right. S2: 2 published where 0 is free is inflated. S3 is right;
    # S4 publishes the 3 units on open work orders.
    assert result.rows("key", "expected", "actual") == [("S2/W1", "0", "2"), ("S4/W1", "4", "7")]
    assert "without the 3 on open work orders" in result.findings.filter(pl.col("key") == "S4/W1")["message"][0]


def _customers(**columns):
    return snapshot("bluecherry", "customers", **columns)


def test_a_profile_matched_by_email_belongs_to_the_survivor_of_a_merge(tmp_path):
    # C1 was merged into C2; both keep the email. The profile stores no ERP id.
    snapshots = [
        _customers(customer_id=["C1", "C2"], email=["ann@x.io"] * 2, merged_into=["C2", None],
                   last_name=["Old", "New"], email_consent=[False, True]),
        snapshot("klaviyo", "customers", customer_id=["K1"], email=["ann@x.io"], last_name=["New"],
                 email_consent=[True]),
    ]  # fmt: skip
    result = audited(tmp_path, snapshots, CUSTOMER_FEEDS[:1], checks=["customer_master_parity", "consent_parity"])
    assert result.rows() == []


def test_customers_sharing_an_email_with_no_merge_between_them_are_reported_not_guessed(tmp_path):
    snapshots = [
        _customers(customer_id=["C1", "C2", "C3"], email=["ann@x.io", "ann@x.io", "bo@x.io"],
                   email_consent=[False, True, True]),
        snapshot("klaviyo", "customers", customer_id=["K1", "K3"], email=["ann@x.io", "bo@x.io"],
                 email_consent=[True, True]),
    ]  # fmt: skip
    result = audited(tmp_path, snapshots, CUSTOMER_FEEDS[:1], checks=["customer_master_parity", "consent_parity"])
    # One finding for the ambiguity, none per candidate (no "no profile", no consent judged on a guess).
    assert result.rows() == [("customer_master_parity", "klaviyo", "C1/C2", "erp_customer_id", "one of C1/C2", "none")]
    assert "ERP customers C1/C2 share its email" in result.findings["message"][0]


def test_a_profile_storing_the_erp_id_is_never_matched_by_email(tmp_path):
    snapshots = [
        _customers(customer_id=["C1", "C2"], email=["ann@x.io"] * 2),
        snapshot("klaviyo", "customers", customer_id=["K1", "K2"], erp_customer_id=["C1", "C2"],
                 email=["ann@x.io"] * 2),
    ]  # fmt: skip
    result = audited(tmp_path, snapshots, CUSTOMER_FEEDS[:1], checks=["customer_master_parity"])
    assert result.rows() == []
