"""The exit-code contract, through the real console script: 0 clean, 1 drift, 2 something to fix first
(one line on stderr), 3 incomplete, 70 internal error (one line naming the traceback's file). Nothing but
drift ever exits 1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl
import pytest
from file_limits import file_size_limit

DRIFTWATCH = Path(sys.executable).with_name("driftwatch")
MANIFEST = '{"captured_at": "2026-11-23T02:00:00Z"}'
CONFIG = """
[[feeds]]
source = "bluecherry"
target = "klaviyo"
entities = ["inventory"]

[report]
out_dir = "reports"
"""
ERP_STOCK = "sku,location,on_hand,allocated,safety_stock\nA,W1,5,1,0\nB,W1,3,0,0\n"
KLAVIYO_CLEAN = "sku,location,available\nA,W1,4\nB,W1,3\n"
KLAVIYO_DRIFT = "sku,location,available\nA,W1,4\nB,W1,9\n"


def dw(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed `driftwatch` console script, as a scheduler would."""
    return subprocess.run(
        [str(DRIFTWATCH), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        **kwargs,
    )


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def drop(root: Path, klaviyo: str = KLAVIYO_CLEAN) -> Path:
    for source, body in (("bluecherry", ERP_STOCK), ("klaviyo", klaviyo)):
        (root / source).mkdir(parents=True, exist_ok=True)
        (root / source / "_manifest.json").write_text(MANIFEST)
        (root / source / "inventory.csv").write_text(body)
    return root


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A deployment folder: a config whose store and reports live beside it, and the night's drop."""
    (tmp_path / "dw.toml").write_text(CONFIG)
    drop(tmp_path / "drop")
    (tmp_path / "elsewhere").mkdir()  # the scheduler's working directory: nothing may be written there
    return tmp_path


def test_a_clean_audit_exits_0_and_drift_exits_1(site):
    clean = dw("audit", "--snapshots", site / "drop", "--config", site / "dw.toml", cwd=site / "elsewhere")
    assert clean.returncode == 0, clean.stderr
    drop(site / "drop", KLAVIYO_DRIFT)
    drift = dw("--config", site / "dw.toml", "audit", "--snapshots", site / "drop", cwd=site / "elsewhere")
    assert drift.returncode == 1, drift.stderr
    assert drift.stderr == ""
    assert list((site / "elsewhere").iterdir()) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--config", "{site}/missing.toml", "audit"], "missing.toml: config file not found"),
        (["audit", "--snapshots", "{site}/no-such-drop"], "no-such-drop: not a directory"),
        (["report"], "no audit has run yet"),
        (["pull", "--source", "nowhere"], "unknown source 'nowhere'"),
        (["findings", "--format", "yaml"], "Invalid value for '--format'"),
        (["repair", "apply", "{site}/dw.toml"], "dw.toml"),
        (["incidents", "--run", "20261123T020000-nope"], "no audit run '20261123T020000-nope'"),
        (["incidents", "--status", "sleeping"], "Invalid value for '--status'"),
        (["ack", "incident:0000000000000000"], "no incident with id '0000000000000000'"),
        (["ack", "incident:0000000000000000", "--mute"], "an incident cannot be muted"),
    ],
)
def test_what_the_operator_must_fix_exits_2_with_one_line(site, args, expected):
    args = [a.format(site=site) for a in args]
    done = dw("--db", site / "s.duckdb", *args, cwd=site / "elsewhere")
    assert done.returncode == 2
    assert expected in one_line(done.stderr)


def test_a_bad_column_in_a_drop_exits_2_and_stores_nothing(site):
    (site / "drop" / "klaviyo" / "inventory.csv").write_text("sku,location,colour_of_box\nA,W1,red\n")
    done = dw("load", site / "drop", "--db", site / "s.duckdb", cwd=site / "elsewhere")
    assert done.returncode == 2
    assert "unknown column 'colour_of_box'" in one_line(done.stderr)
    info = dw("db", "info", "--db", site / "s.duckdb", "--format", "json", cwd=site)
    assert json.loads(info.stdout) == []


