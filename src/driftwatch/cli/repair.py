"""`driftwatch repair plan` and `driftwatch repair apply`."""

from __future__ import annotations

from pathlib import Path

import click

from driftwatch.cli._common import AppContext, emit, format_option, pass_app
from driftwatch.exitcodes import ExitCode
from driftwatch.repair import apply_plan, load_plan, make_plan, pusher_for, refusals


@click.group()
def repair() -> None:
    """Push the system of record's truth back out: plan first, apply only when you say so."""


@repair.command()
@click.option("--check", "checks", multiple=True, help="Only findings of this check (repeatable).")
@click.option("--target", "targets", multiple=True, help="Only findings on this target (repeatable).")
@click.option("--run", "run_id", default=None, help="Audit run to repair (default: the latest).")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to save the plan (default: plans/<plan id>.json in the store's working folder).",
)
@format_option()
@pass_app
def plan(
    app: AppContext, checks: tuple[str, ...], targets: tuple[str, ...], run_id: str | None, out: Path | None, fmt: str
) -> None:
    """Turn open findings into per-platform actions, show before and after, and save the plan.

    \b
    Example:
      driftwatch repair plan --check stock_parity --target mirakl
    """
    made = make_plan(app.store, app.config, run_id=run_id, checks=list(checks) or None, targets=list(targets) or None)
    path = made.save(out or app.working("plans") / f"{made.plan_id}.json")
    emit(made.to_frame(), fmt, title=f"Plan {made.plan_id}: {len(made.actions)} action(s)")
    if fmt == "table":
        for reason in refusals(made, app.store, app.config):
            click.secho(f"apply would refuse: {reason}", fg="yellow")
        click.echo(f"saved {path}\nreview it, then: driftwatch repair apply {path} --apply")


@repair.command()
@click.argument("plan_path", type=click.Path(path_type=Path))
@click.option("--apply", "really", is_flag=True, help="Push for real. Without it, show what would be pushed.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (for scripts).")
@click.option("--override-guards", is_flag=True, help="Apply even over the plan's guards (mass zero stock, ...).")
@click.option("--allow-untrusted", is_flag=True, help="Apply even though snapshot_health failed for the run.")
@format_option()
@pass_app
def apply(
    app: AppContext, plan_path: Path, really: bool, yes: bool, override_guards: bool, allow_untrusted: bool, fmt: str
) -> None:
    """Execute a saved plan through each platform's push side, then verify what it touched.

    Dry run unless --apply. A journal row is written before every push and completed after it, so rerunning
    after a crash pushes nothing twice and finishes the rest. Exits 3 when a push failed or a repair did not
    verify (rerun it to finish).

    \b
    Example:
      driftwatch repair apply plans/20261123T020000-abc123.json --apply --yes
    """
    saved = load_plan(plan_path)
    if not really:
        emit(saved.to_frame(), fmt, title=f"Dry run of {saved.plan_id}: nothing is pushed")
        for reason in refusals(
            saved, app.store, app.config, override_guards=override_guards, allow_untrusted=allow_untrusted
        ):
            click.secho(f"apply would refuse: {reason}", fg="yellow")
        return
    if not yes:
        click.confirm(f"Push {len(saved.actions)} action(s) to {', '.join(saved.by_platform())}?", abort=True)
    pushers = {platform: pusher_for(platform, app.config) for platform in saved.by_platform()}
    report = apply_plan(
        app.store, app.config, saved, pushers, override_guards=override_guards, allow_untrusted=allow_untrusted
    )
    emit(
        report.frame(saved),
        fmt,
        title=f"Applied {saved.plan_id}: {report.pushed} pushed, "
        f"{report.already_done} already done, {report.settled_in_doubt} settled after an interruption",
    )
    if report.failed or any(v != "repaired" for v in report.verdicts.values()):
        raise click.exceptions.Exit(ExitCode.INCOMPLETE)


def register(group: click.Group) -> None:
    group.add_command(repair)
