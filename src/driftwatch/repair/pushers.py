"""The push side of a connector, as repair sees it.

Each platform's `driftwatch.connectors.<platform>.push` module provides a `Pusher`: it executes a batch
of actions in that platform's own bulk form and limits, and reads back what the platform holds for them
(to settle actions a crash left in doubt, and to verify a repair).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from driftwatch.config import Config
from driftwatch.errors import UserError
from driftwatch.repair.plan import Action


@dataclass(frozen=True)
class PushOutcome:
    ok: bool
    detail: str | None = None  # the platform's own words for a rejected row; a job or import id when accepted


class Pusher(Protocol):
    target: str
    batch_size: int  # the platform's bulk limit per call
    actions: frozenset[str]  # the action types it can execute

    def push(self, batch: list[Action]) -> dict[str, PushOutcome]: ...

    def read(self, batch: list[Action]) -> dict[str, str | None]:
        """What the platform holds now for each action's key and field, as text (None: nothing)."""
        ...


def pusher_for(target: str, cfg: Config, *, env: Mapping[str, str] | None = None, **options: Any) -> Pusher:
    """Build the configured pusher of a target from its `[sources.<target>]` settings."""
    try:
        module = importlib.import_module(f"driftwatch.connectors.{target}.push")
    except ModuleNotFoundError:
        raise UserError(f"{target}: driftwatch cannot push repairs to this platform yet") from None
    kwargs: dict[str, Any] = {"env": env} if env is not None else {}
    # A pusher that turns a canonical status back into the platform's own needs the user's mapping too.
    return module.Pusher(cfg.source(target), status_map=cfg.status_map(target), **kwargs, **options)


def outbox_path(settings: Mapping[str, Any], default: str) -> Path:
    return Path(settings.get("outbox", default))


def profiles_of(action: Action, profiles: pl.DataFrame) -> pl.DataFrame:
    """A platform's profiles (canonical customers) of the action's ERP customer: those storing its id, else
    those carrying its email, so a profile the platform created on its own is repaired, not duplicated."""
    by_id = profiles.filter(pl.col("erp_customer_id") == action.key)
    email = (action.truth.get("email") or "").strip().lower()
    if by_id.height or not email:
        return by_id
    return profiles.filter(
        pl.col("erp_customer_id").is_null() & (pl.col("email").str.strip_chars().str.to_lowercase() == email)
    )
