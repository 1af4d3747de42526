"""Ometria: see connector.py for what is pulled and the settings it takes."""

from driftwatch.connectors.ometria.connector import Connector

__all__ = ["Connector"]
