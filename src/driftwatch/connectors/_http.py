"""The one HTTP layer every connector uses: retries, rate limiting and secret redaction.

Every platform has its own auth, pagination and error bodies (those live in each platform's client.py),
but the failure modes of talking to a SaaS API are shared: transient 5xx and timeouts, 429s with or
without `Retry-After`, and credentials that must never reach a log line or an error message.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from driftwatch.errors import IncompleteError, UserError
from driftwatch.redaction import excerpt, redact, remember

log = logging.getLogger("driftwatch.connectors")

RETRY_STATUSES = frozenset({500, 502, 503, 504, 524})
ERROR_TEXT_LIMIT = 300  # characters of a platform's error text an error message quotes


@dataclass(frozen=True)
class HttpSettings:
    """Timings of one client; read from a source's settings so tests can make them tiny."""

    timeout: float = 30.0
    max_attempts: int = 6
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 300.0

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> HttpSettings:
        fields = cls.__dataclass_fields__
        return cls(**{name: type(field.default)(settings[name]) for name, field in fields.items() if name in settings})


class Retryable(Exception):
    """A response worth asking again for; `retry_after` (seconds) when the platform said how long to wait."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RateLimiter:
    """Blocks until one more request fits in every window, e.g. Klaviyo's burst (per second) and steady (per
    minute) limits.

    Platforms count requests in fixed windows that we cannot see, so the limiter keeps the times of the last
    requests and never lets more than `limit` of them fall within any `period` (plus `margin` seconds). A
    platform counts a request when it *arrives*, which is some time after we start sending it (longer on a
    busy machine or a slow connection): so a request sent through `turn()` counts from when its answer came
    back, the latest it can have arrived. The next turn then starts a full period after the platform counted
    the last one, whatever the latency, and none of its windows can be exceeded. Requests may run at once
    from several threads (one limiter per bucket, shared): a turn that would depend on a request still
    waiting for its answer waits for that answer first.
    """

    def __init__(self, windows: Sequence[tuple[int, float]], *, margin: float = 0.05):
        if not windows:
            raise ValueError("a rate limiter needs at least one (limit, period) window")
        self._windows = [(limit, period + margin) for limit, period in windows]
        self._sent: deque[list[float]] = deque(maxlen=max(limit for limit, _ in windows))
        self._in_flight: set[int] = set()  # ids of the stamps whose answer has not come back
        self._answered = threading.Condition(threading.Lock())

    def acquire(self, *, answered_later: bool = False) -> list[float]:
        """Wait for a turn; returns its time stamp (a one-item list, moved on by `turn` when the answer came;
        `answered_later`: until then, no turn that depends on it is granted)."""
        with self._answered:
            while True:
                if self._pending_limit():
                    self._answered.wait()
                elif (wait := self._wait(time.monotonic())) > 0:
                    time.sleep(wait)  # holding the lock: the threads behind wait their turn in order
                else:
                    break
            stamp = [time.monotonic()]
            self._sent.append(stamp)
            if answered_later:
                self._in_flight.add(id(stamp))
            return stamp

    @contextmanager
    def turn(self) -> Iterator[None]:
        """One request's turn: waits for it, and counts the request from when the block ends (its answer)."""
        stamp = self.acquire(answered_later=True)
        try:
            yield
        finally:
            with self._answered:
                stamp[0] = time.monotonic()
                self._in_flight.discard(id(stamp))
                self._answered.notify_all()

    def _pending_limit(self) -> bool:
        """Whether a window's limiting request (the `limit`-th last) has not been answered yet."""
        return any(len(self._sent) >= limit and id(self._sent[-limit]) in self._in_flight for limit, _ in self._windows)

    def _wait(self, now: float) -> float:
        waits = [self._sent[-limit][0] + period - now for limit, period in self._windows if len(self._sent) >= limit]
        return max(waits, default=0.0)


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: either a number of seconds or an HTTP-date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def platform_error_text(response: httpx.Response) -> str:
    """The default error text: the body. Platform clients pass their own extractor. The caller redacts it and
    cuts it short (`excerpt`), in that order: a secret straddling a cut would otherwise leave its start."""
    return response.text.strip() or response.reason_phrase


def error_excerpt(response: httpx.Response, error_text: Callable[[httpx.Response], str] = platform_error_text) -> str:
    """What a message quotes of an error response: the platform's own words (`error_text`), else the body when
    it is not in the documented shape, redacted and then cut to ERROR_TEXT_LIMIT characters."""
    try:
        text = error_text(response)
    except (ValueError, KeyError, IndexError, TypeError):
        text = platform_error_text(response)  # an error body not in the platform's documented shape
    return excerpt(text, ERROR_TEXT_LIMIT)


@dataclass(frozen=True)
class _Call:
    method: str
    url: str
    bucket: str | None
    expected: frozenset[int]
    once: bool
    kwargs: dict[str, Any]


