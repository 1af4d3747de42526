"""Klaviyo: pull profiles, catalog variants and order events; push stock, profiles, consents and events."""

from driftwatch.platforms import Platform
from driftwatch.statuses import EVENT_STAGES, ORDER_EVENTS, PUBLISHED, Vocabulary

PLATFORM = Platform(
    "klaviyo",
    connector="driftwatch.connectors.klaviyo.connector:Connector",
    pusher="driftwatch.connectors.klaviyo.push:Pusher",
    # Orders are derived from order events; a catalog variant's `published` flag is the product status.
    vocabulary=Vocabulary(orders=ORDER_EVENTS, products=PUBLISHED, same_stages=EVENT_STAGES),
)
