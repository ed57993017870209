"""Screenshots of the plan report page in headless Chromium, at a desktop's and a
phone's width, for docs/reports.md.

    python -m tools.report_screenshots [--out docs/images]
    python -m tools.report_screenshots --database-url sqlite+aiosqlite:///.aftercare/aftercare.db

It serves the real HTTP app (``engine.processes.http.http_app``) on a free port,
signs a ``reports:read`` key into it, fetches the report page as a browser would
and has Chromium draw it: ``report-desktop.png`` (1280 px) and ``report-phone.png``
(390 px). The page needs no script and no outside resource (styles and SVG charts
are inline), so Chromium draws the very page the app served.

With ``--demo`` it starts ``aftercare run`` on free ports in a throwaway state
dir, runs ``aftercare demo`` against it (orders, events, clicks on tracked links,
repeat orders) and shoots the stack's own report page. With ``--database-url`` it
reports what that database holds and revokes the key it made there afterwards;
otherwise it writes generated traffic (``tools.report_traffic``) into a throwaway
SQLite database first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from engine.access.api_keys import ApiKeyStore
from engine.access.scopes import Scope
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.http_server import serve_http
from engine.platform.settings import Settings
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.http import http_app
from tools.dashboard_screenshots import AFTERCARE, dev_stack
from tools.report_traffic import ExperimentTraffic, StepTraffic, Traffic, write_traffic
from tools.screenshots import INSTALL_HINT, ScreenshotFailed, find_chromium, screenshot_email

DEFAULT_OUT = Path("docs/images")
DEMO_SECONDS = 900


@dataclass(frozen=True)
class Shot:
    kind: str  # <name>-<kind>.png
    width: int
    height: int


SHOTS = (Shot("desktop", 1280, 3350), Shot("phone", 390, 3000))


def sample_traffic(now: datetime) -> Traffic:
    """A month of a shop's default plan: transactional steps with high reach, a
    thank-you and a cross-sell that sell, and a review-request subject test with a
    holdout, where the short subject truly converts better."""
    return Traffic(
        plan_label="default@v1",
        now=now,
        steps=[
            StepTraffic("order_confirmation", "email", "transactional", 520, click_rate=0.22),
            StepTraffic("shipping_notice", "email", "transactional", 480, click_rate=0.35),
            StepTraffic("delivered", "sms", "transactional", 300, click_rate=0.08),
            StepTraffic("thank_you", "email", "relationship", 430, click_rate=0.09),
            StepTraffic(
                "cross_sell", "email", "marketing", 260, click_rate=0.07, conversion_rate=0.35
            ),
        ],
        experiments=[
            ExperimentTraffic(
                "review-subject",
                "review_request",
                "email",
                {"control": (0.4, 0.045), "short": (0.4, 0.09), "holdout": (0.2, 0.015)},
                customers=2000,
            )
        ],
    )


async def _with_reader_key(database_url: str) -> tuple[str, str]:
    engine = create_engine(database_url)
    try:
        created = await ApiKeyStore(create_session_factory(engine)).create(
            "report-screenshots", [Scope.REPORTS_READ.value]
        )
    finally:
        await engine.dispose()
    return created.token, created.info.id


async def _revoke(database_url: str, key_id: str) -> None:
    engine = create_engine(database_url)
    try:
        await ApiKeyStore(create_session_factory(engine)).revoke(key_id)
    finally:
        await engine.dispose()


async def fetch_report_page(settings: Settings, key: str, query: str) -> str:
    """The report page as the HTTP app serves it to ``key``."""
    async with (
        http_app(settings) as app,
        serve_http(app, "127.0.0.1", 0) as server,
        httpx.AsyncClient(base_url=server.url, timeout=60) as http,
    ):
        page = await http.get(f"/reports?{query}", headers={"Authorization": f"Bearer {key}"})
    if page.status_code != 200:
        raise RuntimeError(f"the report page answered {page.status_code}: {page.text[:500]}")
    return page.text


@dataclass(frozen=True)
class Pictures:
    """Where the PNGs go: ``<out>/<name>-<kind>.png`` for each kind asked for."""

    out: Path
    name: str = "report"
    kinds: tuple[str, ...] = ("desktop", "phone")


async def _shoot(html: str, folder: Path, pictures: Pictures) -> list[Path]:
    html_path = folder / "report.html"
    html_path.write_text(html, encoding="utf-8")
    written = []
    for shot in SHOTS:
        if shot.kind not in pictures.kinds:
            continue
        png = pictures.out / f"{pictures.name}-{shot.kind}.png"
        await asyncio.to_thread(screenshot_email, html_path, png, shot.width, shot.height)
        written.append(png)
    return written


async def render_demo(pictures: Pictures, plan: str, since: str) -> list[Path]:
    """``aftercare demo`` on a fresh dev stack, then the stack's own report page."""
    with tempfile.TemporaryDirectory(prefix="aftercare-report-demo-") as folder:
        state_dir = Path(folder)
        async with dev_stack(state_dir) as stack:
            env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERCARE_")}
            env.update(
                AFTERCARE_STATE_DIR=str(state_dir),
                AFTERCARE_GRPC_PORT=stack.grpc_target.rpartition(":")[2],
                AFTERCARE_PUBLIC_BASE_URL=stack.http_url,
                AFTERCARE_API_KEY=stack.api_key,
            )
            demo = await asyncio.create_subprocess_exec(
                str(AFTERCARE), "demo", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            said, _ = await asyncio.wait_for(demo.communicate(), DEMO_SECONDS)
            print(said.decode(errors="replace"), file=sys.stderr)
            if demo.returncode != 0:
                raise RuntimeError(f"aftercare demo exited with {demo.returncode}")
            async with httpx.AsyncClient(base_url=stack.http_url, timeout=120) as http:
                page = await http.get(
                    f"/reports?plan={plan}&since={since}",
                    headers={"Authorization": f"Bearer {stack.api_key}"},
                )
            if page.status_code != 200:
                raise RuntimeError(
                    f"the report page answered {page.status_code}: {page.text[:500]}"
                )
        return await _shoot(page.text, state_dir, pictures)


async def render(pictures: Pictures, database_url: str | None, plan: str, since: str) -> list[Path]:
    with tempfile.TemporaryDirectory(prefix="aftercare-report-shots-") as folder:
        state_dir = Path(folder)
        generated = database_url is None
        url = database_url or f"sqlite+aiosqlite:///{state_dir / 'report.db'}"
        if generated:
            upgrade_database(url)
            engine = create_engine(url)
            await write_traffic(create_session_factory(engine), sample_traffic(datetime.now(UTC)))
            await engine.dispose()
        settings = with_dev_secrets(
            Settings(
                _env_file=None, state_dir=state_dir, database_url=url, temporal_address="unused:0"
            )
        )
        key, key_id = await _with_reader_key(url)
        try:
            html = await fetch_report_page(settings, key, f"plan={plan}&since={since}")
        finally:
            if not generated:
                await _revoke(url, key_id)
        return await _shoot(html, state_dir, pictures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.report_screenshots",
        description="Screenshot the plan report page at desktop and phone width.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNGs")
    parser.add_argument("--database-url", help="report this database (default: generated traffic)")
    parser.add_argument(
        "--demo", action="store_true", help="report a fresh dev stack after `aftercare demo`"
    )
    parser.add_argument("--name", default="report", help="PNGs are <name>-<kind>.png")
    parser.add_argument(
        "--only", choices=[shot.kind for shot in SHOTS], help="one picture (default: all)"
    )
    parser.add_argument("--plan", default="default")
    parser.add_argument("--since", default="30d")
    arguments = parser.parse_args(argv)
    if find_chromium() is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 1
    try:
        kinds = (arguments.only,) if arguments.only else tuple(shot.kind for shot in SHOTS)
        pictures = Pictures(arguments.out, arguments.name, kinds)
        if arguments.demo:
            written = asyncio.run(render_demo(pictures, arguments.plan, arguments.since))
        else:
            written = asyncio.run(
                render(pictures, arguments.database_url, arguments.plan, arguments.since)
            )
    except (ScreenshotFailed, RuntimeError) as err:
        print(err, file=sys.stderr)
        return 1
    for png in written:
        print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
