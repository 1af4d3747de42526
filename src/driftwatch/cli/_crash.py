"""An internal error (a bug) ends with one line on stderr naming the file that holds its full traceback."""

from __future__ import annotations

import os
import platform
import sys
import traceback
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import click

from driftwatch.errors import first_line
from driftwatch.exitcodes import ExitCode
from driftwatch.files import private_directory, write_text
from driftwatch.locations import crash_dirs
from driftwatch.redaction import redact


def internal_error(exc: BaseException) -> int:
    """Write the traceback where it can be found later (a scheduler's log keeps only stderr's last lines),
    print one line that says where, and return the internal-error exit code."""
    report = redact(_report("".join(traceback.format_exception(exc))))  # a message may quote an answer
    path = _write(report)
    summary = f"internal error: {type(exc).__name__}: {first_line(exc)}"
    if path is None:  # nowhere to write it: stderr is the only place left, so it gets everything
        click.echo(report, err=True)
        click.echo(f"{summary} (the traceback above could not be written to a file)", err=True)
    else:
        click.echo(f"{summary}; full traceback in {path}", err=True)
    return ExitCode.INTERNAL_ERROR


def save_traceback(text: str, label: str) -> Path | None:
    """Write a traceback that came from elsewhere (a fleet job's worker) where internal errors' go, redacted;
    `label` (the retailer) keeps the files of one second apart. None when no folder would take it."""
    return _write(redact(_report(text)), f"-{label}")


def _report(trace: str) -> str:
    try:
        release = version("driftwatch")
    except PackageNotFoundError:
        release = "unknown"
    return (
        f"driftwatch {release} on Python {platform.python_version()} ({platform.platform()})\n"
        f"when: {datetime.now(UTC).isoformat(timespec='seconds')}\n"
        f"command: {' '.join(sys.argv)}\n\n" + trace
    )


def _write(report: str, label: str = "") -> Path | None:
    name = f"crash-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}{label}.txt"
    for folder in crash_dirs():
        try:
            return write_text(private_directory(folder) / name, report)
        except Exception:  # a full or read-only disk: try the next place
            continue
    return None
