"""CGS BlueCherry: report exports in (folder or SFTP), import files out."""

from typing import Any


def __getattr__(name: str) -> Any:
    # Imported on first use: the file-drop loader reads this package's column maps, and the connector in turn
    # reads exports with the loader, so neither may import the other at import time.
    if name == "Connector":
        from driftwatch.connectors.bluecherry.connector import Connector

        return Connector
    raise AttributeError(name)
