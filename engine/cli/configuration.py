"""The settings as a command reads them: a setting that cannot work stops the command
with its name (never its value) and exit status 2."""

from __future__ import annotations

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from engine.platform.logging import configure_logging
from engine.platform.settings import Settings

# Exit code of a process that cannot start as configured (a missing or refused secret).
CONFIGURATION_ERROR = 2


def load_settings() -> Settings:
    try:
        settings = Settings()
    except (ValidationError, SettingsError) as err:
        # Names the setting, never its value (the settings hide refused input).
        typer.echo(f"configuration error: {err}", err=True)
        raise typer.Exit(code=CONFIGURATION_ERROR) from None
    configure_logging(settings.log_level, settings.log_format)
    return settings
