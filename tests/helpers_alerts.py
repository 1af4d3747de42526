"""Findings frames in the engine's shape, for report and alert tests that do not need a full audit."""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import polars as pl
from aiosmtpd.controller import Controller

FINDINGS_SCHEMA = {
    "run_id": pl.String,
    "check_id": pl.String,
    "severity": pl.String,
    "source": pl.String,
    "target": pl.String,
    "entity": pl.String,
    "key": pl.String,
    "field": pl.String,
    "expected": pl.String,
    "actual": pl.String,
    "impact": pl.Decimal(18, 4),
    "currency": pl.String,
    "message": pl.String,
    "repair_action": pl.String,
    "fingerprint": pl.String,
    "status": pl.String,
    "acknowledged": pl.Boolean,
    "muted": pl.Boolean,
}

DAY0 = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)


def finding(
    check_id: str,
    target: str,
    key: str,
    *,
    field: str | None = None,
    severity: str = "high",
    expected: str | None = None,
    actual: str | None = None,
    impact: str | None = None,
    currency: str | None = "EUR",
    status: str = "new",
    message: str = "",
    run_id: str = "run-1",
) -> dict:
    fingerprint = hashlib.sha1(f"{check_id}|{target}|{key}|{field}".encode()).hexdigest()[:16]
    return {
        "run_id": run_id,
        "check_id": check_id,
        "severity": severity,
        "source": "bluecherry",
        "target": target,
        "entity": "products",
        "key": key,
        "field": field,
        "expected": expected,
        "actual": actual,
        "impact": Decimal(impact) if impact is not None else None,
        "currency": currency if impact is not None else None,
        "message": message or f"{field or 'record'} differs",
        "repair_action": "set_stock" if check_id == "stock_parity" else None,
        "fingerprint": fingerprint,
        "status": status,
        "acknowledged": False,
        "muted": False,
    }


def findings_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=FINDINGS_SCHEMA)


def day(n: int) -> datetime:
    return DAY0 + timedelta(days=n)


class SmtpSink:
    """A real SMTP server on loopback (aiosmtpd) that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd handler hook
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    def url(self, to: str) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=driftwatch@example.com&to={to}&mode=insecure"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]

    def __enter__(self) -> SmtpSink:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


class WebhookSink:
    """A real HTTP receiver on loopback; answers 500 to the first `fail_next` posts."""

    def __init__(self) -> None:
        self.payloads: list[dict] = []
        self.fail_next = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if sink.fail_next > 0:
                    sink.fail_next -= 1
                    self.send_response(500)
                else:
                    sink.payloads.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self._server.server_address[1]}/hooks/driftwatch"

    def titles(self) -> list[str]:
        return [p["title"] for p in self.payloads]

    def __enter__(self) -> WebhookSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
