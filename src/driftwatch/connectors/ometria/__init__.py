"""Ometria: pull contacts, products and orders; push contacts, consents, products, stock and orders."""

from driftwatch.platforms import Platform
from driftwatch.statuses import PUBLISHED, Vocabulary

PLATFORM = Platform(
    "ometria",
    connector="driftwatch.connectors.ometria.connector:Connector",
    pusher="driftwatch.connectors.ometria.push:Pusher",
    vocabulary=Vocabulary(
        orders={
            "pending": "placed",
            "shipped": "shipped",
            "complete": "delivered",
            "cancelled": "cancelled",
        },
        products=PUBLISHED,  # a product's `is_active` flag
        # Ometria's order says pending, shipped, complete or cancelled: an order not yet shipped in whole is
        # pending, and complete is the last word.
        same_stages=(("placed", "accepted", "partially_shipped"), ("delivered", "closed")),
    ),
)
