"""Files appear whole or not at all, and a write the machine refuses is a one-line StorageError."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from file_limits import file_size_limit

from driftwatch.files import StorageError, atomic_path, private_directory, refused_write, write_text


def test_write_text_creates_the_directory_and_the_file(tmp_path):
    path = write_text(tmp_path / "a" / "b" / "plan.json", "{}")
    assert path.read_text() == "{}"
    assert os.listdir(path.parent) == ["plan.json"]


def test_a_new_file_gets_the_umask_mode_and_an_existing_one_keeps_its_own(tmp_path):
    old = os.umask(0o027)
    try:
        fresh = write_text(tmp_path / "fresh.html", "x")
    finally:
        os.umask(old)
    assert fresh.stat().st_mode & 0o777 == 0o640
    kept = tmp_path / "kept.html"
    kept.write_text("old")
    kept.chmod(0o604)
    write_text(kept, "new")
    assert kept.stat().st_mode & 0o777 == 0o604


def test_a_writer_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "report.html"
    path.write_text("yesterday")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half of to")
        raise RuntimeError("renderer crashed")
    assert path.read_text() == "yesterday"
    assert os.listdir(tmp_path) == ["report.html"]


SCRIPT = """
import polars as pl, sys
from pathlib import Path
from driftwatch.files import atomic_path, StorageError
frame = pl.DataFrame({"sku": pl.int_range(100_000, eager=True).hash(seed=1).cast(pl.String)})
target = Path(sys.argv[1]) / sys.argv[2]
try:
    with atomic_path(target) as tmp:
        frame.write_parquet(tmp) if target.suffix == ".parquet" else frame.write_csv(tmp)
except StorageError as exc:
    print(exc)
    sys.exit(2)
"""


@pytest.mark.parametrize("name", ["findings.csv", "findings.parquet"])
def test_a_write_the_kernel_refuses_is_a_storage_error_and_leaves_nothing(tmp_path, name):
    (tmp_path / name).write_bytes(b"the previous, complete file")
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(tmp_path), name],
        capture_output=True,
        text=True,
        preexec_fn=file_size_limit(64 * 1024),
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout.strip() == f"cannot write {tmp_path / name}: file too large for this system's limits"
    assert (tmp_path / name).read_bytes() == b"the previous, complete file"
    assert os.listdir(tmp_path) == [name]


def test_refusals_are_recognised_through_wrapping_and_in_library_text():
    assert refused_write(OSError(28, "No space left on device")) == "no space left on the device"
    wrapped = RuntimeError("writing the workbook")
    wrapped.__cause__ = OSError(122, "Disk quota exceeded")
    assert refused_write(wrapped) == "disk quota exceeded"
    assert refused_write(Exception('Could not write file "x.duckdb": No space left on device')) is not None
    assert refused_write(Exception("parquet: underlying IO error: File too large (os error 27)")) is not None
    assert refused_write(ValueError("not a valid decimal amount")) is None
    assert refused_write(FileNotFoundError(2, "No such file or directory")) is None


def test_a_private_directory_is_0700_even_when_it_existed_wider(tmp_path):
    wide = tmp_path / "scratch"
    wide.mkdir(mode=0o755)
    wide.chmod(0o755)
    assert private_directory(wide).stat().st_mode & 0o777 == 0o700
    assert private_directory(tmp_path / "new" / "dir").stat().st_mode & 0o777 == 0o700


def test_storage_error_is_a_user_error():
    from driftwatch.errors import UserError

    assert issubclass(StorageError, UserError)