def test_list_valued_columns_are_quarantined_with_file_line_column_and_reason(site):
    (site / "drop" / "klaviyo" / "inventory.csv").unlink()
    (site / "drop" / "klaviyo" / "inventory.jsonl").write_text(
        '{"sku": "A", "location": "W1", "available": [4, 5]}\n{"sku": "B", "location": "W1", "available": null}\n'
    )
    erp = pl.DataFrame({"sku": ["A", "B"], "location": [["W1", "W2"], ["W1"]], "on_hand": [5, 3]})
    (site / "drop" / "bluecherry" / "inventory.csv").unlink()
    erp.write_parquet(site / "drop" / "bluecherry" / "inventory.parquet")
    done = dw("load", site / "drop", "--db", site / "s.duckdb", cwd=site)
    assert done.returncode == 0, done.stderr
    shown = dw("db", "quarantine", "--db", site / "s.duckdb", "--format", "json", cwd=site)
    problems = json.loads(shown.stdout)
    rows = {(Path(r["origin"]).name, r["line"], r["column"]): (r["value"], r["reason"]) for r in problems}
    reason = "a list of values, where one whole number was expected"
    assert rows[("inventory.jsonl", 1, "available")] == ("[4, 5]", reason)
    assert rows[("inventory.parquet", 1, "location")][0] == '["W1", "W2"]'
    assert rows[("inventory.parquet", 2, "location")][0] == '["W1"]'
    assert len(rows) == 3


@pytest.mark.parametrize(
    "lines",
    [
        ['{"sku": "A", "location": "W1", "available": 4}', '{"sku": "B", "location": ["W1", "W2"], "available": 3}'],
        ['{"sku": "A", "location": "W1", "available": [4]}', '{"sku": "B", "location": "W1", "available": 3}'],
    ],
    ids=["list among text", "list among numbers"],
)
def test_a_jsonl_column_mixing_lists_and_single_values_exits_2_naming_the_line(site, lines):
    (site / "drop" / "klaviyo" / "inventory.csv").unlink()
    (site / "drop" / "klaviyo" / "inventory.jsonl").write_text("\n".join(lines) + "\n")
    done = dw("load", site / "drop", "--db", site / "s.duckdb", cwd=site)
    assert done.returncode == 2
    assert "inventory.jsonl: line 2: column " in one_line(done.stderr)
    assert json.loads(dw("db", "info", "--db", site / "s.duckdb", "--format", "json", cwd=site).stdout) == []


# --- the machine refuses a write -----------------------------------------------------------------------


def test_a_full_disk_during_load_exits_2_with_one_line_and_the_store_stays_usable(site):
    assert dw("db", "info", "--db", site / "s.duckdb", cwd=site).returncode == 0  # the store exists
    rows = "\n".join(f"SKU{i:06d},W1,{i % 50},0,0" for i in range(60_000))
    (site / "drop" / "bluecherry" / "inventory.csv").write_text("sku,location,on_hand,allocated,safety_stock\n" + rows)
    limit = (site / "s.duckdb").stat().st_size + 64 * 1024
    full = dw("load", site / "drop", "--db", site / "s.duckdb", cwd=site, preexec_fn=file_size_limit(limit))
    assert full.returncode == 2
    assert one_line(full.stderr).startswith("error: the machine refused a write (file too large")
    again = dw("load", site / "drop", "--db", site / "s.duckdb", "--format", "json", cwd=site)
    assert again.returncode == 0, again.stderr
    assert sorted(r["rows"] for r in json.loads(again.stdout)) == [2, 60_000]


def test_a_full_disk_during_audit_exits_2_and_leaves_no_scratch(site):
    assert dw("load", site / "drop", "--db", site / "s.duckdb", cwd=site).returncode == 0
    full = dw("audit", "--db", site / "s.duckdb", cwd=site, preexec_fn=file_size_limit(256))
    assert full.returncode == 2
    assert "file too large" in one_line(full.stderr)
    assert [p.name for p in (site / "s.work" / "scratch").iterdir()] == [".lock"]


