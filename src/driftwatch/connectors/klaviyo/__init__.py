"""Klaviyo: pull profiles, catalog variants and order events."""

from driftwatch.connectors.klaviyo.connector import Connector

__all__ = ["Connector"]
