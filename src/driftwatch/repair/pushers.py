"""Building the push side of a source, as repair sees it.

Each platform registers a `Pusher` (see `driftwatch.push` for the protocol and `driftwatch.platforms` for
the registry): it executes a batch of actions in that platform's own bulk form and limits, and reads back
what the platform holds for them (to settle actions a crash left in doubt, and to verify a repair).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from driftwatch.config import Config
from driftwatch.locations import work_dir
from driftwatch.push import Pusher


def pusher_for(source: str, cfg: Config, *, env: Mapping[str, str] | None = None, **options: Any) -> Pusher:
    """Build the pusher of a source (an instance of a platform) from its `[sources.<source>]` settings,
    with its own credentials."""
    pusher = cfg.platform(source).load_pusher()
    kwargs: dict[str, Any] = {"env": env} if env is not None else {}
    # A pusher that turns a canonical status back into the platform's own needs the user's mapping too; one
    # that writes files (import files for an ERP) keeps them in the store's working folder unless told.
    return pusher(
        cfg.source(source),
        source=source,
        status_map=cfg.status_map(source),
        work_dir=work_dir(cfg.store_path),
        **kwargs,
        **options,
    )
