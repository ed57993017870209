"""Static checks of docker-compose.yml and the Dockerfile.

No Docker engine runs where these tests run, so nothing is built or started: the
compose file is read with ``yaml.safe_load`` (anchors and ``<<`` merge keys resolved
as Compose resolves them), validated against the Compose Specification's published
JSON schema (vendored in ``compose_spec/``), and the Dockerfile is parsed line by line.
Each check is a function that returns the problems it finds; the tests assert the real
files have none, and feed the same functions broken copies to show that each one can
fail.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from engine.cli.secrets import fresh_secrets, write_secrets_dir
from engine.platform.secret_values import FILE_SUFFIX, secret_fields
from engine.platform.settings import Settings
from workflows import search_attributes as sa

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
COMPOSE_SCHEMA = Path(__file__).resolve().parent / "compose_spec" / "compose-spec.json"

# Top-level subcommands of the `aftercare` CLI (engine/cli.py) that a compose
# `command:` may start with. Kept as a constant instead of being read from the Typer
# app so that these checks do not import the CLI and its dependencies; add a name
# here when the CLI gains a top-level subcommand.
# (tests/deploy/test_runtime_dependencies.py checks it against the real CLI.)
CLI_SUBCOMMANDS = frozenset(
    {
        "api",
        "worker",
        "http",
        "codec",
        "run",
        "db",
        "demo",
        "journey",
        "keys",
        "secrets",
        "health",
        "ops",
        "simulate",
        "preview",
        "report",
        "experiments",
        "consume",
        "subscriptions",
        "replay",
        "plans",
    }
)

# Our own services: built from ./Dockerfile, configured through AFTERCARE_* variables.
APP_SERVICES = ("migrate", "api", "worker", "http", "codec")
EXPECTED_SERVICES = frozenset(
    {
        "postgresql",
        "temporal",
        "temporal-admin-tools",
        "temporal-ui",
        "aftercare-db",
        "mailpit",
        *APP_SERVICES,
    }
)
# Top-level package directories the image must contain.
PACKAGE_DIRS = ("engine", "workflows", "activities", "clients", "proto")
# Custom search attributes the workflows write; Temporal rejects unregistered ones.
# Every attribute the journeys write, as the CLI names its type.
SEARCH_ATTRIBUTES = {key.name: sa.CLI_TYPES[key.indexed_value_type] for key in sa.ALL}
GRPC_PORT = "50051"
DATABASE_SERVICES = ("postgresql", "aftercare-db")
POSTGRES_DATA_DIR = "/var/lib/postgresql/data"

ENV_PREFIX: str = Settings.model_config.get("env_prefix", "").upper()
# The secret settings, each of which may be given as a file (AFTERCARE_<NAME>_FILE).
SECRET_FIELDS = frozenset(secret_fields(Settings))
SECRET_FILE_VARIABLES = {ENV_PREFIX + name.upper() + FILE_SUFFIX: name for name in SECRET_FIELDS}
SETTINGS_VARIABLES = frozenset(
    {ENV_PREFIX + name.upper() for name in Settings.model_fields} | set(SECRET_FILE_VARIABLES)
)
# Where a Docker secret is mounted in a container.
SECRETS_MOUNT = "/run/secrets/"
# What a user reaches on the host, by service: API, HTTP app, Temporal UI, codec server.
PUBLISHED_PORTS = {"api": "50051", "http": "8000", "temporal-ui": "8080", "codec": "8234"}
# A value in a variable with one of these words in its name is a secret.
SECRET_WORDS = ("PASSWORD", "PWD", "SECRET", "TOKEN", "KEY")

Compose = dict[str, Any]
Service = Mapping[str, Any]


# --- reading compose ---------------------------------------------------------------


def load_compose(path: Path = COMPOSE_FILE) -> Compose:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name} is not a YAML mapping"
    return data


def services_of(compose: Compose) -> dict[str, Service]:
    services = compose.get("services")
    assert isinstance(services, dict), "compose file has no `services` mapping"
    return services


_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


def interpolate(value: str) -> str:
    """Resolve Compose interpolation the way a host with none of the variables set would.

    ``${NAME:-default}`` gives its default, ``$$`` a literal ``$``; ``${NAME}`` with no
    default has no value known here, so it is refused.
    """

    def replace(match: re.Match[str]) -> str:
        default = match.group("default")
        if default is None:
            raise ValueError(f"{match.group(0)} has no default value")
        return default

    return _INTERPOLATION.sub(replace, value.replace("$$", "\0")).replace("\0", "$")


def environment_of(service: Service) -> dict[str, str | None]:
    """A service's environment as a mapping; a bare ``NAME`` (from the host) maps to None."""
    raw = service.get("environment") or {}
    if isinstance(raw, Mapping):
        return {str(k): None if v is None else str(v) for k, v in raw.items()}
    env: dict[str, str | None] = {}
    for item in raw:
        name, sep, value = str(item).partition("=")
        env[name] = value if sep else None
    return env


def aftercare_environment(service: Service) -> dict[str, str | None]:
    return {k: v for k, v in environment_of(service).items() if k.upper().startswith(ENV_PREFIX)}


def depends_on_of(service: Service) -> list[str]:
    raw = service.get("depends_on") or []
    return [str(name) for name in raw]  # a list, or a mapping keyed by service name


