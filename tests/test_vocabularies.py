"""Status vocabularies beyond orders (returns, products), mapped per source, and the order stages a platform
cannot tell apart. Each rule on small hand-built stores, with other systems of record and other words."""

from __future__ import annotations

import polars as pl
import pytest
import tomli_w
from audit_helpers import keys, run_audit, snap

from driftwatch import platforms
from driftwatch.config import load_config, parse_config
from driftwatch.engine import audit
from driftwatch.errors import UserError
from driftwatch.repair import make_plan
from driftwatch.statuses import PRODUCTS, RETURNS, canonical_status, merged_map, stage_classes
from driftwatch.store import Store


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("Returned/Refunded", "refunded"),
        ("Advised/Refunded", "refunded"),  # money back without the goods
        ("Advised/NonRefundable", "authorised"),
        ("Returned/Initial", "received"),
        ("BackInStock/Initial", "received"),
        ("Unusable/NotRefunded", "received"),  # back, and no money goes out
        ("Advised/NotRefunded", "cancelled"),
        ("Lost/Initial", None),  # a state commercetools does not document: unmapped, never guessed
    ],
)
def test_commercetools_return_items_map_to_return_states(raw, state):
    assert canonical_status(raw, merged_map(platforms.get("commercetools").vocabulary, None, RETURNS), RETURNS) == state


@pytest.mark.parametrize(
    ("platform", "raw", "status"),
    [
        ("mirakl", "ZERO_QUANTITY", "active"),  # out of stock is still listed
        ("mirakl", "PRODUCT_DISABLED", "discontinued"),
        ("mirakl", "false", "discontinued"),
        ("klaviyo", "TRUE", "active"),  # a spreadsheet's spelling of true
        ("emarsys", "false", "discontinued"),
        ("ometria", "true", "active"),
        ("commercetools", "false", "discontinued"),
        ("bluecherry", "A", None),  # BlueCherry's words are the client's to name
        ("bluecherry", "discontinued", "discontinued"),  # a canonical word is itself
    ],
)
def test_product_words_map_per_platform(platform, raw, status):
    assert canonical_status(raw, merged_map(platforms.get(platform).vocabulary, None, PRODUCTS), PRODUCTS) == status


def test_returns_and_products_are_configured_beside_order_statuses():
    cfg = parse_config(
        {
            "statuses": {
                "bluecherry": {
                    "50": "shipped",
                    "returns": {"CM": "refunded", "RA": "authorised"},
                    "products": {"A": "active", "D": "discontinued"},
                },
                "commercetools": {"returns": {"Returned/Initial": "refunded"}},  # a client that refunds on receipt
            }
        }
    )
    assert canonical_status("50", cfg.status_map("bluecherry")) == "shipped"
    assert canonical_status("returns", cfg.status_map("bluecherry")) is None  # a sub-table is not a code
    assert canonical_status("CM", cfg.status_map("bluecherry", RETURNS), RETURNS) == "refunded"
    assert canonical_status("D", cfg.status_map("bluecherry", PRODUCTS), PRODUCTS) == "discontinued"
    assert canonical_status("CM", cfg.status_map("bluecherry"), "orders") is None  # vocabularies stay apart
    ct_returns = cfg.status_map("commercetools", RETURNS)
    assert canonical_status("Returned/Initial", ct_returns, RETURNS) == "refunded"  # the client's entry wins
    assert canonical_status("BackInStock/Initial", ct_returns, RETURNS) == "received"  # defaults still apply


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ({"bluecherry": {"returns": {"CM": "credited"}}}, "statuses.bluecherry.returns.'CM': 'credited' is not a"),
        ({"bluecherry": {"products": {"X": "retired"}}}, "'retired' is not a canonical product status"),
        ({"bluecherry": {"returns": {"CM": "shipped"}}}, "expected one of authorised, received, refunded, cancelled"),
        ({"bluecherry": {"carriers": {"UPS": "ups"}}}, "statuses.bluecherry.carriers: unknown vocabulary"),
        ({"bluecherry": {"orders": {"50": "shipped"}}}, "order statuses go straight in [statuses.bluecherry]"),
    ],
)
def test_status_tables_name_the_key_and_the_allowed_words(statuses, expected):
    with pytest.raises(UserError) as err:
        parse_config({"statuses": statuses})
    assert expected in str(err.value)


def test_overlapping_groups_of_equal_stages_join_up():
    classes = stage_classes([("shipped", "closed"), ("placed", "accepted"), ("returned", "shipped")])
    assert classes["closed"] == classes["returned"] == classes["shipped"]
    assert classes["placed"] == classes["accepted"] != classes["shipped"]
    assert "cancelled" not in classes


