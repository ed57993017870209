"""``aftercare secrets init``: a fresh set of the secrets a deployment's processes share.

The set is the signing key (``AFTERCARE_SECRET_KEY``), the payload keys with a key id
(``AFTERCARE_CODEC_KEYS``) and the codec server's token (``AFTERCARE_CODEC_TOKEN``);
``--database-passwords`` adds passwords for the two PostgreSQL servers of
docker-compose.yml. It is written either as an env file (``--env-file``, mode 0600)
or as one file per secret (``--secrets-dir``), which Docker or Kubernetes hands to each
container and the service reads through ``AFTERCARE_<NAME>_FILE``.

Existing secrets are never replaced without ``--force``: new codec keys cannot read
what the old ones encrypted, and a new signing key breaks every link already sent.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from engine.platform.codec.keys import KeyringError, generate_keyring, new_key, new_key_id
from engine.platform.codec.runtime import keyring_for, new_codec_token
from engine.platform.links.secret import new_secret_key
from engine.platform.secret_values import MissingSecret, variable
from engine.platform.settings import Settings

secrets_app = typer.Typer(
    help="The secrets every process of a deployment shares.", no_args_is_help=True
)

# Mode of the env file: it holds every secret, for its owner alone.
ENV_FILE_MODE = 0o600
# Mode of the folder of Docker secrets: nobody but its owner gets in.
SECRETS_DIR_MODE = 0o700
# Mode of each file in it. Compose mounts a file secret into the container as it is
# on the host, owner included, and the image runs as its own user (uid 10001): the
# file must be readable by that user, so the folder, not the file, keeps others out.
SECRET_FILE_MODE = 0o444

# The database passwords of docker-compose.yml: Aftercare's (a setting, read through
# AFTERCARE_DATABASE_PASSWORD_FILE) and Temporal's (read by the compose file alone).
TEMPORAL_DATABASE_PASSWORD = "temporal_database_password"


@dataclass(frozen=True)
class Secret:
    """One secret: its file name in a secrets folder and its line in an env file."""

    name: str
    value: str
    env_name: str


def fresh_secrets(*, database_passwords: bool = False) -> list[Secret]:
    """A new set, every value random."""
    made = [
        Secret("secret_key", new_secret_key(), variable("secret_key")),
        Secret("codec_keys", generate_keyring().to_config(), variable("codec_keys")),
        Secret("codec_token", new_codec_token(), variable("codec_token")),
    ]
    if database_passwords:
        made += [
            Secret("database_password", _password(), variable("database_password")),
            Secret(TEMPORAL_DATABASE_PASSWORD, _password(), TEMPORAL_DATABASE_PASSWORD.upper()),
        ]
    return made


def _password() -> str:
    # URL-safe: it goes into database URLs unescaped.
    return secrets.token_urlsafe(32)


def env_file_text(made: list[Secret]) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Aftercare deployment secrets, made by `aftercare secrets init` on {stamp}.",
        "# Every process of the deployment needs the same values. Keep this file private",
        "# and backed up: without AFTERCARE_CODEC_KEYS no stored journey can be read.",
    ]
    lines += [f"{secret.env_name}={secret.value}" for secret in made]
    return "\n".join(lines) + "\n"


def _write(path: Path, content: str, mode: int, *, replace: bool) -> None:
    """``content`` into ``path`` whole (never half-written), with ``mode`` from the start;
    an existing file is replaced only when ``replace`` (else FileExistsError)."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # fails if the file exists, even made meanwhile
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def write_env_file(path: Path, made: list[Secret], *, force: bool = False) -> None:
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, env_file_text(made), ENV_FILE_MODE, replace=force)


