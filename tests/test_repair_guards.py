"""Repair guard rails: each guard refuses a drastic plan and yields to its documented override (the
`[repair]` limit, or `repair apply --override-guards`); and stale stock is repaired with a quantity, never
with a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from push_scenario import audit_against, push_config

from driftwatch.cli import run_cli
from driftwatch.config import parse_config
from driftwatch.connectors.mirakl.push import Pusher as MiraklPusher
from driftwatch.engine import audit
from driftwatch.engine.findings import FINDING_SCHEMA, record_run
from driftwatch.errors import UserError
from driftwatch.normalize import coerce
from driftwatch.repair import apply_plan, guards, make_plan, refusals
from driftwatch.simulators.mirakl import MiraklSimulator
from driftwatch.store import IncomingSnapshot, Store

NOW = datetime.now(UTC).replace(microsecond=0)
CAPTURED = datetime(2026, 11, 23, 2, tzinfo=UTC)
FAST_HTTP = {"timeout": 10.0, "max_attempts": 3, "backoff_initial": 0.001, "backoff_max": 0.01}
UNLIMITED = {op: [[1000, 1.0]] for op in ("OF24", "STO01", "OF02", "OF03", "STO02", "STO03", "OR11")}


def frame(entity: str, rows: list[dict]) -> pl.DataFrame:
    coerced = coerce(pl.DataFrame(rows, schema=dict.fromkeys(rows[0], pl.String)), entity)
    assert coerced.bad.height == 0, coerced.bad
    return coerced.good


def products(statuses: dict[str, str]) -> pl.DataFrame:
    return frame(
        "products",
        [{"sku": sku, "name": f"Shirt {sku}", "price": "10.00", "currency": "EUR", "status": status}
         for sku, status in statuses.items()],
    )  # fmt: skip


# --- the guard against discontinuing much of a catalogue, end to end on Mirakl -------------------------------


def test_a_plan_discontinuing_most_of_a_shop_is_refused_and_applies_only_when_overridden(tmp_path):
    """The ERP marks 18 of 20 products discontinued (a botched export, most likely): the plan would take 90 %
    of the shop off sale. Refused by default; the operator's override applies it, through OF24."""
    skus = [f"P{i:02d}" for i in range(20)]
    erp = {"products": products({sku: "discontinued" if i >= 2 else "active" for i, sku in enumerate(skus)})}
    shop = {
        "products": products(dict.fromkeys(skus, "active")),
        "inventory": frame("inventory", [{"sku": sku, "location": "*", "available": "5"} for sku in skus]),
    }
    with MiraklSimulator(shop, rate_limits={}) as sim:
        settings = sim.settings(**FAST_HTTP, call_limits=UNLIMITED)
        raw = {**push_config("mirakl", settings, ["products"]), "repair": {}}  # the default guards
        cfg = audit_against("mirakl", sim, raw, tmp_path / "s.duckdb", erp, NOW, ["catalogue_parity"])
        pusher = MiraklPusher(cfg.source("mirakl"), env=sim.env)
        with Store(tmp_path / "s.duckdb") as store:
            plan = make_plan(store, cfg)
            assert sum(a.action == "set_offer_status" and a.after == "discontinued" for a in plan.actions) == 18
            reasons = refusals(plan, store, cfg)
            assert reasons == [
                "mirakl: 18 of 20 offers (90.0%) would be discontinued or deleted, over max_discontinue_share (10%)"
            ]
            with pytest.raises(UserError, match="max_discontinue_share"):
                apply_plan(store, cfg, plan, {"mirakl": pusher})
            assert sim.writes == {}  # nothing reached the shop

            # The documented overrides: a limit set for this shop, or --override-guards for this plan.
            lenient = parse_config({**raw, "repair": {"max_discontinue_share": 0.95}})
            assert refusals(plan, store, lenient) == []
            assert refusals(plan, store, cfg, override_guards=True) == []
            report = apply_plan(store, cfg, plan, {"mirakl": pusher}, override_guards=True)
        assert report.pushed == 18 and set(report.verdicts.values()) == {"repaired"}
        assert sum(n for (op, _), n in sim.writes.items() if op == "OF24") == 18