def named_volumes_of(service: Service) -> list[str]:
    """Named volumes a service mounts (bind mounts and anonymous volumes left out)."""
    names: list[str] = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, Mapping):
            if volume.get("type", "volume") == "volume" and volume.get("source"):
                names.append(str(volume["source"]))
            continue
        source, sep, _ = str(volume).partition(":")
        if sep and not source.startswith(("/", ".", "~", "$")):
            names.append(source)
    return names


def volume_mounts_of(service: Service) -> dict[str, str]:
    """Container path -> named volume."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, Mapping):
            if volume.get("type", "volume") == "volume" and volume.get("source"):
                mounts[str(volume["target"])] = str(volume["source"])
            continue
        parts = str(volume).split(":")
        if len(parts) >= 2 and not parts[0].startswith(("/", ".", "~", "$")):
            mounts[parts[1]] = parts[0]
    return mounts


def published_ports_of(service: Service) -> list[tuple[str | None, str]]:
    """(published host port or None, container port) for each `ports:` entry."""
    ports: list[tuple[str | None, str]] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, Mapping):
            published = entry.get("published")
            ports.append((None if published is None else str(published), str(entry["target"])))
            continue
        parts = str(entry).split("/", 1)[0].split(":")
        ports.append((parts[-2] if len(parts) >= 2 else None, parts[-1]))
    return ports


def command_of(service: Service) -> list[str]:
    raw = service.get("command")
    if raw is None:
        return []
    if isinstance(raw, str):
        return shlex.split(raw)
    return [str(token) for token in raw]


# --- compose checks (each returns the problems found) ------------------------------


# The contents of the secret files, as `aftercare secrets init` makes them.
SECRET_VALUES = {secret.name: secret.value for secret in fresh_secrets(database_passwords=True)}


def check_settings_variables(
    compose: Compose, secret_values: Mapping[str, str] = SECRET_VALUES
) -> list[str]:
    """Every AFTERCARE_* variable is a Settings field (or a secret's _FILE) and every
    service's set validates, its secret files holding ``secret_values`` (by name)."""
    problems: list[str] = []
    for name, service in services_of(compose).items():
        env = aftercare_environment(service)
        unknown = sorted(set(map(str.upper, env)) - SETTINGS_VARIABLES)
        if unknown:
            problems.append(f"{name}: not fields of Settings: {', '.join(unknown)}")
            continue
        try:
            build_settings(env, secret_values)
        except ValueError as error:  # pydantic's ValidationError is a ValueError
            problems.append(f"{name}: invalid settings: {error}")
    return problems


def build_settings(
    env: Mapping[str, str | None], secret_values: Mapping[str, str] = SECRET_VALUES
) -> Settings:
    """Settings built from these variables alone: no .env file, no process environment.
    A secret given as ``/run/secrets/NAME`` takes the value ``secret_values[NAME]``."""
    values: dict[str, Any] = {}
    for key, value in env.items():
        if value is None:
            continue
        if key.upper() in SECRET_FILE_VARIABLES:
            secret = interpolate(value).removeprefix(SECRETS_MOUNT)
            if secret not in secret_values:
                raise ValueError(
                    f"{key}: {value} is not one of the secrets {sorted(secret_values)}"
                )
            values[SECRET_FILE_VARIABLES[key.upper()]] = secret_values[secret]
        else:
            values[key[len(ENV_PREFIX) :].lower()] = interpolate(value)
    return Settings(_env_file=None, **values)


def check_depends_on(compose: Compose) -> list[str]:
    services = services_of(compose)
    return [
        f"{name} depends on unknown service {target!r}"
        for name, service in services.items()
        for target in depends_on_of(service)
        if target not in services
    ]


def check_health_conditions(compose: Compose) -> list[str]:
    """`condition: service_healthy` only on services that define a healthcheck here."""
    services = services_of(compose)
    problems: list[str] = []
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        if not isinstance(depends_on, Mapping):
            continue
        for target, spec in depends_on.items():
            if (spec or {}).get("condition") == "service_healthy" and not services.get(
                target, {}
            ).get("healthcheck"):
                problems.append(f"{name} waits for {target} to be healthy; it has no healthcheck")
    return problems


def check_volumes(compose: Compose) -> list[str]:
    declared = set(compose.get("volumes") or {})
    return [
        f"{name} mounts undeclared volume {volume!r}"
        for name, service in services_of(compose).items()
        for volume in named_volumes_of(service)
        if volume not in declared
    ]


def check_worker_scales(compose: Compose) -> list[str]:
    worker = services_of(compose).get("worker")
    if worker is None:
        return ["no `worker` service"]
    problems: list[str] = []
    if "container_name" in worker:
        problems.append("worker has a container_name, so only one can run")
    if worker.get("ports"):
        problems.append("worker publishes host ports, so a second one would clash")
    return problems


def check_api_port(compose: Compose) -> list[str]:
    api = services_of(compose).get("api")
    if api is None:
        return ["no `api` service"]
    problems: list[str] = []
    if (GRPC_PORT, GRPC_PORT) not in published_ports_of(api):
        problems.append(f"api does not publish {GRPC_PORT}:{GRPC_PORT}")
    configured = aftercare_environment(api).get(f"{ENV_PREFIX}GRPC_PORT")
    if configured is not None and configured != GRPC_PORT:
        problems.append(f"api listens on {configured}, not on the published {GRPC_PORT}")
    return problems


def check_app_images(compose: Compose) -> list[str]:
    """Our services are built from ./Dockerfile, all into one image, with its entrypoint."""
    services = services_of(compose)
    problems: list[str] = []
    images: set[str] = set()
    for name in APP_SERVICES:
        service = services.get(name)
        if service is None:
            problems.append(f"no `{name}` service")
            continue
        build = service.get("build")
        if isinstance(build, str):
            build = {"context": build}
        if not isinstance(build, Mapping):
            problems.append(f"{name} is not built from the Dockerfile")
            continue
        context = (REPO_ROOT / str(build.get("context", "."))).resolve()
        dockerfile = (context / str(build.get("dockerfile", "Dockerfile"))).resolve()
        if dockerfile != DOCKERFILE.resolve():
            problems.append(f"{name} is built from {dockerfile}, not {DOCKERFILE}")
        if "image" in service:
            images.add(str(service["image"]))
        if "entrypoint" in service:
            problems.append(f"{name} overrides the image's `aftercare` entrypoint")
    if len(images) > 1:
        problems.append(f"our services tag different images: {sorted(images)}")
    for name, service in services.items():
        if name not in APP_SERVICES and "build" in service:
            problems.append(f"{name} builds an image but is not listed in APP_SERVICES")
    return problems


def check_commands(compose: Compose) -> list[str]:
    problems: list[str] = []
    for name in APP_SERVICES:
        service = services_of(compose).get(name, {})
        command = command_of(service)
        if not command:
            problems.append(f"{name} has no command (it would silently run the default)")
        elif command[0] not in CLI_SUBCOMMANDS:
            problems.append(f"{name} runs `aftercare {' '.join(command)}`: no such subcommand")
    return problems


def check_schema(compose: Compose) -> list[str]:
    """What the Compose Specification's JSON schema finds wrong (draft 2020-12)."""
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in validator.iter_errors(compose)
    ]