# --- every consumer of a return's state reads the canonical one ---------------------------------------------


def _ct_orders():
    return snap(
        "commercetools",
        "orders",
        order_id=["O1", "O2", "O3", "O4"],
        customer_id=["C1", "C1", "C1", "C2"],
        channel=["web"] * 4,
        status=["Complete/Delivered", "Cancelled", "Confirmed/Shipped", "Complete/Delivered"],
        total=["100.00", "40.00", "50.00", "60.00"],
        currency=["EUR"] * 4,
        placed_at=["2026-11-01T10:00:00Z", "2026-11-02T10:00:00Z", "2026-11-03T10:00:00Z", "2026-11-01T10:00:00Z"],
        updated_at=["2026-11-06T10:00:00Z"] * 4,
    )


def _ct_returns():
    return snap(
        "commercetools",
        "returns",
        return_id=["R1", "R2", "R3"],
        order_id=["O1", "O3", "O4"],
        sku=["A", "B", "C"],
        qty=[1, 1, 1],
        amount=["30.00", "10.00", "60.00"],
        status=["Returned/Refunded", "BackInStock/Initial", "Unusable/Refunded"],
        processed_at=["2026-11-05T10:00:00Z"] * 3,
    )


def test_net_lifetime_value_counts_commercetools_refunds(tmp_path):
    config = {"feeds": [{"source": "commercetools", "target": "emarsys", "entities": ["customers"]}]}
    found = run_audit(
        tmp_path,
        [
            snap("commercetools", "customers", customer_id=["C1", "C2"], email=["a@x.com", "b@x.com"]),
            _ct_orders(),
            _ct_returns(),
            snap(
                "emarsys",
                "customers",
                customer_id=["E1", "E2"],
                erp_customer_id=["C1", "C2"],
                email=["a@x.com", "b@x.com"],
                lifetime_value=["120.00", "60.00"],  # C1: 100 + 50 - 30 refunded; R2 is back but not refunded
                order_count=[2, 1],
            ),
        ],
        config,
        ["ltv_after_refunds"],
    )
    # C2's 60.00 went back ("Unusable/Refunded"): worth 0.00 net, not the 60.00 the target keeps.
    assert keys(found, "ltv_after_refunds") == {("emarsys", "C2", "lifetime_value")}
    assert found.filter(pl.col("key") == "C2")["expected"].to_list() == ["0.00"]


def test_refund_events_follow_commercetools_refunds(tmp_path):
    config = {"feeds": [{"source": "commercetools", "target": "klaviyo", "entities": ["events"]}]}
    events = {
        "event_id": ["E1", "E2", "E3", "E4", "E5", "E6", "E7"],
        "metric": [*["order_placed", "order_fulfilled"] * 3, "order_cancelled"],
        "order_id": ["O1", "O1", "O3", "O3", "O4", "O4", "O2"],
        "occurred_at": [*["2026-11-01T10:00:00Z", "2026-11-02T11:00:00Z"] * 3, "2026-11-06T11:00:00Z"],
        "value": ["100.00", "100.00", "50.00", "50.00", "60.00", "60.00", "40.00"],
    }
    shipments = {
        "shipment_id": ["S1", "S3", "S4"],
        "order_id": ["O1", "O3", "O4"],
        "carrier": ["DHL"] * 3,
        "tracking_number": ["T1", "T3", "T4"],
        "shipped_at": ["2026-11-02T10:00:00Z"] * 3,
    }
    found = run_audit(
        tmp_path,
        [
            _ct_orders(),
            _ct_returns(),
            snap("commercetools", "shipments", **shipments),
            snap("klaviyo", "events", **events),
        ],
        config,
        ["fulfilment_events"],
    )
    # O1 and O4 were refunded ("*/Refunded"), O3's return only came back: two refund events are missing.
    assert keys(found, "fulfilment_events") == {
        ("klaviyo", "O1", "order_refunded"),
        ("klaviyo", "O4", "order_refunded"),
    }