def test_the_command_line_names_the_guard_and_its_override(tmp_path, capsys, monkeypatch):
    """`repair plan` warns, and `repair apply` exits 2 with the refusal, before anything is pushed."""
    monkeypatch.setenv("MIRAKL_API_KEY", "not-used-nothing-is-pushed")
    store_path = tmp_path / "s.duckdb"
    found = [
        _finding("catalogue_parity", "mirakl", f"P{i:02d}", "status", "discontinued", "active", "set_offer_status")
        for i in range(9)
    ]
    _audited(store_path, found, offers=10)
    config = tmp_path / "driftwatch.toml"
    config.write_text('[sources.mirakl]\nbase_url = "http://127.0.0.1:9"\napi_key_env = "MIRAKL_API_KEY"\n')
    where = ["--config", str(config), "--db", str(store_path)]
    assert run_cli([*where, "repair", "plan", "--out", str(tmp_path / "p.json")]) == 0
    shown = capsys.readouterr().out
    assert "apply would refuse: mirakl: 9 of 10 offers (90.0%) would be discontinued" in shown
    code = run_cli([*where, "repair", "apply", str(tmp_path / "p.json"), "--apply", "--yes"])
    err = capsys.readouterr().err
    assert code == 2 and "refusing to apply" in err and "max_discontinue_share" in err and "Traceback" not in err


# --- every drastic guard, refusing and yielding --------------------------------------------------------------


def _finding(check: str, target: str, key: str, field: str, expected: str, actual: str, repair: str) -> dict:
    row = dict.fromkeys(FINDING_SCHEMA)
    row.update(check_id=check, severity="high", source="bluecherry", target=target, entity="products", key=key,
               field=field, expected=expected, actual=actual, repair_action=repair)  # fmt: skip
    return row


def _audited(path: Path, found: list[dict], *, offers: int) -> None:
    with Store(path) as store:
        skus = [f"P{i:02d}" for i in range(offers)]
        results = store.ingest(
            [
                IncomingSnapshot("mirakl", "products", CAPTURED, pl.DataFrame({"sku": skus})),
                IncomingSnapshot(
                    "mirakl", "inventory", CAPTURED, pl.DataFrame({"sku": skus, "location": ["*"] * offers})
                ),
            ]
        )
        record_run(
            store,
            pl.DataFrame(found, schema=FINDING_SCHEMA),
            checks=sorted({f["check_id"] for f in found}),
            snapshot_ids=[r.snapshot.snapshot_id for r in results],
            trusted=True,
            started_at=CAPTURED + timedelta(hours=1),
        )


DRASTIC = {
    "max_zero_stock_share": (
        [_finding("stock_parity", "mirakl", f"P{i:02d}", "available", "0", "4", "set_stock") for i in range(3)],
        "3 of 20 SKUs (15.0%) would go to zero stock",
        0.2,
    ),
    "max_discontinue_share": (
        [
            _finding("catalogue_parity", "mirakl", f"P{i:02d}", "", "absent", "present", "deactivate_offer")
            for i in range(3)
        ],
        "3 of 20 offers (15.0%) would be discontinued or deleted",
        0.2,
    ),
    "max_consent_changes": (
        [
            _finding("consent_parity", "mirakl", f"C{i}", "email_consent", "false", "true", "update_consent")
            for i in range(3)
        ],
        "3 consent changes exceed max_consent_changes (2)",
        3,
    ),
    "max_actions_per_target": (
        [
            _finding("catalogue_parity", "mirakl", f"P{i:02d}", "price", "9.00", "10.00", "update_price")
            for i in range(3)
        ],
        "3 actions exceed max_actions_per_target (2)",
        3,
    ),
}