def secret_mounts_of(service: Service) -> dict[str, str]:
    """Path in the container -> the top-level secret mounted there."""
    mounts: dict[str, str] = {}
    for item in service.get("secrets") or []:
        if isinstance(item, Mapping):
            source = str(item["source"])
            target = str(item.get("target") or source)
        else:
            source = target = str(item)
        mounts[target if target.startswith("/") else SECRETS_MOUNT + target] = source
    return mounts


def check_secret_files(compose: Compose) -> list[str]:
    """Every secret a service mounts is declared with a file, and every file a
    variable names under /run/secrets is mounted into that service."""
    declared = compose.get("secrets") or {}
    problems: list[str] = []
    for name, service in services_of(compose).items():
        mounts = secret_mounts_of(service)
        for source in sorted(set(mounts.values())):
            if source not in declared:
                problems.append(f"{name} mounts undeclared secret {source!r}")
            elif "file" not in (declared[source] or {}):
                problems.append(f"secret {source!r} names no file")
        for key, value in environment_of(service).items():
            if value is not None and value.startswith(SECRETS_MOUNT) and value not in mounts:
                problems.append(f"{name}: {key} reads {value}, which is not mounted there")
    return problems


def check_no_secrets(compose: Compose) -> list[str]:
    """The file holds no secret: secret settings come as files, other variables named
    like a secret hold none, and no URL carries a password."""
    problems: list[str] = []
    for name, service in services_of(compose).items():
        for key, value in environment_of(service).items():
            upper = key.upper()
            if value is None or upper.endswith(FILE_SUFFIX):
                continue
            setting = upper.removeprefix(ENV_PREFIX).lower()
            if upper.startswith(ENV_PREFIX) and setting in SECRET_FIELDS:
                if setting != "database_url":  # a URL is no secret without its password
                    problems.append(f"{name}: {key} is written here; use {key}{FILE_SUFFIX}")
            elif not upper.startswith(ENV_PREFIX) and any(w in upper for w in SECRET_WORDS):
                problems.append(f"{name}: {key} is written here; use a secret file")
            try:
                password = urlsplit(interpolate(value)).password
            except ValueError:
                password = None
            if password:
                problems.append(f"{name}: {key} carries a password")
    return problems


def check_published_ports(compose: Compose) -> list[str]:
    """The host gets the API, the HTTP app, the UI and the codec server, nothing else."""
    problems: list[str] = []
    for name, service in services_of(compose).items():
        published = sorted(host for host, _ in published_ports_of(service) if host)
        expected = PUBLISHED_PORTS.get(name)
        if expected is None and published:
            problems.append(f"{name} publishes {published}; it belongs on the compose network")
        elif expected is not None and published != [expected]:
            problems.append(f"{name} publishes {published}, not [{expected!r}]")
    return problems


