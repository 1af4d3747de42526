"""`driftwatch payouts reconcile`: files written, a lock kept, and a clear one-line error for a bad period."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from driftwatch.cli._common import AppContext
from driftwatch.cli.payouts import payouts
from driftwatch.config import load_config
from driftwatch.filedrop import load_directory
from driftwatch.payouts import reconcile
from driftwatch.store import Store

FIXTURE = Path(__file__).parent.parent / "fixtures" / "payouts"
CONFIG = FIXTURE / "driftwatch.toml"
OCTOBER = "2026-10"


def loaded_store(tmp_path: Path) -> Path:
    db = tmp_path / "driftwatch.duckdb"
    with Store(db) as store:
        load_directory(store, FIXTURE / "retailer", load_config(CONFIG))
    return db


def test_cli_reconciles_writes_files_and_locks(tmp_path: Path) -> None:
    db = loaded_store(tmp_path)
    out = tmp_path / "close"
    args = ["reconcile", "--period", OCTOBER, "--out", str(out), "--format", "json", "--lock"]
    app = AppContext(CONFIG, db)
    result = CliRunner().invoke(payouts, args, obj=app)
    app.close()
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [row["currency"] for row in summary] == ["EUR", "GBP"]
    assert Decimal(summary[1]["paid_out"]) == Decimal("78.40")
    assert (out / f"payouts-{OCTOBER}.xlsx").exists() and (out / "variances.csv").exists()
    with Store(db) as store:
        assert reconcile(store, load_config(CONFIG), OCTOBER).locked_at is not None


def test_cli_bad_period_exits_2_with_one_line(tmp_path: Path) -> None:
    script = (
        "from driftwatch.cli import cli, main\n"
        "from driftwatch.cli.payouts import register\n"
        "if 'payouts' not in cli.commands:\n"
        "    register(cli)\n"
        "main()\n"
    )
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "--db",
            str(tmp_path / "x.duckdb"),
            "payouts",
            "reconcile",
            "--period",
            "2026-13",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == ["error: period '2026-13' is not a month: expected YYYY-MM, e.g. 2026-10"]


def test_cli_table_output_shows_the_close_and_its_problems(tmp_path: Path) -> None:
    db = loaded_store(tmp_path)
    runner = CliRunner()
    outputs = []
    for extra in (["--lock"], []):
        app = AppContext(CONFIG, db)
        result = runner.invoke(
            payouts, ["reconcile", "--period", OCTOBER, "--out", str(tmp_path / "o"), *extra], obj=app
        )
        app.close()
        assert result.exit_code == 0, result.output
        outputs.append(result.stdout)
    assert all("Payouts 2026-10 (locked" in output for output in outputs)
    assert "| paid_out |" in outputs[0]
    assert "Unbalanced documents" in outputs[1] and "P-103" in outputs[1]
    assert "Mismatches: 4" in outputs[1]
    assert "Variances since the close: 0" in outputs[1]


def test_without_out_the_files_go_beside_the_config_not_into_the_current_directory(tmp_path: Path, monkeypatch):
    config = tmp_path / "site" / "driftwatch.toml"
    config.parent.mkdir()
    config.write_text(CONFIG.read_text())
    db = loaded_store(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    app = AppContext(config, db)
    result = CliRunner().invoke(payouts, ["reconcile", "--period", OCTOBER], obj=app)
    app.close()
    assert result.exit_code == 0, result.output
    assert (config.parent / f"payouts-{OCTOBER}" / f"payouts-{OCTOBER}.xlsx").exists()
    assert list(elsewhere.iterdir()) == []


def test_the_console_lists_the_unmatched_lines_not_only_their_count(tmp_path: Path, monkeypatch) -> None:
    db = loaded_store(tmp_path)
    with Store(db) as store:
        unmatched = reconcile(store, load_config(CONFIG), OCTOBER).unmatched_marketplace
    assert unmatched.height > 2

    def console() -> str:
        app = AppContext(CONFIG, db)
        result = CliRunner().invoke(payouts, ["reconcile", "--period", OCTOBER, "--out", str(tmp_path / "o")], obj=app)
        app.close()
        assert result.exit_code == 0, result.output
        return result.stdout

    listed = console().split(f"Unmatched marketplace lines: {unmatched.height} (first {unmatched.height})")[1]
    rows = [line for line in listed.split("\n\n")[0].splitlines() if line.startswith("| P-")]
    assert [row.split("|")[2].strip() for row in rows] == unmatched["line_id"].to_list()
    l43 = next(row for row in rows if "| L43 " in row)
    assert "| 12.00 " in l43 and "no ERP order carries this marketplace order id" in l43  # 12.00, not 12.0000
    monkeypatch.setattr("driftwatch.cli.payouts.ISSUES_SHOWN", 2)
    assert f"Unmatched marketplace lines: {unmatched.height} (first 2)" in console()
