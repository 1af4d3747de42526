"""Repair: turn open findings into a plan, then push the truth back out, only when an operator says so."""

from driftwatch.push import Action, Pusher, PushOutcome
from driftwatch.repair.apply import ApplyReport, apply_plan, refusals
from driftwatch.repair.journal import Journal
from driftwatch.repair.plan import Plan, load_plan, make_plan
from driftwatch.repair.pushers import pusher_for

__all__ = [
    "Action",
    "ApplyReport",
    "Journal",
    "Plan",
    "PushOutcome",
    "Pusher",
    "apply_plan",
    "load_plan",
    "make_plan",
    "pusher_for",
    "refusals",
]
