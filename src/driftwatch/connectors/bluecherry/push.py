"""Corrections for BlueCherry, written as import files: the ERP never takes a live write from driftwatch.

Each batch becomes one CSV in the outbox, written under a temporary name and renamed into place, so the
ERP's import job never picks up half a file and a crash leaves either the whole batch or none of it. The
file is one a person may open too: no value in it is ever read as a spreadsheet formula.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from driftwatch import locations
from driftwatch.push import ERP_ACTIONS, Action, PushOutcome
from driftwatch.spreadsheet import read_csv, write_csv

COLUMNS = ("action_id", "action", "key", "field", "value", "record")


class Pusher:
    target = "bluecherry"
    batch_size = 5_000
    actions = ERP_ACTIONS
    settings_keys = frozenset({"outbox"})

    def __init__(
        self, settings: Mapping[str, Any], *, source: str | None = None, work_dir: Path | None = None, **_: Any
    ):
        self.target = source or self.target
        # Where the ERP's import job picks files up; without `outbox`, the store's working folder (never the
        # current directory), which the README tells the user to point an import job at or override.
        default = (work_dir or locations.temp_dir()) / "outbox" / self.target
        self.outbox = Path(settings["outbox"]) if settings.get("outbox") else default

    def push(self, batch: list[Action]) -> dict[str, PushOutcome]:
        name = f"driftwatch-{batch[0].action_id}-{len(batch)}.csv"
        rows = pl.DataFrame(
            [
                {
                    "action_id": a.action_id,
                    "action": a.action,
                    "key": a.key,
                    "field": a.field,
                    "value": a.after,
                    "record": json.dumps(a.truth, sort_keys=True),
                }
                for a in batch
            ],
            schema=dict.fromkeys(COLUMNS, pl.String),
        )
        write_csv(rows, self.outbox / name)
        return {a.action_id: PushOutcome(True, f"import file {name}") for a in batch}

    def read(self, batch: list[Action]) -> dict[str, str | None]:
        written = self._written()
        return {a.action_id: written.get(a.action_id) for a in batch}

    def _written(self) -> dict[str, str | None]:
        files = sorted(p for p in self.outbox.glob("driftwatch-*.csv")) if self.outbox.is_dir() else []
        if not files:
            return {}
        frame = pl.concat([read_csv(p) for p in files])
        return dict(zip(frame["action_id"], frame["value"], strict=True))


def outbox_files(outbox: Path) -> list[Path]:
    return sorted(outbox.glob("driftwatch-*.csv"))
