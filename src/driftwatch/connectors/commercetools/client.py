"""The commercetools HTTP client: OAuth client credentials, query predicates, seek paging, error bodies.

Paging: offset paging stops at offset 10,000 and rescans from the start on every page, so every list is
read in id order instead (`sort=id asc`, `where=id > "<last id>"`, `withTotal=false`), page after page
until a page comes back short. The last id seen is the whole cursor, which makes a pull resumable and
immune to records inserted or updated while it runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import Any

import httpx

from driftwatch.connectors._http import HttpClient, HttpSettings, Retryable, error_excerpt, platform_error_text
from driftwatch.errors import UserError
from driftwatch.redaction import remember

MAX_LIMIT = 500  # the API refuses a larger page


def quote(value: str) -> str:
    """A string literal in a query predicate."""
    return json.dumps(value)


def id_after(last_id: str | None) -> str | None:
    return None if last_id is None else f"id > {quote(last_id)}"


def id_in(ids: Iterable[str]) -> str:
    return f"id in ({', '.join(map(quote, ids))})"


def error_text(response: httpx.Response) -> str:
    """The message of a commercetools ErrorResponse or AuthErrorResponse, with its error codes."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return platform_error_text(response)  # infrastructure in front of the API answers in HTML or text
    if not isinstance(body, dict):
        return platform_error_text(response)
    codes = sorted(
        {e.get("code") for e in body.get("errors") or [] if e.get("code")}
        | ({body["error"]} if body.get("error") else set())
    )
    message = body.get("error_description") or body.get("message") or platform_error_text(response)
    return f"{', '.join(codes)}: {message}" if codes else message


def _auth_error(response: httpx.Response) -> str | None:
    """The OAuth error code of a 401 ("invalid_token" when the access token expired or was revoked)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    return body.get("error") or next((e.get("code") for e in body.get("errors") or []), None)


class ClientCredentials(httpx.Auth):
    """OAuth 2 client credentials: fetches a token, renews it before it expires, and once more when the API
    answers 401 invalid_token (a token revoked, or expired early, in the middle of a pull)."""

    requires_response_body = True

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scopes: Iterable[str] = (),
        on_token: Callable[[str], None] = lambda token: None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._token_url = token_url
        self._basic = httpx.BasicAuth(client_id, client_secret)
        self._scope = " ".join(scopes)
        self._on_token = on_token
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token is None or self._clock() >= self._renew_at:
            self._accept((yield self._token_request()))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401 and _auth_error(response) == "invalid_token":
            self._accept((yield self._token_request()))
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request

    def _token_request(self) -> httpx.Request:
        form = {"grant_type": "client_credentials", **({"scope": self._scope} if self._scope else {})}
        request = httpx.Request("POST", self._token_url, data=form)
        return next(self._basic.auth_flow(request))

    def _accept(self, response: httpx.Response) -> None:
        # The token endpoint's answer may echo the request, Basic credentials included: redacted, then cut.
        detail = error_excerpt(response, error_text) if response.status_code != 200 else ""
        if response.status_code >= 500 or response.status_code == 429:
            raise Retryable(f"commercetools: token endpoint -> {response.status_code}: {detail}")
        if response.status_code != 200:
            raise UserError(
                f"commercetools: the token endpoint refused the API client ({response.status_code} "
                f"{detail}); check the client id, secret and scopes"
            )
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Retryable("commercetools: token endpoint -> unreadable JSON") from None
        self._token = body["access_token"]
        self._on_token(self._token)
        lifetime = float(body.get("expires_in", 0))
        # Renew with a tenth of the lifetime to spare (at most five minutes), never mid-request.
        self._renew_at = self._clock() + lifetime - min(lifetime / 10, 300.0)


class CommercetoolsClient:
    """Queries of one commercetools project."""

    def __init__(
        self,
        *,
        api_url: str,
        auth_url: str,
        project_key: str,
        client_id: str,
        client_secret: str,
        scopes: Iterable[str] = (),
        settings: HttpSettings | None = None,
    ):
        self.project_key = project_key
        auth = ClientCredentials(
            f"{auth_url.rstrip('/')}/oauth/token",
            client_id,
            client_secret,
            scopes=scopes,
            on_token=remember,
        )
        self.http = HttpClient(
            "commercetools",
            api_url.rstrip("/"),
            settings=settings,
            auth=auth,
            secrets=(client_secret,),
            error_text=error_text,
        )

    def close(self) -> None:
        self.http.close()

    def project(self) -> dict[str, Any] | None:
        """The project's settings; None when the token lacks the scope to read them."""
        response = self.http.request("GET", f"/{self.project_key}", expect=(403,))
        return None if response.status_code == 403 else response.json()

    def query(
        self,
        resource: str,
        *,
        where: Iterable[str | None] = (),
        limit: int = MAX_LIMIT,
        params: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """One page of `resource` in id order; predicates are joined with `and`."""
        predicates = [p for p in where if p]
        query: dict[str, Any] = {"sort": "id asc", "limit": str(limit), "withTotal": "false", **(params or {})}
        if predicates:
            query["where"] = " and ".join(predicates)
        body = self.http.request_json("GET", f"/{self.project_key}/{resource}", params=query)
        return body["results"]

    def pages(
        self, resource: str, *, where: Iterable[str] = (), limit: int = MAX_LIMIT
    ) -> Generator[list[dict[str, Any]], None, None]:
        """Every page of `resource` matching `where`, in id order."""
        fixed, after = list(where), None
        while True:
            page = self.query(resource, where=[*fixed, id_after(after)], limit=limit)
            if page:
                yield page
            if len(page) < limit:
                return
            after = page[-1]["id"]
