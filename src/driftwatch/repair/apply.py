"""Applying a plan: guarded, journalled, batched, resumable, verified."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import polars as pl

from driftwatch.config import Config
from driftwatch.errors import UserError
from driftwatch.repair import guards
from driftwatch.repair.journal import DONE, FAILED, SENDING, Journal
from driftwatch.repair.plan import Action, Plan
from driftwatch.repair.pushers import Pusher
from driftwatch.store import Store

REPAIRED, STILL_DRIFTING, NOT_APPLIED = "repaired", "still drifting", "failed"


@dataclass
class ApplyReport:
    plan_id: str
    pushed: int = 0
    already_done: int = 0
    settled_in_doubt: int = 0  # found already applied on the platform after a crash: not pushed again
    failed: dict[str, str] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=dict)

    def frame(self, plan: Plan) -> pl.DataFrame:
        return plan.to_frame().with_columns(
            pl.col("action_id").replace_strict(self.verdicts, default=None, return_dtype=pl.String).alias("result"),
            pl.col("action_id").replace_strict(self.failed, default=None, return_dtype=pl.String).alias("error"),
        )


def refusals(
    plan: Plan, store: Store, cfg: Config, *, override_guards: bool = False, allow_untrusted: bool = False
) -> list[str]:
    """Every reason not to apply this plan, after the overrides the operator gave."""
    reasons = guards.stale(plan, store)
    if not allow_untrusted:
        reasons += guards.untrusted(plan)
    if not override_guards:
        reasons += guards.drastic(plan, store, cfg)
    return reasons


def apply_plan(
    store: Store,
    cfg: Config,
    plan: Plan,
    pushers: Mapping[str, Pusher],
    *,
    override_guards: bool = False,
    allow_untrusted: bool = False,
    on_batch: Callable[[str, int], None] | None = None,
) -> ApplyReport:
    """Push every action not yet done, one platform batch at a time, then verify what was touched."""
    reasons = refusals(plan, store, cfg, override_guards=override_guards, allow_untrusted=allow_untrusted)
    if reasons:
        raise UserError("refusing to apply:\n  " + "\n  ".join(reasons))
    journal = Journal(store)
    report = ApplyReport(plan.plan_id)
    for platform, actions in plan.by_platform().items():
        pusher = pushers[platform]
        _check_supported(pusher, actions)
        for start in range(0, len(actions), pusher.batch_size):
            batch = actions[start : start + pusher.batch_size]
            _apply_batch(journal, plan.plan_id, pusher, batch, report)
            if on_batch:
                on_batch(platform, len(batch))
        _verify(journal, pusher, actions, report)
    return report


def _check_supported(pusher: Pusher, actions: list[Action]) -> None:
    unsupported = sorted({a.action for a in actions} - pusher.actions)
    if unsupported:
        raise UserError(
            f"{pusher.target}: cannot execute {', '.join(unsupported)}; remove them with --check "
            f"or --target when making the plan"
        )


def _apply_batch(journal: Journal, plan_id: str, pusher: Pusher, batch: list[Action], report: ApplyReport) -> None:
    states = journal.states(batch)
    report.already_done += sum(states.get(a.action_id) == DONE for a in batch)
    in_doubt = [a for a in batch if states.get(a.action_id) == SENDING]
    settled = _settle(pusher, in_doubt)
    if settled:
        journal.finish({a: (DONE, "found applied on the platform after an interrupted push") for a in settled})
        report.settled_in_doubt += len(settled)
    todo = [a for a in batch if states.get(a.action_id) != DONE and a.action_id not in settled]
    if not todo:
        return
    journal.begin(plan_id, todo)
    outcomes = pusher.push(todo)
    journal.finish(
        {
            a.action_id: (DONE, outcomes[a.action_id].detail)
            if outcomes[a.action_id].ok
            else (FAILED, outcomes[a.action_id].detail)
            for a in todo
        }
    )
    report.pushed += sum(outcomes[a.action_id].ok for a in todo)
    report.failed.update(
        {a.action_id: outcomes[a.action_id].detail or "rejected" for a in todo if not outcomes[a.action_id].ok}
    )


def _settle(pusher: Pusher, in_doubt: list[Action]) -> set[str]:
    """The in-doubt actions the platform already reflects: pushed before the crash, not to be sent again."""
    if not in_doubt:
        return set()
    current = pusher.read(in_doubt)
    return {a.action_id for a in in_doubt if _same(current.get(a.action_id), a.after)}


def _verify(journal: Journal, pusher: Pusher, actions: list[Action], report: ApplyReport) -> None:
    current = pusher.read(actions)
    verdicts = {}
    for a in actions:
        if a.action_id in report.failed:
            verdicts[a.action_id] = NOT_APPLIED
        else:
            verdicts[a.action_id] = REPAIRED if _same(current.get(a.action_id), a.after) else STILL_DRIFTING
    journal.verified(verdicts)
    report.verdicts.update(verdicts)


def _same(current: str | None, wanted: str | None) -> bool:
    if current is None or wanted is None:
        return current == wanted
    try:  # "5" and "5.0", "19.9" and "19.90": one value in two spellings
        return Decimal(current) == Decimal(wanted)
    except InvalidOperation:
        return current.strip().lower() == wanted.strip().lower()
