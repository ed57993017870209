"""``aftercare replay``: replay running journeys (or exported files) against this code.

Run before a deploy, from the build about to ship: it names every journey the new
code would break (docs/safe-changes.md). Exit status 0 when all replay, 1 when any
does not (non-determinism, a failing workflow task, an unreadable history), 2 for a
configuration error. Erased customers' journeys cannot be read by design: they are
counted and skipped.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from engine.cli.configuration import CONFIGURATION_ERROR, load_settings
from engine.journeys.replay.fetching import history_file_loaders
from engine.journeys.replay.live import replay_running
from engine.journeys.replay.reporting import render_text
from engine.journeys.replay.routine import ReplayOptions, run_replay
from engine.journeys.replay.selection import Selection
from engine.platform.codec.keys import KEYS_FILE_NAME
from engine.platform.secret_values import MissingSecret
from engine.platform.settings import Settings
from engine.platform.temporal.tls import TemporalConfigError


def replay_command(
    plan: Annotated[str | None, typer.Option(help="Only journeys on this plan.")] = None,
    stage: Annotated[str | None, typer.Option(help="Only journeys at this stage.")] = None,
    journey: Annotated[
        str | None, typer.Option(help="One journey id (order-...), running or not.")
    ] = None,
    sample: Annotated[
        int | None, typer.Option(min=1, help="A random sample of this many journeys.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the sample (reproducible).")] = None,
    parallel: Annotated[int, typer.Option(min=1, help="Journeys replayed at once.")] = 4,
    file: Annotated[
        Path | None,
        typer.Option(
            exists=True, help="Replay exported JSON histories (a file or a folder) instead."
        ),
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option(help="Write the histories, personal data replaced by fakes, here."),
    ] = None,
    json_report: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON here.")
    ] = None,
) -> None:
    """Replay running journeys against this code; name every one it would break."""
    options = ReplayOptions(parallel=parallel, export_to=export)
    if file is not None:
        report = asyncio.run(run_replay(history_file_loaders(file), None, options))
    else:
        selection = Selection(
            plan=plan, stage=stage, journey_id=journey, sample=sample, running_only=journey is None
        )
        settings = _settings_with_keys()
        try:
            report = asyncio.run(replay_running(settings, selection, options, seed=seed))
        except (MissingSecret, TemporalConfigError) as err:
            typer.echo(str(err), err=True)
            raise typer.Exit(code=CONFIGURATION_ERROR) from None
    typer.echo(render_text(report))
    if json_report is not None:
        json_report.write_text(json.dumps(report.as_json(), indent=2) + "\n")
    if not report.ok:
        raise typer.Exit(code=1)


def _settings_with_keys() -> Settings:
    """The configured settings; on a developer machine without configured keys, the dev
    stack's (only when `aftercare run` made them: a replay never makes keys)."""
    settings = load_settings()
    if settings.codec_keys is None and (settings.state_dir / KEYS_FILE_NAME).exists():
        # Here, not at the top: the dev stack is not in the production image.
        from engine.processes.dev_stack import with_dev_secrets

        return with_dev_secrets(settings)
    return settings
