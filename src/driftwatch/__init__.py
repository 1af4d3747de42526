"""driftwatch: find where a retailer's downstream platforms have drifted from the system of record.

The library is the product; the `driftwatch` command is a thin layer over it.
"""

from driftwatch.config import Config, Feed, load_config
from driftwatch.entities import ENTITIES
from driftwatch.errors import DataError, UserError
from driftwatch.filedrop import LoadReport, load_directory
from driftwatch.normalize import coerce
from driftwatch.store import Store

__all__ = [
    "ENTITIES",
    "Config",
    "DataError",
    "Feed",
    "LoadReport",
    "Store",
    "UserError",
    "coerce",
    "load_config",
    "load_directory",
]

# Every part registered with the store and the configuration before either is used.
from driftwatch import application

application.assemble()
