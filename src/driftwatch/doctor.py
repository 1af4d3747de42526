"""`driftwatch doctor`: is this deployment ready to trust? One line per check, each saying what to fix.

It validates the configuration and the check catalogue, names every environment variable the config
refers to that is not set, opens the store, and reaches each configured source and alert destination once
with the cheapest call that proves the credentials work:

- a source: its connector's `check()` (one small authenticated read, or an SFTP login and listing);
- an email destination: an SMTP session up to the login (EHLO, STARTTLS, AUTH), then QUIT: nothing sent;
- a webhook (json://, form://, xml://): a TCP connection (and TLS handshake) to its host; a webhook only
  proves its credentials by accepting a real post, which doctor never makes;
- any other apprise service: the URL is checked to be one apprise understands, without contacting it.

Nothing is pulled, stored, sent or written, except a missing store's folder is not created either.
"""

from __future__ import annotations

import logging
import os
import shutil
import smtplib
import socket
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import apprise

from driftwatch.alerts.routes import Destination, parse_alerts
from driftwatch.config import DEFAULT_CONFIG_NAME, Config, load_config
from driftwatch.errors import UserError
from driftwatch.exitcodes import ExitCode
from driftwatch.pull import pullable_sources
from driftwatch.redaction import remember_url
from driftwatch.store import Store

Status = Literal["ok", "config", "unreachable"]
# How long doctor waits for any one system: it is run by a person waiting for the answer.
TIMEOUT_SECONDS = 10.0
_QUICK_HTTP = {"max_attempts": 2, "backoff_initial": 0.2, "backoff_max": 1.0, "max_retry_after": 5.0}


@dataclass(frozen=True)
class Check:
    status: Status  # ok; config: the config file or environment must change; unreachable: a system failed
    subject: str  # what was checked: "config", "source klaviyo", "alert route ops:$OPS_HOOK", ...
    detail: str  # what was found, and for a problem what to do about it


def exit_code(checks: list[Check]) -> ExitCode:
    """2 when the configuration must change (fix that first), else 3 when something could not be reached."""
    statuses = {check.status for check in checks}
    if "config" in statuses:
        return ExitCode.USER_ERROR
    if "unreachable" in statuses:
        return ExitCode.INCOMPLETE
    return ExitCode.CLEAN


def diagnose(config_path: Path | None, db_path: Path | None, env: Mapping[str, str] = os.environ) -> Iterator[Check]:
    """Every check, in order, as it completes (a slow source shows what is known so far)."""
    cfg = yield from _config(config_path)
    if cfg is None:
        return
    yield _catalogue(cfg)
    yield from _store(db_path or cfg.store_path)
    yield from _variables(cfg, env)
    for source in pullable_sources(cfg):
        yield _source(cfg, source, env)
    yield from _alerts(cfg, env)


def _config(config_path: Path | None) -> Iterator[Check]:
    path = config_path or Path(DEFAULT_CONFIG_NAME)
    if config_path is None and not path.exists():
        problem = f"no {DEFAULT_CONFIG_NAME} here and no --config: create one with `driftwatch init`"
        yield Check("config", "config", problem)
        return None
    try:
        cfg = load_config(path)
    except UserError as exc:
        for line in str(exc).splitlines():
            yield Check("config", "config", line)
        return None
    yield Check("ok", "config", f"{path} is valid")
    return cfg


def _catalogue(cfg: Config) -> Check:
    from driftwatch.engine import load_catalogue

    try:
        checks = load_catalogue(cfg)
    except UserError as exc:
        return Check("config", "checks", str(exc))
    extra = f", including {', '.join(map(str, cfg.checks_dirs))}" if cfg.checks_dirs else ""
    return Check("ok", "checks", f"{len(checks)} checks load{extra}")


def _store(path: Path) -> Iterator[Check]:
    folder = path.parent if str(path.parent) else Path()
    if not path.exists():
        if folder.is_dir() and os.access(folder, os.W_OK):
            yield Check("ok", "store", f"{path} does not exist yet; the first load or pull creates it")
        else:
            yield Check("config", "store", f"{path}: its folder {folder} does not exist or is not writable")
        return
    try:
        with Store(path, read_only=True) as store:
            version, snapshots = store.schema_version(), store.snapshots().height
    except UserError as exc:
        yield Check("config", "store", f"{exc}; check [store] path or --db")
        return
    yield Check("ok", "store", f"{path}: schema version {version}, {snapshots} snapshot(s)")
    free = shutil.disk_usage(folder).free
    yield Check("ok", "disk", f"{free / 2**30:.1f} GiB free beside the store (audits spill snapshots there)")


