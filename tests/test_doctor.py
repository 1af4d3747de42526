"""`driftwatch doctor` against loopback simulators of every platform, a real SMTP server that checks logins,
a real webhook receiver and an SFTP drop: one line per check, exit 0 / 2 (fix the config) / 3 (unreachable)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
import tomli_w
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from helpers_alerts import WebhookSink

from driftwatch.simulators import PLATFORMS, SIMULATORS

DRIFTWATCH = Path(sys.executable).with_name("driftwatch")
SLACK = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"  # its tokens are secrets: held in the environment


class LoginSmtp:
    """An SMTP server on loopback that accepts one user and password, and counts the messages it gets."""

    def __init__(self, user: str, password: str):
        self.user, self.password, self.received = user, password, 0
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._authenticate,
            auth_require_tls=False,
        )

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) == (
            self.user,
            self.password,
        )
        return AuthResult(success=ok)

    async def handle_DATA(self, server, session, envelope) -> str:
        self.received += 1
        return "250 OK"

    def url(self, password: str) -> str:
        return (
            f"mailto://{self.user}:{password}@127.0.0.1:{self.port}"
            "?from=driftwatch@example.com&to=ops@example.com&mode=insecure"
        )

    def __enter__(self) -> LoginSmtp:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch):
    """Every platform's simulator, BlueCherry exports in a folder and on an SFTP drop, and alert
    destinations of three kinds."""
    monkeypatch.syspath_prepend(Path(__file__).parent / "connectors")
    from sftp_server import SftpServer

    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "inventory.csv").write_text("Style,Color #,Size,Total QOH\n001,01,M,5\n")
    with ExitStack() as stack:
        sims = {name: stack.enter_context(SIMULATORS[name]({})) for name in PLATFORMS}
        smtp = stack.enter_context(LoginSmtp("alerts", "s3cret"))
        hook = stack.enter_context(WebhookSink())
        drop = stack.enter_context(SftpServer(exports, "erp", "drop-pw"))
        sources = {name: sim.settings() for name, sim in sims.items()} | {"bluecherry": {"path": str(exports)}}
        sources["erp_drop"] = {"kind": "bluecherry", "sftp_url": drop.url, "sftp_password_env": "DW_SFTP"}
        env = {k: v for sim in sims.values() for k, v in sim.env.items()}
        env |= {"DW_MAIL": smtp.url("s3cret"), "DW_HOOK": hook.url, "DW_SFTP": "drop-pw", "DW_SLACK": SLACK}
        config = {
            "store": {"path": "driftwatch.duckdb"},
            "sources": sources,
            "alerts": {"routes": [{"name": "ops", "url_env": ["DW_MAIL", "DW_HOOK", "DW_SLACK"]}]},
        }
        yield {"dir": tmp_path, "config": config, "env": env, "sims": sims, "smtp": smtp, "hook": hook}


def doctor(deployment, env: dict[str, str] | None = None, *args: str) -> tuple[int, list[str]]:
    path = deployment["dir"] / "driftwatch.toml"
    path.write_text(tomli_w.dumps(deployment["config"]))
    variables = {k: v for k, v in os.environ.items() if not k.startswith(("DW_", "KLAVIYO", "MIRAKL", "EMARSYS"))}
    done = subprocess.run(
        [str(DRIFTWATCH), "doctor", "--config", str(path), *args],
        cwd=deployment["dir"],
        capture_output=True,
        text=True,
        env={**variables, **(deployment["env"] if env is None else env)},
        timeout=300,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout.splitlines()


def line(lines: list[str], subject: str) -> str:
    found = [entry for entry in lines if entry.split(None, 1)[1].startswith(f"{subject}: ")]
    assert len(found) == 1, (subject, lines)
    return found[0]


def test_a_ready_deployment_exits_0_with_one_ok_line_per_check_and_sends_nothing(deployment):
    code, lines = doctor(deployment)
    assert code == 0, "\n".join(lines)
    assert all(entry.startswith("ok ") for entry in lines), lines
    for source in (*PLATFORMS, "bluecherry"):
        line(lines, f"source {source}")
    assert line(lines, "source erp_drop").endswith(": 1 export file(s) readable")
    assert "accepted the login; nothing sent" in line(lines, "alert ops:$DW_MAIL")
    assert "nothing posted" in line(lines, "alert ops:$DW_HOOK")
    assert "not contacted" in line(lines, "alert ops:$DW_SLACK")
    assert deployment["smtp"].received == 0 and deployment["hook"].payloads == []
    assert not (deployment["dir"] / "driftwatch.duckdb").exists()  # doctor creates nothing
    assert "does not exist yet" in line(lines, "store")


def test_what_the_config_or_environment_must_change_exits_2(deployment):
    env = {k: v for k, v in deployment["env"].items() if k not in ("KLAVIYO_API_KEY", "DW_HOOK")}
    deployment["config"]["alerts"]["routes"][0]["urls"] = ["nosuchservice://whatever"]
    code, lines = doctor(deployment, env)
    assert code == 2, lines
    assert line(lines, "environment KLAVIYO_API_KEY").startswith("FIX ")
    assert "sources.klaviyo.api_key_env" in line(lines, "environment KLAVIYO_API_KEY")
    assert line(lines, "environment DW_HOOK").startswith("FIX ")
    assert line(lines, "source klaviyo").startswith("FIX ")
    assert "not an apprise URL" in line(lines, "alert ops:nosuchservice#1")
    assert line(lines, "source mirakl").startswith("ok ")  # everything else is still checked


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_what_cannot_be_reached_or_refuses_its_credentials_exits_3(deployment):
    env = dict(deployment["env"])
    env["MIRAKL_API_KEY"] = "shop-wrong"
    env["DW_MAIL"] = deployment["smtp"].url("wrong")
    env["DW_HOOK"] = f"json://127.0.0.1:{closed_port()}/hook"
    deployment["config"]["sources"]["ometria"]["base_url"] = f"http://127.0.0.1:{closed_port()}"
    deployment["config"]["sources"]["bluecherry"] = {
        "sftp_url": f"sftp://erp@127.0.0.1:{closed_port()}/exports",
        "sftp_password_env": "DW_SFTP",
    }
    env["DW_SFTP"] = "pw"
    code, lines = doctor(deployment, env)
    assert code == 3, lines
    for subject in ("source mirakl", "source ometria", "source bluecherry", "alert ops:$DW_MAIL", "alert ops:$DW_HOOK"):
        assert line(lines, subject).startswith("FAIL "), lines
    assert "was refused" in line(lines, "source mirakl") and "shop-wrong" not in "\n".join(lines)
    assert "wrong" not in line(lines, "alert ops:$DW_MAIL").split(":", 2)[2]
    for subject in ("source klaviyo", "source commercetools", "source emarsys", "config", "environment"):
        assert line(lines, subject).startswith("ok ")


def test_a_broken_config_exits_2_with_one_line_per_problem(deployment):
    deployment["config"]["audit"] = {"fail_on": "sometimes"}
    deployment["config"]["nonsense"] = {"x": 1}
    code, lines = doctor(deployment)
    assert code == 2
    assert len(lines) == 2 and all(entry.startswith("FIX   config: ") for entry in lines), lines


def test_json_lists_every_check(deployment):
    import json

    path = deployment["dir"] / "driftwatch.toml"
    path.write_text(tomli_w.dumps(deployment["config"]))
    done = subprocess.run(
        [str(DRIFTWATCH), "--config", str(path), "doctor", "--format", "json"],
        cwd=deployment["dir"],
        capture_output=True,
        text=True,
        env={**os.environ, **deployment["env"]},
        timeout=300,
    )
    assert done.returncode == 0, done.stdout
    checks = json.loads(done.stdout)
    assert {c["status"] for c in checks} == {"ok"}
    assert {"source klaviyo", "alert ops:$DW_MAIL", "config", "store"} <= {c["subject"] for c in checks}
