"""Routed alerts through apprise: one digest per route and run, only for new, regressed or worse drift."""

from driftwatch.alerts.dispatch import Outgoing, deliver, plan_alerts, preview
from driftwatch.alerts.ledger import Delivery, deliveries
from driftwatch.alerts.routes import AlertSettings, Destination, Route, parse_alerts

__all__ = [
    "AlertSettings",
    "Delivery",
    "Destination",
    "Outgoing",
    "Route",
    "deliver",
    "deliveries",
    "parse_alerts",
    "plan_alerts",
    "preview",
]
