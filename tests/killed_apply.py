"""Killing `repair apply` for real: a child process applies a plan with the platform's pusher patched to
SIGKILL itself just before, or just after, its Nth push. No exception handler, no cleanup: what is left
is exactly what a crash leaves."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from driftwatch.config import Config
from driftwatch.repair import apply_plan, load_plan
from driftwatch.store import Store

KILLED_APPLY = textwrap.dedent(
    """
    import importlib, json, os, signal, sys
    from driftwatch.config import parse_config
    from driftwatch.repair import apply_plan, load_plan
    from driftwatch.store import Store

    platform, db, plan_path, raw, batch_size, kill_at, when = sys.argv[1:]
    push = importlib.import_module(f"driftwatch.connectors.{platform}.push")
    original = push.Pusher.push
    calls = []

    def crashing_push(self, batch):
        calls.append(batch)
        if len(calls) == int(kill_at) and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(self, batch)
        if len(calls) == int(kill_at) and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    push.Pusher.push = crashing_push
    push.Pusher.batch_size = int(batch_size)
    cfg = parse_config(json.loads(raw))
    with Store(db) as store:
        pusher = push.Pusher(cfg.source(platform), env=os.environ)
        apply_plan(store, cfg, load_plan(plan_path), {platform: pusher})
    """
)
# (kill_at, when) for pytest.mark.parametrize, with readable ids.
KILL_POINTS = [(1, "before"), (2, "before"), (2, "after")]
KILL_IDS = ["before the first push", "between two batches", "after a push, before the journal knew"]


def kill_apply(
    platform: str,
    *,
    db: Path,
    plan_path: Path,
    config: Mapping[str, Any],
    batch_size: int,
    kill_at: int,
    when: str,
    env: Mapping[str, str],
) -> None:
    """Run the apply in a child process and check that it died by SIGKILL where it was told to."""
    script = Path(db).parent / "killed_apply.py"
    script.write_text(KILLED_APPLY)
    argv = [platform, str(db), str(plan_path), json.dumps(config), str(batch_size), str(kill_at), when]
    proc = subprocess.run(
        [sys.executable, str(script), *argv],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def apply_again(platform: str, *, db: Path, cfg: Config, plan_path: Path, batch_size: int, env: Mapping[str, str]):
    """The operator's rerun after the crash, in this process, in the same batches as the killed run."""
    pusher = importlib.import_module(f"driftwatch.connectors.{platform}.push").Pusher(cfg.source(platform), env=env)
    pusher.batch_size = batch_size
    with Store(db) as store:
        return apply_plan(store, cfg, load_plan(plan_path), {platform: pusher})
