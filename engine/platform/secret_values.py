"""How the settings that hold secrets are read and judged.

Every secret setting (a ``SecretStr`` field of :class:`engine.platform.settings.Settings`)
can be given as ``AFTERCARE_<NAME>`` or as ``AFTERCARE_<NAME>_FILE``, the path of a file
holding it: that is how Docker and Kubernetes hand secrets to a container. Giving both
is refused, naming both; so is a file that cannot be read. A field that already has a
``<name>_file`` setting of its own (a path the service reads itself) is left to it.

Values that are obviously not secrets (``change-me``, ``placeholder``, ``xxx``...) are
refused for every secret setting, and the keys the service depends on must be long
enough; :func:`secret_problem` says why a value is refused, naming the variable.

What a process does when a secret it needs is missing is its own affair: the
deployment's processes stop (:class:`MissingSecret`), only the dev stack makes them.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsError

from engine.platform.keyring import KeyringError, parse_keyring

ENV_PREFIX = "AFTERCARE_"
FILE_SUFFIX = "_FILE"

# Below this many characters a signing key or bearer token is guessable in principle
# and, in practice, typed by a person: `aftercare secrets init` makes longer ones.
MIN_SECRET_CHARACTERS = 32
# The settings that must be that long; the codec keys have their own rule (AES-256).
LONG_SECRETS = ("secret_key", "codec_token", "mail_feedback_token")

# Words a template or a tutorial puts where a secret belongs.
_PLACEHOLDER_WORDS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "replaceme",
        "replace-me",
        "replace_me",
        "secret",
        "placeholder",
        "password",
        "example",
        "dummy",
        "todo",
        "tbd",
        "none",
        "null",
    }
)
# ... and phrases that give one away anywhere in a longer value.
_PLACEHOLDER_MARKERS = ("change-me", "changeme", "change_me", "replace-me", "replaceme")
# xxx, ***, ..., <your key>, ${SECRET}, your-secret-here
_PLACEHOLDER_SHAPES = re.compile(r"^(x{3,}|\*{3,}|\.{3,}|<.*>|\$\{.*\}|your[-_ ].*)$")


class MissingSecret(RuntimeError):
    """A secret the process needs is not configured; the message names the variable
    and how to make one."""


def variable(field_name: str) -> str:
    """The environment variable of a setting: ``secret_key`` -> ``AFTERCARE_SECRET_KEY``."""
    return f"{ENV_PREFIX}{field_name.upper()}"


def missing(field_name: str, what: str) -> MissingSecret:
    """The error for a secret a deployment's process cannot start without."""
    name = variable(field_name)
    return MissingSecret(
        f"{name} is not set: it holds {what}. Every process of a deployment must share "
        f"the same value, so none makes its own: run `aftercare secrets init` once "
        f"(--env-file PATH or --secrets-dir DIR) and give each process {name} "
        f"(or {name}{FILE_SUFFIX}, the path of a file holding it)."
    )


def is_secret_field(field: FieldInfo) -> bool:
    annotation = field.annotation
    if annotation is SecretStr:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return SecretStr in typing.get_args(annotation)
    return False


def secret_fields(settings_cls: type[BaseSettings]) -> list[str]:
    """The settings that may come from a file: every secret without a ``_file`` setting."""
    fields = settings_cls.model_fields
    return [
        name
        for name, field in fields.items()
        if is_secret_field(field) and f"{name}_file" not in fields
    ]


def placeholder_problem(value: str) -> str | None:
    normal = value.strip().lower()
    if (
        normal in _PLACEHOLDER_WORDS
        or _PLACEHOLDER_SHAPES.match(normal)
        or any(marker in normal for marker in _PLACEHOLDER_MARKERS)
    ):
        return "is a placeholder, not a secret"
    return None


def secret_problem(field_name: str, value: str) -> str | None:
    """Why ``value`` cannot be the secret ``field_name``, naming its variable; None if it can.

    The message never repeats the value.
    """
    name = variable(field_name)
    if field_name == "database_url":
        # The URL itself is no secret: the password in it is.
        try:
            password = urlsplit(value).password
        except ValueError:
            return None  # not a URL: the database driver says so, in its own words
        problem = placeholder_problem(password) if password else None
        return f"{name}: the password in the URL {problem}" if problem else None
    problem = placeholder_problem(value)
    if problem:
        return f"{name} {problem}: make one with `aftercare secrets init`"
    if field_name in LONG_SECRETS and len(value.strip()) < MIN_SECRET_CHARACTERS:
        return (
            f"{name} is {len(value.strip())} characters long; it must have at least "
            f"{MIN_SECRET_CHARACTERS} (random ones: `aftercare secrets init` makes them)"
        )
    if field_name == "codec_keys":
        try:
            parse_keyring(value)
        except KeyringError as err:
            return f"{name}: {err}"
    return None


class SecretFileSource(PydanticBaseSettingsSource):
    """``AFTERCARE_<NAME>_FILE``: a secret setting read from the file it names.

    It looks at the same variables as the environment and ``.env`` sources (given
    as ``variables``, names lowercased), and ranks just below the values passed to
    ``Settings(...)`` in code.
    """

    def __init__(
        self, settings_cls: type[BaseSettings], variables: Sequence[Mapping[str, str | None]]
    ) -> None:
        super().__init__(settings_cls)
        self._variables = variables

    def _lookup(self, name: str) -> str | None:
        for found in self._variables:
            value = found.get(name.lower())
            if value:  # an empty variable counts as not set
                return value
        return None

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ reads every field at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name in secret_fields(self.settings_cls):
            name = variable(field_name)
            path = self._lookup(name + FILE_SUFFIX)
            if path is None:
                continue
            if self._lookup(name) is not None:
                raise SettingsError(
                    f"{name} and {name}{FILE_SUFFIX} are both set: give the secret one way only"
                )
            values[field_name] = read_secret_file(name + FILE_SUFFIX, Path(path))
        return values


def read_secret_file(variable_name: str, path: Path) -> str:
    """The secret in ``path`` without surrounding whitespace (a file usually ends in a
    newline); an error naming the variable and the file if it cannot be had."""
    try:
        content = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise SettingsError(f"{variable_name}: cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{variable_name}: {path} is not UTF-8 text") from None
    if not content:
        raise SettingsError(f"{variable_name}: {path} is empty")
    return content
