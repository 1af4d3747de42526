"""The nightly job end to end: the demo retailer served by every platform's simulator, pulled through the
real connectors, audited, reported and alerted; and what the scheduler sees when a source is down."""

from __future__ import annotations

import re
from contextlib import ExitStack

import pytest
from click.testing import CliRunner

from driftwatch.cli import cli
from driftwatch.demo.generator import generate
from driftwatch.demo.run import run_demo
from driftwatch.simulators import PLATFORMS, SIMULATORS


def test_make_demo_finds_every_injected_drift_through_the_live_pulls(tmp_path, capsys):
    assert run_demo(tmp_path / "demo", seed=7) == 0
    out = capsys.readouterr().out
    found, injected, extra = map(int, re.search(r"(\d+) of (\d+) injected drifts found, (\d+) finding", out).groups())
    assert (found, extra) == (injected, 0) and injected > 50
    assert list((tmp_path / "demo" / "reports").glob("driftwatch-*.html"))
    assert "== route ops" in out  # the alert preview names each route


@pytest.fixture
def served(tmp_path):
    """The demo retailer on loopback simulators, and a config that points at them."""
    snapshots = generate(tmp_path / "snapshots").out_dir
    with ExitStack() as stack:
        # Mirakl allows one order listing a minute; this test pulls twice within seconds.
        relaxed = {"mirakl": {"rate_limits": {}}}
        sims = {
            name: stack.enter_context(SIMULATORS[name].from_snapshot_dir(snapshots, **relaxed.get(name, {})))
            for name in PLATFORMS
        }
        yield snapshots, sims


def write_config(tmp_path, snapshots, sims) -> str:
    import json

    import tomli_w

    from driftwatch.demo.run import demo_config

    sources = {name: sim.settings() for name, sim in sims.items()}
    sources["bluecherry"] = {"path": str(snapshots / "bluecherry")}
    sources["mirakl"]["call_limits"] = {"OR11": [[100, 1]], "TL02": [[100, 1]]}
    raw = demo_config(snapshots, sources)
    raw["alerts"] = {"routes": []}
    path = tmp_path / "driftwatch.toml"
    path.write_text(tomli_w.dumps(json.loads(json.dumps(raw))))
    return str(path)


def test_run_exit_codes_tell_the_scheduler_what_happened(tmp_path, served):
    snapshots, sims = served
    config = write_config(tmp_path, snapshots, sims)
    env = {k: v for sim in sims.values() for k, v in sim.env.items()}
    runner = CliRunner()
    drift = runner.invoke(cli, ["--config", config, "run", "--checkpoints", str(tmp_path / "cp")], env=env)
    assert drift.exit_code == 1, drift.output  # the demo has drift at or above "high"
    assert "open finding(s)" in drift.output and "report:" in drift.output

    without_klaviyo = {k: v for k, v in env.items() if not k.startswith("KLAVIYO")}
    down = runner.invoke(
        cli,
        ["--config", config, "run", "--checkpoints", str(tmp_path / "cp")],
        env={**{k: "" for k in env if k.startswith("KLAVIYO")}, **without_klaviyo},
    )
    assert down.exit_code == 3, down.output  # incomplete: klaviyo could not be pulled
    assert "pull failed: klaviyo: sources.klaviyo: environment variable KLAVIYO_API_KEY" in down.output
    for value in env.values():
        assert value not in down.output  # no credential in what the job prints


def test_the_console_command_exits_0_on_clean_data_1_on_drift_2_on_bad_input(tmp_path):
    import subprocess
    import sys

    import tomli_w

    from driftwatch.demo.run import demo_config

    def audit(snapshots, *extra):
        config = tmp_path / f"{snapshots.name}.toml"
        config.write_text(tomli_w.dumps(demo_config(snapshots)))
        db = tmp_path / f"{snapshots.name}.duckdb"
        command = [sys.executable, "-m", "driftwatch", "--config", str(config), "--db", str(db),
                   "audit", "--snapshots", str(snapshots), *extra]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, check=False)

    assert audit(generate(tmp_path / "clean", drift=False).out_dir).returncode == 0
    drifted = audit(generate(tmp_path / "drifted").out_dir)
    assert drifted.returncode == 1, drifted.stderr
    bad = audit(tmp_path / "drifted", "--check", "no_such_check")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
