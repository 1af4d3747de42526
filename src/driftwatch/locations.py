"""Where driftwatch keeps the files it writes on its own, so it never litters the current directory.

- Working files live beside the store, in one folder named after it: for `/srv/dw/driftwatch.duckdb`,
  `/srv/dw/driftwatch.work/` holds `plans/` (repair plans), `pulls/` (staged pages of interrupted pulls,
  downloaded SFTP exports) and `scratch/` (what an audit spills to disk while it runs). It is created on
  first use, readable by its owner only: every file in it holds customer data.
- Per user (through platformdirs, e.g. `~/.local/share/driftwatch/` and `~/.local/state/driftwatch/log/`
  on Linux): the demo retailer `driftwatch demo` writes by default, and the tracebacks of internal errors.

Everything a user asks for by name (the store, reports, exports, payout workbooks) goes where the config
or the command line says, relative to the config file's folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import platformdirs

from driftwatch.files import private_directory

APP = "driftwatch"
WORK_SUFFIX = ".work"


def work_dir(store_path: Path) -> Path:
    """The working folder of a store (not created here)."""
    store_path = Path(store_path)
    if str(store_path) in ("", ":memory:"):  # an in-memory store has no folder: the user's temp space
        return temp_dir() / f"memory{WORK_SUFFIX}"
    return store_path.with_name(store_path.stem + WORK_SUFFIX)


def working(store_path: Path, name: str) -> Path:
    """`plans`, `pulls` or `scratch` in a store's working folder, created (0700) on first use."""
    private_directory(work_dir(store_path))
    return private_directory(work_dir(store_path) / name)


def demo_dir() -> Path:
    """Where `driftwatch demo` writes when not told otherwise."""
    return Path(platformdirs.user_data_dir(APP, appauthor=False)) / "demo"


def crash_dirs() -> list[Path]:
    """Where an internal error's traceback may be written, best first: the per-user log folder, else a
    private folder in the temp space (a user without a writable home, a full home disk)."""
    return [Path(platformdirs.user_log_dir(APP, appauthor=False)), temp_dir() / "crashes"]


def temp_dir() -> Path:
    """This user's folder in the system's temp space (not created here), for a run with no store folder."""
    return Path(tempfile.gettempdir()) / f"{APP}-{os.getuid()}"
