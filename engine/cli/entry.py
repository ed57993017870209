"""The ``aftercare`` console script.

``aftercare health`` is what a container's health check runs, every few seconds for
the life of the container: it loads the probe alone, not every command's modules
(about a third of the CPU time on these machines, docs/performance.md). Every
other command goes through the whole application (engine.cli.app)."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["health"]:
        import typer

        from engine.cli.health import health_command

        probe = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        probe.command()(health_command)
        probe(args=sys.argv[2:], prog_name="aftercare health")
        return
    from engine.cli.app import app

    app()
