"""Screenshots of the order confirmation in real headless Chromium, at phone and desktop width.

Chromium is required: without it these tests fail with the command that installs it.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from tools import screenshots
from tools.screenshots import (
    INSTALL_HINT,
    ChromiumNotFound,
    chromium_arguments,
    find_chromium,
    screenshot_email,
)

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking it is a whole, valid PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (kind, length) == (b"IHDR", 13), f"{path} does not start with an IHDR chunk"
    header = data[16 : 16 + length]
    (crc,) = struct.unpack(">I", data[16 + length : 20 + length])
    assert zlib.crc32(kind + header) == crc, f"{path} has a corrupt IHDR chunk"
    assert data[-12:] == b"\x00\x00\x00\x00IEND\xae\x42\x60\x82", f"{path} is truncated"
    width, height = struct.unpack(">II", header[:8])
    return width, height


def require_chromium() -> None:
    if find_chromium() is None:
        pytest.fail(INSTALL_HINT)


def test_the_order_confirmation_is_shot_at_phone_and_desktop_width(tmp_path: Path) -> None:
    require_chromium()

    done = subprocess.run(
        [sys.executable, "-m", "tools.screenshots", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    for locale in ("en", "de"):
        for width in (375, 1200):
            png = tmp_path / f"order_confirmation.{locale}.{width}.png"
            assert str(png) in done.stdout.splitlines()
            assert png_size(png) == (width, 2000)


def test_screenshot_email_takes_the_requested_size(tmp_path: Path) -> None:
    require_chromium()
    html = tmp_path / "mail with space.html"
    html.write_text("<!DOCTYPE html><p style='width:100%'>Hello</p>", encoding="utf-8")
    png = tmp_path / "shots" / "mail.png"

    assert screenshot_email(html, png, width=375, height=640) == png.resolve()

    assert png_size(png) == (375, 640)


def test_chromium_runs_with_exactly_these_flags(tmp_path: Path) -> None:
    html = tmp_path / "mail.html"
    png = tmp_path / "mail.png"
    profile = tmp_path / "profile"

    assert chromium_arguments("/usr/bin/chromium", html, png, 375, 2000, profile) == [
        "/usr/bin/chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--hide-scrollbars",
        f"--screenshot={png}",
        "--window-size=375,2000",
        f"file://{html}",
    ]


def test_without_chromium_the_install_command_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(screenshots, "find_chromium", lambda: None)

    assert screenshots.main(["--out", str(tmp_path)]) == 1
    assert "apt-get install -y chromium" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []

    with pytest.raises(ChromiumNotFound, match=r"apt-get install -y chromium"):
        screenshot_email(tmp_path / "mail.html", tmp_path / "mail.png", 375)
