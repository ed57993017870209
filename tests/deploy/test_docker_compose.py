"""Static checks of docker-compose.yml and the Dockerfile.

No Docker engine runs where these tests run, so nothing is built or started: the
compose file is read with ``yaml.safe_load`` (anchors and ``<<`` merge keys resolved
as Compose resolves them) and the Dockerfile is parsed line by line. Each check is a
function that returns the problems it finds; the tests assert the real files have
none, and feed the same functions broken copies to show that each one can fail.
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

import pytest
import yaml

from engine.platform.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"

# Top-level subcommands of the `aftercare` CLI (engine/cli.py) that a compose
# `command:` may start with. Kept as a constant instead of being read from the Typer
# app so that these checks do not import the CLI and its dependencies; add a name
# here when the CLI gains a top-level subcommand.
CLI_SUBCOMMANDS = frozenset({"api", "worker", "http", "run", "db", "demo", "journey", "keys"})

# Our own services: built from ./Dockerfile, configured through AFTERCARE_* variables.
APP_SERVICES = ("migrate", "api", "worker", "http")
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
SEARCH_ATTRIBUTES = ("OrderId", "CustomerId", "JourneyStage", "JourneyPlan")
GRPC_PORT = "50051"
DATABASE_SERVICES = ("postgresql", "aftercare-db")
POSTGRES_DATA_DIR = "/var/lib/postgresql/data"

ENV_PREFIX: str = Settings.model_config.get("env_prefix", "").upper()
SETTINGS_VARIABLES = frozenset(ENV_PREFIX + name.upper() for name in Settings.model_fields)

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


def check_settings_variables(compose: Compose) -> list[str]:
    """Every AFTERCARE_* variable is a Settings field and every service's set validates."""
    problems: list[str] = []
    for name, service in services_of(compose).items():
        env = aftercare_environment(service)
        unknown = sorted(set(map(str.upper, env)) - SETTINGS_VARIABLES)
        if unknown:
            problems.append(f"{name}: not fields of Settings: {', '.join(unknown)}")
            continue
        try:
            build_settings(env)
        except ValueError as error:  # pydantic's ValidationError is a ValueError
            problems.append(f"{name}: invalid settings: {error}")
    return problems


def build_settings(env: Mapping[str, str | None]) -> Settings:
    """Settings built from these variables alone: no .env file, no process environment."""
    values: dict[str, Any] = {
        key[len(ENV_PREFIX) :].lower(): interpolate(value)
        for key, value in env.items()
        if value is not None
    }
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


def context_copy_sources(stages: list[Stage], stage: Stage) -> list[str]:
    """What COPY takes from the build context into this stage or the stages below it."""
    sources: list[str] = []
    for ancestor in lineage(stages, stage):
        for keyword, arguments in ancestor.instructions:
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

    syncs = [args for keyword, args in inherited if keyword == "RUN" and "uv sync" in args]
    if not syncs:
        problems.append("final image never runs `uv sync`")
    problems += [
        f"final image installs the dev group: RUN {args}"
        for args in syncs
        if "--no-dev" not in args
    ]

    # The generated protobuf modules come from a stage that runs protoc.
    generators = {
        stage.name
        for stage in stages
        if stage.name
        and any(k == "RUN" and "grpc_tools.protoc" in a for k, a in stage.instructions)
    }
    if not generators:
        problems.append("no build stage runs grpc_tools.protoc")
    copied_from = {
        copy_arguments(args)[0].get("from") for keyword, args in inherited if keyword == "COPY"
    }
    if not generators & copied_from:
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


def test_admin_tools_register_search_attributes_as_keyword(compose: Compose) -> None:
    service = services_of(compose)["temporal-admin-tools"]
    script = " ".join(command_of(service))
    assert "temporal operator search-attribute create" in script
    assert "--type Keyword" in script
    for attribute in SEARCH_ATTRIBUTES:
        assert re.search(rf"\b{attribute}\b", script), attribute
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