def check_codec_wiring(compose: Compose) -> list[str]:
    """The codec server runs with its token, answers the UI's origin, and the UI sends
    the browser to it with credentials (the codec server's login cookie)."""
    services = services_of(compose)
    ui, codec = services.get("temporal-ui"), services.get("codec")
    if ui is None or codec is None:
        return ["no `temporal-ui` or no `codec` service"]
    problems: list[str] = []
    ui_env = environment_of(ui)
    endpoint = urlsplit(interpolate(ui_env.get("TEMPORAL_CODEC_ENDPOINT") or ""))
    if endpoint.port != int(PUBLISHED_PORTS["codec"]):
        problems.append(f"the UI's codec endpoint {endpoint.geturl()!r} is not the codec server")
    if ui_env.get("TEMPORAL_CODEC_INCLUDE_CREDENTIALS") != "true":
        problems.append("the UI does not include credentials in its codec requests")
    settings = build_settings(aftercare_environment(codec))
    if command_of(codec) != ["codec"]:
        problems.append(f"the codec service runs {command_of(codec)}")
    if settings.codec_token is None:
        problems.append("the codec server gets no token")
    if (settings.codec_host, str(settings.codec_port)) != ("0.0.0.0", PUBLISHED_PORTS["codec"]):
        problems.append(f"the codec server listens on {settings.codec_host}:{settings.codec_port}")
    if urlsplit(settings.codec_ui_origin).port != int(PUBLISHED_PORTS["temporal-ui"]):
        problems.append(f"the codec server answers {settings.codec_ui_origin}, not the UI")
    return problems


def check_health_probes(compose: Compose) -> list[str]:
    """The servers are probed on their own settings (TLS included) by `aftercare health`."""
    problems: list[str] = []
    for part in ("api", "http", "codec"):
        test = (services_of(compose).get(part, {}).get("healthcheck") or {}).get("test")
        if test != ["CMD", "aftercare", "health", part]:
            problems.append(f"{part} is not probed by `aftercare health {part}`: {test}")
    return problems


def seconds_of(duration: str) -> float:
    """A Compose duration (``1m30s``, ``45s``, ``500ms``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a duration: {duration!r}")
    return sum(float(number) * units[unit] for number, unit in parts)


def check_worker_grace(compose: Compose) -> list[str]:
    """Compose waits longer after SIGTERM than the worker lets its activities run."""
    worker = services_of(compose).get("worker", {})
    grace = build_settings(aftercare_environment(worker)).worker_shutdown_grace_seconds
    patience = seconds_of(str(worker.get("stop_grace_period", "10s")))
    if patience <= grace:
        return [f"worker: stop_grace_period {patience:g}s is not above its {grace:g}s grace"]
    return []


def check_env_example(text: str) -> list[str]:
    """Names only: every line a known variable with no value, the required secrets there."""
    problems: list[str] = []
    names: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        names.add(name.strip())
        if not sep or value.strip():
            problems.append(f"line {number}: {name.strip()} has a value")
        if name.strip() not in SETTINGS_VARIABLES:
            problems.append(f"line {number}: {name.strip()} is not a setting")
    for required in ("SECRET_KEY", "CODEC_KEYS", "CODEC_TOKEN"):
        if ENV_PREFIX + required not in names:
            problems.append(f"{ENV_PREFIX}{required} is missing")
    return problems


# --- reading the Dockerfile --------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def dockerfile_instructions(text: str) -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with `\\` continuations joined and comments dropped."""
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        if full:
            keyword, _, arguments = full.partition(" ")
            yield keyword.upper(), arguments.strip()
    if pending.strip():
        keyword, _, arguments = pending.strip().partition(" ")
        yield keyword.upper(), arguments.strip()


def parse_stages(text: str) -> list[Stage]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, arguments in dockerfile_instructions(text):
        if keyword == "FROM":
            words = [w for w in arguments.split() if not w.startswith("--")]
            base = re.sub(
                r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), words[0]
            )
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
        elif not stages:
            if keyword == "ARG":
                arg_name, _, default = arguments.partition("=")
                global_args[arg_name.strip()] = default.strip()
        else:
            stages[-1].instructions.append((keyword, arguments))
    return stages


def lineage(stages: list[Stage], stage: Stage) -> list[Stage]:
    """The stage and the stages it is built FROM, nearest first."""
    by_name = {s.name: s for s in stages if s.name}
    chain = [stage]
    while chain[-1].base in by_name:
        chain.append(by_name[chain[-1].base])
    return chain


def copy_arguments(arguments: str) -> tuple[dict[str, str], list[str], str]:
    """A COPY's (--flags, sources, destination), in shell or exec (JSON) form."""
    flags: dict[str, str] = {}
    rest = arguments.strip()
    while match := re.match(r"--(?P<flag>[\w-]+)(?:=(?P<value>\S*))?\s+", rest):
        flags[match.group("flag")] = match.group("value") or ""
        rest = rest[match.end() :]
    words = [str(w) for w in json.loads(rest)] if rest.startswith("[") else shlex.split(rest)
    return flags, words[:-1], words[-1]


def copied_from(stage: Stage) -> list[str]:
    """The stages (by name) this stage COPYs files from."""
    return [
        flags["from"]
        for keyword, arguments in stage.instructions
        if keyword == "COPY"
        for flags in [copy_arguments(arguments)[0]]
        if "from" in flags
    ]


def feeding_stages(stages: list[Stage], stage: Stage) -> list[Stage]:
    """The stage, the stages below it, and every stage any of them COPYs from (and so
    on): everything that can put a file into it."""
    by_name = {s.name: s for s in stages if s.name}
    found: list[Stage] = []
    pending = [stage]
    while pending:
        for current in lineage(stages, pending.pop(0)):
            if current in found:
                continue
            found.append(current)
            pending += [by_name[name] for name in copied_from(current) if name in by_name]
    return found


