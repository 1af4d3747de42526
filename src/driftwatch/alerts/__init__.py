"""Routed alerts through apprise: one digest per destination and run, for drift that is new to it, came back,
got worse or changed, and for what cleared since its last digest."""

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
