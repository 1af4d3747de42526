"""Three generated retailers served as a fleet: each platform of each retailer by its loopback simulator,
each retailer in a folder of its own with its driftwatch.toml, and a FLEET.toml listing them.

Every retailer's credentials are in environment variables named after it (ACME_KLAVIYO_API_KEY), as an
agency's host would hold them: the same platform's variables of two retailers never collide.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w

from driftwatch.config import parse_config
from driftwatch.demo.generator import generate as generate_demo
from driftwatch.demo.retailers import generate
from driftwatch.demo.run import demo_config
from driftwatch.filedrop import load_directory
from driftwatch.simulators import PLATFORMS, SIMULATORS
from driftwatch.store import Store


@dataclass(frozen=True)
class Served:
    fleet_file: Path
    env: dict[str, str]
    drifted: dict[str, bool]  # retailer -> whether drift was injected


def serve_fleet(stack: ExitStack, root: Path) -> Served:
    """The demo retailer and the storefront retailer with drift, the marketplaces retailer's clean twin."""
    env: dict[str, str] = {}
    entries = {
        "demo": _demo(stack, root / "demo", env),
        "storefront": _generated(stack, "storefront", root / "storefront", env, drift=True),
        "marketplaces": _dropped("marketplaces", root / "marketplaces", drift=False),
    }
    fleet_file = root / "fleet.toml"
    fleet_file.write_text(tomli_w.dumps({"retailers": entries}), encoding="utf-8")
    return Served(fleet_file, env, {"demo": True, "storefront": True, "marketplaces": False})


def _demo(stack: ExitStack, folder: Path, env: dict[str, str]) -> dict[str, str]:
    snapshots = folder / "snapshots"
    generate_demo(snapshots, captured_at=datetime.now(UTC).replace(microsecond=0))
    sources = {}
    for platform in PLATFORMS:
        simulator = stack.enter_context(SIMULATORS[platform].from_snapshot_dir(snapshots, **_relaxed(platform)))
        sources[platform] = _renamed("demo", simulator.settings() | _limits(platform), simulator.env, env)
    sources["bluecherry"] = {"path": "snapshots/bluecherry"}  # relative to the config file
    config = demo_config(snapshots, sources)
    del config["alerts"]  # no route: the fleet's outcome is about the audits, not about webhooks
    return _write(folder, config)


def _generated(stack: ExitStack, name: str, folder: Path, env: dict[str, str], *, drift: bool) -> dict[str, str]:
    generated = generate(name, folder / "retailer", drift=drift, mode="pull")
    connections: dict[str, dict[str, Any]] = {}
    for source, kind in generated.kinds.items():
        if kind == "bluecherry":
            connections[source] = {"path": str(generated.written.drop / source)}
            continue
        simulator = stack.enter_context(
            SIMULATORS[kind].from_snapshot_dir(generated.written.served, source=source, **_relaxed(kind))
        )
        connections[source] = _renamed(f"{name}_{source}", simulator.settings() | _limits(kind), simulator.env, env)
    return _write(folder, generated.config(connections))


def _dropped(name: str, folder: Path, *, drift: bool) -> dict[str, str]:
    """A retailer whose platforms send file drops, loaded before the night (`driftwatch load`); the nightly
    job reads only the ERP's export folder."""
    generated = generate(name, folder / "retailer", drift=drift, mode="drop")
    config = generated.config(
        {s: {"path": str(generated.written.drop / s)} for s, k in generated.kinds.items() if k == "bluecherry"}
    )
    entry = _write(folder, config)
    with Store(folder / "driftwatch.duckdb") as store:
        load_directory(store, generated.written.drop, parse_config(config, folder / "driftwatch.toml"))
    return entry


def _relaxed(platform: str) -> dict[str, Any]:
    return {"rate_limits": {}} if platform == "mirakl" else {}  # two nights a minute apart, not one a day


def _limits(platform: str) -> dict[str, Any]:
    return {"call_limits": {"OR11": [[100, 1]], "TL02": [[100, 1]]}} if platform == "mirakl" else {}


def _renamed(prefix: str, settings: dict[str, Any], credentials: dict[str, str], env: dict[str, str]) -> dict:
    """The settings with each credential variable prefixed, and those variables added to `env`."""
    renamed = {name: f"{prefix.upper()}_{name}" for name in credentials}
    env.update({renamed[name]: value for name, value in credentials.items()})
    return {k: renamed.get(v, v) if k.endswith("_env") else v for k, v in settings.items()}


def _write(folder: Path, config: dict[str, Any]) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "driftwatch.toml").write_text(tomli_w.dumps(config), encoding="utf-8")
    return {"config": f"{folder.name}/driftwatch.toml"}
