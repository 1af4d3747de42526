"""No credential ever leaves driftwatch: the matrix.

A canary secret is set in the environment variable of every connector (Klaviyo's, Mirakl's and Ometria's API
keys, commercetools' and Emarsys' client secrets, Emarsys' WSSE secret, BlueCherry's SFTP password) and of
the alert destinations (a password in an apprise URL). Every connector then fails every way it can against
its loopback simulator: its credentials refused (401), a 500, a timeout, a malformed body; and every error
answer quotes the request back, credentials included, as a misconfigured gateway does, in the platform's
error shape or as a plain-text page. The nightly job runs through all of it (pull, audit, report, alerts,
one destination failing), then exports, and every platform's push side is applied against the same failures.

The canary, in clear or in base64 at any offset, must appear nowhere: stdout, stderr, log records, any
text in the store, any file written (reports, exports, plans, working folders, crash reports), the alert
payloads received.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from helpers_alerts import WebhookSink, free_port
from sftp_server import SftpServer

from driftwatch.cli import run_cli
from driftwatch.normalize import coerce
from driftwatch.simulators.commercetools import CommercetoolsSimulator
from driftwatch.simulators.emarsys import EmarsysSimulator
from driftwatch.simulators.klaviyo import KlaviyoSimulator
from driftwatch.simulators.mirakl import MiraklSimulator
from driftwatch.simulators.ometria import OmetriaSimulator

CANARY = f"canary-{secrets.token_hex(16)}"
WRONG = f"refused-{secrets.token_hex(8)}"  # what a simulator accepts when the canary is to be refused
HTTP = {"timeout": 10.0, "max_attempts": 2, "backoff_initial": 0.001, "backoff_max": 0.01, "max_retry_after": 0.01}
NOW = datetime.now(UTC).replace(microsecond=0)
UNLIMITED = {op: [[1000, 1.0]] for op in ("OR11", "TL02", "OF24", "STO01", "OF02", "OF03", "STO02", "STO03")}


@dataclass(frozen=True)
class Failure:
    refused: bool = False  # the platform refuses the canary (401, 403)
    faults: tuple[tuple[str, Any], ...] = ()
    timeout: float = HTTP["timeout"]  # only a timeout's test waits less than the platform takes


FAILURES = {
    "401 echoing the request": Failure(refused=True, faults=(("echo_request", 1000),)),
    "500 echoing the request": Failure(faults=(("server_errors", 1000), ("server_error_status", 500),
                                               ("echo_request", 1000))),
    "500 echoing the request as text": Failure(faults=(("server_errors", 1000), ("server_error_status", 500),
                                                       ("echo_request", 1000), ("echo_format", "text"))),
    "timeout": Failure(faults=(("timeouts", 1000), ("timeout_delay", 0.8)), timeout=0.3),
    "malformed body": Failure(faults=(("truncated", 1000),)),
}  # fmt: skip


def forms(secret: str) -> list[bytes]:
    """The canary as it could leak: in clear, and in base64 at each offset a longer encoded text can put it
    at (inside an Authorization: Basic header after the client id), less the edge characters it shares."""
    found = [secret.encode()]
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            found.append(encode(b"x" * offset + secret.encode())[offset + 2 : -3])
    return found


def leaks(data: bytes | str) -> list[bytes]:
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    return [form for form in forms(CANARY) if form in raw]


def test_the_leak_detector_itself_finds_the_canary_in_clear_and_encoded():
    assert leaks(f"x {CANARY} y")
    for client in ("", "c", "id", "client-7"):
        assert leaks(f"Authorization: Basic {base64.b64encode(f'{client}:{CANARY}'.encode()).decode()}")
    assert not leaks("nothing here")


# --- the world the nightly job runs against ---------------------------------------------------------------


def frame(entity: str, rows: list[dict]) -> pl.DataFrame:
    coerced = coerce(pl.DataFrame(rows, schema=dict.fromkeys(rows[0], pl.String)), entity)
    assert coerced.bad.height == 0, coerced.bad
    return coerced.good


def dataset() -> dict[str, pl.DataFrame]:
    products = [{"sku": f"P{i}", "name": f"Shirt {i}", "price": "10.00", "currency": "EUR", "status": "active"}
                for i in range(3)]  # fmt: skip
    return {
        "products": frame("products", products),
        "inventory": frame("inventory", [{"sku": f"P{i}", "location": "*", "available": "4"} for i in range(3)]),
        "customers": frame("customers", [{"customer_id": "C1", "email": "ann@example.com", "email_consent": "true"}]),
    }


def write_drops(root: Path) -> tuple[Path, Path]:
    """The ERP's exports (served over SFTP) and a drop of one more marketplace that has drifted from them: the
    audit finds drift, so the alert destinations have something to hear."""
    exports = root / "exports"
    exports.mkdir()
    (exports / "products.csv").write_text("sku,name,price,currency,status\nP0,Shirt,10.00,EUR,active\n")
    (exports / "inventory.csv").write_text("sku,location,on_hand,allocated,safety_stock\nP0,WH1,5,0,0\n")
    drop = root / "drop"
    for source, files in {
        "bluecherry": {"products.csv": "sku,name,price,currency,status\nP0,Shirt,10.00,EUR,active\n"},
        "mirakl_drop": {"products.csv": "sku,name,price,currency,status\nP0,Shirt,12.00,EUR,active\n",
                        "inventory.csv": "sku,location,available\nP0,*,9\n"},
    }.items():  # fmt: skip
        (drop / source).mkdir(parents=True)
        for name, text in files.items():
            (drop / source / name).write_text(text)
        (drop / source / "_manifest.json").write_text(json.dumps({"captured_at": NOW.isoformat()}))
    return exports, drop


class World:
    """Every platform's simulator and the SFTP drop, each taking the canary as its credential (or refusing
    it), with the failure's faults set."""

    def __init__(self, failure: Failure, root: Path):
        accepted = WRONG if failure.refused else CANARY
        data = dataset()
        self.sims = {
            "klaviyo": KlaviyoSimulator(data, api_key=accepted),
            "mirakl": MiraklSimulator(data, api_key=accepted, rate_limits={}),
            "ometria": OmetriaSimulator(data, api_key=accepted, rate_limits={}),
            "commercetools": CommercetoolsSimulator(data, client_id="driftwatch-matrix", client_secret=accepted),
            "emarsys": EmarsysSimulator(data, rate_limits={}),
        }
        emarsys = self.sims["emarsys"]
        emarsys.credentials.update(EMARSYS_SECRET=accepted, EMARSYS_CLIENT_SECRET=accepted)
        self.exports, self.drop = write_drops(root)
        self.sftp = SftpServer(self.exports, "bc", accepted)
        self.failure = failure
        self.root = root

    def __enter__(self) -> World:
        for sim in self.sims.values():
            sim.__enter__()
            sim.faults.set(**dict(self.failure.faults))
        self.sftp.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sftp.__exit__(*exc)
        for sim in self.sims.values():
            sim.__exit__(*exc)

    def env(self, webhook: WebhookSink) -> dict[str, str]:
        port = webhook.url.split(":")[2].split("/")[0]
        return {
            "KLAVIYO_API_KEY": CANARY,
            "MIRAKL_API_KEY": CANARY,
            "OMETRIA_API_KEY": CANARY,
            "CTP_CLIENT_ID": "driftwatch-matrix",
            "CTP_CLIENT_SECRET": CANARY,
            "EMARSYS_USERNAME": self.sims["emarsys"].credentials["EMARSYS_USERNAME"],
            "EMARSYS_SECRET": CANARY,
            "EMARSYS_CLIENT_ID": self.sims["emarsys"].credentials["EMARSYS_CLIENT_ID"],
            "EMARSYS_CLIENT_SECRET": CANARY,
            "BLUECHERRY_SFTP_PASSWORD": CANARY,
            "ALERT_WEBHOOK": f"json://driftwatch:{CANARY}@127.0.0.1:{port}/hooks/driftwatch",
            "ALERT_WEBHOOK_DOWN": f"json://driftwatch:{CANARY}@127.0.0.1:{free_port()}/hooks/down",
        }

    def config(self) -> Path:
        http = {**HTTP, "timeout": self.failure.timeout}
        emarsys = self.sims["emarsys"].settings(**http)
        sources = {
            "bluecherry": {"sftp_url": self.sftp.url, "sftp_password_env": "BLUECHERRY_SFTP_PASSWORD"},
            "klaviyo": self.sims["klaviyo"].settings(**http),
            "mirakl": self.sims["mirakl"].settings(**http, call_limits=UNLIMITED),
            "ometria": self.sims["ometria"].settings(**http),
            "commercetools": self.sims["commercetools"].settings(**http),
            "emarsys": {**emarsys, "auth": "oauth"},
            "emarsys_wsse": {**emarsys, "kind": "emarsys", "auth": "wsse"},
            "mirakl_drop": {"kind": "mirakl"},
        }
        text = _toml(
            {
                "store": {"path": "driftwatch.duckdb"},
                "sources": sources,
                "report": {"out_dir": "reports"},
                "alerts": {
                    "retry_attempts": 1,
                    "retry_wait_seconds": 0,
                    "routes": [{"name": "ops", "url_env": ["ALERT_WEBHOOK", "ALERT_WEBHOOK_DOWN"]}],
                },
            }
        )
        path = self.root / "driftwatch.toml"
        path.write_text(text)
        return path