def context_copy_sources(stages: list[Stage], stage: Stage) -> list[str]:
    """What COPY takes from the build context into this stage, the stages below it, or
    the stages it copies from."""
    sources: list[str] = []
    for feeder in feeding_stages(stages, stage):
        for keyword, arguments in feeder.instructions:
            if keyword in ("COPY", "ADD"):
                flags, copied, _ = copy_arguments(arguments)
                if "from" not in flags:
                    sources.extend(copied)
    return sources


def normalise(path: str) -> str:
    cleaned = path.strip().removeprefix("./").rstrip("/")
    return cleaned or "."


def check_dockerfile_sources(text: str) -> list[str]:
    stages = parse_stages(text)
    if not stages:
        return ["no FROM in the Dockerfile"]
    sources = {normalise(s) for s in context_copy_sources(stages, stages[-1])}
    problems = [
        f"the final image gets no `{package}/` from the build context"
        for package in PACKAGE_DIRS
        if package not in sources and "." not in sources
    ]
    problems += [
        f"COPY names {source!r}, which is not in the repository"
        for source in sorted(sources)
        if not (REPO_ROOT / source).exists() and not any(REPO_ROOT.glob(source))
    ]
    return problems


def check_dockerfile_runtime(text: str) -> list[str]:
    stages = parse_stages(text)
    if not stages:
        return ["no FROM in the Dockerfile"]
    final = stages[-1]
    chain = lineage(stages, final)
    inherited = [item for stage in reversed(chain) for item in stage.instructions]
    problems: list[str] = []

    if chain[-1].base != "python:3.11-slim":
        problems.append(f"final image is based on {chain[-1].base!r}, not python:3.11-slim")

    stage_args = dict(
        arguments.partition("=")[::2] for keyword, arguments in inherited if keyword == "ARG"
    )
    users = [
        re.sub(r"\$\{?(\w+)\}?", lambda m: stage_args.get(m.group(1), m.group(0)), arguments)
        for keyword, arguments in inherited
        if keyword == "USER"
    ]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("final image runs as root")

    entrypoints = [arguments for keyword, arguments in inherited if keyword == "ENTRYPOINT"]
    if not entrypoints or json.loads(entrypoints[-1]) != ["aftercare"]:
        problems.append('ENTRYPOINT is not ["aftercare"]')
    commands = [arguments for keyword, arguments in inherited if keyword == "CMD"]
    if not commands or json.loads(commands[-1]) != ["api"]:
        problems.append('CMD is not ["api"]')

    # The environment is installed in the final stage or in a stage it copies from
    # whole; either way, without the dev group or any group it includes.
    by_name = {stage.name: stage for stage in stages if stage.name}
    installers = chain + [
        ancestor
        for source in copied_from(final)
        if source in by_name
        for ancestor in lineage(stages, by_name[source])
    ]
    syncs = [
        args
        for stage in installers
        for keyword, args in stage.instructions
        if keyword == "RUN" and "uv sync" in args
    ]
    if not syncs:
        problems.append("final image never runs `uv sync`")
    problems += [
        f"final image installs the dev group: RUN {args}"
        for args in syncs
        if "--no-dev" not in args or "--group" in args or "--all-groups" in args
    ]
    if any(k == "RUN" and "pip install uv" in a for k, a in inherited):
        problems.append("final image carries uv, a build tool")

    # The generated protobuf modules come from a stage that runs protoc.
    generators = {
        stage.name
        for stage in stages
        if stage.name
        and any(k == "RUN" and "grpc_tools.protoc" in a for k, a in stage.instructions)
    }
    if not generators:
        problems.append("no build stage runs grpc_tools.protoc")
    feeders = {stage.name for stage in feeding_stages(stages, final)}
    if not generators & feeders:
        problems.append("the final image does not COPY the generated code from the protoc stage")
    return problems