def _variables(cfg: Config, env: Mapping[str, str]) -> Iterator[Check]:
    """Every environment variable the config names (`*_env` settings, alert `url_env`) that is unset."""
    named = sorted(set(_env_settings(cfg.section("sources"), "sources")) | set(_alert_variables(cfg)))
    missing = [(variable, where) for variable, where in named if not env.get(variable, "").strip()]
    for variable, where in missing:
        yield Check("config", f"environment {variable}", f"not set ({where}): set it where driftwatch runs, "
                    "e.g. in the systemd unit's EnvironmentFile")  # fmt: skip
    if named and not missing:
        yield Check("ok", "environment", f"all {len(named)} variable(s) the config names are set")


def _env_settings(table: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
    for key, value in table.items():
        if isinstance(value, Mapping):
            yield from _env_settings(value, f"{prefix}.{key}")
        elif key.endswith("_env") and isinstance(value, str):
            yield value, f"{prefix}.{key}"


def _alert_variables(cfg: Config) -> Iterator[tuple[str, str]]:
    for route in parse_alerts(cfg.raw).routes:
        for destination in route.destinations:
            if destination.env:
                yield destination.env, f"alert route {route.name!r} url_env"


def _source(cfg: Config, source: str, env: Mapping[str, str]) -> Check:
    subject = f"source {source}"
    settings = {**cfg.source(source), **_QUICK_HTTP, "timeout": TIMEOUT_SECONDS}
    try:
        connector_class = cfg.platform(source).load_connector()
        connector = connector_class(settings, source=source, env=env, progress=False)
    except UserError as exc:  # a setting or credential variable missing: the config must change
        return Check("config", subject, str(exc))
    try:
        with connector:
            return Check("ok", subject, connector.check())
    except UserError as exc:
        return Check("unreachable", subject, f"{exc}: check its address, the network and its credentials")


def _alerts(cfg: Config, env: Mapping[str, str]) -> Iterator[Check]:
    for route in parse_alerts(cfg.raw).routes:
        for destination in route.destinations:
            yield _destination(destination, env)


def _destination(destination: Destination, env: Mapping[str, str]) -> Check:
    subject = f"alert {destination.label}"
    url = destination.url if destination.url is not None else env.get(destination.env or "", "").strip()
    if not url:
        return Check("config", subject, f"${destination.env} is not set")
    remember_url(url)  # its password and tokens are redacted from whatever an error below may quote
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as said:  # apprise logs why it refuses
        plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        reasons = [line.strip() for line in said.getvalue().splitlines() if "Could not load" not in line]
        why = "; ".join(reasons).replace(url, "the URL")  # the URL may carry a token: never print it
        return Check("config", subject, f"not an apprise URL apprise understands{f' ({why})' if why else ''}")
    try:
        return Check("ok", subject, _reach(plugin))
    except (OSError, smtplib.SMTPException) as exc:
        reason = str(exc) or type(exc).__name__
        return Check("unreachable", subject, f"{reason}: check the host, port, network and credentials in the URL")


def _reach(plugin: Any) -> str:
    from apprise.plugins.custom_form import NotifyForm
    from apprise.plugins.custom_json import NotifyJSON
    from apprise.plugins.custom_xml import NotifyXML
    from apprise.plugins.email import NotifyEmail

    if isinstance(plugin, NotifyEmail):
        return _smtp_login(plugin)
    if isinstance(plugin, NotifyJSON | NotifyForm | NotifyXML):
        port = plugin.port or (443 if plugin.secure else 80)
        with socket.create_connection((plugin.host, port), timeout=TIMEOUT_SECONDS) as connection:
            if plugin.secure:
                ssl.create_default_context().wrap_socket(connection, server_hostname=plugin.host).close()
        scheme = "https" if plugin.secure else "http"
        return f"{scheme}://{plugin.host}:{port} accepts connections; nothing posted (only a post proves a webhook)"
    return f"a {plugin.service_name} URL apprise understands; not contacted (it cannot be checked without sending)"


def _smtp_login(plugin: Any) -> str:
    """An SMTP session as far as the login, then QUIT: proves the server and the credentials, sends nothing."""
    host, port, mode = plugin.smtp_host, int(plugin.port), str(plugin.secure_mode)
    if mode == "ssl":
        session: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT_SECONDS)
    else:
        session = smtplib.SMTP(host, port, timeout=TIMEOUT_SECONDS)
    with session:
        session.ehlo()
        if mode == "starttls":
            session.starttls(context=ssl.create_default_context())
            session.ehlo()
        if plugin.user and plugin.password:
            session.login(plugin.user, plugin.password)
            return f"SMTP {host}:{port} accepted the login; nothing sent"
    return f"SMTP {host}:{port} answered; no login configured; nothing sent"
