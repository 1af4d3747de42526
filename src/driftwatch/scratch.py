"""Scratch folders for files that live only while one command runs (an audit's spilled snapshots).

Each run claims a private folder (0700) under a root and holds an advisory lock on it (flock) for as long
as it runs. The kernel drops the lock when the process ends, however it ends, so a folder whose lock can
be taken belongs to a run that was killed: the next run removes it before starting. Runs that are still
going (an audit of another store at the same time) keep their locks and their folders. Claiming and
sweeping happen under a lock on the root, so a sweep never sees a folder whose run has not locked it yet.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from driftwatch.files import private_directory

LOCK = ".lock"


@contextmanager
def scratch_folder(root: Path, prefix: str) -> Iterator[Path]:
    """A new private folder `root/<prefix>-XXXX` for the duration of the block, removed at its end.
    Folders under `root` left by earlier runs that were killed are removed first."""
    root = private_directory(root)
    with _locked(root / LOCK):
        remove_abandoned(root, prefix)
        folder = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=root))  # mkdtemp makes it 0700
        handle = os.open(folder / LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(handle, fcntl.LOCK_EX)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(handle)


def remove_abandoned(root: Path, prefix: str) -> list[Path]:
    """Remove the folders under `root` left by runs that ended without cleaning up; returns them.
    Call it holding the root's lock (as `scratch_folder` does)."""
    removed = []
    for folder in sorted(root.glob(f"{prefix}-*")):
        if folder.is_dir() and _abandoned(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _abandoned(folder: Path) -> bool:
    try:
        handle = os.open(folder / LOCK, os.O_RDWR)
    except FileNotFoundError:
        return True  # killed between creating the folder and locking it
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its run is still going
    finally:
        os.close(handle)  # also drops the lock if it was taken
    return True


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    handle = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)
