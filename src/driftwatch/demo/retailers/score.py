"""Scoring driftwatch on a generated retailer: audit it, then compare the findings with its answer key.

    python -m driftwatch.demo.retailers.score storefront [--mode drop|pull|both] [--clean] [--out DIR]

A finding matches an answer-key row on (check_id, target, key). Per check: found (in both), missed (in
the key only) and extra (in the findings only). The measure is recall 1.0 and precision 1.0 on the
drifted retailer and no finding at all on its clean twin, from the file drop and through the connectors.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from driftwatch.config import parse_config
from driftwatch.demo.retailers import MODES, RETAILERS, Generated, generate
from driftwatch.engine import audit
from driftwatch.errors import UserError
from driftwatch.filedrop import MANIFEST, load_directory, loading_at
from driftwatch.pull import pull_sources
from driftwatch.simulators import SIMULATORS
from driftwatch.store import Store

KEY = ["check_id", "target", "key"]
NO_FINDINGS = pl.DataFrame(schema=dict.fromkeys([*KEY, "status"], pl.String))


@dataclass(frozen=True)
class CheckScore:
    check_id: str
    found: list[tuple[str, str]]  # (target, key)
    missed: list[tuple[str, str]]
    extra: list[tuple[str, str]]


@dataclass(frozen=True)
class Score:
    """How one audit of a generated retailer compares with its answer key."""

    checks: dict[str, CheckScore]
    quarantined: int = 0
    problems: list[str] = field(default_factory=list)  # pulls that failed, files not loaded

    @property
    def expected(self) -> int:
        return sum(len(c.found) + len(c.missed) for c in self.checks.values())

    @property
    def found(self) -> int:
        return sum(len(c.found) for c in self.checks.values())

    @property
    def extra(self) -> int:
        return sum(len(c.extra) for c in self.checks.values())

    @property
    def recall(self) -> float:
        return self.found / self.expected if self.expected else 1.0

    @property
    def precision(self) -> float:
        reported = self.found + self.extra
        return self.found / reported if reported else 1.0

    @property
    def exact(self) -> bool:
        return self.found == self.expected and self.extra == 0 and not self.problems

    def table(self) -> str:
        lines = [f"{'check':<24}{'found':>7}{'missed':>8}{'extra':>7}"]
        for check in sorted(self.checks.values(), key=lambda c: c.check_id):
            lines.append(f"{check.check_id:<24}{len(check.found):>7}{len(check.missed):>8}{len(check.extra):>7}")
        lines.append(
            f"{'all':<24}{self.found:>7}{self.expected - self.found:>8}{self.extra:>7}"
            f"   recall {self.recall:.2f}  precision {self.precision:.2f}  quarantined rows {self.quarantined}"
        )
        return "\n".join(lines + [f"problem: {p}" for p in self.problems])

    def differences(self) -> str:
        """Every missed and extra finding, one a line, and every problem: what a failing test prints."""
        lines = []
        for check in sorted(self.checks.values(), key=lambda c: c.check_id):
            lines += [f"missed {check.check_id} {target} {key}" for target, key in check.missed]
            lines += [f"extra  {check.check_id} {target} {key}" for target, key in check.extra]
        return "\n".join(lines)


def score(
    findings: pl.DataFrame, answer_key: Path, *, quarantined: int = 0, problems: list[str] | None = None
) -> Score:
    expected = pl.read_csv(answer_key, infer_schema=False, schema_overrides=dict.fromkeys(KEY, pl.String))
    expected_keys = set(expected.select(KEY).iter_rows())
    found_keys = set(findings.filter(pl.col("status") != "resolved").select(KEY).iter_rows())
    checks = {}
    for check_id in sorted({k[0] for k in expected_keys | found_keys}):

        def of(keys: set[tuple[str, str, str]], check_id: str = check_id) -> set[tuple[str, str]]:
            return {(target, key) for c, target, key in keys if c == check_id}

        want, got = of(expected_keys), of(found_keys)
        checks[check_id] = CheckScore(check_id, sorted(want & got), sorted(want - got), sorted(got - want))
    return Score(checks, quarantined, problems or [])


def measure(generated: Generated, workdir: Path) -> Score:
    """Audit a generated retailer the way its mode says (file drop, or pulled through the connectors)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if generated.mode == "drop":
        cfg = parse_config(generated.config())
        with Store(workdir / "drop.duckdb") as store:
            try:
                report = load_directory(store, generated.written.drop, cfg)
            except UserError as exc:  # the drop does not load at all: nothing found, and why
                return score(NO_FINDINGS, generated.written.answer_key, problems=[f"load: {exc}"])
            findings = audit(store, cfg).findings
        quarantined = (
            report.quarantine.select(pl.struct("origin", "line")).n_unique() if report.quarantine.height else 0
        )
        return score(findings, generated.written.answer_key, quarantined=quarantined)
    with ExitStack() as stack:
        simulators = {
            source: stack.enter_context(_simulator(kind, source, generated.written.served))
            for source, kind in generated.kinds.items()
            if kind != "bluecherry"
        }
        connections: dict[str, dict[str, Any]] = {}
        env: dict[str, str] = {}
        for source, simulator in simulators.items():
            connections[source], credentials = _connection(source, generated.kinds[source], simulator)
            env.update(credentials)
        for source, kind in generated.kinds.items():
            if kind == "bluecherry":
                connections[source] = {"path": str(generated.written.drop / source)}
        cfg = parse_config(generated.config(connections))
        # The night is replayed at once: the ERP's export, whose manifest says it lands after the pull, is
        # read as it would be once it has landed.
        with Store(workdir / "pull.duckdb") as store, loading_at(_last_capture(generated.written.drop)):
            pulls = pull_sources(store, cfg, env=env, checkpoint_dir=workdir / "checkpoints")
            findings = audit(store, cfg).findings
    problems = [f"pull {p.source}: {p.error}" for p in pulls if p.error]
    return score(
        findings, generated.written.answer_key, quarantined=sum(p.quarantined for p in pulls), problems=problems
    )


