"""Mirakl MMP seller API: pull offers, orders, shipments and payout lines; push offers, stock and orders."""

from driftwatch.platforms import Platform
from driftwatch.statuses import PUBLISHED, Vocabulary

# Offers: `active`, or inactive for the reasons OF21 lists. An offer inactive only for want of stock is still
# listed; every other reason takes it off sale.
STOCK_REASONS = (
    "ZERO_QUANTITY",
    "AVAILABLE_QUANTITY_LESS_THAN_MIN_ORDER_QUANTITY",
    "AVAILABLE_QUANTITY_LESS_THAN_PACKAGE_QUANTITY",
)
OFF_SALE_REASONS = (
    "PRODUCT_STATUS_NEW",
    "PRODUCT_STATUS_INVALID",
    "PRODUCT_STATUS_REJECTED",
    "PRODUCT_STATUS_UNAUTHORIZED_TO_SELL",
    "PRODUCT_STATUS_PENDING",
    "PRODUCT_STATUS_SYNCHRO_ERROR",
    "PRODUCT_DISABLED",
    "SHOP_NOT_OPEN",
    "NO_MIN_SHIPPING_RATE",
    "NOT_IN_AVAILABILITY_PERIOD",
    "NO_CHANNEL_ON_SHOP",
    "SHOP_CURRENCY_DISABLED",
    "NO_ACTIVE_PRICE",
    "CATEGORY_UNAUTHORIZED_TO_SELL",
    "BRAND_UNAUTHORIZED_TO_SELL",
)

PLATFORM = Platform(
    "mirakl",
    connector="driftwatch.connectors.mirakl.connector:Connector",
    pusher="driftwatch.connectors.mirakl.push:Pusher",
    marketplace=True,
    vocabulary=Vocabulary(
        orders={
            "STAGING": "placed",
            "WAITING_ACCEPTANCE": "placed",
            "WAITING_DEBIT": "placed",
            "WAITING_DEBIT_PAYMENT": "placed",
            "SHIPPING": "accepted",
            "SHIPPED": "shipped",
            "TO_COLLECT": "shipped",
            "RECEIVED": "delivered",
            "CLOSED": "closed",
            "REFUSED": "cancelled",
            "CANCELED": "cancelled",
        },
        products={
            **PUBLISHED,
            **dict.fromkeys(STOCK_REASONS, "active"),
            **dict.fromkeys(OFF_SALE_REASONS, "discontinued"),
        },
        # The seller moves an order to SHIPPED (OR24); RECEIVED and CLOSED follow by the customer's or the
        # operator's hand, never from the ERP.
        same_stages=(("shipped", "delivered", "closed"),),
    ),
)
