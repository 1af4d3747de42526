"""A loopback Ometria Data API v2: contacts, orders and products read with `limit`/`offset`.

As Ometria documents: the `X-Ometria-Auth` key (403 "API key is not authorised to access this resource"
otherwise), at most 250 records a page, 4 requests a second on the Data API and 8 on `/v2/push`, and 429s
that carry no `Retry-After`. Records come in the order they were stored (Ometria's internal id), so a
record added while a client pages shows up on a later page.
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from driftwatch.connectors import _simulator as base
from driftwatch.connectors.ometria import mapping

API_KEY_ENV = "OMETRIA_API_KEY"
MAX_PAGE = 250
UNKNOWN_STATUS = "on_hold"  # what `unknown_enums` serves: a status the documented vocabulary lacks
ENTITIES_OF = {
    "/v2/contacts": ("customers",),
    "/v2/orders": ("orders", "order_lines"),
    "/v2/products": ("products", "inventory"),
}


class Simulator(base.Simulator):
    name = "ometria"
    rate_limits: ClassVar = {"read": [(4, 1.0)], "push": [(8, 1.0)]}

    def __init__(self, dataset: dict[str, pl.DataFrame] | None = None, *, api_key: str = "om-sim-key", **kwargs: Any):
        kwargs.setdefault("retry_after", "none")
        super().__init__(dataset, **kwargs)
        self.faults.set(storm_retry_after=None)  # the platform documents no Retry-After
        self.api_key = api_key
        self._cache: dict[str, tuple[tuple[int, ...], list[dict[str, Any]]]] = {}

    @property
    def env(self) -> dict[str, str]:
        return {API_KEY_ENV: self.api_key}

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return super().settings(api_key_env=API_KEY_ENV, **overrides)

    def authenticate(self, request: base.Request) -> base.Response | None:
        if request.headers.get("x-ometria-auth") != self.api_key:
            return base.Response(403, {"message": "API key is not authorised to access this resource"})
        return None

    def bucket(self, request: base.Request) -> str | None:
        return "push" if request.path.startswith("/v2/push") else "read"

    def rate_limited(self, request: base.Request) -> base.Response:
        return base.Response(429, {"message": "Too many requests: please reduce your rate"})

    def handle(self, request: base.Request) -> base.Response:
        if request.method != "GET" or request.path not in ENTITIES_OF:
            return base.Response(404, {"message": f"no such resource: {request.method} {request.path}"})
        try:
            limit = int(request.query.get("limit", 10))
            offset = int(request.query.get("offset", 0))
        except ValueError:
            return base.Response(400, {"message": "limit and offset must be whole numbers"})
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            return base.Response(400, {"message": f"limit must be between 1 and {MAX_PAGE}, offset at least 0"})
        page = self._records(request.path)[offset : offset + limit]
        if self.faults.unknown_enums and request.path == "/v2/orders":
            page = [{**r, "status": UNKNOWN_STATUS} for r in page]
        self.page_served()
        return base.Response(200, page)

    def _records(self, path: str) -> list[dict[str, Any]]:
        """The records of a resource, rebuilt only when a frame behind it was replaced."""
        entities = ENTITIES_OF[path]
        version = tuple(id(self.dataset.get(e)) for e in entities)
        cached = self._cache.get(path)
        if cached is None or cached[0] != version:
            frames = [self.dataset.get(e) for e in entities]
            builder = {
                "/v2/contacts": mapping.contacts_from_frame,
                "/v2/orders": mapping.orders_from_frames,
                "/v2/products": mapping.products_from_frames,
            }[path]
            cached = (version, list(builder(*frames)))
            self._cache[path] = cached
        return cached[1]
