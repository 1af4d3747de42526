"""CGS BlueCherry, the system of record: report exports in (a folder or an SFTP drop), import files out.

BlueCherry's status codes are set up per client and are not public: a client names them in
`[statuses.<source>]`. Its report headers are in mapping.py, read by file drops through the connector.
"""

from driftwatch.platforms import Platform

PLATFORM = Platform(
    "bluecherry",
    connector="driftwatch.connectors.bluecherry.connector:Connector",
    pusher="driftwatch.connectors.bluecherry.push:Pusher",
    system_of_record=True,
    stock_per_location=True,
)