# --- fixtures ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_aftercare_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings must be validated from the compose values alone, not the caller's shell."""
    for name in [n for n in os.environ if n.upper().startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def compose() -> Compose:
    return load_compose()


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text(encoding="utf-8")


# --- the real files ----------------------------------------------------------------


def test_compose_defines_the_deployment(compose: Compose) -> None:
    assert set(services_of(compose)) == EXPECTED_SERVICES


def test_aftercare_variables_are_settings_fields_with_valid_values(compose: Compose) -> None:
    assert check_settings_variables(compose) == []


def test_app_services_share_the_anchored_environment(compose: Compose) -> None:
    common = compose.get("x-aftercare-env")
    assert isinstance(common, dict), "no `x-aftercare-env` extension field"
    assert set(common) <= SETTINGS_VARIABLES
    for name in APP_SERVICES:
        env = environment_of(services_of(compose)[name])
        assert {k: str(v) for k, v in common.items()}.items() <= env.items(), name


def test_app_services_get_the_deployment_settings(compose: Compose) -> None:
    for name in APP_SERVICES:
        settings = build_settings(aftercare_environment(services_of(compose)[name]))
        assert settings.temporal_address == "temporal:7233", name
        assert settings.resolved_database_url.startswith("postgresql+psycopg://"), name
        assert "@aftercare-db:5432/" in settings.resolved_database_url, name
        assert (settings.smtp_host, settings.smtp_port) == ("mailpit", 1025), name
        assert settings.grpc_target == f"0.0.0.0:{GRPC_PORT}", name
        assert settings.log_format == "json", name


def test_depends_on_names_existing_services(compose: Compose) -> None:
    assert check_depends_on(compose) == []


def test_start_order(compose: Compose) -> None:
    services = services_of(compose)
    for name in ("api", "worker"):
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name
        assert depends_on["temporal"]["condition"] == "service_healthy", name
        assert depends_on["temporal-admin-tools"]["condition"] == (
            "service_completed_successfully"
        ), name
    assert services["migrate"]["depends_on"]["aftercare-db"]["condition"] == "service_healthy"
    assert services["temporal"]["depends_on"]["postgresql"]["condition"] == "service_healthy"
    assert check_health_conditions(compose) == []


def test_volumes_are_declared(compose: Compose) -> None:
    assert check_volumes(compose) == []


def test_databases_keep_their_data_in_named_volumes(compose: Compose) -> None:
    services = services_of(compose)
    volumes = [
        volume_mounts_of(services[name]).get(POSTGRES_DATA_DIR) for name in DATABASE_SERVICES
    ]
    assert None not in volumes
    assert len(set(volumes)) == len(DATABASE_SERVICES), "the two databases share a volume"


def test_worker_can_scale(compose: Compose) -> None:
    assert check_worker_scales(compose) == []


def test_api_publishes_grpc_port(compose: Compose) -> None:
    assert check_api_port(compose) == []


def test_app_services_run_the_dockerfile_image(compose: Compose) -> None:
    assert check_app_images(compose) == []


def test_app_commands_are_cli_subcommands(compose: Compose) -> None:
    assert check_commands(compose) == []
    assert command_of(services_of(compose)["migrate"]) == ["db", "upgrade"]


def test_admin_tools_register_search_attributes_with_their_types(compose: Compose) -> None:
    service = services_of(compose)["temporal-admin-tools"]
    script = " ".join(command_of(service))
    assert "temporal operator search-attribute create" in script
    for attribute, kind in SEARCH_ATTRIBUTES.items():
        assert re.search(rf"\b{attribute}:{kind}\b", script), attribute
    assert environment_of(service).get("TEMPORAL_ADDRESS") == "temporal:7233"


def test_dockerfile_copies_every_package(dockerfile: str) -> None:
    assert check_dockerfile_sources(dockerfile) == []


def test_dockerfile_builds_a_lean_non_root_image(dockerfile: str) -> None:
    assert check_dockerfile_runtime(dockerfile) == []


# --- the checks catch what they are meant to catch ---------------------------------


def broken(compose: Compose, service: str, **changes: Any) -> Compose:
    """A deep copy of `compose` with keys of one service replaced (None deletes)."""
    result = copy.deepcopy(compose)
    target = result["services"][service]
    for key, value in changes.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return result


def with_env(compose: Compose, service: str, **env: str) -> Compose:
    current = environment_of(services_of(compose)[service])
    return broken(compose, service, environment={**current, **env})


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("AFTERCARE_TEMPORAL_ADRESS", "temporal:7233", "not fields of Settings"),
        ("AFTERCARE_GRPC_PORT", "70000", "invalid settings"),
        ("AFTERCARE_SMTP_PORT", "mailpit", "invalid settings"),
        ("AFTERCARE_LOG_FORMAT", "yaml", "invalid settings"),
        ("AFTERCARE_SMTP_SECURITY", "ssl", "invalid settings"),
        ("AFTERCARE_DATABASE_URL", "${DATABASE_URL}", "invalid settings"),
    ],
)
def test_settings_check_catches(compose: Compose, variable: str, value: str, expected: str) -> None:
    problems = check_settings_variables(with_env(compose, "worker", **{variable: value}))
    assert len(problems) == 1
    assert problems[0].startswith(f"worker: {expected}")


def test_settings_check_reads_list_form_and_interpolation(compose: Compose) -> None:
    listed = broken(
        compose,
        "api",
        environment=["AFTERCARE_GRPC_PORT=${GRPC_PORT:-50051}", "AFTERCARE_LOG_LEVEL"],
    )
    assert check_settings_variables(listed) == []
    listed = broken(compose, "api", environment=["AFTERCARE_GRPC_PORT=${GRPC_PORT:-0}"])
    assert check_settings_variables(listed) != []


def test_depends_on_check_catches_unknown_service(compose: Compose) -> None:
    bad = broken(compose, "api", depends_on={"temporal-server": {"condition": "service_healthy"}})
    assert check_depends_on(bad) == ["api depends on unknown service 'temporal-server'"]
    bad = broken(compose, "worker", depends_on=["migrate", "redis"])
    assert check_depends_on(bad) == ["worker depends on unknown service 'redis'"]


def test_health_check_catches_waiting_on_a_service_without_healthcheck(compose: Compose) -> None:
    assert sorted(check_health_conditions(broken(compose, "temporal", healthcheck=None))) == [
        "api waits for temporal to be healthy; it has no healthcheck",
        "temporal-admin-tools waits for temporal to be healthy; it has no healthcheck",
        "temporal-ui waits for temporal to be healthy; it has no healthcheck",
        "worker waits for temporal to be healthy; it has no healthcheck",
    ]


