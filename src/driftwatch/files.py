"""Every file driftwatch writes appears whole or not at all.

A report, workbook, CSV, plan or import file is written to a temporary file in the same directory, flushed
to disk, and renamed over its final name: a reader (a web server, the ERP's import job, a person opening the
folder) sees the old file or the new one, never a half-written or empty one, even if the disk fills up or
the process is killed halfway.

    with atomic_path(out / "findings.csv") as tmp:
        frame.write_csv(tmp)            # any writer that takes a path

    write_text(out / "plan.json", body)

A write the machine refuses (disk full, file too large, no permission, read-only file system) raises
`StorageError`, a one-line error that names the file: the operator has to act, driftwatch has not failed.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from driftwatch.errors import UserError

# errno values that mean "the machine will not take this write", whoever raised them.
_REFUSED = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for this system's limits",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
# Libraries written in Rust or C++ (polars, DuckDB, xlsxwriter's zip) report the same refusals as text.
_REFUSED_TEXT = [
    (re.compile(r"os error (\d+)"), None),
    (re.compile(r"no space left on device", re.IGNORECASE), errno.ENOSPC),
    (re.compile(r"disk quota exceeded", re.IGNORECASE), errno.EDQUOT),
    (re.compile(r"file too large", re.IGNORECASE), errno.EFBIG),
    (re.compile(r"read-only file system", re.IGNORECASE), errno.EROFS),
]


class StorageError(UserError):
    """The machine refused a write: free some space, raise the limit or fix the permission, then run again."""


def refused_write(exc: BaseException) -> str | None:
    """Why the machine refused a write, if `exc` (or an exception it was raised from) says it did."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        reason = _reason(current)
        if reason:
            return reason
        nested = [a for a in current.args if isinstance(a, BaseException)]  # xlsxwriter wraps its OSError
        current = current.__cause__ or current.__context__ or (nested[0] if nested else None)
    return None


def _reason(exc: BaseException) -> str | None:
    if isinstance(exc, OSError) and exc.errno in _REFUSED:
        return _REFUSED[exc.errno]
    text = str(exc)
    for pattern, code in _REFUSED_TEXT:
        found = pattern.search(text)
        if found:
            number = int(found.group(1)) if code is None else code
            if number in _REFUSED:
                return _REFUSED[number]
    return None


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temporary path beside `path` to write to; on a clean exit it becomes `path` (flushed to disk
    first), on an error it is removed and `path` is left as it was. Creates the directory if needed."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
    except OSError as exc:
        raise_if_refused(path, exc)
        raise
    tmp = Path(name)
    try:
        yield tmp
        _sync(tmp)
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, Exception) and not isinstance(exc, UserError):
            raise_if_refused(path, exc)
        raise
    _sync_directory(path.parent)


def write_text(path: Path | str, text: str) -> Path:
    """Write `text` (UTF-8) to `path` whole or not at all."""
    return write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path | str, data: bytes) -> Path:
    """Write `data` to `path` whole or not at all."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def private_directory(path: Path) -> Path:
    """A directory only its owner can read (0700), created with its parents if needed: for files that
    hold customer data between steps (audit scratch, pulled pages, downloaded exports)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is masked by the umask, and an older directory may be wider
    except OSError as exc:
        raise_if_refused(path, exc)
        raise
    return path


def raise_if_refused(path: Path, exc: BaseException) -> None:
    """Raise a StorageError naming `path` if `exc` says the machine refused a write there."""
    reason = refused_write(exc)
    if reason is not None:
        raise StorageError(f"cannot write {path}: {reason}") from exc


def _mode_for(path: Path) -> int:
    """The mode a plain open() would give a new file (0666 less the umask); an existing file keeps its own."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def _sync(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable; not every platform can open a directory, which is then skipped."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
