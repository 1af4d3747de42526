"""Set the toy shop's stock, one whole file at a time."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from driftwatch.push import Action, PushOutcome
from toy_platform.connector import read_shop


class Pusher:
    target = "toy"
    batch_size = 100
    actions = frozenset({"set_stock"})
    settings_keys = frozenset()

    def __init__(self, settings: Mapping[str, Any], *, source: str | None = None, **_: Any):
        self.target = source or self.target
        self.path = Path(settings["path"])

    def push(self, batch: list[Action]) -> dict[str, PushOutcome]:
        shop = read_shop(self.path)
        for action in batch:
            shop["stock"][action.key] = int(action.after)
        self.path.write_text(json.dumps(shop), encoding="utf-8")
        return {a.action_id: PushOutcome(True) for a in batch}

    def read(self, batch: list[Action]) -> dict[str, str | None]:
        stock = read_shop(self.path)["stock"]
        return {a.action_id: None if a.key not in stock else str(stock[a.key]) for a in batch}
