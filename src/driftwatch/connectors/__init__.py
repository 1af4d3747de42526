"""Live pulls from each platform's API (and BlueCherry's export files), and the push side of repair.

`get(name)` gives a platform's connector class. Platform modules are imported on first use, so a missing
optional part of one platform never breaks another.
"""

from __future__ import annotations

import importlib
from typing import Any

from driftwatch.connectors.base import BaseConnector, Connector, Pulled
from driftwatch.errors import UserError

__all__ = ["BaseConnector", "Connector", "Pulled", "get"]

# Platforms reached over their APIs.
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
