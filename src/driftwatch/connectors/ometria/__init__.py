"""Ometria: see connector.py for what is pulled and the settings it takes."""

from driftwatch.connectors.ometria.connector import Connector
from driftwatch.connectors.ometria.simulator import Simulator

__all__ = ["Connector", "Simulator"]