def _toml(value: dict) -> str:
    import tomli_w

    return tomli_w.dumps(value)


PUSHED = {  # one action per platform with a push side that talks to an API, each reading the platform first
    "klaviyo": ("set_stock", "P0", "available", "3", {}),
    "mirakl": ("set_stock", "P0", "available", "3", {}),
    "ometria": ("set_stock", "P0", "available", "3", {}),
    "commercetools": ("set_stock", "P0/WH1", "available", "3", {}),
    "emarsys": ("update_consent", "C1", "email_consent", "false", {"customer_id": "C1", "email": "ann@example.com"}),
}


def plan_file(root: Path, platform: str) -> Path:
    action, key, field, after, truth = PUSHED[platform]
    body = {
        "version": 1,
        "plan_id": f"matrix-{platform}",
        "created_at": NOW.isoformat(),
        "run_id": "matrix",
        "trusted": True,
        "snapshots": {},
        "actions": [
            {
                "action_id": f"{platform}-1",
                "platform": platform,
                "target": platform,
                "action": action,
                "check_id": "matrix",
                "entity": "inventory" if action == "set_stock" else "customers",
                "key": key,
                "field": field,
                "before": None,
                "after": after,
                "fingerprint": "fp",
                "truth": truth,
            }
        ],
    }
    path = root / "plans" / f"{platform}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(body))
    return path


