"""Loopback simulators of each platform's API, built from its public documentation: auth, pagination,
rate limits and error bodies. They are test and demo tooling, never used by a pull a user runs.

`SIMULATORS[platform]` gives a platform's simulator class; each module is imported on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

__all__ = ["PLATFORMS", "SIMULATORS"]

# Platforms reached over their APIs (BlueCherry is read from export files, so it needs no simulator).
PLATFORMS = ("klaviyo", "mirakl", "commercetools", "emarsys", "ometria")


class _Simulators(Mapping[str, type]):
    def __getitem__(self, platform: str) -> type:
        if platform not in PLATFORMS:
            raise KeyError(platform)
        module = importlib.import_module(f"driftwatch.simulators.{platform}")
        return getattr(module, f"{platform.capitalize()}Simulator")

    def __iter__(self) -> Iterator[str]:
        return iter(PLATFORMS)

    def __len__(self) -> int:
        return len(PLATFORMS)


SIMULATORS: Mapping[str, type] = _Simulators()
