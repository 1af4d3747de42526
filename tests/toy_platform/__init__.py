"""A toy platform, registered the way a plugin package registers one: one folder and one `Platform`.

Its "API" is a JSON file (`path` setting) holding one stock figure per SKU, which is all a test of the
registry needs: the connector pulls it into canonical inventory, the pusher writes stock back.
"""

from driftwatch.platforms import Platform
from driftwatch.statuses import Vocabulary

PLATFORM = Platform(
    "toy",
    connector="toy_platform.connector:Connector",
    pusher="toy_platform.push:Pusher",
    vocabulary=Vocabulary(orders={"OPEN": "placed", "SENT": "shipped"}),
)
