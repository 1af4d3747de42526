"""commercetools: the storefront's customers, orders (with lines, shipments and returns), inventory and
products; a system of record where the storefront owns customers and orders.
"""

from driftwatch.platforms import Platform
from driftwatch.statuses import PUBLISHED, Vocabulary

PLATFORM = Platform(
    "commercetools",
    connector="driftwatch.connectors.commercetools.connector:Connector",
    pusher="driftwatch.connectors.commercetools.push:Pusher",
    system_of_record=True,
    stock_per_location=True,
    vocabulary=Vocabulary(
        # An order's "orderState/shipmentState"; patterns are tried in order, the most specific first.
        orders={
            "Cancelled": "cancelled",
            "Cancelled/*": "cancelled",
            "Complete": "closed",
            "Complete/*": "closed",
            "*/Delivered": "delivered",
            "*/Shipped": "shipped",
            "*/Partial": "partially_shipped",
            "Open": "placed",
            "Open/*": "placed",
            "Confirmed": "accepted",
            "Confirmed/*": "accepted",
        },
        # A return item's "shipmentState/paymentState". Advised (announced, non-refundable until it comes
        # back) and Returned (refundable, Initial) are the two initial states; BackInStock and Unusable
        # follow inspection.
        returns={
            "*/Refunded": "refunded",
            "Advised/NotRefunded": "cancelled",
            "Advised": "authorised",
            "Advised/*": "authorised",
            "Returned": "received",
            "Returned/*": "received",
            "BackInStock": "received",
            "BackInStock/*": "received",
            "Unusable": "received",
            "Unusable/*": "received",
        },
        products=PUBLISHED,  # a product's `published` flag
    ),
)
