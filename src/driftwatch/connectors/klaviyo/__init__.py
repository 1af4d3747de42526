"""Klaviyo: pull profiles, catalog variants and order events; simulate the REST API."""

from driftwatch.connectors.klaviyo.connector import Connector
from driftwatch.connectors.klaviyo.simulator import KlaviyoSimulator as Simulator

__all__ = ["Connector", "Simulator"]
