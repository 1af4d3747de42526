"""Platform-coded values in file drops (Emarsys's opt-in 1/2, Klaviyo's subscription states, Ometria's
marketing_optin, Klaviyo's metric names, Mirakl's transaction types) are read as the connector reads them,
through the same functions."""

from __future__ import annotations

import polars as pl
import pytest
from audit_helpers import keys, snap
from test_filedrop import manifest, write

from driftwatch.config import parse_config
from driftwatch.connectors.commercetools import mapping as commercetools
from driftwatch.connectors.emarsys import mapping as emarsys
from driftwatch.connectors.klaviyo import mapping as klaviyo
from driftwatch.connectors.ometria import mapping as ometria
from driftwatch.engine import audit
from driftwatch.filedrop import load_directory
from driftwatch.platforms import get
from driftwatch.store import Store


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "store.duckdb") as s:
        yield s


def _load(store, tmp_path, config: dict | None = None, **files: str):
    for rel, content in files.items():
        source, entity = rel.split("__")
        write(tmp_path / "drop", f"{source}/{entity}.csv", content)
        manifest(tmp_path / "drop", source)
    return load_directory(store, tmp_path / "drop", parse_config(config or {}))


def _consent(store, source: str) -> dict[str, bool | None]:
    rows = store.latest(source, "customers")
    return dict(zip(rows["customer_id"], rows["email_consent"], strict=True))


def test_an_emarsys_contacts_export_with_opt_in_1_and_2_loads(tmp_path, store):
    report = _load(
        store,
        tmp_path,
        emarsys__customers="customer_id,email,email_consent\n1,a@x.com,1\n2,b@x.com,2\n3,c@x.com,\n4,d@x.com,7\n",
    )
    assert _consent(store, "emarsys") == {"1": True, "2": False, "3": None}
    # An opt-in value Emarsys does not document is quarantined by its line, not read as anything.
    assert report.quarantine.select("line", "column", "value").rows() == [(5, "email_consent", "7")]


def test_klaviyo_subscription_states_and_metric_names_load(tmp_path, store):
    profiles = (
        "customer_id,email,email_consent,sms_consent\n"
        "K1,a@x.com,SUBSCRIBED,NEVER SUBSCRIBED\n"
        "K2,b@x.com,UNSUBSCRIBED,\n"
    )
    events = (
        "event_id,metric,order_id,occurred_at\n"
        "E1,Placed Order,O1,2026-11-01T10:00:00Z\n"
        "E2,Order Shipped,O1,2026-11-02T10:00:00Z\n"  # a client's own name for its fulfilment metric
    )
    config = {"sources": {"klaviyo": {"metrics": {"Placed Order": "order_placed", "Order Shipped": "order_fulfilled"}}}}
    report = _load(store, tmp_path, config, klaviyo__customers=profiles, klaviyo__events=events)
    assert report.quarantine.height == 0
    assert _consent(store, "klaviyo") == {"K1": True, "K2": False}
    assert store.latest("klaviyo", "customers").sort("customer_id")["sms_consent"].to_list() == [False, None]
    assert store.latest("klaviyo", "events").sort("event_id")["metric"].to_list() == ["order_placed", "order_fulfilled"]


def test_ometria_marketing_optin_loads(tmp_path, store):
    contacts = "customer_id,email_consent\nM1,EXPLICITLY_OPTEDIN\nM2,EXPLICITLY_OPTEDOUT\nM3,NOT_SPECIFIED\n"
    _load(store, tmp_path, ometria__customers=contacts)
    assert _consent(store, "ometria") == {"M1": True, "M2": False, "M3": None}


def test_mirakl_transaction_types_load_as_a_pull_reads_them(tmp_path, store):
    lines = (
        "line_id,payout_id,external_id,line_type,amount,currency\n"
        "L1,P1,X1,ORDER_AMOUNT,100.00,EUR\n"
        "L2,P1,X1,COMMISSION_FEE,-15.00,EUR\n"
        "L3,P1,,PAYMENT,-85.00,EUR\n"  # TL02 debits the balance by the payout
        "L4,P2,,payment,40.00,EUR\n"  # already canonical: read as given
    )
    report = _load(store, tmp_path, mirakl__payout_lines=lines)
    assert report.quarantine.height == 0
    rows = store.latest("mirakl", "payout_lines").sort("line_id")
    assert rows["line_type"].to_list() == ["order_amount", "commission", "payment", "payment"]
    assert [str(a) for a in rows["amount"]] == ["100.0000", "-15.0000", "85.0000", "40.0000"]


