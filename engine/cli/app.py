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
from pydantic import ValidationError
from pydantic_settings import SettingsError

from engine.cli.demo import demo
from engine.cli.health import health_command
from engine.cli.journey import journey_app
from engine.cli.keys import keys_app
from engine.cli.preview import preview_command
from engine.cli.secrets import secrets_app
from engine.cli.simulate import simulate_command
from engine.platform.database.migrate import upgrade_database
from engine.platform.logging import configure_logging
from engine.platform.secret_values import MissingSecret
from engine.platform.settings import Settings
from engine.platform.temporal.tls import TemporalConfigError
from engine.processes.api import run_api
from engine.processes.codec import run_codec
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
app.add_typer(secrets_app, name="secrets")
app.command(help="Push sample orders and events through the API (needs `aftercare run`).")(demo)
app.command("simulate")(simulate_command)
app.command("preview")(preview_command)
app.command("health")(health_command)

# Exit code of a process that cannot start as configured (a missing or refused secret).
CONFIGURATION_ERROR = 2


def _settings() -> Settings:
    try:
        settings = Settings()
    except (ValidationError, SettingsError) as err:
        # Names the setting, never its value (the settings hide refused input).
        typer.echo(f"configuration error: {err}", err=True)
        raise typer.Exit(code=CONFIGURATION_ERROR) from None
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _serve(process: Coroutine[Any, Any, None]) -> None:
    """Run a deployment's process; a secret it lacks or a Temporal setting that cannot
    work stops it with the setting's name instead of a traceback."""
    try:
        asyncio.run(process)
    except (MissingSecret, TemporalConfigError) as err:
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

    settings = _settings()
    try:
        asyncio.run(run_stack(settings))
    except (PreflightError, TemporalServerError) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(code=1) from None


@app.command()
def worker() -> None:
    """Run the Temporal worker (journey workflows and their activities)."""
    _serve(run_worker(_settings()))


@app.command()
def api() -> None:
    """Run the gRPC API server."""
    _serve(run_api(_settings()))


@app.command()
def http() -> None:
    """Run the HTTP app: Twilio status callbacks and the links customers click."""
    _serve(run_http(_settings()))


@app.command()
def codec() -> None:
    """Run the codec server that lets ops with the codec token read journeys in the UI."""
    _serve(run_codec(_settings()))


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply database migrations up to REVISION."""
    settings = _settings()
    upgrade_database(settings.resolved_database_url, revision)
    typer.echo(f"database at revision {revision}")