def _erp_order_with_returns(return_statuses: list[str]) -> list:
    n = len(return_statuses)
    return [
        snap("bluecherry", "orders", order_id=["SO1"], status=["50"], channel=["web"]),
        snap("bluecherry", "order_lines", order_id=["SO1"] * n, line_no=list(range(1, n + 1)),
             sku=[f"S{i}" for i in range(n)], qty_ordered=[2] * n),
        snap("bluecherry", "returns", return_id=[f"R{i}" for i in range(n)], order_id=["SO1"] * n,
             sku=[f"S{i}" for i in range(n)], qty=[1] * n, amount=["9.00"] * n, status=return_statuses,
             processed_at=["2026-11-10T10:00:00Z"] * n),
        snap("ometria", "orders", order_id=["SO1"], status=["shipped"], channel=["web"]),
        snap("ometria", "order_lines", order_id=["SO1"] * n, line_no=list(range(1, n + 1)),
             sku=[f"S{i}" for i in range(n)], qty_ordered=[2] * n, qty_returned=[0] * n),
    ]  # fmt: skip


def test_returns_sync_and_unmapped_codes_read_a_clients_return_codes(tmp_path):
    config = {
        "feeds": [{"source": "bluecherry", "target": "ometria", "entities": ["orders", "order_lines"]}],
        "statuses": {
            "bluecherry": {"50": "shipped", "returns": {"RCV": "received", "RA": "authorised", "CM": "refunded"}}
        },
    }
    found = run_audit(
        tmp_path,
        _erp_order_with_returns(["RCV", "RA", "CM", "ZZ"]),
        config,
        ["returns_sync", "unmapped_codes"],
    )
    # Received and refunded returns are processed; an authorised one is not back yet; ZZ is nobody's word.
    assert keys(found) == {
        ("returns_sync", "ometria", "SO1", "S0.qty_returned"),
        ("returns_sync", "ometria", "SO1", "S2.qty_returned"),
        ("unmapped_codes", "bluecherry", "ZZ", "return_status"),
    }
    message = found.filter(pl.col("key") == "ZZ")["message"][0]
    assert "1 return(s) of bluecherry (e.g. R3)" in message and "[statuses.bluecherry.returns]" in message


# --- product statuses --------------------------------------------------------------------------------------


def test_catalogue_parity_compares_product_statuses_in_canonical_words(tmp_path):
    config = {
        "feeds": [
            {"source": "bluecherry", "target": "mirakl", "entities": ["products"]},
            {"source": "bluecherry", "target": "klaviyo", "entities": ["products"]},
        ],
        "statuses": {"bluecherry": {"products": {"A": "active", "D": "discontinued"}}},
    }
    skus = ["S1", "S2", "S3", "S4"]
    found = run_audit(
        tmp_path,
        [
            snap("bluecherry", "products", sku=skus, status=["A", "D", "X", "A"]),
            snap("mirakl", "products", sku=skus, status=["active", "active", "discontinued", "ZERO_QUANTITY"]),
            snap("klaviyo", "products", sku=skus, status=["TRUE", "false", "true", "Maybe"]),
        ],
        config,
        ["catalogue_parity", "unmapped_codes"],
    )
    assert keys(found) == {
        ("catalogue_parity", "mirakl", "S2", "status"),  # discontinued in the ERP, live on the marketplace
        ("unmapped_codes", "bluecherry", "X", "product_status"),  # S3 is left out of every comparison
        ("unmapped_codes", "klaviyo", "Maybe", "product_status"),
    }
    live = found.filter(pl.col("key") == "S2")
    assert live["severity"].to_list() == ["high"] and live["expected"].to_list() == ["discontinued"]


# --- stages a platform cannot tell apart -------------------------------------------------------------------


def _money(n: int) -> dict[str, list[str]]:
    return {"total": ["10.00"] * n, "currency": ["EUR"] * n, "placed_at": ["2026-11-01T10:00:00Z"] * n}


