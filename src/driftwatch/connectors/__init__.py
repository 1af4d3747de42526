"""Live pulls from each platform's API (and BlueCherry's export files), and the push side of repair.

`get(platform)` gives a platform's connector class, through the registry in `driftwatch.platforms`.
Platform modules are imported on first use, so a missing optional part of one platform never breaks another.
"""

from __future__ import annotations

from driftwatch import platforms
from driftwatch.connectors.base import BaseConnector, Connector, Delta, Pulled

__all__ = ["BaseConnector", "Connector", "Delta", "Pulled", "get"]


def get(platform: str) -> type[Connector]:
    """The connector class of a platform (a source's kind)."""
    return platforms.get(platform).load_connector()
