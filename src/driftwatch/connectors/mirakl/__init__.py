"""Mirakl MMP seller API: pull offers, orders, carriers, transaction lines and invoices."""

from driftwatch.connectors.mirakl.connector import Connector

__all__ = ["Connector"]
