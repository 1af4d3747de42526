"""Emarsys: see connector.py for what is pulled and the settings it takes."""

from driftwatch.connectors.emarsys.connector import Connector

__all__ = ["Connector"]
