"""Mirakl MMP seller API: pull offers, orders, carriers, transaction lines and invoices; simulate the API."""

from driftwatch.connectors.mirakl.connector import Connector
from driftwatch.connectors.mirakl.simulator import MiraklSimulator as Simulator

__all__ = ["Connector", "Simulator"]