def test_volume_check_catches_undeclared_volume(compose: Compose) -> None:
    bad = broken(compose, "aftercare-db", volumes=["pgdata:/var/lib/postgresql/data"])
    assert check_volumes(bad) == ["aftercare-db mounts undeclared volume 'pgdata'"]
    long_form = [{"type": "volume", "source": "pgdata", "target": "/data"}]
    assert check_volumes(broken(compose, "postgresql", volumes=long_form)) != []
    bind_mounts = ["./init.sql:/docker-entrypoint-initdb.d/init.sql:ro", "/var/lib/postgresql"]
    assert check_volumes(broken(compose, "postgresql", volumes=bind_mounts)) == []


def test_worker_check_catches_what_stops_scaling(compose: Compose) -> None:
    assert check_worker_scales(broken(compose, "worker", container_name="worker")) != []
    assert check_worker_scales(broken(compose, "worker", ports=["9000:9000"])) != []


def test_api_port_check_catches_missing_or_wrong_port(compose: Compose) -> None:
    assert check_api_port(broken(compose, "api", ports=None)) != []
    assert check_api_port(broken(compose, "api", ports=["50052:50051"])) != []
    long_form = [{"target": 50051, "published": "50051", "protocol": "tcp"}]
    assert check_api_port(broken(compose, "api", ports=long_form)) == []
    assert check_api_port(with_env(compose, "api", AFTERCARE_GRPC_PORT="50052")) != []


def test_image_check_catches_foreign_images(compose: Compose) -> None:
    assert check_app_images(broken(compose, "worker", build=None)) != []
    other = {"context": ".", "dockerfile": "Dockerfile.dev"}
    assert check_app_images(broken(compose, "api", build=other)) != []
    assert check_app_images(broken(compose, "api", image="someone/else:1")) != []
    assert check_app_images(broken(compose, "api", entrypoint=["python"])) != []


def test_command_check_catches_unknown_subcommands(compose: Compose) -> None:
    assert check_commands(broken(compose, "worker", command="serve-worker")) != []
    assert check_commands(broken(compose, "migrate", command=["migrate", "up"])) != []
    assert check_commands(broken(compose, "api", command=None)) != []
    assert check_commands(broken(compose, "migrate", command="db upgrade head")) == []


def test_dockerfile_checks_catch_missing_pieces(dockerfile: str) -> None:
    without_clients = "\n".join(
        line for line in dockerfile.splitlines() if line.strip() != "COPY clients ./clients"
    )
    assert without_clients != dockerfile
    assert check_dockerfile_sources(without_clients) == [
        "the final image gets no `clients/` from the build context"
    ]
    assert check_dockerfile_sources(dockerfile.replace("COPY engine ", "COPY engin ")) != []

    as_root = dockerfile.replace("\nUSER ", "\n# USER ")
    assert "final image runs as root" in check_dockerfile_runtime(as_root)
    uid_zero = re.sub(r"ARG APP_UID=\d+", "ARG APP_UID=0", dockerfile)
    assert uid_zero != dockerfile
    assert "final image runs as root" in check_dockerfile_runtime(uid_zero)
    with_dev = dockerfile.replace(" --no-dev", "")
    assert with_dev != dockerfile
    assert any("installs the dev group" in p for p in check_dockerfile_runtime(with_dev))
    other_base = dockerfile.replace("=python:3.11-slim", "=python:3.12-slim")
    assert other_base != dockerfile
    assert check_dockerfile_runtime(other_base) != []


def test_dockerfile_parser_understands_syntax_variants() -> None:
    text = (
        "ARG BASE=python:3.11-slim\n"
        "FROM ${BASE} AS base\n"
        "RUN pip install uv \\\n"
        "    # a comment inside a continuation\n"
        "    && uv --version\n"
        "FROM base\n"
        'COPY --chown=1:1 ["engine", "workflows/", "/app/"]\n'
        "COPY . /app\n"
    )
    stages = parse_stages(text)
    assert [(s.base, s.name) for s in stages] == [("python:3.11-slim", "base"), ("base", None)]
    assert stages[0].instructions == [("RUN", "pip install uv && uv --version")]
    assert context_copy_sources(stages, stages[-1]) == ["engine", "workflows/", "."]
    assert check_dockerfile_sources(text) == []


# --- the deployment's secrets, ports, codec server and probes -------------------------


def test_compose_follows_the_compose_specification(compose: Compose) -> None:
    assert check_schema(compose) == []


def test_the_schema_check_catches_what_compose_would_refuse(compose: Compose) -> None:
    # A misspelt key, a condition Compose does not know, a secret given as a number, a
    # duration given as a number.
    assert check_schema(broken(compose, "api", helthcheck={"test": ["CMD", "true"]})) != []
    waits = {"migrate": {"condition": "service_finished"}}
    assert check_schema(broken(compose, "http", depends_on=waits)) != []
    assert check_schema(broken(compose, "codec", secrets=[42])) != []
    assert check_schema(broken(compose, "worker", stop_grace_period=45)) != []


def test_compose_holds_no_secret(compose: Compose) -> None:
    assert check_no_secrets(compose) == []
    assert check_secret_files(compose) == []