def test_a_full_disk_during_report_exits_2_and_leaves_no_html_at_all(site):
    audited = dw("audit", "--snapshots", site / "drop", "--config", site / "dw.toml", cwd=site)
    assert audited.returncode == 0, audited.stderr
    out = site / "published" / "today.html"
    full = dw("report", "--config", site / "dw.toml", "--out", out, cwd=site, preexec_fn=file_size_limit(4096))
    assert full.returncode == 2
    assert one_line(full.stderr) == f"error: cannot write {out}: file too large for this system's limits"
    assert list(out.parent.iterdir()) == []
    written = dw("report", "--config", site / "dw.toml", "--out", out, cwd=site)
    assert written.returncode == 0 and out.stat().st_size > 4096


# --- incomplete runs ------------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NotSsh:
    """A TCP server on loopback that answers like a web server: what a wrong port in sftp_url reaches."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("server", ["refused", "not ssh"])
def test_an_unreachable_sftp_drop_makes_the_run_incomplete_but_audited_and_reported(site, server):
    assert dw("load", site / "drop", "--config", site / "dw.toml", cwd=site).returncode == 0
    listener = NotSsh() if server == "not ssh" else None
    port = listener.port if listener else closed_port()
    with (site / "dw.toml").open("a") as config:
        config.write(f'\n[sources.bluecherry]\nsftp_url = "sftp://erp@127.0.0.1:{port}/exports"\n')
        config.write('sftp_password_env = "BC_SFTP_PASSWORD"\n')
    try:
        done = dw("run", "--config", site / "dw.toml", cwd=site / "elsewhere", env={"BC_SFTP_PASSWORD": "pw"})
    finally:
        if listener:
            listener.close()
    assert done.returncode == 3, done.stderr
    assert "pull failed: bluecherry: sources.bluecherry: SFTP 127.0.0.1:" in done.stderr
    assert "Traceback" not in done.stderr
    assert "audit " in done.stdout and "report: " in done.stdout
    assert len(list((site / "reports").glob("driftwatch-*.html"))) == 1
    assert list((site / "elsewhere").iterdir()) == []


def test_a_pull_from_sftp_creates_its_working_folder_and_keeps_no_copy(site, monkeypatch):
    monkeypatch.syspath_prepend(Path(__file__).parent / "connectors")
    from sftp_server import SftpServer

    with SftpServer(site / "drop" / "bluecherry", "erp", "drop-pw") as server:
        with (site / "dw.toml").open("a") as config:
            config.write(f'\n[sources.bluecherry]\nsftp_url = "{server.url}"\nsftp_password_env = "BC_PW"\n')
        done = dw("pull", "--source", "bluecherry", "--config", site / "dw.toml", cwd=site, env={"BC_PW": "drop-pw"})
    assert done.returncode == 0, done.stderr
    pulls = site / "driftwatch.work" / "pulls"
    assert pulls.is_dir() and (site / "driftwatch.work").stat().st_mode & 0o777 == 0o700
    assert [p.name for p in (pulls / "sftp").iterdir()] == [".lock"]  # the download is gone once read


def test_an_alert_that_cannot_be_delivered_exits_3(site):
    drop(site / "drop", KLAVIYO_DRIFT)
    with (site / "dw.toml").open("a") as config:
        config.write("\n[alerts]\nretry_attempts = 1\nretry_wait_seconds = 0\n")
        config.write(f'[[alerts.routes]]\nname = "ops"\nurls = ["json://127.0.0.1:{closed_port()}/hook"]\n')
    assert dw("audit", "--snapshots", site / "drop", "--config", site / "dw.toml", cwd=site).returncode == 1
    done = dw("alert", "--config", site / "dw.toml", cwd=site)
    assert done.returncode == 3, done.stderr
    assert "failed" in done.stdout


def test_a_repair_the_platform_never_received_exits_3_and_says_to_run_it_again(site):
    """Klaviyo unreachable through every retry: nothing in the operator's input is wrong, so not 2; the
    journal keeps the actions, and the same apply run later finishes them."""
    drop(site / "drop", KLAVIYO_DRIFT)
    with (site / "dw.toml").open("a") as config:
        config.write(f'\n[sources.klaviyo]\nbase_url = "http://127.0.0.1:{closed_port()}"\n')
        config.write('api_key_env = "KLAVIYO_KEY"\nmax_attempts = 2\nbackoff_initial = 0.01\n')
    assert dw("audit", "--snapshots", site / "drop", "--config", site / "dw.toml", cwd=site).returncode == 1
    plan = site / "plan.json"
    made = dw("repair", "plan", "--target", "klaviyo", "--out", plan, "--config", site / "dw.toml", cwd=site)
    assert made.returncode == 0, made.stderr
    done = dw(
        "repair", "apply", plan, "--apply", "--yes", "--config", site / "dw.toml",
        cwd=site, env={"KLAVIYO_KEY": "pk_not_used"},
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr  # above the error: the retry it logged
    assert done.stderr.strip().splitlines()[-1].startswith("error: klaviyo: gave up after 2 attempts")


# --- internal errors ------------------------------------------------------------------------------------

CRASH = """
import sys
import driftwatch.cli.audit as command
def audit(*args, **kwargs):
    raise KeyError("a bug in the engine")