class HttpClient:
    """An httpx.Client with the shared retry, rate-limit and redaction policy.

    `secret_params` names query parameters that carry credentials: they are stripped from every URL we
    print. Header and parameter *values* passed in `secrets` are remembered by `driftwatch.redaction`, so
    they are redacted from every message, log line and stored text.
    `limiters` maps a bucket name (e.g. "profiles") to the limiter that a request naming it waits on.
    `error_text` extracts the platform's own error message from an error response.
    `check` sees every response before the status is judged; it may raise `Retryable` (e.g. an error inside
    an HTTP 200) or `UserError`.
    """

    def __init__(
        self,
        source: str,
        base_url: str,
        *,
        settings: HttpSettings | None = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        secrets: Iterable[str] = (),
        secret_params: Iterable[str] = (),
        limiters: Mapping[str, RateLimiter] | None = None,
        error_text: Callable[[httpx.Response], str] = platform_error_text,
        check: Callable[[httpx.Response], None] | None = None,
    ):
        self.source = source
        self.settings = settings or HttpSettings()
        for secret in secrets:
            remember(secret)
        self._secret_params = {p.lower() for p in secret_params}
        self._limiters = dict(limiters or {})
        self._error_text = error_text
        self._check = check
        self._http = httpx.Client(
            base_url=base_url, headers=dict(headers or {}), auth=auth, timeout=self.settings.timeout
        )

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        bucket: str | None = None,
        expect: Iterable[int] = (),
        once: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request, retried as the policy says. Statuses in `expect` come back instead of raising.

        `once` marks a write the platform would apply twice if sent twice: it is retried only when it surely
        never arrived (a 429, a refused connection); after a timeout or a 5xx it may have been applied, so
        that is an IncompleteError for the caller's journal to settle, never a second send."""
        call = _Call(method, url, bucket, frozenset(expect), once, kwargs)
        return self._retrying()(self._attempt, call)

    def request_json(
        self,
        method: str,
        url: str,
        *,
        bucket: str | None = None,
        expect: Iterable[int] = (),
        once: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Like `request`, and a body that is not valid JSON (a truncated response) is retried too.
        JSON numbers with a fraction come back as Decimal: money stays exact."""
        call = _Call(method, url, bucket, frozenset(expect), once, kwargs)
        return self._retrying()(self._attempt_json, call)

    def _attempt_json(self, call: _Call) -> Any:
        response = self._attempt(call)
        if not response.content:
            return None
        try:
            return response.json(parse_float=Decimal)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise self._transient(call, f"{self._where(response.request)}: unreadable JSON ({error})") from None

    def _attempt(self, call: _Call) -> httpx.Response:
        request = self._http.build_request(call.method, call.url, **call.kwargs)
        with self._limiters[call.bucket].turn() if call.bucket is not None else nullcontext():
            response = self._send(call, request)
        if self._check is not None:
            self._check(response)
        if response.status_code in call.expected or response.is_success:
            return response
        if response.status_code in RETRY_STATUSES and call.once:
            raise self._transient(call, f"{self._where(request)} -> {response.status_code}")
        return self._fail(response)

    def _send(self, call: _Call, request: httpx.Request) -> httpx.Response:
        try:
            return self._http.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise Retryable(f"{self._where(request)}: {excerpt(error, ERROR_TEXT_LIMIT)}") from None  # never sent
        except httpx.TimeoutException:
            message = f"{self._where(request)}: timed out after {self.settings.timeout:g}s"
            raise self._transient(call, message) from None
        except httpx.TransportError as error:
            raise self._transient(call, f"{self._where(request)}: {excerpt(error, ERROR_TEXT_LIMIT)}") from None

    def _transient(self, call: _Call, message: str) -> Exception:
        """A failure after which the request may have been applied: retried unless it must be sent once."""
        if call.once:
            return IncompleteError(f"{message}; not sent again, as it may already have been applied")
        return Retryable(message)

    def _fail(self, response: httpx.Response) -> httpx.Response:
        where = self._where(response.request)
        status = response.status_code
        if status == 429:
            raise Retryable(f"{where}: 429 rate limited", retry_after_seconds(response.headers.get("Retry-After")))
        message = f"{where} -> {status}: {error_excerpt(response, self._error_text)}"
        if status in RETRY_STATUSES:
            raise Retryable(message, retry_after_seconds(response.headers.get("Retry-After")))
        raise UserError(message)

    def _retrying(self) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(Retryable),
            before_sleep=self._log_retry,
            retry_error_callback=self._give_up,
        )

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, Retryable) and error.retry_after is not None:
            return min(error.retry_after, self.settings.max_retry_after)
        # Full jitter: clients retrying together spread out instead of hitting the platform in step.
        ceiling = min(self.settings.backoff_max, self.settings.backoff_initial * 2 ** (state.attempt_number - 1))
        return random.uniform(0, ceiling)

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s (attempt %d, retrying in %.2fs)", error, state.attempt_number, wait)

    def _give_up(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        raise IncompleteError(f"{self.source}: gave up after {state.attempt_number} attempts: {error}") from None

    def _where(self, request: httpx.Request) -> str:
        """METHOD URL with credential parameters removed, for messages."""
        parts = urlsplit(str(request.url))
        query = "&".join(
            pair for pair in parts.query.split("&") if pair and pair.split("=", 1)[0].lower() not in self._secret_params
        )
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
        return f"{self.source}: {request.method} {redact(url)}"