def test_the_secret_checks_catch_secrets_written_into_the_file(compose: Compose) -> None:
    written = with_env(compose, "api", AFTERCARE_SECRET_KEY="k" * 40)
    assert check_no_secrets(written) == [
        "api: AFTERCARE_SECRET_KEY is written here; use AFTERCARE_SECRET_KEY_FILE"
    ]
    with_password = with_env(
        compose, "worker", AFTERCARE_DATABASE_URL="postgresql+psycopg://a:pw@aftercare-db/a"
    )
    assert check_no_secrets(with_password) == ["worker: AFTERCARE_DATABASE_URL carries a password"]
    postgres = with_env(compose, "aftercare-db", POSTGRES_PASSWORD="aftercare")
    assert check_no_secrets(postgres) == [
        "aftercare-db: POSTGRES_PASSWORD is written here; use a secret file"
    ]
    unmounted = broken(compose, "http", secrets=["secret_key", "database_password"])
    assert check_secret_files(unmounted) == [
        "http: AFTERCARE_CODEC_KEYS_FILE reads /run/secrets/codec_keys, which is not mounted there"
    ]
    undeclared = copy.deepcopy(compose)
    del undeclared["secrets"]["codec_token"]
    assert check_secret_files(undeclared) == ["codec mounts undeclared secret 'codec_token'"]


def test_secrets_init_writes_the_files_compose_mounts(compose: Compose, tmp_path: Path) -> None:
    """`aftercare secrets init --secrets-dir` makes exactly the files compose names, and
    each service's settings read from them (through the real AFTERCARE_*_FILE source)
    pass every check."""
    folder = tmp_path / "secrets"
    write_secrets_dir(folder, fresh_secrets(database_passwords=True))
    declared = {
        name: Path(interpolate(str(spec["file"]))).name
        for name, spec in (compose.get("secrets") or {}).items()
    }
    assert sorted(declared.values()) == sorted(path.name for path in folder.iterdir())
    for name in APP_SERVICES:
        service = services_of(compose)[name]
        mounts = secret_mounts_of(service)
        env: dict[str, str] = {}
        for key, value in aftercare_environment(service).items():
            assert value is not None
            if value in mounts:  # /run/secrets/NAME -> the file init wrote
                env[key] = str(folder / declared[mounts[value]])
            else:
                env[key] = interpolate(value)
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            settings = Settings(_env_file=None)
        assert settings.secret_key is not None, name
        assert settings.codec_keys is not None, name
        password = (folder / "database_password").read_text().strip()
        assert f"aftercare:{password}@aftercare-db:5432" in settings.resolved_database_url, name
        assert (settings.codec_token is not None) == (name == "codec"), name


def test_only_the_ports_users_need_are_published(compose: Compose) -> None:
    assert check_published_ports(compose) == []
    exposed = broken(compose, "temporal", ports=["7233:7233"])
    assert check_published_ports(exposed) == [
        "temporal publishes ['7233']; it belongs on the compose network"
    ]
    assert check_published_ports(broken(compose, "codec", ports=None)) == [
        "codec publishes [], not ['8234']"
    ]


def test_the_ui_reads_journeys_through_the_codec_server(compose: Compose) -> None:
    assert check_codec_wiring(compose) == []
    ui_env = environment_of(services_of(compose)["temporal-ui"])
    assert check_codec_wiring(
        broken(compose, "temporal-ui", environment={**ui_env, "TEMPORAL_CODEC_ENDPOINT": ""})
    ) == ["the UI's codec endpoint '' is not the codec server"]
    assert check_codec_wiring(
        with_env(compose, "codec", AFTERCARE_CODEC_UI_ORIGIN="http://localhost:8233")
    ) == ["the codec server answers http://localhost:8233, not the UI"]
    codec_env = aftercare_environment(services_of(compose)["codec"])
    without_token = {k: v for k, v in codec_env.items() if k != "AFTERCARE_CODEC_TOKEN_FILE"}
    assert check_codec_wiring(broken(compose, "codec", environment=without_token)) == [
        "the codec server gets no token"
    ]


def test_servers_are_probed_on_their_own_settings(compose: Compose) -> None:
    assert check_health_probes(compose) == []
    grpc_probe = {"test": ["CMD", "grpc_health_probe", "-addr=:50051"]}
    assert check_health_probes(broken(compose, "api", healthcheck=grpc_probe)) != []


def test_compose_waits_for_the_workers_grace(compose: Compose) -> None:
    assert check_worker_grace(compose) == []
    assert check_worker_grace(broken(compose, "worker", stop_grace_period="30s")) != []
    assert check_worker_grace(broken(compose, "worker", stop_grace_period=None)) != []
    assert seconds_of("1m30s") == 90
    assert seconds_of("500ms") == 0.5


def test_env_example_names_the_secrets_without_values() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    assert check_env_example(text) == []
    assert check_env_example(text + "AFTERCARE_SECRET_KEY_FILE=/run/secrets/secret_key\n") == [
        f"line {len(text.splitlines()) + 1}: AFTERCARE_SECRET_KEY_FILE has a value"
    ]
    assert check_env_example("AFTERCARE_SECRET_KEY=\n") == [
        "AFTERCARE_CODEC_KEYS is missing",
        "AFTERCARE_CODEC_TOKEN is missing",
    ]
