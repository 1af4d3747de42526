"""driftwatch: find where a retailer's downstream platforms have drifted from the system of record.

The library is the product; the `driftwatch` command is a thin layer over it. For schedulers that call
Python (Airflow, Dagster): `load`, `audit`, `findings`, `write_report`, `reconcile`, `drifted` (see
driftwatch.api for an example).
"""

from driftwatch import application
from driftwatch.api import audit, drifted, findings, load, reconcile, write_report
from driftwatch.config import Config, Feed, load_config
from driftwatch.engine import RunResult
from driftwatch.entities import ENTITIES
from driftwatch.errors import DataError, UserError
from driftwatch.filedrop import LoadReport, load_directory
from driftwatch.normalize import coerce
from driftwatch.payouts import Reconciliation
from driftwatch.store import Store

# Every part registered with the store, the configuration and the platform registry before any is used.
application.assemble()

__all__ = [
    "ENTITIES",
    "Config",
    "DataError",
    "Feed",
    "LoadReport",
    "Reconciliation",
    "RunResult",
    "Store",
    "UserError",
    "audit",
    "coerce",
    "drifted",
    "findings",
    "load",
    "load_config",
    "load_directory",
    "reconcile",
    "write_report",
]
