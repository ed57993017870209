"""The report page of the real HTTP app (as ``aftercare http`` wires it), on a real
database: who may see it, what it shows, its downloads, and how headless Chromium
draws it at desktop and phone width."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import matplotlib.image
import pytest

from engine.access.api_keys import ApiKeyStore, parse_key
from engine.access.scopes import ALL_SCOPES, Scope
from engine.insights.report_export import report_from_json, steps_from_csv
from engine.insights.report_model import Period
from engine.insights.report_page import SESSION_COOKIE
from engine.insights.report_query import PlanReports
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.http_server import serve_http
from engine.platform.settings import Settings
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.http import http_app
from tests.support.api_keys import create_key
from tests.support.databases import sqlite_url
from tests.tools.test_screenshots import png_size, require_chromium
from tools.report_traffic import ExperimentTraffic, StepTraffic, Traffic, write_traffic
from tools.screenshots import screenshot_email

NOW = datetime.now(UTC).replace(microsecond=0)
SINCE = (NOW - timedelta(days=30)).isoformat()
UNTIL = (NOW + timedelta(minutes=1)).isoformat()
PERIOD_QUERY = f"plan=default&since={quote(SINCE)}&until={quote(UNTIL)}"


@dataclass
class Site:
    url: str
    database_url: str
    reader: str
    other: str
    revoked: str

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=60, follow_redirects=False)

    def origin(self) -> dict[str, str]:
        # What a browser sends with a form of this very site.
        return {"Origin": self.url, "Sec-Fetch-Site": "same-origin"}


@pytest.fixture(scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    state_dir = tmp_path_factory.mktemp("report-page")
    database_url = sqlite_url(state_dir)
    upgrade_database(database_url)
    engine = create_engine(database_url)
    await write_traffic(
        create_session_factory(engine),
        Traffic(
            plan_label="default@v1",
            now=NOW,
            steps=[
                StepTraffic("thank_you", "email", messages=80),
                StepTraffic("delivered", "sms", "transactional", messages=40),
            ],
            experiments=[
                ExperimentTraffic(
                    "review-subject",
                    "review_request",
                    "email",
                    {"control": (1.0, 0.05), "short": (1.0, 0.2)},
                    customers=300,
                )
            ],
        ),
    )
    await engine.dispose()
    reader = await create_key(database_url, [Scope.REPORTS_READ.value])
    other = await create_key(database_url, sorted(ALL_SCOPES - {Scope.REPORTS_READ}))
    revoked = await create_key(database_url, [Scope.REPORTS_READ.value])
    settings = with_dev_secrets(
        Settings(
            _env_file=None,
            state_dir=state_dir,
            database_url=database_url,
            temporal_address="unused:0",
            api_key_cache_seconds=0,
        )
    )
    async with http_app(settings) as app, serve_http(app, "127.0.0.1", 0) as server:
        yield Site(server.url, database_url, reader, other, revoked)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_without_a_key_the_page_sends_to_sign_in_and_downloads_refuse(site: Site) -> None:
    async with site.client() as http:
        page = await http.get("/reports?plan=default")
        download = await http.get("/reports/export.json?plan=default")
    assert page.status_code == 303
    assert page.headers["location"] == "/reports/login?next=%2Freports%3Fplan%3Ddefault"
    assert download.status_code == 401
    assert download.headers["www-authenticate"].startswith("Bearer")


async def test_a_wrong_or_unscoped_key_is_refused(site: Site) -> None:
    async with site.client() as http:
        wrong = await http.get("/reports", headers=bearer("ak_0123456789abcdef_" + "x" * 43))
        unscoped = await http.get("/reports/export.csv", headers=bearer(site.other))
    assert wrong.status_code == 401
    assert "No access to reports" in wrong.text
    assert unscoped.status_code == 403
    assert "reports:read" in unscoped.text


async def test_sign_in_sets_a_signed_cookie_that_opens_the_report(site: Site) -> None:
    async with site.client() as http:
        signed_in = await http.post(
            "/reports/login",
            data={"api_key": site.reader, "next": f"/reports?{PERIOD_QUERY}"},
            headers=site.origin(),
        )
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == f"/reports?{PERIOD_QUERY}"
        cookie = signed_in.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert site.reader not in cookie  # signed and encoded, not the plain key
        page = await http.get(f"/reports?{PERIOD_QUERY}")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    text = page.text
    assert "Plan “default”" in text
    assert "thank you" in text
    assert "review-subject" in text
    assert "privacy proxies" in text
    assert text.count("<svg") == 6  # funnel, days, uplift; wide and narrow each
    assert "significant" in text


async def test_a_forged_or_foreign_sign_in_gets_no_session(site: Site) -> None:
    async with site.client() as http:
        foreign = await http.post(
            "/reports/login",
            data={"api_key": site.reader},
            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
        wrong = await http.post(
            "/reports/login", data={"api_key": "not-a-key"}, headers=site.origin()
        )
        elsewhere = await http.post(
            "/reports/login",
            data={"api_key": site.reader, "next": "https://evil.example/"},
            headers=site.origin(),
        )
        http.cookies.set(SESSION_COOKIE, "forged.value.here", domain="127.0.0.1")
        forged = await http.get("/reports")
    assert foreign.status_code == 403
    assert "set-cookie" not in foreign.headers
    assert wrong.status_code == 401
    assert "set-cookie" not in wrong.headers
    assert elsewhere.headers["location"] == "/reports"
    assert forged.status_code == 303


async def test_a_revoked_key_closes_its_session(site: Site) -> None:
    async with site.client() as http:
        signed_in = await http.post(
            "/reports/login", data={"api_key": site.revoked}, headers=site.origin()
        )
        assert signed_in.status_code == 303
        assert (await http.get("/reports")).status_code == 200
        engine = create_engine(site.database_url)
        await ApiKeyStore(create_session_factory(engine)).revoke(parse_key(site.revoked)[0])
        await engine.dispose()
        after = await http.get("/reports")
    assert after.status_code == 401


async def test_bad_period_and_unknown_plan(site: Site) -> None:
    async with site.client() as http:
        bad = await http.get("/reports?since=yesterday", headers=bearer(site.reader))
        backwards = await http.get(
            "/reports/export.json?since=2026-12-01&until=2026-11-01", headers=bearer(site.reader)
        )
        unknown = await http.get("/reports/export.csv?plan=nothing", headers=bearer(site.reader))
        table = await http.get("/reports/export.csv?table=orders", headers=bearer(site.reader))
    assert bad.status_code == 400
    assert "since:" in bad.text
    assert backwards.status_code == 400
    assert backwards.text.startswith("since:")
    assert unknown.status_code == 404
    assert table.status_code == 400


async def test_downloads_hold_the_reports_figures(site: Site) -> None:
    async with site.client() as http:
        as_json = await http.get(
            f"/reports/export.json?{PERIOD_QUERY}", headers=bearer(site.reader)
        )
        as_csv = await http.get(
            f"/reports/export.csv?{PERIOD_QUERY}&table=steps", headers=bearer(site.reader)
        )
    engine = create_engine(site.database_url)
    period = Period(datetime.fromisoformat(SINCE), datetime.fromisoformat(UNTIL))
    expected = await PlanReports(create_session_factory(engine)).report("default", period)
    await engine.dispose()
    assert as_json.status_code == 200
    assert "attachment" in as_json.headers["content-disposition"]
    assert report_from_json(as_json.text) == expected
    assert json.loads(as_json.text)["plan"] == "default"
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert steps_from_csv(as_csv.text) == expected.steps


async def test_chromium_draws_the_page_at_desktop_and_phone_width(
    site: Site, tmp_path: Path
) -> None:
    require_chromium()
    async with site.client() as http:
        page = await http.get(f"/reports?{PERIOD_QUERY}", headers=bearer(site.reader))
    html = tmp_path / "report.html"
    html.write_text(page.text, encoding="utf-8")
    for width in (1280, 390):
        png = screenshot_email(html, tmp_path / f"report-{width}.png", width, 1600)
        assert png_size(png) == (width, 1600)
        pixels = matplotlib.image.imread(png)
        # The header bar is drawn in the brand's colour (#1a56db), edge to edge.
        red, green, blue = (pixels[5, :, channel] for channel in range(3))
        assert abs(float(red.mean()) - 0x1A / 255) < 0.02
        assert abs(float(green.mean()) - 0x56 / 255) < 0.02
        assert abs(float(blue.mean()) - 0xDB / 255) < 0.02
        # Below it, the page is not blank: text, tables and charts in many shades.
        assert len({tuple(row) for row in pixels[200:1600:7, ::7, :3].reshape(-1, 3)}) > 50
