"""Ometria Data API v2: `X-Ometria-Auth` key, offset paging, the account's request rate.

Reads page with `limit` (at most 250) and `offset`, in Ometria's default order (its internal id), so a
record inserted while paging lands on a later page instead of shifting the ones not yet read (ordering by
`timestamp_update` would move a record updated mid-pull past the cursor and skip another). 429s carry no
`Retry-After`: the shared layer backs off, and the client-side limiter keeps a pull under the documented
rate (4 requests a second on the Data API, 8 on `/v2/push`) so that it sees none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from driftwatch.connectors._http import HttpClient, HttpSettings, RateLimiter
from driftwatch.errors import UserError

BASE_URL = "https://api.ometria.com"
PAGE_SIZE = 250
READ_RATE = 4
PUSH_RATE = 8
PATHS = {"contact": "/v2/contacts", "order": "/v2/orders", "product": "/v2/products"}


def error_text(response: httpx.Response) -> str:
    """Ometria's message (`message` or `error`), else the body; the caller redacts it and cuts it short."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)
    return str(body)


def _per_second(settings: Mapping[str, Any], key: str, default: int) -> int:
    value = settings.get(key, default)
    if not isinstance(value, int) or value < 1:
        raise UserError(f"sources.ometria.{key}: expected a whole number of requests a second (>= 1), not {value!r}")
    return value


class OmetriaClient:
    def __init__(self, base_url: str, api_key: str, settings: Mapping[str, Any], http_settings: HttpSettings):
        self.page_size = min(int(settings.get("page_size", PAGE_SIZE)), PAGE_SIZE)
        limiters = {
            "read": RateLimiter([(_per_second(settings, "read_rate", READ_RATE), 1.0)]),
            "push": RateLimiter([(_per_second(settings, "push_rate", PUSH_RATE), 1.0)]),
        }
        self.http = HttpClient(
            "ometria",
            base_url,
            settings=http_settings,
            headers={"X-Ometria-Auth": api_key, "Accept": "application/json"},
            secrets=[api_key],
            limiters=limiters,
            error_text=error_text,
        )

    def close(self) -> None:
        self.http.close()

    def page(self, record_type: str, offset: int) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": self.page_size, "offset": offset}
        if record_type == "product":
            params["includeVariants"] = "true"
        return self.http.request_json("GET", PATHS[record_type], params=params, bucket="read") or []
