"""HTTP client for the Mirakl MMP seller (shop) API: the raw API key, both pagination styles, call ceilings.

Mirakl specifics this module owns:
- auth is the shop API key as the whole `Authorization` header (no `Bearer`);
- OF21, OR11 and IV01 page with `max`/`offset` and report `total_count`; TL02 pages with seek tokens
  (`limit`, `page_token`; every other parameter is ignored once a token is sent);
- every operation has a documented maximum call frequency, so each listing waits on its own limiter;
- errors come as `{"status": ..., "message": ...}` JSON, or as a non-JSON page from the edge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from driftwatch.connectors._http import HttpClient, HttpSettings, RateLimiter, error_excerpt
from driftwatch.errors import UserError

SOURCE = "mirakl"

# Documented maximum call frequencies (calls, seconds). OR11 counts a listing, not its pages; TL02 counts
# every call. SH21 and IV01 ("once per day") are called at most once per pull and not throttled here: a
# second pull the same day should not sleep until tomorrow.
CALL_LIMITS: dict[str, list[tuple[int, float]]] = {
    "OR11": [(1, 60.0)],
    "TL02": [(20, 60.0), (60, 3600.0)],
    "OF52": [(1, 60.0)],  # a differential offer export; a full one is once a day, which pulls never ask for
    "OF53": [(1, 10.0)],
}
# Mirakl counts a call when it arrives; a quarter second keeps jitter in our latency from crossing its window.
CALL_LIMIT_MARGIN = 0.25
OFFSET_PAGE_SIZE = 100  # max per page for offset listings
SEEK_PAGE_SIZE = 2000  # TL02's documented maximum `limit`


class MiraklClient:
    """One shop's API for one pull: `get` for a single call, `offset_page` and `seek_page` for one page of a
    listing. The limiters outlive it, so that consecutive pulls keep to the ceilings too."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        key_variable: str,
        limiters: Mapping[str, RateLimiter],
        settings: HttpSettings | None = None,
        shop_id: str | None = None,
        offset_page_size: int = OFFSET_PAGE_SIZE,
        seek_page_size: int = SEEK_PAGE_SIZE,
    ):
        self._key_variable = key_variable
        self._offset_page_size = offset_page_size
        self._seek_page_size = seek_page_size
        self._shop = {"shop_id": shop_id} if shop_id else {}
        self.http = HttpClient(
            SOURCE,
            base_url.rstrip("/"),
            settings=settings,
            headers={"Authorization": api_key, "Accept": "application/json"},
            secrets=[api_key],
            limiters=limiters,
            error_text=error_text,
            check=self._refuse_bad_key,
        )

    def __enter__(self) -> MiraklClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, limited_as: str | None = None) -> Any:
        """GET a JSON body; money stays exact (JSON numbers with a fraction become Decimal)."""
        return self.http.request_json("GET", path, params={**self._shop, **(params or {})}, bucket=limited_as)

    def post(self, path: str, body: Mapping[str, Any], *, limited_as: str | None = None) -> Any:
        """POST a JSON body; the answer's JSON."""
        return self.http.request_json("POST", path, params=self._shop, json=body, bucket=limited_as)

    def file(self, url: str) -> bytes:
        """A file Mirakl generated (an export chunk), by the URL it gave."""
        # The URL carries its own query (which file); parameters given here would replace it.
        return self.http.request("GET", httpx.URL(url).copy_merge_params(self._shop)).content

    def _refuse_bad_key(self, response: httpx.Response) -> None:
        if response.status_code in (401, 403):
            raise UserError(
                f"mirakl: the shop API key in ${self._key_variable} was refused "
                f"({response.status_code}: {error_excerpt(response, error_text)})"
            )

    def offset_page(
        self, path: str, items: str, params: Mapping[str, Any], offset: int, *, listing: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of an offset listing: its records and the listing's `total_count`.

        `listing` names the call-frequency ceiling that the first page of a listing counts against.
        """
        page = {**params, "max": self._offset_page_size, "offset": offset, "paginate": "true"}
        body = self.get(path, page, limited_as=listing if offset == 0 else None)
        return list(body.get(items) or ()), int(body.get("total_count") or 0)

    def seek_page(
        self, path: str, params: Mapping[str, Any], token: str | None, *, limited_as: str
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a seek listing and the next page's token (None after the last page)."""
        limit = self._seek_page_size
        query = {"limit": limit, "page_token": token} if token else {**params, "limit": limit}
        body = self.get(path, query, limited_as=limited_as)
        return list(body.get("data") or ()), body.get("next_page_token") or None


def call_limiters(overrides: Mapping[str, Sequence[Sequence[float]]] | None = None) -> dict[str, RateLimiter]:
    """One limiter per capped operation: the documented ceilings, or `overrides` ({op: [[calls, seconds]]})."""
    limits = {**CALL_LIMITS, **{op: [(int(n), float(s)) for n, s in w] for op, w in (overrides or {}).items()}}
    return {op: RateLimiter(windows, margin=CALL_LIMIT_MARGIN) for op, windows in limits.items()}


def error_text(response: httpx.Response) -> str:
    """Mirakl's `message`, or the body (a proxy's HTML page); the caller redacts it and cuts it short."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return response.text.strip()