def store_text(path: Path) -> str:
    """Every text value of every table in the store."""
    texts = []
    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE data_type LIKE 'VARCHAR%' AND table_schema = 'main'"
        ).fetchall()
        for table, column in columns:
            rows = con.execute(f'SELECT "{column}"::VARCHAR FROM "{table}" WHERE "{column}" IS NOT NULL').fetchall()
            texts += [f"{table}.{column}={value}" for (value,) in rows]
    return "\n".join(texts)


@pytest.mark.parametrize("failure", list(FAILURES))
def test_no_canary_anywhere_whatever_fails(tmp_path, monkeypatch, capfd, caplog, failure):
    caplog.set_level("DEBUG")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # where a crash report would be written
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    with World(FAILURES[failure], tmp_path) as world, WebhookSink() as webhook:
        for name, value in world.env(webhook).items():
            monkeypatch.setenv(name, value)
        config = str(world.config())
        printed, codes = [], {}

        def cli(*args: str) -> int:
            code = run_cli(["--config", config, *args])
            out, err = capfd.readouterr()
            printed.append(f"$ driftwatch {' '.join(args)} -> {code}\n{out}{err}")
            assert "Traceback" not in out + err and code != 70, printed[-1]
            return code

        codes["load"] = cli("load", str(world.drop))
        codes["run"] = cli("run")
        codes["findings"] = cli("findings", "--format", "json")
        cli("findings", "--format", "csv")
        cli("db", "quarantine", "--format", "json")
        cli("report", "--out", str(tmp_path / "exports" / "report.html"))
        cli("alert", "--preview")
        for platform in PUSHED:
            codes[f"apply {platform}"] = cli("repair", "apply", str(plan_file(tmp_path, platform)), "--apply", "--yes")

        # The failures happened, the canary went out on the wire, and the errors quoted it back.
        assert codes["load"] == 0 and codes["run"] == 3, printed
        assert all(codes[f"apply {p}"] in (2, 3) for p in PUSHED), codes
        for name, sim in world.sims.items():
            assert any(leaks(json.dumps(r.headers)) for r in sim.requests), f"{name} never saw the canary"
            if dict(FAILURES[failure].faults).get("echo_request"):
                assert sim.faults.echo_request < 1000, f"{name} never echoed a request"
        payloads = json.dumps(webhook.payloads)
        assert webhook.payloads, "the working destination heard nothing"

    logged = "\n".join(f"{r.getMessage()}\n{r.exc_text or ''}" for r in caplog.records)
    places = {
        "stdout and stderr": "\n".join(printed),
        "log records": logged,
        "the store": store_text(tmp_path / "driftwatch.duckdb"),
        "alert payloads": payloads,
    }
    for place, text in places.items():
        assert not leaks(text), f"the canary leaked into {place}"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in written) and any("plans" in p.parts for p in written)
    for path in written:
        assert not leaks(path.read_bytes()), f"the canary leaked into {path}"
    assert not list((tmp_path / "state").rglob("crash-*"))
