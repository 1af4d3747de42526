"""Klaviyo's REST API as the connector needs it: private-key auth, the `revision` header, cursor pages.

Facts from Klaviyo's OpenAPI spec (revision 2026-07-15): every request names a `revision`; lists page
with `page[cursor]` and a full `links.next` URI that disappears on the last page; errors are JSON:API
`errors[]`; each endpoint has a burst (per second) and a steady (per minute) fixed-window limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from driftwatch.connectors._http import HttpClient, HttpSettings, RateLimiter

REVISION = "2026-07-15"
MEDIA_TYPE = "application/vnd.api+json"
# Documented per-endpoint limits (x-klaviyo-ratelimit): bucket -> [(requests, seconds), ...].
RATE_LIMITS: dict[str, list[tuple[int, float]]] = {
    "profiles": [(75, 1.0), (750, 60.0)],
    "events": [(350, 1.0), (3500, 60.0)],
    "catalog": [(350, 1.0), (3500, 60.0)],
    "metrics": [(10, 1.0), (150, 60.0)],
}
BUCKETS = {
    "/api/profiles": "profiles",
    "/api/events": "events",
    "/api/catalog-variants": "catalog",
    "/api/metrics": "metrics",
}
PAGE_SIZES = {"profiles": 100, "events": 200, "catalog": 100}  # events: the spec says 1000, its text 200


def error_text(response: httpx.Response) -> str:
    """The first JSON:API error as `code: detail`, plus the parameter it names."""
    error = response.json()["errors"][0]
    parameter = (error.get("source") or {}).get("parameter")
    where = f" (parameter {parameter})" if parameter else ""
    return f"{error.get('code')}: {error.get('detail') or error.get('title')}{where}"


def bucket_of(path: str) -> str:
    return BUCKETS[path.split("?", 1)[0].removesuffix("/")]


def all_of(*conditions: str | None) -> str | None:
    """Klaviyo filter conditions joined with `and(...)`; None when there is nothing to filter."""
    present = [c for c in conditions if c]
    if len(present) > 1:
        return f"and({','.join(present)})"
    return present[0] if present else None


def after(field: str, since: datetime | None) -> str | None:
    """`greater-than(field,<datetime>)`: Klaviyo wants datetimes unquoted."""
    if since is None:
        return None
    return f"greater-than({field},{since.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')})"


def before(field: str, until: datetime | None) -> str | None:
    """`less-than(field,<datetime>)`."""
    if until is None:
        return None
    return f"less-than({field},{until.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')})"


class KlaviyoClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        revision: str = REVISION,
        settings: HttpSettings | None = None,
        rate_limits: Mapping[str, Sequence[Sequence[float]]] | None = None,
        page_size: int | None = None,
    ):
        limits = {**RATE_LIMITS, **(rate_limits or {})}
        self.page_size = page_size
        self.http = HttpClient(
            "klaviyo",
            base_url,
            settings=settings,
            headers={
                "Authorization": f"Klaviyo-API-Key {api_key}",
                "revision": revision,
                "Accept": MEDIA_TYPE,
            },
            secrets=[api_key],
            limiters={
                bucket: RateLimiter([(int(n), float(seconds)) for n, seconds in windows])
                for bucket, windows in limits.items()
            },
            error_text=error_text,
        )

    def close(self) -> None:
        self.http.close()

    def page(self, url: str, params: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], str | None]:
        """One page of a list: the document and the URL of the next page (None after the last)."""
        path = httpx.URL(url).path
        body = self.http.request_json("GET", url, params=params, bucket=bucket_of(path))
        return body, (body.get("links") or {}).get("next")

    def first_page_params(self, kind: str, **params: Any) -> dict[str, Any]:
        """The first page's query: the largest page the list allows (or the source's smaller `page_size`)."""
        size = min(PAGE_SIZES[kind], self.page_size or PAGE_SIZES[kind])
        return {"page[size]": size, **{k: v for k, v in params.items() if v is not None}}

    def metric_ids(self, names: Iterable[str]) -> dict[str, str]:
        """Metric id -> name for the named metrics the account has."""
        wanted, found = set(names), {}
        url: str | None = "/api/metrics"
        while url is not None:
            body, url = self.page(url)
            for metric in body["data"]:
                name = (metric.get("attributes") or {}).get("name")
                if name in wanted:
                    found[metric["id"]] = name
        return found
