"""Loopback simulators of the platforms' public APIs, for tests and benchmarks.

A simulator serves a dataset (entity -> canonical frame) as the platform's own records on 127.0.0.1 and
an ephemeral port. It enforces the platform's documented rate limits and can be told to misbehave the way
the real platform does (`sim.faults.set(...)`). Every request is logged for assertions.

A platform subclasses `Simulator`, sets `name` and `rate_limits`, and implements `handle` (and usually
`authenticate`, `bucket`, `error` and `limit_headers`):

    with KlaviyoSimulator({"customers": frame}) as sim:
        connector = Connector(sim.settings(), env=sim.env)
        ...
        assert sim.count(status=429) == 0
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlsplit

import polars as pl

from driftwatch.entities import ENTITIES
from driftwatch.errors import DataError

RetryAfterStyle = Literal["seconds", "fractional", "none"]
Windows = Sequence[tuple[int, float]]  # (requests, seconds) per fixed window


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body, parse_float=Decimal) if self.body else None


@dataclass
class Response:
    status: int = 200
    body: Any = None  # JSON-serialisable (Decimal and datetime allowed), or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass(frozen=True)
class Logged:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int


@dataclass
class Faults:
    """Switchable misbehaviour. Counters are consumed one response at a time."""

    rate_limit_storm: int = 0  # this many 429s, whatever the rate
    storm_retry_after: float | None = 1.0  # Retry-After on storm 429s; None: no header
    server_errors: int = 0  # this many 5xx
    server_error_status: int = 503
    timeouts: int = 0  # this many responses delayed by `timeout_delay` (set it past the client timeout)
    timeout_delay: float = 1.0
    truncated: int = 0  # this many JSON bodies cut in half
    expire_token_after: int | None = None  # OAuth platforms: the token dies after this many requests
    # this many error responses quote the request back, credentials and all, as a misconfigured gateway or a
    # debug page does: "platform" inside the platform's own error shape, "text" as a plain-text page
    echo_request: int = 0
    echo_format: Literal["platform", "text"] = "platform"
    unknown_enums: bool = False  # platforms serve enum values their documentation does not list
    between_pages: tuple[int, Callable[[Simulator], None]] | None = None  # (after page n, change the data)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set(self, **changes: Any) -> None:
        names = {f.name for f in fields(self) if not f.name.startswith("_")}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {sorted(names)}")
        with self._lock:
            for name, value in changes.items():
                setattr(self, name, value)

    def take(self, counter: str) -> bool:
        """Consume one unit of a counter fault; True if it fires for this response."""
        with self._lock:
            left = getattr(self, counter)
            if left > 0:
                setattr(self, counter, left - 1)
                return True
            return False


class FixedWindows:
    """The platform side of a rate limit: request counts per fixed window, as the platforms document."""

    def __init__(self, windows: Windows):
        self._windows = list(windows)
        self._start = time.monotonic()
        self._current = [(0, 0)] * len(self._windows)  # per window: (window number, requests counted in it)
        self._lock = threading.Lock()

    def hit(self) -> float | None:
        """Count one request; None if allowed, else the seconds until the full window resets."""
        with self._lock:
            elapsed = self._roll()
            waits = [
                (number + 1) * period - elapsed
                for (limit, period), (number, count) in zip(self._windows, self._current, strict=True)
                if count >= limit
            ]
            if waits:
                return max(waits)
            self._current = [(number, count + 1) for number, count in self._current]
            return None

    def status(self) -> list[tuple[int, int, float]]:
        """Per window: its limit, the requests left in it, and the seconds until it resets."""
        with self._lock:
            elapsed = self._roll()
            return [
                (limit, max(0, limit - count), (number + 1) * period - elapsed)
                for (limit, period), (number, count) in zip(self._windows, self._current, strict=True)
            ]

    def _roll(self) -> float:
        """Start a fresh count in every window whose period has passed; returns the time elapsed."""
        elapsed = time.monotonic() - self._start
        numbers = [int(elapsed // period) for _, period in self._windows]
        self._current = [
            (number, count if number == current else 0)
            for number, (current, count) in zip(numbers, self._current, strict=True)
        ]
        return elapsed


class Simulator:
    """Base of every platform simulator: server lifecycle, faults, rate limits, request log."""

    name: ClassVar[str]
    rate_limits: ClassVar[Mapping[str, Windows]] = {}  # bucket -> documented windows

    def __init__(
        self,
        dataset: Mapping[str, pl.DataFrame] | None = None,
        *,
        rate_limits: Mapping[str, Windows] | None = None,
        retry_after: RetryAfterStyle = "seconds",
        port: int = 0,
    ):
        self.port = port  # 0: any free port; a fixed one lets a benchmark serve the same base URL again
        self.dataset: dict[str, pl.DataFrame] = dict(dataset or {})
        self.faults = Faults()
        self.requests: list[Logged] = []
        self.retry_after = retry_after
        limits = self.rate_limits if rate_limits is None else rate_limits
        self._limiters = {bucket: FixedWindows(windows) for bucket, windows in limits.items()}
        self._pages_served = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @classmethod
    def from_snapshot_dir(cls, directory: Path, *, source: str | None = None, **kwargs: Any) -> Simulator:
        """A simulator serving `directory/<source>/<entity>.{csv,parquet,jsonl}` (a file-drop snapshot);
        `source` names one instance of the platform (default: the platform's own name)."""
        folder = Path(directory) / (source or cls.name)
        dataset = {}
        for entity in ENTITIES:
            for path in (folder / f"{entity}.{ext}" for ext in ("csv", "parquet", "jsonl")):
                if path.exists():
                    dataset[entity] = _load(path, entity)
                    break
        return cls(dataset, **kwargs)

    # --- what a platform subclass provides -------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def authenticate(self, request: Request) -> Response | None:
        """An error response when the request's credentials are missing or wrong."""
        return None

    def bucket(self, request: Request) -> str | None:
        """The rate-limit bucket a request counts against (a key of `rate_limits`), if any."""
        return None

    def error(self, status: int, message: str) -> Response:
        """An error response in the platform's own error shape."""
        return Response(status, {"error": message})

    def rate_limited(self, request: Request) -> Response:
        return self.error(429, "rate limited")

    def limit_headers(self, windows: list[tuple[int, int, float]]) -> dict[str, str]:
        """Headers describing the rate limit on a response that was not throttled (per window: limit,
        remaining, seconds to reset); none unless the platform documents some."""
        return {}

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Connector settings that point at this simulator."""
        return {"base_url": self.url, **overrides}

    @property
    def env(self) -> dict[str, str]:
        """Environment variables holding the credentials the simulator accepts."""
        return {}

    def page_served(self) -> None:
        """A subclass calls this after serving a page of a list, so `between_pages` faults can fire."""
        with self._lock:
            self._pages_served += 1
            served = self._pages_served
        hook = self.faults.between_pages
        if hook is not None and served == hook[0]:
            hook[1](self)

    # --- assertions -------------------------------------------------------------------------------------

    @property
    def pages_served(self) -> int:
        """List pages served so far (what `between_pages` counts): `between_pages=(sim.pages_served + 2, f)`
        changes the data after the second page of the next listing."""
        with self._lock:
            return self._pages_served

    def count(self, *, status: int | None = None, path: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (status is None or r.status == status) and (path is None or r.path.startswith(path))
            )

    # --- lifecycle ----------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not running: use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Simulator:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval, and tests start many simulators.
        serve = partial(self._server.serve_forever, poll_interval=0.05)
        threading.Thread(target=serve, name=f"{self.name}-simulator", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- one request ------------------------------------------------------------------------------------

    def _respond(self, request: Request) -> tuple[Response, float]:
        """The response and how long to hold it back (a timeout fault)."""
        delay = self.faults.timeout_delay if self.faults.take("timeouts") else 0.0
        response = self.authenticate(request) or self._limit(request)
        if response is None and self.faults.take("server_errors"):
            response = self.error(self.faults.server_error_status, "injected server error")
        if response is None:
            response = self.handle(request)
            limiter = self._limiters.get(self.bucket(request))
            if limiter is not None:
                response.headers.update(self.limit_headers(limiter.status()))
        if response.status >= 400 and self.faults.take("echo_request"):
            response = self._echoed(response, request)
        return response, delay

    def _echoed(self, response: Response, request: Request) -> Response:
        """The error, with the whole request quoted back, its headers first."""
        echo = (
            f"could not process headers={dict(request.headers)} request={request.method} {request.path}"
            f"?{request.query} body={request.body.decode(errors='replace')}"
        )
        if self.faults.echo_format == "text":
            return Response(response.status, echo.encode(), dict(response.headers), "text/plain")
        echoed = self.error(response.status, echo)
        echoed.headers.update(response.headers)
        return echoed

    def _limit(self, request: Request) -> Response | None:
        if self.faults.take("rate_limit_storm"):
            storm = self.faults.storm_retry_after  # sent as given: a test chooses it
            return self._too_many(request, None if storm is None else f"{storm:g}")
        bucket = self.bucket(request)
        wait = self._limiters[bucket].hit() if bucket in self._limiters else None
        if wait is None:
            return None
        if self.retry_after == "none":
            return self._too_many(request, None)
        return self._too_many(request, f"{wait:.3f}" if self.retry_after == "fractional" else str(math.ceil(wait)))

    def _too_many(self, request: Request, retry_after: str | None) -> Response:
        response = self.rate_limited(request)
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        return response

    def _encode(self, response: Response) -> bytes:
        if isinstance(response.body, bytes):
            return response.body
        if response.body is None:
            return b""
        payload = json.dumps(response.body, default=_json_default).encode()
        if self.faults.take("truncated"):
            return payload[: len(payload) // 2]
        return payload

    def _log(self, request: Request, status: int) -> None:
        with self._lock:
            self.requests.append(Logged(request.method, request.path, request.query, dict(request.headers), status))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)  # on the wire as a JSON number; clients parse numbers back as Decimal
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _load(path: Path, entity: str) -> pl.DataFrame:
    from driftwatch.normalize import coerce

    if path.suffix == ".parquet":
        frame = pl.read_parquet(path)
    elif path.suffix == ".jsonl":
        frame = pl.read_ndjson(path)
    else:
        frame = pl.read_csv(path, infer_schema=False)  # codes keep their leading zeros
    coerced = coerce(frame, entity, origin=str(path))
    if coerced.bad.height:
        raise DataError(f"{path}: {coerced.bad.height} problems with the canonical {entity} shape")
    return coerced.good


def _handler_for(simulator: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real platforms offer
        # Headers and body go out as separate writes; with Nagle's algorithm on, each response would wait
        # for the client's delayed ACK (~40 ms), a latency no real platform adds.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                self.command,
                parts.path,
                dict(parse_qsl(parts.query, keep_blank_values=True)),
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length) if length else b"",
            )
            response, delay = simulator._respond(request)
            simulator._log(request, response.status)
            body = simulator._encode(response)
            if delay:
                time.sleep(delay)
            try:
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                if body:
                    self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout fault): nothing to answer

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the request log is `simulator.requests`

    return Handler
