"""``aftercare experiments ...``: stop a plan step's experiment with a winner, through
the gRPC API (ReportsService.StopExperiment; the key needs the journeys:admin scope).

    aftercare experiments stop review-subject --winner b
"""

from __future__ import annotations

from typing import Annotated

import typer
from aftercare.v1 import reports_pb2 as pb

from clients import AftercareClient
from engine.cli.connection import ApiKeyOption, call_api

experiments_app = typer.Typer(
    help="Experiments on plan steps (journeys:admin).", no_args_is_help=True
)


@experiments_app.command("stop")
def stop(
    experiment: Annotated[str, typer.Argument(help="The experiment's id in the plan.")],
    winner: Annotated[
        str, typer.Option("--winner", help='The arm every later send uses ("holdout": none).')
    ],
    api_key: ApiKeyOption = None,
) -> None:
    """Stop EXPERIMENT: from now on every send of its step uses the winner, in every
    journey, sleeping ones included."""

    async def work(client: AftercareClient) -> pb.StopExperimentResponse:
        return await client.stop_experiment(experiment, winner)

    stopped = call_api(work, api_key)
    when = stopped.decided_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC")
    typer.echo(f"{stopped.experiment}: stopped at {when}; every later send uses {stopped.winner}")
