"""Generated retailers of other shapes than the demo's, each with its own answer key and a clean twin.

The demo retailer's answer key was written with the code, so it cannot find the code's blind spots. These
retailers are built to DESIGN.md and the platforms' documents instead: other systems of record, other
vocabularies, other export formats, sources captured at different times. Each is written twice, as a
file drop and as the data the platforms' simulators serve to the connectors, and `score` audits both.

    python -m driftwatch.demo.retailers.score storefront --out DIR [--clean] [--mode drop|pull]

Adding a retailer: copy a retailer module (`storefront.py`), give it its own shape, and list it in
RETAILERS. A module provides NAME, KINDS (source -> platform), `build(seed, drift, captures)` (a
`_base.Shape` subclass does the building), `drop_captures()`, `pull_captures(now)`, `exports()` (how each
platform writes its files) and `config(written, connections)` (its driftwatch.toml as tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from driftwatch.demo.retailers import marketplaces, storefront
from driftwatch.demo.retailers._files import Written, write
from driftwatch.errors import UserError

RETAILERS: dict[str, ModuleType] = {storefront.NAME: storefront, marketplaces.NAME: marketplaces}
MODES = ("drop", "pull")


@dataclass(frozen=True)
class Generated:
    """A retailer written to disk: its files, its answer key, and how to configure driftwatch for it."""

    shape: ModuleType
    written: Written
    drift: bool
    mode: str

    @property
    def kinds(self) -> dict[str, str]:
        return self.shape.KINDS

    def config(self, sources: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.shape.config(self.written, sources)


def generate(
    name: str,
    out: Path,
    *,
    drift: bool = True,
    mode: str = "drop",
    seed: int | None = None,
    now: datetime | None = None,
) -> Generated:
    """Write retailer `name` into `out`. `mode` "drop" captures each source at its own time of night (a
    fixed date, so the files are the same every time); "pull" captures every API source at `now` (default:
    the wall clock), as a pull through the connectors right after would."""
    shape = RETAILERS.get(name)
    if shape is None:
        raise UserError(f"unknown retailer {name!r}; expected one of {', '.join(RETAILERS)}")
    if mode not in MODES:
        raise UserError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    captures = shape.drop_captures() if mode == "drop" else shape.pull_captures(now)
    kwargs = {} if seed is None else {"seed": seed}
    retailer = shape.build(drift=drift, captures=captures, **kwargs)
    return Generated(shape, write(retailer, Path(out), shape.exports()), drift, mode)


__all__ = ["MODES", "RETAILERS", "Generated", "generate"]
