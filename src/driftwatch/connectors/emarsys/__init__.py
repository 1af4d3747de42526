"""Emarsys: pull contacts, the product catalogue and sales data; push contacts, consents and the catalogue."""

from driftwatch.platforms import Platform
from driftwatch.statuses import EVENT_STAGES, ORDER_EVENTS, PUBLISHED, Vocabulary

PLATFORM = Platform(
    "emarsys",
    connector="driftwatch.connectors.emarsys.connector:Connector",
    pusher="driftwatch.connectors.emarsys.push:Pusher",
    # Orders are derived from sales events; the catalogue's `available` column is the product status.
    vocabulary=Vocabulary(orders=ORDER_EVENTS, products=PUBLISHED, same_stages=EVENT_STAGES),
)