@pytest.mark.parametrize("guard", sorted(DRASTIC))
def test_each_drastic_guard_refuses_and_yields_to_its_setting_and_to_the_override(tmp_path, guard):
    found, refusal, enough = DRASTIC[guard]
    _audited(tmp_path / "s.duckdb", found, offers=20)
    tight = {"max_consent_changes": 2, "max_actions_per_target": 2}  # small limits, so three actions trip them
    cfg = parse_config({"repair": {k: v for k, v in tight.items() if k == guard}})
    with Store(tmp_path / "s.duckdb") as store:
        plan = make_plan(store, cfg)
        reasons = refusals(plan, store, cfg)
        assert len(reasons) == 1 and refusal in reasons[0]
        assert refusals(plan, store, cfg, override_guards=True) == []
        assert refusals(plan, store, parse_config({"repair": {guard: enough}})) == []


def test_a_repair_limit_below_zero_is_refused_in_one_line():
    with pytest.raises(UserError, match=r"\[repair\] max_discontinue_share: expected a number of at least 0"):
        guards.settings(parse_config({"repair": {"max_discontinue_share": -1}}))


# --- stale stock: a quantity, never a time -------------------------------------------------------------------


def test_stale_stock_is_repaired_by_resending_the_erps_available_to_sell(tmp_path):
    """Klaviyo's figures for A, B and C were last updated 40 hours before its snapshot. B's is right but stale:
    it is resent as the ERP's available-to-sell (7 + 2 over two warehouses, the third's negative stock counting
    0). A's and C's are wrong too (C has no ERP stock at all): stock_parity's action sets them, once."""
    old = (NOW - timedelta(hours=40)).isoformat()
    erp_inventory = [
        {"sku": "A", "location": "WH1", "on_hand": "5", "allocated": "0", "safety_stock": "0"},
        {"sku": "B", "location": "WH1", "on_hand": "9", "allocated": "2", "safety_stock": "0"},
        {"sku": "B", "location": "WH2", "on_hand": "2", "allocated": "0", "safety_stock": "0"},
        {"sku": "B", "location": "WH3", "on_hand": "-3", "allocated": "0", "safety_stock": "0"},
    ]
    target = [
        {"sku": "A", "location": "*", "available": "9", "updated_at": old},
        {"sku": "B", "location": "*", "available": "9", "updated_at": old},
        {"sku": "C", "location": "*", "available": "1", "updated_at": old},
    ]
    raw = {"feeds": [{"source": "bluecherry", "target": "klaviyo", "entities": ["inventory"]}]}
    cfg = parse_config(raw)
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest(
            [
                IncomingSnapshot("bluecherry", "inventory", NOW, frame("inventory", erp_inventory)),
                IncomingSnapshot("klaviyo", "inventory", NOW, frame("inventory", target)),
            ]
        )
        found = audit(store, cfg, checks=["stock_staleness", "stock_parity"]).findings
        stale = found.filter(pl.col("check_id") == "stock_staleness")
        assert sorted(stale["key"]) == ["A", "B", "C"] and set(stale["repair_action"]) == {"set_stock"}
        plan = make_plan(store, cfg)
    stock = {(a.check_id, a.key): (a.field, a.before, a.after) for a in plan.actions if a.action == "set_stock"}
    assert stock == {
        ("stock_parity", "A"): ("available", "9", "5"),
        ("stock_staleness", "B"): ("available", "9", "9"),
        ("stock_parity", "C"): ("available", "1", "0"),
    }  # fmt: skip
    assert all(after.isdigit() for _, _, after in stock.values())


def test_a_stopped_stock_feed_is_reported_with_no_action(tmp_path):
    raw = {"feeds": [{"source": "bluecherry", "target": "klaviyo", "entities": ["inventory"]}]}
    cfg = parse_config(raw)
    row = {"sku": "A", "location": "WH1", "on_hand": "5"}
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest(
            [
                IncomingSnapshot("bluecherry", "inventory", NOW, frame("inventory", [row])),
                IncomingSnapshot(
                    "klaviyo",
                    "inventory",
                    NOW - timedelta(days=3),
                    frame("inventory", [{"sku": "A", "location": "*", "available": "5"}]),
                ),
            ]
        )
        found = audit(store, cfg, checks=["stock_staleness"]).findings
        assert found.select("key", "field", "repair_action").rows() == [("*", "captured_at", None)]
        assert make_plan(store, cfg).actions == []
