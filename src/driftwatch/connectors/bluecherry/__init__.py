"""CGS BlueCherry, the system of record: report exports in (a folder or an SFTP drop), import files out.

BlueCherry's status codes are set up per client and are not public: a client names them in
`[statuses.<source>]`. Its report headers (mapping.py) are the platform's `export_headers`, read by
file drops of its sources.
"""

from driftwatch.connectors.bluecherry.mapping import (
    BLUECHERRY_COLUMN_MAP,
    BLUECHERRY_HEADER_VARIANTS,
    BLUECHERRY_SKU_TEMPLATE,
    BLUECHERRY_UNUSED,
)
from driftwatch.platforms import ExportHeaders, Platform

PLATFORM = Platform(
    "bluecherry",
    connector="driftwatch.connectors.bluecherry.connector:Connector",
    pusher="driftwatch.connectors.bluecherry.push:Pusher",
    system_of_record=True,
    stock_per_location=True,
    export_headers=ExportHeaders(
        columns=BLUECHERRY_COLUMN_MAP,
        variants=BLUECHERRY_HEADER_VARIANTS,
        unused=BLUECHERRY_UNUSED,
        sku_template=BLUECHERRY_SKU_TEMPLATE,
    ),
)
