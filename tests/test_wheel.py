"""The wheel works on its own: built from the sources, installed into a fresh virtual environment outside
the checkout, it initialises a config, lists the checks it ships, runs the demo, audits a drop, writes the
report and lists the findings, with nothing of the checkout on its path and nothing written where it runs.

Dependencies are installed from a wheelhouse kept between runs (DRIFTWATCH_TEST_WHEELHOUSE, default
~/.cache/driftwatch/test-wheelhouse): `pip install --no-index` from it, filled by `pip download` of
whatever the wheel requires that it lacks. Each run still resolves the wheel's own declared dependencies,
so one missing from pyproject.toml fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import platformdirs
import pytest

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "src")
MANIFEST = '{"captured_at": "2026-11-23T02:00:00Z"}'


def wheelhouse() -> Path:
    default = Path(platformdirs.user_cache_dir("driftwatch", appauthor=False)) / "test-wheelhouse"
    path = Path(os.environ.get("DRIFTWATCH_TEST_WHEELHOUSE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def pip(*args: str | Path) -> subprocess.CompletedProcess:
    """This environment's pip (the dev venv has setuptools to build with and a pip that can install into
    another interpreter), so the fresh environment needs no pip of its own."""
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=1800,
    )


def build_wheel(work: Path) -> Path:
    """A wheel from a copy of what a source distribution holds, so nothing else of the checkout can leak in
    and the build leaves nothing behind in it."""
    tree = work / "source"
    tree.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, tree / name)
    built = pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", work / "dist", tree)
    assert built.returncode == 0, built.stderr
    (wheel,) = (work / "dist").glob("driftwatch-*.whl")
    return wheel


def install(wheel: Path, python: Path) -> None:
    house = wheelhouse()
    offline = ("--python", python, "install", "--no-index", "--find-links", house, wheel)
    done = pip(*offline)
    if done.returncode != 0:  # a dependency the wheelhouse does not hold yet: fetch what the wheel requires
        fetched = pip("download", "--dest", house, wheel)
        assert fetched.returncode == 0, fetched.stderr
        (house / wheel.name).unlink(missing_ok=True)  # the wheelhouse keeps dependencies, never driftwatch
        done = pip(*offline)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(work)
    env_dir = work / "venv"
    venv.create(env_dir, with_pip=False)
    install(wheel, env_dir / "bin" / "python")
    return {"wheel": wheel, "bin": env_dir / "bin", "work": work}


def run(installed, *args: str | Path, cwd: Path, expect: int = 0) -> subprocess.CompletedProcess:
    """A command of the installed console script, in a clean environment: no PYTHONPATH, and per-user
    folders inside the test's own folder."""
    home = installed["work"] / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "XDG_"))}
    env |= {"XDG_DATA_HOME": str(home / "data"), "XDG_STATE_HOME": str(home / "state")}
    done = subprocess.run(
        [str(installed["bin"] / "driftwatch"), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == expect, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_wheel_holds_the_checks_templates_license_and_type_marker(installed):
    import zipfile

    names = zipfile.ZipFile(installed["wheel"]).namelist()
    assert "driftwatch/py.typed" in names
    assert "driftwatch/checks/stock_parity.toml" in names
    assert "driftwatch/report/templates/report.html.j2" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


def test_the_installed_package_is_the_wheels_not_the_checkouts(installed, tmp_path):
    where = subprocess.run(
        [str(installed["bin"] / "python"), "-c", "import driftwatch; print(driftwatch.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
        check=True,
    )
    location = Path(where.stdout.strip())
    assert location.is_relative_to(installed["work"] / "venv") and not location.is_relative_to(ROOT)


def test_init_checks_demo_audit_report_and_findings_from_the_wheel(installed, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    run(installed, "init", cwd=site)
    assert (site / "driftwatch.toml").exists()
    run(installed, "checks", "list", "--config", site / "driftwatch.toml", cwd=site)

    listed = json.loads(run(installed, "checks", "list", "--format", "json", cwd=tmp_path).stdout)
    assert len(listed) >= 17
    assert all(Path(check["file"]).is_relative_to(installed["work"] / "venv") for check in listed)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    demo = run(installed, "demo", cwd=elsewhere)
    assert "injected drifts found" in demo.stdout
    demo_dir = installed["work"] / "home" / "data" / "driftwatch" / "demo"
    assert list((demo_dir / "reports").glob("driftwatch-*.html"))
    assert list(elsewhere.iterdir()) == []  # nothing written where it ran

    drop = tmp_path / "drop"
    for source, body in (
        ("bluecherry", "sku,location,on_hand,allocated,safety_stock\nA,W1,5,1,0\nB,W1,3,0,0\n"),
        ("klaviyo", "sku,location,available\nA,W1,4\nB,W1,9\n"),
    ):
        (drop / source).mkdir(parents=True)
        (drop / source / "_manifest.json").write_text(MANIFEST)
        (drop / source / "inventory.csv").write_text(body)
    config = tmp_path / "dw.toml"
    config.write_text('[[feeds]]\nsource = "bluecherry"\ntarget = "klaviyo"\nentities = ["inventory"]\n')
    run(installed, "audit", "--snapshots", drop, "--config", config, cwd=elsewhere, expect=1)  # B is drift
    report = Path(run(installed, "report", "--config", config, cwd=elsewhere).stdout.strip())
    assert report.is_relative_to(tmp_path) and "<html" in report.read_text()
    found = json.loads(run(installed, "findings", "--format", "json", "--config", config, cwd=elsewhere).stdout)
    shown = [(f["check_id"], f["key"].split("/")[0], f["expected"], f["actual"]) for f in found]
    assert shown == [("stock_parity", "B", "3", "9")]
    assert list(elsewhere.iterdir()) == []
