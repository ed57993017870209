"""``aftercare``: run the parts of the service, and work with journeys as a person.

What only development needs (the Temporal dev server, the SMTP sink, the time-skipping
test server) is imported by the commands that use it (``run``, ``simulate``), never
here: the production image has none of it, and every other command works there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import typer

from engine.cli.configuration import CONFIGURATION_ERROR, load_settings
from engine.cli.database import db_app
from engine.cli.demo import demo
from engine.cli.experiments import experiments_app
from engine.cli.health import health_command
from engine.cli.journey import journey_app
from engine.cli.keys import keys_app
from engine.cli.operations import ops_app
from engine.cli.plans import plans_app
from engine.cli.preview import preview_command
from engine.cli.replay import replay_command
from engine.cli.report import report_command
from engine.cli.secrets import secrets_app
from engine.cli.simulate import simulate_command
from engine.cli.subscriptions import subscriptions_app
from engine.integrations.subscriptions.broker import BrokerConfigError
from engine.platform.secret_values import MissingSecret
from engine.platform.telemetry.runtime import MetricsConfigError
from engine.platform.temporal.tls import TemporalConfigError
from engine.processes.api import run_api
from engine.processes.codec import run_codec
from engine.processes.consumer import run_consumer
from engine.processes.http import run_http
from engine.processes.worker import run_worker

app = typer.Typer(
    help="Aftercare: post-purchase journeys, one durable Temporal workflow per order.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(journey_app, name="journey")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(ops_app, name="ops")
app.add_typer(plans_app, name="plans")
app.add_typer(secrets_app, name="secrets")
app.add_typer(experiments_app, name="experiments")
app.add_typer(subscriptions_app, name="subscriptions")
app.command(help="Push sample orders and events through the API (needs `aftercare run`).")(demo)
app.command("simulate")(simulate_command)
app.command("preview")(preview_command)
app.command("health")(health_command)
app.command("report")(report_command)
app.command("replay")(replay_command)


def _serve(process: Coroutine[Any, Any, None]) -> None:
    """Run a deployment's process; a secret it lacks or a Temporal setting that cannot
    work stops it with the setting's name instead of a traceback."""
    try:
        asyncio.run(process)
    except (MissingSecret, TemporalConfigError, MetricsConfigError, BrokerConfigError) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(code=CONFIGURATION_ERROR) from None


@app.command()
def run() -> None:
    """Start everything on embedded defaults: Temporal dev server, worker, API, mail sink."""
    # The dev-only parts: not installed in the production image.
    from engine.devstack.preflight import PreflightError
    from engine.devstack.temporal_server import TemporalServerError

    try:
        from engine.processes.dev_stack import run_stack
    except ImportError as err:
        typer.echo(
            f"`aftercare run` is the development stack and needs the development "
            f"dependencies ({err.name} is missing): `make run` installs them. "
            "A deployment runs `aftercare api`, `worker`, `http` and `codec` instead.",
            err=True,
        )
        raise typer.Exit(code=1) from None

    settings = load_settings()
    try:
        asyncio.run(run_stack(settings))
    except (PreflightError, TemporalServerError, BrokerConfigError) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(code=1) from None


@app.command()
def worker() -> None:
    """Run the Temporal worker (journey workflows and their activities)."""
    _serve(run_worker(load_settings()))


@app.command()
def api() -> None:
    """Run the gRPC API server."""
    _serve(run_api(load_settings()))


@app.command()
def http() -> None:
    """Run the HTTP app: Twilio status callbacks and the links customers click."""
    _serve(run_http(load_settings()))


@app.command()
def codec() -> None:
    """Run the codec server that lets ops with the codec token read journeys in the UI."""
    _serve(run_codec(load_settings()))


@app.command()
def consume() -> None:
    """Take order events from the event bus (RabbitMQ, AFTERCARE_BROKER_URL) into journeys."""
    _serve(run_consumer(load_settings()))
