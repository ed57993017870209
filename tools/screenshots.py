"""Screenshots of rendered emails in headless Chromium, at a phone's and a desktop's width.

    python -m tools.screenshots [--out .aftercare/screenshots]

renders the order confirmation (en and de) with the real renderer and writes
``order_confirmation.<locale>.<375|1200>.png`` next to the HTML it was taken from.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from engine.cli.preview import render_email_preview, write_email_preview

CHROMIUM = "/usr/bin/chromium"
INSTALL_HINT = "Chromium is not installed: run `apt-get install -y chromium`."
# An iPhone-sized phone and a desktop mail client's reading pane.
WIDTHS: tuple[int, ...] = (375, 1200)
LOCALES: tuple[str, ...] = ("en", "de")
TEMPLATE = "order_confirmation"
DEFAULT_OUT = Path(".aftercare/screenshots")
TIMEOUT_SECONDS = 120


class ChromiumNotFound(RuntimeError):
    pass


class ScreenshotFailed(RuntimeError):
    pass


def find_chromium() -> str | None:
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return shutil.which("chromium")


# Headless on a machine with no screen and no internet: without the networking
# flags Chromium keeps trying to reach Google's hosts, refused many at a time.
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_arguments(
    chromium: str, html_path: Path, png_path: Path, width: int, height: int, profile: Path
) -> list[str]:
    return [
        chromium,
        *HEADLESS_FLAGS,
        f"--user-data-dir={profile}",
        "--hide-scrollbars",
        f"--screenshot={png_path}",
        f"--window-size={width},{height}",
        html_path.resolve().as_uri(),
    ]


def screenshot_email(html_path: Path, png_path: Path, width: int, height: int = 2000) -> Path:
    """Take a ``width`` x ``height`` screenshot of the HTML file; returns ``png_path``."""
    chromium = find_chromium()
    if chromium is None:
        raise ChromiumNotFound(INSTALL_HINT)
    png_path = png_path.resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    # An old screenshot must not pass for a new one.
    png_path.unlink(missing_ok=True)
    # A throwaway profile: no state leaks between runs, and parallel runs do not collide.
    with tempfile.TemporaryDirectory(prefix="aftercare-chromium-") as profile:
        command = chromium_arguments(chromium, html_path, png_path, width, height, Path(profile))
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
            )
        except subprocess.TimeoutExpired as err:
            raise ScreenshotFailed(
                f"chromium took over {TIMEOUT_SECONDS}s for {html_path}"
            ) from err
    if done.returncode != 0 or not png_path.is_file():
        tail = "\n".join(done.stderr.strip().splitlines()[-10:])
        raise ScreenshotFailed(
            f"chromium exited with {done.returncode} and no screenshot of {html_path}:\n{tail}"
        )
    return png_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.screenshots",
        description=f"Screenshot the {TEMPLATE} email (en, de) at phone and desktop width.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for HTML and PNGs")
    out: Path = parser.parse_args(argv).out
    if find_chromium() is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 1
    for locale in LOCALES:
        rendered = render_email_preview(TEMPLATE, locale)
        html_path, _ = write_email_preview(rendered, out, TEMPLATE, locale)
        for width in WIDTHS:
            png_path = out / f"{TEMPLATE}.{locale}.{width}.png"
            try:
                screenshot_email(html_path, png_path, width)
            except ScreenshotFailed as err:
                print(err, file=sys.stderr)
                return 1
            print(png_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
