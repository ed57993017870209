"""The project's wheel, built as a user builds it (``uv build --wheel``), holds the
product and only the product: its packages, the data files they read at run time
(plans, email/SMS/page templates, migrations), and none of the tooling."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parents[1]
PRODUCT_PACKAGES = {"engine", "workflows", "activities", "clients", "aftercare"}
# Where each package of the wheel comes from in the checkout.
SOURCES = {name: REPO / name for name in PRODUCT_PACKAGES - {"aftercare"}} | {
    "aftercare": REPO / "proto" / "aftercare"
}
# Tooling that must never ship, as a package, module or folder name anywhere.
TOOLING = {"tools", "tests", "bench", "chaos", "microbench", "screenshots"}
# protoc's output (gitignored, made by `make gen`).
GENERATED = re.compile(r"_pb2(_grpc)?\.pyi?$")


def uv() -> str:
    found = REPO / ".tools" / "bin" / "uv"
    if found.is_file():
        return str(found)
    on_path = shutil.which("uv")
    if on_path is None:
        pytest.fail("uv not found: `make install` puts it in .tools/bin")
    return on_path


def build_wheel(out_dir: Path) -> Path:
    """``uv build --wheel`` of the checkout into ``out_dir``: offline first (the
    build backend is in uv's cache once ``make install`` ran), else with the index."""
    command = [uv(), "build", "--wheel", "--out-dir", str(out_dir), "--python", sys.executable]
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    attempts = []
    for offline in (True, False):
        run = subprocess.run(
            [*command, *(["--offline"] if offline else [])],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        attempts.append(run.stderr)
        if run.returncode == 0:
            (wheel,) = out_dir.glob("aftercare-*.whl")
            return wheel
    pytest.fail("uv build failed:\n" + "\n---\n".join(attempts))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if not name.endswith("/")}


@pytest.fixture(scope="module")
def unpacked(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(folder)
    return folder


def shipped_sources(package: str) -> set[str]:
    """The files of ``package`` in the checkout, as wheel paths: code and data,
    without bytecode caches and protoc's output."""
    root = SOURCES[package]
    return {
        f"{package}/{path.relative_to(root).as_posix()}"
        for path in root.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.suffix != ".pyc"
        and not GENERATED.search(path.name)
    }


def run_from(unpacked: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with the unpacked wheel and the installed dependencies on the path,
    but not the checkout (``-S`` skips the editable install's .pth file)."""
    prelude = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{str(unpacked)!r}, {sysconfig.get_paths()["purelib"]!r}]
        """
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-S", "-c", prelude + textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_wheel_holds_exactly_the_product_packages(names: set[str]) -> None:
    top_level = {PurePosixPath(name).parts[0] for name in names}
    assert top_level == PRODUCT_PACKAGES | {"aftercare-0.1.0.dist-info"}
    for package in PRODUCT_PACKAGES:
        assert f"{package}/__init__.py" in names


def test_no_tooling_anywhere_in_the_wheel(names: set[str]) -> None:
    def is_tooling(part: str) -> bool:
        stem = part.removesuffix(".py")
        return (
            stem in TOOLING
            or any(stem.startswith(f"{tool}_") for tool in TOOLING)
            or stem == "conftest"
            or stem.startswith("test_")
        )

    offending = sorted(
        name for name in names if any(is_tooling(part) for part in PurePosixPath(name).parts)
    )
    assert offending == []


def test_the_console_script_is_declared(names: set[str], wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read("aftercare-0.1.0.dist-info/entry_points.txt").decode()
    assert "[console_scripts]" in entry_points
    assert "aftercare = engine.cli.entry:main" in entry_points
    assert "engine/cli/__init__.py" in names


@pytest.mark.parametrize("package", sorted(PRODUCT_PACKAGES))
def test_every_source_and_data_file_of_the_package_is_shipped(
    package: str, names: set[str]
) -> None:
    expected = shipped_sources(package)
    assert f"{package}/__init__.py" in expected
    assert sorted(expected - names) == []
    in_wheel = {
        name
        for name in names
        if name.startswith(f"{package}/") and not GENERATED.search(PurePosixPath(name).name)
    }
    # Nothing in the wheel that the checkout does not have (stale build leftovers).
    assert sorted(in_wheel - expected) == []


def test_the_plans_are_shipped(names: set[str]) -> None:
    plans = {name for name in names if re.fullmatch(r"workflows/plans/[^/]+\.ya?ml", name)}
    assert plans == {"workflows/plans/default.yaml", "workflows/plans/consumables.yaml"}


def test_the_page_catalogs_are_shipped(names: set[str]) -> None:
    # Compiled when loaded: the .po files are all the pages need.
    for language in ("en", "de", "fr", "es"):
        assert f"engine/customers/locales/{language}/LC_MESSAGES/messages.po" in names


def test_the_message_and_page_templates_are_shipped(names: set[str]) -> None:
    email = {name for name in names if name.startswith("activities/email/templates/")}
    sms = {name for name in names if name.startswith("activities/sms/templates/")}
    pages = {name for name in names if name.startswith("engine/customers/pages/templates/")}
    checkout = {
        path.relative_to(REPO).as_posix()
        for folder in (
            "activities/email/templates",
            "activities/sms/templates",
            "engine/customers/pages/templates",
        )
        for path in (REPO / folder).rglob("*.j2")
    }
    assert email | sms | pages == checkout
    for locale in ("en", "de", "fr", "es"):
        for kind in ("html", "txt"):
            assert f"activities/email/templates/{locale}/order_confirmation.{kind}.j2" in email
        assert f"activities/sms/templates/{locale}/shipping_notice.txt.j2" in sms
    assert "activities/email/templates/layout.html.j2" in email
    assert {
        "engine/customers/pages/templates/layout.html.j2",
        "engine/customers/pages/templates/preferences.html.j2",
        "engine/customers/pages/templates/feedback.html.j2",
    } <= pages


def test_the_report_page_templates_are_shipped(names: set[str]) -> None:
    folder = "engine/insights/templates"
    checkout = {path.relative_to(REPO).as_posix() for path in (REPO / folder).rglob("*.j2")}
    assert f"{folder}/report.html.j2" in checkout
    assert {name for name in names if name.startswith(f"{folder}/")} == checkout


def test_the_migrations_are_shipped(names: set[str]) -> None:
    migrations = "engine/platform/database/migrations"
    assert {f"{migrations}/env.py", f"{migrations}/script.py.mako"} <= names
    versions = sorted(
        name for name in names if re.fullmatch(rf"{migrations}/versions/\d{{4}}_\w+\.py", name)
    )
    checkout = sorted(
        path.relative_to(REPO).as_posix()
        for path in (REPO / migrations / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")
    )
    assert versions == checkout
    assert f"{migrations}/versions/0001_messages.py" in versions


def test_the_installed_wheel_finds_its_plans_and_migrates_a_database(
    unpacked: Path, tmp_path: Path
) -> None:
    database = tmp_path / "from-wheel.db"
    ran = run_from(
        unpacked,
        f"""
        import sqlite3
        import workflows.plans.catalogue as catalogue
        from engine.platform.database import migrate

        assert catalogue.__file__.startswith({str(unpacked)!r}), catalogue.__file__
        assert str(migrate.MIGRATIONS_DIR).startswith({str(unpacked)!r})
        print(sorted(catalogue.load_catalogue()))
        migrate.upgrade_database("sqlite+aiosqlite:///{database}")
        tables = sqlite3.connect({str(database)!r}).execute(
            "select name from sqlite_master where type = 'table'"
        ).fetchall()
        print(sorted(name for (name,) in tables if name in ("messages", "alembic_version")))
        """,
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == [
        "['consumables', 'default']",
        "['alembic_version', 'messages']",
    ]


def test_the_checkout_is_off_the_path_of_those_runs(unpacked: Path, tmp_path: Path) -> None:
    # The runs from the unpacked wheel prove something only without the checkout.
    ran = run_from(
        unpacked,
        """
        import importlib.util
        print(importlib.util.find_spec("tools"), importlib.util.find_spec("tests"))
        """,
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "None None"


def test_the_generated_grpc_modules_are_shipped(names: set[str]) -> None:
    generated = {
        f"aftercare/v1/{stem}{suffix}"
        for stem in ("journey", "preferences")
        for suffix in ("_pb2.py", "_pb2_grpc.py")
    }
    assert sorted(generated - names) == []


def test_the_client_library_imports_from_the_wheel(unpacked: Path, tmp_path: Path) -> None:
    ran = run_from(
        unpacked,
        """
        import clients
        print(clients.AftercareClient.__module__, clients.messages.Order.DESCRIPTOR.full_name)
        """,
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "clients.aftercare_client aftercare.v1.Order"