def test_stages_a_platform_cannot_tell_apart_are_equal_and_real_drift_stays(tmp_path):
    config = {
        "feeds": [
            {"source": "bluecherry", "target": "klaviyo", "entities": ["events"]},
            {"source": "bluecherry", "target": "mirakl", "entities": ["orders"]},
            {"source": "bluecherry", "target": "ometria", "entities": ["orders"]},
        ]
    }
    erp = {  # order: (channel, canonical status in the ERP)
        "K1": ("web", "closed"), "K2": ("web", "accepted"), "K3": ("web", "partially_shipped"),
        "M1": ("mirakl", "shipped"), "M2": ("mirakl", "partially_shipped"), "M3": ("mirakl", "accepted"),
        "M4": ("mirakl", "delivered"),
        "W1": ("web", "accepted"), "W2": ("web", "closed"), "W3": ("web", "shipped"),
    }  # fmt: skip
    fulfilled = ["K1", "K2", "K3"]
    mirakl = {"M1": "CLOSED", "M2": "CLOSED", "M3": "WAITING_ACCEPTANCE", "M4": "SHIPPED"}
    ometria = {"W1": "pending", "W2": "complete", "W3": "pending"}
    found = run_audit(
        tmp_path,
        [
            snap(
                "bluecherry",
                "orders",
                order_id=list(erp),
                channel=[c for c, _ in erp.values()],
                status=[s for _, s in erp.values()],
                external_id=[f"X{o}" for o in erp],
                **_money(len(erp)),
            ),
            snap(
                "klaviyo",
                "events",
                event_id=[f"{o}-{m}" for o in fulfilled for m in ("p", "f")],
                metric=["order_placed", "order_fulfilled"] * 3,
                order_id=[o for o in fulfilled for _ in (1, 2)],
                occurred_at=["2026-11-01T10:00:00Z", "2026-11-02T10:00:00Z"] * 3,
                value=["10.00"] * 6,
                email=["a@x.com"] * 6,
            ),
            snap(
                "mirakl",
                "orders",
                order_id=list(mirakl),
                external_id=[f"X{o}" for o in mirakl],
                channel=["mirakl"] * 4,
                status=list(mirakl.values()),
                **_money(4),
            ),
            snap(
                "ometria",
                "orders",
                order_id=list(ometria),
                channel=["web"] * 3,
                status=list(ometria.values()),
                **_money(3),
            ),
        ],
        config,
        ["order_status_drift"],
    )
    severity = {(r["target"], r["key"]): r["severity"] for r in found.iter_rows(named=True)}
    assert severity == {
        ("klaviyo", "K2"): "critical",  # fulfilled while the ERP has not dispatched
        ("mirakl", "M2"): "high",  # a partial shipment shown CLOSED: the open line is lost
        ("mirakl", "M3"): "medium",  # accepted in the ERP, never accepted on Mirakl
        ("ometria", "W3"): "medium",  # dispatched, and Ometria could say so
    }


def test_an_instance_reads_its_platforms_words_then_its_own():
    cfg = parse_config(
        {
            "sources": {"mirakl_fr": {"kind": "mirakl"}},
            "statuses": {
                "mirakl": {"products": {"PAUSED": "discontinued"}},  # every Mirakl instance
                "mirakl_fr": {"products": {"PAUSED": "active"}},  # this one says it otherwise
            },
        }
    )
    assert canonical_status("ZERO_QUANTITY", cfg.status_map("mirakl_fr", PRODUCTS), PRODUCTS) == "active"
    assert canonical_status("PAUSED", cfg.status_map("mirakl_fr", PRODUCTS), PRODUCTS) == "active"
    assert canonical_status("PAUSED", cfg.status_map("mirakl", PRODUCTS), PRODUCTS) == "discontinued"
    assert cfg.same_stages("mirakl_fr") == cfg.same_stages("mirakl") == (("shipped", "delivered", "closed"),)


def test_a_repair_carries_the_truths_status_in_canonical_words(tmp_path):
    config = {
        "feeds": [{"source": "bluecherry", "target": "mirakl", "entities": ["products"]}],
        "statuses": {"bluecherry": {"products": {"A": "active", "D": "discontinued"}}},
    }
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest(
            [
                snap("bluecherry", "products", sku=["S1", "S2"], status=["A", "D"], price=["10.00", "12.00"]),
                snap("mirakl", "products", sku=["S1", "S2"], status=["active", "active"], price=["10.00", "12.00"]),
            ]
        )
        cfg = parse_config(config)
        audit(store, cfg, checks=["catalogue_parity"])
        (action,) = make_plan(store, cfg).actions
    # The pusher reads the truth: "D" would mean nothing to Mirakl, "discontinued" ends the offer.
    assert (action.key, action.action, action.after) == ("S2", "set_offer_status", "discontinued")
    assert action.truth["status"] == "discontinued" and action.truth["status_raw"] == "D"


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        ({"tracking_sync": {"carrier_map": {"UPS": "ups"}}}, "carrier_map` in its [sources.<target>] table"),
        ({"returns_sync": {"processed_statuses": ["refunded"]}}, "as `processed_states`"),
        ({"ltv_after_refunds": {"refunded_statuses": ["CM"]}}, "[statuses.<source>.returns]"),
    ],
)
def test_options_that_became_vocabularies_say_where_they_went(tmp_path, checks, expected):
    path = tmp_path / "driftwatch.toml"
    path.write_text(tomli_w.dumps({"checks": checks}), encoding="utf-8")
    with pytest.raises(UserError) as err:
        load_config(path)
    assert "no longer an option of" in str(err.value) and expected in str(err.value)
