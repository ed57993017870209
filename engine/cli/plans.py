"""``aftercare plans``: what a plan change does before it ships.

``diff OLD NEW`` compares two plan files (steps added, removed, moved; timing and
channel changes). ``check NEW --against DIR`` runs the journeys recorded in DIR
(``aftercare replay --export``, ``make histories``) through the new plan in virtual
time and says how each customer's messages would change.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from activities.email.rendering import TEMPLATE_NAMES
from engine.journeys.plan_changes.diff import diff_plans, render_diff
from workflows.plans.catalogue import PlanError, load_plan
from workflows.plans.model import PinnedPlan

plans_app = typer.Typer(help="Compare plan versions and backtest a new plan.", no_args_is_help=True)

PlanFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A plan YAML file.")]


def _load(path: Path) -> PinnedPlan:
    try:
        return load_plan(path, known_templates=TEMPLATE_NAMES)
    except PlanError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(code=2) from None


@plans_app.command("diff")
def diff_command(old: PlanFile, new: PlanFile) -> None:
    """Show what changes from OLD to NEW: steps, timing, channels, plan settings."""
    typer.echo(render_diff(diff_plans(_load(old).plan, _load(new).plan)))


@plans_app.command("check")
def check_command(
    new: PlanFile,
    against: Annotated[
        Path,
        typer.Option(exists=True, help="Recorded or exported histories (a folder or a file)."),
    ],
) -> None:
    """Run the recorded journeys through NEW in virtual time; report each customer's
    messages before and after (count, timing, channels)."""
    # Here, not at the top: the simulation needs the test server and the SMTP sink,
    # which only development installs.
    from engine.simulation.backtest import backtest, render_backtest

    plan = _load(new)
    typer.echo(render_backtest(asyncio.run(backtest(plan, against))))
