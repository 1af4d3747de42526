"""Emarsys: see connector.py for what is pulled and the settings it takes."""

from driftwatch.connectors.emarsys.connector import Connector
from driftwatch.connectors.emarsys.simulator import Simulator

__all__ = ["Connector", "Simulator"]
