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

from driftwatch.exitcodes import ExitCode
from driftwatch.files import private_directory, write_text
from driftwatch.locations import crash_dirs
from driftwatch.redaction import redact


def internal_error(exc: BaseException) -> int:
    """Write the traceback where it can be found later (a scheduler's log keeps only stderr's last lines),
    print one line that says where, and return the internal-error exit code."""
    report = redact(_report(exc))  # an exception's message may quote a platform's answer
    path = _write(report)
    summary = f"internal error: {type(exc).__name__}: {first_line(exc)}"
    if path is None:  # nowhere to write it: stderr is the only place left, so it gets everything
        click.echo(report, err=True)
        click.echo(f"{summary} (the traceback above could not be written to a file)", err=True)
    else:
        click.echo(f"{summary}; full traceback in {path}", err=True)
    return ExitCode.INTERNAL_ERROR


def _report(exc: BaseException) -> str:
    try:
        release = version("driftwatch")
    except PackageNotFoundError:
        release = "unknown"
    return (
        f"driftwatch {release} on Python {platform.python_version()} ({platform.platform()})\n"
        f"when: {datetime.now(UTC).isoformat(timespec='seconds')}\n"
        f"command: {' '.join(sys.argv)}\n\n" + "".join(traceback.format_exception(exc))
    )


def _write(report: str) -> Path | None:
    name = f"crash-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}.txt"
    for folder in crash_dirs():
        try:
            return write_text(private_directory(folder) / name, report)
        except Exception:  # a full or read-only disk: try the next place
            continue
    return None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"
