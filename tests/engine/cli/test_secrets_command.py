"""``aftercare secrets init``: a fresh set of a deployment's secrets, as an env file or
as one file per secret, never replacing existing ones without ``--force``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli.app import app
from engine.platform.codec.runtime import codec_token_for, keyring_for, require_secrets
from engine.platform.links.secret import secret_key_for
from engine.platform.settings import Settings

runner = CliRunner()

SET = ("secret_key", "codec_keys", "codec_token")
WITH_DATABASES = (*SET, "database_password", "temporal_database_password")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.upper().startswith("AFTERCARE_")]:
        monkeypatch.delenv(name)


def init(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["secrets", "init", *args])
    return result.exit_code, result.stdout, result.stderr


def env_lines(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_an_env_file_holds_a_set_every_process_accepts(tmp_path: Path) -> None:
    path = tmp_path / "deploy" / "aftercare.env"
    code, out, err = init("--env-file", str(path))
    assert code == 0, err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = env_lines(path)
    assert list(values) == ["AFTERCARE_SECRET_KEY", "AFTERCARE_CODEC_KEYS", "AFTERCARE_CODEC_TOKEN"]
    assert not any(value in out + err for value in values.values())  # never printed
    # The file as the settings read it: every check passes, the codec server's too.
    settings = Settings(_env_file=path)
    require_secrets(settings, codec_token=True)
    assert secret_key_for(settings) == values["AFTERCARE_SECRET_KEY"]
    assert codec_token_for(settings) == values["AFTERCARE_CODEC_TOKEN"]
    keyring = keyring_for(settings)
    assert list(keyring.keys) == [keyring.current_key_id]  # one key, with its id
    assert keyring.current_key_id.startswith("k-")


def test_a_secrets_folder_holds_one_file_per_secret(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    code, _, err = init("--secrets-dir", str(folder), "--database-passwords")
    assert code == 0, err
    assert sorted(path.name for path in folder.iterdir()) == sorted(WITH_DATABASES)
    # The folder keeps others out; the files must be readable by the container's user.
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o444, path
    with pytest.MonkeyPatch.context() as patch:
        for name in SET:
            patch.setenv(f"AFTERCARE_{name.upper()}_FILE", str(folder / name))
        patch.setenv("AFTERCARE_DATABASE_URL", "postgresql+psycopg://aftercare@db/aftercare")
        patch.setenv("AFTERCARE_DATABASE_PASSWORD_FILE", str(folder / "database_password"))
        settings = Settings(_env_file=None)
    require_secrets(settings, codec_token=True)
    password = (folder / "database_password").read_text().strip()
    assert settings.resolved_database_url == (
        f"postgresql+psycopg://aftercare:{password}@db/aftercare"
    )
    assert (folder / "temporal_database_password").read_text().strip() != password


def test_existing_secrets_are_kept_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "aftercare.env"
    assert init("--env-file", str(path))[0] == 0
    before = path.read_text()
    code, _, err = init("--env-file", str(path))
    assert code == 1
    assert f"not replacing existing secrets: {path} exists" in err
    assert "--force" in err
    assert path.read_text() == before

    code, _, err = init("--env-file", str(path), "--force")
    assert code == 0, err
    after = env_lines(path)
    assert after != env_lines_of(before)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def env_lines_of(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_a_secrets_folder_is_kept_unless_forced(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir(mode=0o700)
    (folder / "codec_keys").write_text("the keys of a running deployment\n")
    code, _, err = init("--secrets-dir", str(folder))
    assert code == 1
    assert f"{folder / 'codec_keys'} exists" in err
    assert [path.name for path in folder.iterdir()] == ["codec_keys"]  # nothing written

    code, _, err = init("--secrets-dir", str(folder), "--force")
    assert code == 0, err
    assert sorted(path.name for path in folder.iterdir()) == sorted(SET)
    assert (folder / "codec_keys").read_text() != "the keys of a running deployment\n"
    # Replacing works on read-only files, and leaves no temporary file behind.
    code, _, err = init("--secrets-dir", str(folder), "--force")
    assert code == 0, err
    assert sorted(path.name for path in folder.iterdir()) == sorted(SET)


def test_a_folder_others_can_enter_is_warned_about(tmp_path: Path) -> None:
    folder = tmp_path / "open"
    folder.mkdir()
    folder.chmod(0o755)
    code, _, err = init("--secrets-dir", str(folder))
    assert code == 0, err
    assert f"warning: {folder} can be entered by other users" in err


def test_every_run_makes_new_values(tmp_path: Path) -> None:
    assert init("--env-file", str(tmp_path / "a.env"))[0] == 0
    assert init("--env-file", str(tmp_path / "b.env"))[0] == 0
    first, second = env_lines(tmp_path / "a.env"), env_lines(tmp_path / "b.env")
    assert all(first[name] != second[name] for name in first)


@pytest.mark.parametrize(
    "args", [[], ["--env-file", "x.env", "--secrets-dir", "secrets"]], ids=["none", "both"]
)
def test_exactly_one_destination_is_asked_for(args: list[str], tmp_path: Path) -> None:
    code, _, err = init(*args)
    assert code == 2
    assert "give one of --env-file PATH or --secrets-dir DIR" in err