def write_secrets_dir(folder: Path, made: list[Secret], *, force: bool = False) -> list[str]:
    """One file per secret in ``folder``; returns warnings about the folder."""
    targets = [folder / secret.name for secret in made]
    existing = [str(path) for path in targets if path.exists()]
    if existing and not force:
        raise FileExistsError(", ".join(existing) + (" exists" if len(existing) == 1 else " exist"))
    warnings: list[str] = []
    if folder.exists():
        if stat.S_IMODE(folder.stat().st_mode) & 0o077:
            warnings.append(
                f"{folder} can be entered by other users: `chmod 700 {folder}` keeps "
                "the secrets in it to you"
            )
    else:
        folder.mkdir(parents=True, mode=SECRETS_DIR_MODE)
        os.chmod(folder, SECRETS_DIR_MODE)  # whatever the umask said
    for secret, path in zip(made, targets, strict=True):
        _write(path, secret.value + "\n", SECRET_FILE_MODE, replace=force)
    return warnings


@secrets_app.command("init")
def init(
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file", help="Write the secrets as an env file (mode 0600).", show_default=False
        ),
    ] = None,
    secrets_dir: Annotated[
        Path | None,
        typer.Option(
            "--secrets-dir",
            help="Write one file per secret here (for Docker or Kubernetes secrets).",
            show_default=False,
        ),
    ] = None,
    database_passwords: Annotated[
        bool,
        typer.Option(
            "--database-passwords",
            help="Also passwords for docker-compose.yml's two PostgreSQL servers.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace existing secrets (what the old keys encrypted stays unreadable).",
        ),
    ] = False,
) -> None:
    """Make a fresh set of a deployment's secrets: signing key, codec keys, codec token."""
    if (env_file is None) == (secrets_dir is None):
        typer.echo("give one of --env-file PATH or --secrets-dir DIR", err=True)
        raise typer.Exit(code=2)
    made = fresh_secrets(database_passwords=database_passwords)
    try:
        if env_file is not None:
            write_env_file(env_file, made, force=force)
            written = f"{env_file} ({', '.join(secret.env_name for secret in made)})"
            use = f"give every process these variables, e.g. compose's `env_file: {env_file}`"
        else:
            assert secrets_dir is not None
            for warning in write_secrets_dir(secrets_dir, made, force=force):
                typer.echo(f"warning: {warning}", err=True)
            written = f"{secrets_dir}/ ({', '.join(secret.name for secret in made)})"
            use = (
                "mount each file into every process and point AFTERCARE_<NAME>_FILE at it "
                "(docker-compose.yml does)"
            )
    except FileExistsError as err:
        typer.echo(
            f"not replacing existing secrets: {err}. New codec keys cannot read what the old "
            "ones encrypted, and a new secret key breaks the links already sent: keep "
            "them, or pass --force to replace them",
            err=True,
        )
        raise typer.Exit(code=1) from None
    except OSError as err:
        typer.echo(f"cannot write the secrets: {err}", err=True)
        raise typer.Exit(code=1) from None
    if force:
        typer.echo("replaced any secrets that were there (--force)", err=True)
    typer.echo(f"wrote {written}; {use}. Keep a backup: the codec keys cannot be made again.")


@secrets_app.command("rotate-codec-key")
def rotate_codec_key() -> None:
    """Print AFTERCARE_CODEC_KEYS with a fresh key in front (stdout: the value alone).

    The new key encrypts from then on; every key configured now stays, to decrypt
    what it encrypted. Nothing is written: put the value wherever the deployment keeps
    the secret, restart every process, then run `aftercare db rewrap-keys`."""
    try:
        # The settings read AFTERCARE_CODEC_KEYS or its _FILE, and check the keyring.
        current = keyring_for(Settings())
    except MissingSecret as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(code=2) from None
    except ValueError as err:  # a refused setting: named, never shown
        typer.echo(f"configuration error: {err}", err=True)
        raise typer.Exit(code=2) from None
    while True:
        try:
            rotated = current.rotated(new_key_id(), new_key())
            break
        except KeyringError:
            continue  # the random key id is taken already: draw another
    typer.echo(rotated.to_config())
    typer.echo(
        f"new current key {rotated.current_key_id}, in front of "
        f"{', '.join(k for k in rotated.keys if k != rotated.current_key_id)}. Set "
        f"{variable('codec_keys')} to this value in every process and restart them all "
        "(a process without the new key cannot read what it encrypts), then run "
        "`aftercare db rewrap-keys`. Keep the old keys as long as Temporal keeps history "
        "they encrypted.",
        err=True,
    )
