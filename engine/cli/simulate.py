"""``aftercare simulate``: preview a plan with one order, in virtual time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from aftercare.v1 import journey_pb2 as pb
from google.protobuf import json_format

from engine.cli.samples import sample_order
from engine.journeys import parsing
from engine.platform.rpc.violations import InvalidRequest
from engine.platform.settings import Settings
from workflows.orders import Order
from workflows.plans.catalogue import PlanError

# A sample basket that fits each shipped plan (coffee for consumables).
_SAMPLE_VARIANT = {"consumables": 0}


def _order(file: Path | None, plan: str) -> Order:
    message = (
        json_format.Parse(file.read_text(), pb.Order())
        if file
        else sample_order("SIM-1", _SAMPLE_VARIANT.get(plan, 1))
    )
    return parsing.valid_order(message, now=datetime.now(UTC))


def simulate_command(
    plan: Annotated[str, typer.Option(help="Plan id, e.g. default or consumables.")] = "default",
    events: Annotated[
        Path | None,
        typer.Option(help="YAML list of {after: P1D, event: shipped, score: 9, skus: [..]}."),
    ] = None,
    order: Annotated[
        Path | None, typer.Option(help="Order as JSON (aftercare.v1.Order); a sample otherwise.")
    ] = None,
) -> None:
    """Run one order through the real workflow in virtual time and print its timeline."""
    # Here, not at the top: the simulation needs the test server and the SMTP sink,
    # which only development installs (`aftercare --help` works without them).
    from engine.simulation.simulate import DEFAULT_EVENTS, load_events, render_table, simulate

    try:
        domain_order = _order(order, plan)
        steps = load_events(events) if events else list(DEFAULT_EVENTS)
        state, rows = asyncio.run(simulate(plan, domain_order, steps, Settings().plans_dir))
    except (PlanError, InvalidRequest) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(code=2) from None
    typer.echo(render_table(state, rows))