@pytest.mark.parametrize("value", ["1", "2", "3", None])
def test_emarsys_drop_and_pull_read_field_31_alike(value):
    pulled = emarsys.contacts_frame([{"id": 1, "31": value}], {"email_consent": "31"})["email_consent"].to_list()
    dropped = get("emarsys").load_connector().decode_drop("customers", pl.DataFrame({"email_consent": [value]}), {})
    assert dropped["email_consent"].to_list() == pulled


@pytest.mark.parametrize("value", ["EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT", "NOT_SPECIFIED", "MAYBE", None])
def test_ometria_drop_and_pull_read_marketing_optin_alike(value):
    pulled = ometria.contact_to_row({"id": "M1", "marketing_optin": value})["email_consent"]
    dropped = get("ometria").load_connector().decode_drop("customers", pl.DataFrame({"email_consent": [value]}), {})
    assert dropped["email_consent"].to_list() == [pulled]


@pytest.mark.parametrize("value", ["SUBSCRIBED", "UNSUBSCRIBED", "NEVER_SUBSCRIBED", "never subscribed", "PENDING"])
def test_klaviyo_drop_and_pull_read_consent_alike(value):
    profile = {"id": "K1", "attributes": {"subscriptions": {"email": {"marketing": {"consent": value}}}}}
    pulled = klaviyo.profile_to_customer(profile)["email_consent"]
    dropped = get("klaviyo").load_connector().decode_drop("customers", pl.DataFrame({"email_consent": [value]}), {})
    assert dropped["email_consent"].to_list() == [pulled]


def test_emarsys_coded_consent_in_a_drop_is_audited(tmp_path):
    feeds = [{"source": "bluecherry", "target": "emarsys", "entities": ["customers"]}]
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest(
            [
                snap(
                    "bluecherry",
                    "customers",
                    customer_id=["C1", "C2"],
                    email=["a@x.com", "b@x.com"],
                    email_consent=["false", "false"],
                ),
            ]
        )
        _load(
            store,
            tmp_path,
            emarsys__customers="customer_id,erp_customer_id,email,email_consent\n1,C1,a@x.com,1\n2,C2,b@x.com,2\n",
        )
        found = audit(store, parse_config({"feeds": feeds}), checks=["consent_parity"]).findings
    # C1 opted out in the ERP and is subscribed (1) on Emarsys; C2's 2 agrees with the ERP.
    assert keys(found.filter(pl.col("check_id") != "snapshot_health")) == {
        ("consent_parity", "emarsys", "C1", "email_consent")
    }
    assert found.filter(pl.col("key") == "C1")["severity"].to_list() == ["critical"]


def test_commercetools_reservations_are_its_allocated_stock_in_a_drop_as_in_a_pull(tmp_path, store):
    # availableQuantity is quantityOnStock less what carts and orders reserve; the storefront feeds the
    # marketing platform that figure. S1 has 2 reserved, S2 none, S3 none known.
    config = {"feeds": [{"source": "commercetools", "target": "klaviyo", "entities": ["inventory"]}]}
    _load(
        store,
        tmp_path,
        config,
        commercetools__inventory="sku,location,on_hand,available\nS1,ch-1,10,8\nS2,ch-1,5,5\nS3,ch-1,4,\n",
        klaviyo__inventory="sku,available\nS1,8\nS2,5\nS3,3\n",
    )
    rows = store.latest("commercetools", "inventory").sort("sku")
    assert rows["allocated"].to_list() == [2, 0, None]
    found = audit(store, parse_config(config), checks=["stock_parity"]).findings
    # S1 agrees once its reservation counts; S3's on hand is 4 with nothing known reserved, so 3 is drift.
    assert keys(found, "stock_parity") == {("klaviyo", "S3", "available")}
    assert commercetools.reserved(10, 8) == 2 and commercetools.reserved(3, 5) == 0
    assert commercetools.reserved(None, 5) is None
