"""A repair plan: open findings turned into the actions that would push the truth back out.

A plan is a file an operator can read before anything happens: every action says what the target holds
now (`before`) and what it will hold (`after`), and carries the system of record's row for its key so
that a platform that replaces whole records (Mirakl OF24) never loses a field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from driftwatch.config import Config
from driftwatch.engine.findings import OPEN_STATUSES, findings, latest_run_id, run_info
from driftwatch.engine.views import available_to_sell
from driftwatch.entities import ENTITIES
from driftwatch.errors import UserError
from driftwatch.files import write_text
from driftwatch.push import ERP_ACTIONS, Action
from driftwatch.statuses import ORDERS, PRODUCTS, RETURNS, canonical_status
from driftwatch.store import Store

PLAN_VERSION = 1
STOCK = "available"  # the field a set_stock action sets
_VOCABULARY_OF = {"orders": ORDERS, "returns": RETURNS, "products": PRODUCTS}


@dataclass(frozen=True)
class Plan:
    plan_id: str
    created_at: datetime
    run_id: str
    trusted: bool
    snapshots: dict[str, str]  # "source/entity" -> captured_at (ISO) of what the audit saw
    actions: list[Action]

    def by_platform(self) -> dict[str, list[Action]]:
        grouped: dict[str, list[Action]] = {}
        for action in self.actions:
            grouped.setdefault(action.platform, []).append(action)
        return grouped

    def to_frame(self) -> pl.DataFrame:
        cols = ("action_id", "platform", "target", "action", "check_id", "key", "field", "before", "after")
        return pl.DataFrame(
            [{c: getattr(a, c) for c in cols} for a in self.actions], schema=dict.fromkeys(cols, pl.String)
        )

    def save(self, path: Path) -> Path:
        body = {"version": PLAN_VERSION, **asdict(self), "created_at": self.created_at.isoformat()}
        return write_text(path, json.dumps(body, indent=2, default=str))


def load_plan(path: Path) -> Plan:
    try:
        body = json.loads(Path(path).read_text(encoding="utf-8"))
        if body.get("version") != PLAN_VERSION:
            raise UserError(f"{path}: plan format {body.get('version')!r} is not {PLAN_VERSION}; make a new plan")
        return Plan(
            plan_id=body["plan_id"],
            created_at=datetime.fromisoformat(body["created_at"]),
            run_id=body["run_id"],
            trusted=body["trusted"],
            snapshots=body["snapshots"],
            actions=[Action(**a) for a in body["actions"]],
        )
    except FileNotFoundError:
        raise UserError(f"{path}: no such plan (make one with `driftwatch repair plan`)") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not a driftwatch repair plan ({exc})") from None


def make_plan(
    store: Store,
    cfg: Config,
    *,
    run_id: str | None = None,
    checks: list[str] | None = None,
    targets: list[str] | None = None,
) -> Plan:
    """Actions for every open, unacknowledged finding of a run (default: the latest) that proposes one."""
    run_id = run_id or latest_run_id(store)
    if run_id is None:
        raise UserError("no audit run yet: run `driftwatch audit` first")
    info = run_info(store, run_id)
    frame = findings(store, run_id).filter(
        pl.col("status").is_in(OPEN_STATUSES)
        & ~pl.col("acknowledged")
        & ~pl.col("muted")
        & pl.col("repair_action").is_not_null()
    )
    if checks:
        frame = frame.filter(pl.col("check_id").is_in(checks))
    if targets:
        frame = frame.filter(pl.col("target").is_in(targets))
    rows = list(frame.sort("target", "check_id", "key", "field").iter_rows(named=True))
    stock_set = {(r["target"], r["key"]) for r in rows if r["repair_action"] == "set_stock" and r["field"] == STOCK}
    actions = []
    for row in rows:
        if row["repair_action"] == "set_stock" and row["field"] != STOCK:
            # A stale figure (stock_staleness: its expected value is a time) is repaired by resending the ERP's
            # available-to-sell, unless another finding already sets that key's stock.
            row = None if (row["target"], row["key"]) in stock_set else _resending_ats(store, cfg, row)
        if row is not None:
            actions.append(_action(row, _in_canonical_words(cfg, row, _truth_row(store, row))))
    created_at = datetime.now(UTC)
    snapshots = _snapshots_seen(store, info["snapshot_ids"])
    plan_id = f"{created_at:%Y%m%dT%H%M%S}-{hashlib.sha256(run_id.encode()).hexdigest()[:6]}"
    return Plan(plan_id, created_at, run_id, bool(info["trusted"]), snapshots, actions)


def _action(row: dict[str, Any], truth: dict[str, Any]) -> Action:
    # The run is part of the identity: re-making a plan from the same audit never repeats a done push, but
    # drift that comes back after a later audit is a new change to make.
    identity = "|".join(str(row[c]) for c in ("run_id", "target", "repair_action", "key", "field", "expected"))
    return Action(
        action_id=hashlib.sha256(identity.encode()).hexdigest()[:16],
        platform=_pushed_to(row),
        target=row["target"],
        action=row["repair_action"],
        check_id=row["check_id"],
        entity=row["entity"],
        key=row["key"],
        field=row["field"],
        before=row["actual"],
        after=row["expected"],
        fingerprint=row["fingerprint"],
        truth=truth,
    )


def _resending_ats(store: Store, cfg: Config, finding: dict[str, Any]) -> dict[str, Any] | None:
    """The finding as a stock repair: the ERP's current available-to-sell for its key (a SKU, or SKU/location
    where the target keeps stock per location) as the quantity to send, as stock_parity computes it (over the
    locations feeding the target, packs from their components), and the target's figure as it stands. None
    when the ERP holds no stock record for it: nothing to resend."""
    source, target = finding["source"], finding["target"]
    sku, _, location = finding["key"].partition("/")
    inventory, packs = store.latest_snapshot(source, "inventory"), store.latest_snapshot(source, "pack_components")
    if inventory is None:
        return None
    components = _snapshot_rows(store, packs, "pack_sku", [sku]) if packs is not None else None
    skus = [sku, *(components["component_sku"].to_list() if components is not None else [])]
    feed = next((f for f in cfg.feeds_to(target) if f.source == source), None)
    ats = available_to_sell(
        _snapshot_rows(store, inventory, "sku", skus).lazy(),
        components.lazy() if components is not None and components.height else None,
        locations=feed.locations if feed else None,
        by_location=bool(location),
    ).filter(pl.col("sku") == sku)
    if location:
        ats = ats.filter(pl.col("location") == location)
    found = ats.collect()
    if found.height != 1:
        return None
    held = store.latest_snapshot(target, "inventory")
    current = _snapshot_rows(store, held, "sku", [sku]) if held is not None else pl.DataFrame()
    if location and current.height:
        current = current.filter(pl.col("location") == location)
    before = str(current["available"][0]) if current.height == 1 and "available" in current.columns else None
    return {**finding, "field": STOCK, "expected": str(found["available"][0]), "actual": before}


def _snapshot_rows(store: Store, info: Any, column: str, values: list[str]) -> pl.DataFrame:
    rows, params = store.snapshot_sql(info)
    return store.frame(f"SELECT * FROM ({rows}) WHERE list_contains(?, {column})", [*params, values])


def _pushed_to(finding: dict[str, Any]) -> str:
    """The source an action is pushed to: the drifted target, but the system of record of the finding's
    feed (BlueCherry, commercetools, ...) for what only the system of record can change."""
    if finding["repair_action"] in ERP_ACTIONS and finding["source"]:
        return finding["source"]
    return finding["target"]


def _in_canonical_words(cfg: Config, finding: dict[str, Any], truth: dict[str, Any]) -> dict[str, Any]:
    """The truth's status in canonical words (a target never speaks the ERP's own codes), the source's word
    kept as `status_raw`; None where no mapping names it."""
    vocabulary = _VOCABULARY_OF.get(finding["entity"])
    if vocabulary is None or truth.get("status") is None or not finding["source"]:
        return truth
    raw = truth["status"]
    canonical = canonical_status(raw, cfg.status_map(finding["source"], vocabulary), vocabulary)
    return {**truth, "status": canonical, "status_raw": raw}


def _truth_row(store: Store, finding: dict[str, Any]) -> dict[str, Any]:
    """The system of record's row behind a finding: by the entity's own key, or, for a finding keyed by
    the ERP order number (a shipment's tracking), the order's row whose field holds the expected value."""
    entity, source = finding["entity"], finding["source"]
    info = store.latest_snapshot(source, entity) if entity in ENTITIES and source else None
    if info is None:
        return {}
    spec = ENTITIES[entity]
    parts = finding["key"].split("/")
    if len(parts) >= len(spec.key):
        rows = _rows_where(store, info, dict(zip(spec.key, parts, strict=False)))
        if rows.height == 1:
            return _as_text(rows)
    if "order_id" in info.columns and "order_id" not in spec.key:
        rows = _rows_where(store, info, {"order_id": parts[0]})
        field, expected = finding["field"], finding["expected"]
        if rows.height > 1 and field in rows.columns and expected is not None:
            rows = rows.filter(pl.col(field).cast(pl.String) == expected)
        if rows.height >= 1:
            return _as_text(rows.head(1))
    return {}


def _rows_where(store: Store, info: Any, equals: dict[str, str]) -> pl.DataFrame:
    where = " AND ".join(f"{col} = ?" for col in equals)
    rows, params = store.snapshot_sql(info)
    return store.frame(f"SELECT * FROM ({rows}) WHERE {where}", [*params, *equals.values()])


def _as_text(rows: pl.DataFrame) -> dict[str, Any]:
    return {k: (None if v is None else str(v)) for k, v in rows.row(0, named=True).items()}


def _snapshots_seen(store: Store, snapshot_ids: list[str]) -> dict[str, str]:
    seen = {}
    for sid in snapshot_ids:
        info = store.snapshot(sid)
        seen[f"{info.source}/{info.entity}"] = info.captured_at.isoformat()
    return seen
