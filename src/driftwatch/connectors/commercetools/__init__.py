"""commercetools: the storefront's customers, orders (with lines and returns), inventory and products."""

from driftwatch.connectors.commercetools.connector import Connector
from driftwatch.connectors.commercetools.simulator import CommercetoolsSimulator as Simulator

__all__ = ["Connector", "Simulator"]