command.audit = audit
from driftwatch.cli import main
sys.argv = ["driftwatch", *sys.argv[1:]]
main()
"""


def test_an_internal_error_exits_70_with_one_line_naming_the_traceback_file(site):
    state = site / "state"
    done = subprocess.run(
        [sys.executable, "-c", CRASH, "audit", "--db", str(site / "s.duckdb")],
        cwd=site / "elsewhere",
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_STATE_HOME": str(state)},
        timeout=120,
    )
    assert done.returncode == 70
    line = one_line(done.stderr)
    assert line.startswith("internal error: KeyError: 'a bug in the engine'; full traceback in ")
    crash = Path(line.rsplit(" in ", 1)[1])
    assert crash.parent == state / "driftwatch" / "log"
    text = crash.read_text()
    assert "Traceback (most recent call last)" in text and "a bug in the engine" in text
    assert crash.stat().st_mode & 0o777 != 0 and crash.parent.stat().st_mode & 0o777 == 0o700


def test_an_internal_error_with_no_writable_log_folder_falls_back_to_the_temp_folder(site):
    blocked = site / "not-a-folder"
    blocked.write_text("")
    (site / "tmp").mkdir()
    done = subprocess.run(
        [sys.executable, "-c", CRASH, "audit", "--db", str(site / "s.duckdb")],
        cwd=site / "elsewhere",
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_STATE_HOME": str(blocked), "TMPDIR": str(site / "tmp")},
        timeout=120,
    )
    assert done.returncode == 70
    crash = Path(one_line(done.stderr).rsplit(" in ", 1)[1])
    assert crash.is_relative_to(site / "tmp") and "a bug in the engine" in crash.read_text()


# --- scratch --------------------------------------------------------------------------------------------

HOLD = """
import sys, time
from pathlib import Path
from driftwatch.scratch import scratch_folder
with scratch_folder(Path(sys.argv[1]), "audit") as folder:
    (folder / "derived-0.parquet").write_text("customer data")
    print(folder, flush=True)
    time.sleep(600)
"""


def hold_scratch(root: Path) -> tuple[subprocess.Popen, Path]:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], stdout=subprocess.PIPE, text=True)
    return holder, Path(holder.stdout.readline().strip())


def test_a_killed_audits_scratch_is_removed_by_the_next_audit_and_a_running_ones_is_kept(site):
    assert dw("load", site / "drop", "--db", site / "s.duckdb", cwd=site).returncode == 0
    root = site / "s.work" / "scratch"
    killed, killed_folder = hold_scratch(root)
    running, running_folder = hold_scratch(root)
    try:
        assert root.stat().st_mode & 0o777 == 0o700 and killed_folder.stat().st_mode & 0o777 == 0o700
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        assert (killed_folder / "derived-0.parquet").exists()  # nothing removed it: it was killed
        assert dw("audit", "--db", site / "s.duckdb", cwd=site).returncode == 0
        assert not killed_folder.exists()
        assert (running_folder / "derived-0.parquet").exists()
    finally:
        running.kill()
        running.wait(timeout=30)
