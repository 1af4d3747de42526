"""commercetools: the storefront's customers, orders (with lines and returns), inventory and products."""

from driftwatch.connectors.commercetools.connector import Connector

__all__ = ["Connector"]
