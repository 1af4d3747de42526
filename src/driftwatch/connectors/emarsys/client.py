"""Emarsys Core API: WSSE (v2) or OAuth client credentials (v3), and errors that arrive inside HTTP 200.

Every Emarsys response is `{"replyCode", "replyText", "data"}`; a non-zero replyCode is an error whatever
the HTTP status, so the client judges the body, not the status alone. Contacts are listed with
`contact/query` (offset and limit) and read with `contact/getdata`, at most 1,000 keys a call. A 429
carries `X-RateLimit-Reset` (a unix time) and no `Retry-After`; the client waits until that time, and its
own limiter keeps it under the documented 1,000 requests a minute per API user.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Generator, Iterable, Mapping
from datetime import UTC, datetime
from secrets import token_hex
from typing import Any

import httpx

from driftwatch.connectors._http import ERROR_TEXT_LIMIT, HttpClient, HttpSettings, RateLimiter, Retryable
from driftwatch.errors import UserError
from driftwatch.redaction import excerpt, remember

BASE_URL = "https://api.emarsys.net"
TOKEN_URL = "https://auth.emarsys.net/oauth2/token"
BATCH = 1000  # contacts per getdata / update call, as documented
REQUESTS_PER_MINUTE = 1000


def wsse_header(username: str, secret: str, *, nonce: str | None = None, created: str | None = None) -> str:
    """`X-WSSE`: PasswordDigest is base64 of the *hex* SHA-1 of nonce + created + secret."""
    nonce = nonce or token_hex(16)
    created = created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = base64.b64encode(hashlib.sha1(f"{nonce}{created}{secret}".encode()).hexdigest().encode()).decode()
    return f'UsernameToken Username="{username}", PasswordDigest="{digest}", Nonce="{nonce}", Created="{created}"'


class WsseAuth(httpx.Auth):
    """A fresh nonce and timestamp on every request, retries included (Emarsys refuses a replayed nonce)."""

    def __init__(self, username: str, secret: str):
        self._username, self._secret = username, secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["X-WSSE"] = wsse_header(self._username, self._secret)
        yield request


class OAuthClientCredentials(httpx.Auth):
    """A bearer token from the token endpoint, fetched on first use and again whenever the API answers 401."""

    requires_response_body = True

    def __init__(self, token_url: str, client_id: str, client_secret: str):
        self._token_url = token_url
        self._basic = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        remember(client_secret)
        self._token: str | None = None
        self._lock = threading.Lock()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token is None:
            self._store((yield self._token_request()))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:  # expired or revoked: one new token, one more try
            self._store((yield self._token_request()))
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request

    def _token_request(self) -> httpx.Request:
        return httpx.Request(
            "POST",
            self._token_url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": self._basic},
        )

    def _store(self, response: httpx.Response) -> None:
        if response.status_code == 429 or response.status_code >= 500:
            raise Retryable(f"emarsys: the token endpoint answered {response.status_code}")
        if response.status_code != 200:
            detail = excerpt(response.text, ERROR_TEXT_LIMIT)
            raise UserError(
                f"emarsys: the token endpoint refused the client credentials ({response.status_code}: {detail})"
            )
        try:
            token = response.json()["access_token"]
        except (ValueError, KeyError, TypeError):  # an answer cut short, or not the documented shape
            raise Retryable("emarsys: the token endpoint answered without a readable access token") from None
        with self._lock:
            self._token = token


def error_text(response: httpx.Response) -> str:
    """Emarsys' replyCode and replyText, else the body; the caller redacts it and cuts it short."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    if isinstance(body, dict) and "replyCode" in body:
        return f"replyCode {body['replyCode']}: {body.get('replyText')}"
    return str(body)


def _judge(response: httpx.Response) -> None:
    """Emarsys' own verdict, before the status is judged: a replyCode inside HTTP 200, a 429's reset time."""
    if response.status_code == 429:
        raise Retryable(f"emarsys: {response.request.url.path}: 429 rate limited", _until_reset(response))
    if not response.is_success or "json" not in response.headers.get("Content-Type", ""):
        return
    try:
        body = response.json()
    except ValueError:
        return  # unreadable (cut short): request_json retries it
    if isinstance(body, dict) and body.get("replyCode", 0) != 0:
        raise UserError(
            f"emarsys: {response.request.method} {response.request.url.path} -> {response.status_code}, "
            f"replyCode {body['replyCode']}: {excerpt(body.get('replyText'), ERROR_TEXT_LIMIT)}"
        )


def _until_reset(response: httpx.Response) -> float | None:
    """Seconds until `X-RateLimit-Reset` (a unix time); None when absent or unreadable: then back off."""
    try:
        return max(0.0, float(response.headers["X-RateLimit-Reset"]) - time.time())
    except (KeyError, ValueError):
        return None


class EmarsysClient:
    def __init__(
        self,
        base_url: str,
        auth: httpx.Auth,
        *,
        api_path: str,
        secrets: Iterable[str],
        settings: Mapping[str, Any],
        http_settings: HttpSettings,
    ):
        self.api_path = api_path
        limiter = RateLimiter([(int(settings.get("requests_per_minute", REQUESTS_PER_MINUTE)), 60.0)])
        self.http = HttpClient(
            "emarsys",
            base_url,
            settings=http_settings,
            auth=auth,
            secrets=secrets,
            limiters={"api": limiter},
            error_text=error_text,
            check=_judge,
        )
        # The catalogue feed lives on the retailer's own host: it must never see the API credentials.
        self.files = HttpClient("emarsys", base_url, settings=http_settings)

    def close(self) -> None:
        self.http.close()
        self.files.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.http.request_json(method, f"{self.api_path}/{path}", bucket="api", **kwargs)["data"]

    def contact_ids(self, field_id: str, offset: int, limit: int) -> list[str]:
        """Ids of the contacts whose field `field_id` is filled, in Emarsys' order."""
        data = self._call(
            "GET",
            "contact/query/",
            params={"return": field_id, "excludeempty": "true", "offset": offset, "limit": limit},
        )
        return [str(row["id"]) for row in (data or {}).get("result") or []]

    def getdata(self, ids: list[str], fields: Iterable[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The contacts with these ids (at most 1,000), and the per-key errors Emarsys reports beside them."""
        if len(ids) > BATCH:
            raise ValueError(f"getdata takes at most {BATCH} keys, not {len(ids)}")
        data = self._call("POST", "contact/getdata", json={"keyId": "id", "keyValues": ids, "fields": list(fields)})
        # Every key failing gives `result: false`, not an empty list.
        return list(data.get("result") or []), list(data.get("errors") or [])

    def get_text(self, url: str) -> str:
        """A file the platform imports (the catalogue feed), fetched with the same retry policy."""
        return self.files.request("GET", url).text
