"""The ``aftercare`` command line."""

from engine.cli.app import app

__all__ = ["app"]
