"""``aftercare``: run the parts of the service, and work with journeys as a person."""

from __future__ import annotations

import asyncio

import typer

from engine.cli.demo import demo
from engine.cli.journey import journey_app
from engine.cli.keys import keys_app
from engine.cli.preview import preview_command
from engine.cli.simulate import simulate_command
from engine.devstack.preflight import PreflightError
from engine.devstack.temporal_server import TemporalServerError
from engine.platform.database.migrate import upgrade_database
from engine.platform.logging import configure_logging
from engine.platform.settings import Settings
from engine.processes.api import run_api
from engine.processes.codec import run_codec
from engine.processes.dev_stack import run_stack
from engine.processes.http import run_http
from engine.processes.worker import run_worker

app = typer.Typer(
    help="Aftercare: post-purchase journeys, one durable Temporal workflow per order.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Aftercare's own database.", no_args_is_help=True)
app.add_typer(journey_app, name="journey")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.command(help="Push sample orders and events through the API (needs `aftercare run`).")(demo)
app.command("simulate")(simulate_command)
app.command("preview")(preview_command)


def _settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return settings


@app.command()
def run() -> None:
    """Start everything on embedded defaults: Temporal dev server, worker, API, mail sink."""
    settings = _settings()
    try:
        asyncio.run(run_stack(settings))
    except (PreflightError, TemporalServerError) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(code=1) from None


@app.command()
def worker() -> None:
    """Run the Temporal worker (journey workflows and their activities)."""
    asyncio.run(run_worker(_settings()))


@app.command()
def api() -> None:
    """Run the gRPC API server."""
    asyncio.run(run_api(_settings()))


@app.command()
def http() -> None:
    """Run the HTTP app: Twilio status callbacks and the links customers click."""
    asyncio.run(run_http(_settings()))


@app.command()
def codec() -> None:
    """Run the codec server that lets ops with the codec token read journeys in the UI."""
    asyncio.run(run_codec(_settings()))


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply database migrations up to REVISION."""
    settings = _settings()
    upgrade_database(settings.resolved_database_url, revision)
    typer.echo(f"database at revision {revision}")
