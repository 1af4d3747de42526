"""The push protocol: what repair hands a platform's push side, and what it gets back.

Repair (`driftwatch.repair`) plans and journals actions; each platform's `connectors/<platform>/push.py`
executes them. Both import this module and neither imports the other, so a connector can be read, tested
and replaced without the repair machinery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

# Actions the system of record executes itself, whichever target's drift they answer (an ERP never takes
# a live write: a system of record that cannot be written to turns them into an import file).
ERP_ACTIONS = frozenset(
    ("create_journal_entry", "import_order_to_erp", "fix_erp_available_formula", "correct_erp_record")
)


@dataclass(frozen=True)
class Action:
    action_id: str  # stable for the same change, so a re-made plan never pushes a done change again
    platform: str  # the source the push goes to: the drifted target, or its feed's system of record
    target: str
    action: str  # set_stock, deactivate_offer, update_consent, upsert_order, send_event, ...
    check_id: str
    entity: str
    key: str
    field: str
    before: str | None
    after: str | None
    fingerprint: str
    truth: dict[str, Any] = field(default_factory=dict)  # the system of record's row for this key, as text


@dataclass(frozen=True)
class PushOutcome:
    ok: bool
    detail: str | None = None  # the platform's own words for a rejected row; a job or import id when accepted


class Pusher(Protocol):
    """A platform's push side. Built as `Pusher(settings, source=NAME, env=..., status_map=...,
    work_dir=...)`, where `settings` is the `[sources.NAME]` table (folders already resolved), `target` is
    then the source's name, and `work_dir` is the store's working folder (not created) for a pusher that
    writes files."""

    target: str
    batch_size: int  # the platform's bulk limit per call
    actions: frozenset[str]  # the action types it can execute

    def push(self, batch: list[Action]) -> dict[str, PushOutcome]: ...

    def read(self, batch: list[Action]) -> dict[str, str | None]:
        """What the platform holds now for each action's key and field, as text (None: nothing)."""
        ...
