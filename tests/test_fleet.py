"""`driftwatch fleet run`: many retailers' nightly jobs, each on its own config and store, as tasks on an
executor (one after another, a pool of processes, a Dask cluster of 2 workers); one line per retailer and
the worst exit code."""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from pathlib import Path

import pytest
from fleet_retailers import serve_fleet

from driftwatch.cli import run_cli
from driftwatch.config import load_config
from driftwatch.engine import findings
from driftwatch.engine.findings import open_counts
from driftwatch.executors import Executor, run_tasks
from driftwatch.exitcodes import ExitCode
from driftwatch.fleet import Outcome, fleet_exit_code
from driftwatch.store import Store


def fleet_json(capsys, *args: str) -> tuple[int, dict]:
    code = run_cli(["fleet", "run", *args, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def by_retailer(report: dict) -> dict[str, dict]:
    return {row["retailer"]: row for row in report["retailers"]}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    with ExitStack() as stack, pytest.MonkeyPatch.context() as patch:
        served = serve_fleet(stack, tmp_path_factory.mktemp("fleet"))
        for name, value in served.env.items():  # inherited by the pool's and the cluster's processes
            patch.setenv(name, value)
        yield served


def stored_counts(fleet_file: Path, retailer: str, run_id: str) -> dict[str, int]:
    cfg = load_config(fleet_file.parent / retailer / "driftwatch.toml")
    with Store(cfg.store_path) as store:
        return open_counts(findings(store, run_id))


def test_each_retailer_runs_its_own_night_and_the_worst_code_is_the_fleets(fleet, capsys):
    code, report = fleet_json(capsys, str(fleet.fleet_file))
    rows = by_retailer(report)
    assert [row["retailer"] for row in report["retailers"]] == ["demo", "storefront", "marketplaces"]
    for name, drifted in fleet.drifted.items():
        row = rows[name]
        assert row["exit_code"] == (ExitCode.DRIFT if drifted else ExitCode.CLEAN), row
        assert row["trusted"] is True and row["failed_pulls"] == [] and row["error"] is None, row
        # What the line says is what the retailer's own store holds for that run.
        assert row["open_findings"] == stored_counts(fleet.fleet_file, name, row["run_id"])
        assert Path(row["report"]).is_file()
    assert sum(rows["demo"]["open_findings"].values()) > 30 and sum(rows["storefront"]["open_findings"].values()) > 20
    assert code == report["exit_code"] == ExitCode.DRIFT

    # The next night on a Dask cluster of 2 workers: the same outcome for every retailer, from new runs.
    code, on_dask = fleet_json(capsys, str(fleet.fleet_file), "--executor", "dask", "--workers", "2")
    assert code == ExitCode.DRIFT
    for name, row in by_retailer(on_dask).items():
        assert row["run_id"] != rows[name]["run_id"]
        assert (row["exit_code"], row["open_findings"]) == (rows[name]["exit_code"], rows[name]["open_findings"])

    # And in a pool of 2 processes, printed for people: one line per retailer, then the fleet's.
    code = run_cli(["fleet", "run", str(fleet.fleet_file), "--workers", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert code == ExitCode.DRIFT
    assert lines[0].endswith("3 retailer(s) on local, 2 processes")
    assert sorted(line.split()[:3] for line in lines[1:4]) == [
        ["demo", "drift", "exit"],
        ["marketplaces", "clean", "exit"],
        ["storefront", "drift", "exit"],
    ]
    assert lines[4] == "fleet: 1 clean, 2 drift; exit 1"


def broken_fleet(tmp_path: Path) -> Path:
    """A retailer whose config is not TOML, one whose config names an unknown section, one that is fine but
    has nothing to pull."""
    for name, text in {
        "bad_toml": "[store\npath = 1",
        "bad_key": "[stores]\npath = 'x.duckdb'\n",
        "nothing": "[store]\npath = 'x.duckdb'\n",
    }.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "driftwatch.toml").write_text(text)
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(
        "".join(f'[retailers.{n}]\nconfig = "{n}/driftwatch.toml"\n' for n in ("bad_toml", "bad_key", "nothing"))
    )
    return fleet_file


def test_a_retailer_that_cannot_start_is_a_user_error_and_the_others_still_run(tmp_path, capsys):
    code, report = fleet_json(capsys, str(broken_fleet(tmp_path)), "--workers", "2")
    rows = by_retailer(report)
    assert code == report["exit_code"] == ExitCode.USER_ERROR
    assert [r["exit_code"] for r in report["retailers"]] == [2, 2, 2]
    assert "not valid TOML" in rows["bad_toml"]["error"]
    assert "stores" in rows["bad_key"]["error"]
    assert "no source to pull" in rows["nothing"]["error"]


def test_a_bug_in_one_retailers_job_is_an_internal_error_never_drift(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))

    def audit(*args, **kwargs):
        raise KeyError("a bug in the engine")

    monkeypatch.setattr("driftwatch.nightly.pull_sources", lambda *a, **k: [])
    monkeypatch.setattr("driftwatch.nightly.audit", audit)
    fleet_file = broken_fleet(tmp_path)
    code = run_cli(["fleet", "run", str(fleet_file)])  # one after another, in this process
    lines = capsys.readouterr().out.splitlines()
    assert code == ExitCode.INTERNAL_ERROR
    crashed = next(line for line in lines if line.startswith("nothing "))
    assert "internal error  exit 70" in crashed and "KeyError: 'a bug in the engine'; full traceback in " in crashed
    trace = Path(crashed.split("full traceback in ")[1].split()[0])
    assert trace.parent == tmp_path / "state" / "driftwatch" / "log" and "a bug in the engine" in trace.read_text()
    assert any(line.startswith("bad_toml ") and "user error" in line for line in lines)


@pytest.mark.parametrize(
    ("codes", "worst"),
    [
        ([], 0),
        ([0, 1, 0], 1),
        ([1, 3, 0], 3),
        ([3, 2, 1], 2),
        ([1, 70, 2, 3], 70),
        ([70, 1], 70),
    ],
)
def test_the_fleets_code_is_the_worst_by_the_contract(codes, worst):
    assert fleet_exit_code([Outcome(f"r{i}", c) for i, c in enumerate(codes)]) == worst


FLEET_ERRORS = [
    ("", "no [retailers] table"),
    ("[retailers]\n", "no retailer listed"),
    ("[retailers.a]\nconfig = 'a.toml'\n[extra]\n", "extra: unknown section"),
    ("[fleet]\nexecuter = 'dask'\n[retailers.a]\nconfig = 'a.toml'\n", "fleet.executer: unknown key (did you mean"),
    ("[fleet]\nexecutor = 'spark'\n[retailers.a]\nconfig = 'a.toml'\n", "executor must be one of local, dask"),
    ("[fleet]\nworkers = 0\n[retailers.a]\nconfig = 'a.toml'\n", "workers must be a positive whole number"),
    ("[fleet]\nscheduler = 'tcp://h:8786'\n[retailers.a]\nconfig = 'a.toml'\n", "only for the dask executor"),
    ("[fleet]\nexecutor = 'dask'\nscheduler = 'h:8786'\n[retailers.a]\nconfig = 'a.toml'\n", "tcp://"),
    ("[retailers.a]\n", "retailers.a: config is missing"),
    ("[retailers.a]\nconfig = 'missing.toml'\n", "retailers.a.config: "),
    ("[retailers.a]\nconfig = 'a.toml'\nstore = 'x'\n", "retailers.a.store: unknown key"),
    ("[retailers.a]\nconfig = 3\n", "retailers.a.config: must be a path"),
    ("[retailers.a]\nconfig = 'a.toml'\n[retailers.b]\nconfig = './a.toml'\n", "each retailer needs a store"),
    ("[retailers]\na = 'a.toml'\n", "retailers.a: must be a table"),
    ("[retailers.a\n", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), FLEET_ERRORS)
def test_every_mistake_in_the_fleet_file_is_one_line_before_any_job_runs(tmp_path, capsys, text, message):
    (tmp_path / "a.toml").write_text("[store]\npath = 'a.duckdb'\n")
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(text)
    assert run_cli(["fleet", "run", str(fleet_file)]) == ExitCode.USER_ERROR
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"error: {fleet_file}: "), captured.err
    assert message in captured.err
    assert not (tmp_path / "a.duckdb").exists()


def test_a_missing_fleet_file_and_an_unreachable_scheduler_are_user_errors(tmp_path, capsys):
    assert run_cli(["fleet", "run", str(tmp_path / "none.toml")]) == ExitCode.USER_ERROR
    assert "fleet file not found" in capsys.readouterr().err
    (tmp_path / "a.toml").write_text("[store]\npath = 'a.duckdb'\n")
    (tmp_path / "fleet.toml").write_text("[retailers.a]\nconfig = 'a.toml'\n")
    code = run_cli(["fleet", "run", str(tmp_path / "fleet.toml"), "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == ExitCode.USER_ERROR and err.startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")


def _double_or_die(value: int) -> int:
    if value < 0:
        os._exit(3)  # the process dies, as an out-of-memory kill would end it
    return value * 2


def test_a_task_whose_process_dies_gives_its_exception_not_a_result():
    outcomes = dict(run_tasks(Executor("local", workers=2), _double_or_die, [(-1,), (4,)]))
    assert isinstance(outcomes[0], Exception)
    assert outcomes[1] == 8 or isinstance(outcomes[1], Exception)  # a broken pool may take its neighbour along
    assert dict(run_tasks(Executor("local"), _double_or_die, [(2,), (3,)])) == {0: 4, 1: 6}


@pytest.mark.parametrize(
    "args",
    [
        ["--config", "other.toml", "fleet", "run", "FLEET"],
        ["fleet", "run", "FLEET", "--db", "other.duckdb"],
        ["fleet", "--config", "other.toml", "run", "FLEET"],
    ],
)
def test_the_shared_config_and_db_options_are_refused_not_ignored(tmp_path, capsys, args):
    (tmp_path / "a.toml").write_text("[store]\npath = 'a.duckdb'\n")
    (tmp_path / "fleet.toml").write_text("[retailers.a]\nconfig = 'a.toml'\n")
    args = [str(tmp_path / "fleet.toml") if a == "FLEET" else a for a in args]
    assert run_cli(args) == ExitCode.USER_ERROR
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("error: fleet run takes each retailer's config and store from FLEET.toml")
    assert not (tmp_path / "a.duckdb").exists() and not (tmp_path / "other.duckdb").exists()
