"""Guard rails: reasons a plan must not be applied as it stands.

Each guard answers one question an operator would ask before pushing: can today's data be trusted, is
the plan still about the latest data, and is it about to do something drastic (zero a large part of a
catalogue's stock, take a large part of it off sale, flip many consents)? `[repair]` sets each limit;
`repair apply --override-guards` applies a drastic plan anyway.
"""

from __future__ import annotations

from datetime import datetime

from driftwatch.config import Config
from driftwatch.errors import UserError
from driftwatch.repair.plan import Action, Plan
from driftwatch.store import Store

DEFAULTS = {
    "max_zero_stock_share": 0.05,  # of a target's SKUs going to zero stock
    "max_discontinue_share": 0.10,  # of a target's offers discontinued or deleted
    "max_consent_changes": 50,
    "max_actions_per_target": 10_000,
}
# Actions that take an offer off sale: a status set to discontinued, an offer the ERP does not know deleted.
_OFF_SALE = {"set_offer_status": "discontinued", "deactivate_offer": None}


def settings(cfg: Config) -> dict[str, float]:
    section = cfg.section("repair")
    for key, value in section.items():
        if key not in DEFAULTS:
            raise UserError(f"[repair] {key}: unknown setting; expected one of {', '.join(DEFAULTS)}")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise UserError(f"[repair] {key}: expected a number of at least 0, got {value!r}")
    return {**DEFAULTS, **section}


def untrusted(plan: Plan) -> list[str]:
    if plan.trusted:
        return []
    return [f"audit run {plan.run_id} is untrusted (snapshot_health failed): fix the snapshots and re-audit"]


def stale(plan: Plan, store: Store) -> list[str]:
    problems = []
    for name, seen in plan.snapshots.items():
        source, entity = name.split("/")
        latest = store.latest_snapshot(source, entity)
        if latest and latest.captured_at > datetime.fromisoformat(seen):
            problems.append(
                f"plan {plan.plan_id} predates the latest {name} snapshot ({latest.captured_at:%Y-%m-%d %H:%M}Z): "
                "re-audit and make a new plan"
            )
    return problems


def drastic(plan: Plan, store: Store, cfg: Config) -> list[str]:
    limits = settings(cfg)
    problems = []
    for platform, actions in plan.by_platform().items():
        if len(actions) > limits["max_actions_per_target"]:
            problems.append(
                f"{platform}: {len(actions)} actions exceed max_actions_per_target ({limits['max_actions_per_target']})"
            )
        zeroing = sum(a.action == "set_stock" and _is_zero(a.after) for a in actions)
        catalogue = _catalogue_size(store, platform)
        if zeroing and catalogue and zeroing / catalogue > limits["max_zero_stock_share"]:
            problems.append(
                f"{platform}: {zeroing} of {catalogue} SKUs ({zeroing / catalogue:.1%}) would go to zero stock, over "
                f"max_zero_stock_share ({limits['max_zero_stock_share']:.0%})"
            )
        off_sale = sum(_takes_off_sale(a) for a in actions)
        offers = _offer_count(store, platform)
        if off_sale and offers and off_sale / offers > limits["max_discontinue_share"]:
            problems.append(
                f"{platform}: {off_sale} of {offers} offers ({off_sale / offers:.1%}) would be discontinued or "
                f"deleted, over max_discontinue_share ({limits['max_discontinue_share']:.0%})"
            )
        consents = sum(a.action == "update_consent" for a in actions)
        if consents > limits["max_consent_changes"]:
            problems.append(
                f"{platform}: {consents} consent changes exceed max_consent_changes ({limits['max_consent_changes']})"
            )
    return problems


def _is_zero(value: str | None) -> bool:
    try:
        return value is not None and float(value) == 0
    except ValueError:
        return False


def _takes_off_sale(action: Action) -> bool:
    if action.action not in _OFF_SALE:
        return False
    wanted = _OFF_SALE[action.action]
    return wanted is None or (action.after or "").strip().lower() == wanted


def _offer_count(store: Store, target: str) -> int:
    info = store.latest_snapshot(target, "products") or store.latest_snapshot(target, "inventory")
    return info.row_count if info else 0


def _catalogue_size(store: Store, target: str) -> int:
    info = store.latest_snapshot(target, "inventory") or store.latest_snapshot(target, "products")
    return info.row_count if info else 0