def _last_capture(drop: Path) -> datetime:
    """The latest captured_at any manifest of the drop gives, or now."""
    stamps = [json.loads(m.read_text())["captured_at"] for m in drop.glob(f"*/{MANIFEST}")]
    latest = max((datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps), default=None)
    return max(latest, datetime.now(UTC)) if latest else datetime.now(UTC)


def _simulator(kind: str, source: str, served: Path):
    relaxed = {"rate_limits": {}} if kind == "mirakl" else {}  # one pull a test, not one a minute
    return SIMULATORS[kind].from_snapshot_dir(served, source=source, **relaxed)


def _connection(source: str, kind: str, simulator: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Connector settings pointing at the simulator, and the credentials it accepts. A second instance of
    a platform keeps its credentials in variables of its own, as a real configuration would."""
    settings, env = simulator.settings(), dict(simulator.env)
    if kind == "mirakl":
        settings["call_limits"] = {"OR11": [[100, 1]], "TL02": [[100, 1]]}
    if source != kind:
        renamed = {name: f"{source.upper()}_{name}" for name in env}
        settings = {k: renamed.get(v, v) if k.endswith("_env") else v for k, v in settings.items()}
        env = {renamed[name]: value for name, value in env.items()}
    return settings, env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("retailer", choices=sorted(RETAILERS))
    parser.add_argument("--mode", choices=[*MODES, "both"], default="both")
    parser.add_argument("--clean", action="store_true", help="score the clean twin (no drift, no answer rows)")
    parser.add_argument("--out", type=Path, default=None, help="where to write the retailer (default: a temp dir)")
    args = parser.parse_args(argv)
    exact = True
    with tempfile.TemporaryDirectory(prefix="driftwatch-retailer-") as scratch:
        out = args.out or Path(scratch)
        for mode in MODES if args.mode == "both" else [args.mode]:
            try:
                generated = generate(args.retailer, out / mode / "retailer", drift=not args.clean, mode=mode)
                result = measure(generated, out / mode / "work")
            except UserError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            twin = "clean twin" if args.clean else "drifted"
            print(
                f"\n== {args.retailer} ({twin}), {'file drop' if mode == 'drop' else 'pulled through the connectors'}"
            )
            print(result.table())
            if result.differences():
                print(result.differences())
            exact &= result.exact
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
