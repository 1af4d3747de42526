"""Live pulls from each platform's API, and a loopback simulator of each.

`get(name)` gives a source's connector class, `SIMULATORS[name]` its simulator class. Platform modules are
imported on first use, so a missing optional part of one platform never breaks another.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from driftwatch.connectors.base import BaseConnector, Connector, Pulled
from driftwatch.errors import UserError

__all__ = ["SIMULATORS", "BaseConnector", "Connector", "Pulled", "get"]

# Platforms reached over their APIs, each with a loopback simulator.
PLATFORMS = ("klaviyo", "mirakl", "commercetools", "emarsys", "ometria")
# BlueCherry has no public API: its connector picks up report exports from a folder or an SFTP drop.
CONNECTORS = ("bluecherry", *PLATFORMS)


def _platform_attribute(name: str, attribute: str) -> Any:
    if name not in CONNECTORS:
        raise UserError(f"no connector for {name!r}: expected one of {', '.join(CONNECTORS)}")
    module = importlib.import_module(f"driftwatch.connectors.{name}")
    return getattr(module, attribute)


def get(name: str) -> type[Connector]:
    """The connector class of a source."""
    return _platform_attribute(name, "Connector")


class _Simulators(Mapping[str, type]):
    def __getitem__(self, name: str) -> type:
        if name not in PLATFORMS:
            raise KeyError(name)
        return _platform_attribute(name, "Simulator")

    def __contains__(self, name: object) -> bool:
        return name in PLATFORMS

    def __iter__(self) -> Iterator[str]:
        return iter(PLATFORMS)

    def __len__(self) -> int:
        return len(PLATFORMS)


SIMULATORS: Mapping[str, type] = _Simulators()
