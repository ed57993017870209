"""The plan report as a page of the HTTP app, with CSV and JSON downloads, for
people holding an API key with the ``reports:read`` scope.

Who may look is decided by the process that serves the page: it hands in a
:data:`KeyCheck` (this package sits below the API keys and must not import
them). A key arrives either as ``Authorization: Bearer <key>`` (scripts, the
downloads from a terminal) or from the login form, which keeps it in an
HttpOnly, SameSite=Strict cookie signed with the service's secret for
:data:`SESSION_SECONDS`. Every request checks the key again, so a revoked key
or a removed scope stops working at once, cookie or not.

The page shows numbers only: no customer, no address, no order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from engine.insights import report_format
from engine.insights.report_export import CsvTable, report_to_csv, report_to_json
from engine.insights.report_lookup import ReportLookup
from engine.insights.report_model import InvalidReportRequest, PlanReport, UnknownPlan
from engine.insights.report_period import parse_period
from engine.platform.brand import Brand
from engine.platform.logging import get_logger

log = get_logger(__name__)

REPORT_PATH = "/reports"
LOGIN_PATH = "/reports/login"
LOGOUT_PATH = "/reports/logout"
CSV_PATH = "/reports/export.csv"
JSON_PATH = "/reports/export.json"
SESSION_COOKIE = "aftercare_report_session"
SESSION_SECONDS = 8 * 3600
LOGIN_MAX_BODY_BYTES = 4096
# Keys are about 64 characters; anything far longer is not one.
MAX_KEY_LENGTH = 200
PERIOD_CHOICES = (
    ("1d", "last 24 hours"),
    ("7d", "last 7 days"),
    ("30d", "last 30 days"),
    ("90d", "last 90 days"),
    ("365d", "last year"),
)
TEMPLATE_DIR = Path(__file__).parent / "templates"
_SALT = "aftercare-report-session"

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


class AccessRefused(Exception):
    """A key that may not see reports: ``status`` 401 (missing, unknown, revoked),
    403 (no reports:read scope) or 503 (the keys cannot be checked now)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# Checks an API key for the reports:read scope; raises AccessRefused, else returns.
KeyCheck = Callable[[str], Awaitable[None]]


class ReportPages:
    def __init__(
        self,
        lookup: ReportLookup,
        check_key: KeyCheck,
        *,
        secret: str,
        brand: Brand,
        secure_cookies: bool,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._lookup = lookup
        self._check_key = check_key
        self._sessions = URLSafeTimedSerializer(secret, salt=_SALT)
        self._brand = brand
        self._secure = secure_cookies
        self._clock = clock
        self._env = Environment(
            loader=FileSystemLoader(TEMPLATE_DIR),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters.update(
            money=report_format.money,
            revenue=report_format.revenue,
            rate=report_format.rate,
            points=report_format.points,
            interval=report_format.interval,
            p_value=report_format.p_value,
        )
        self._env.globals["share"] = report_format.share

    def routes(self) -> list[Route]:
        return [
            Route(REPORT_PATH, self.show, methods=["GET"]),
            Route(CSV_PATH, self.export_csv, methods=["GET"]),
            Route(JSON_PATH, self.export_json, methods=["GET"]),
            Route(LOGIN_PATH, self.login_form, methods=["GET"]),
            Route(LOGIN_PATH, self.login, methods=["POST"], max_body_size=LOGIN_MAX_BODY_BYTES),
            Route(LOGOUT_PATH, self.logout, methods=["POST"], max_body_size=LOGIN_MAX_BODY_BYTES),
        ]

    # -- pages ---------------------------------------------------------------------

    async def show(self, request: Request) -> Response:
        refused = await self._refusal(request, page=True)
        if refused is not None:
            return refused
        found = await self._report(request)
        if isinstance(found, Response):
            return found
        report, query = found
        # Drawing is CPU work of a few hundred milliseconds: off the event loop.
        drawn = await asyncio.to_thread(_charts, report, self._brand.primary_color)
        return self._render(
            "report.html.j2",
            report=report,
            totals=report.totals(),
            plans=self._lookup.plan_ids() or [report.plan],
            period_choices=PERIOD_CHOICES,
            chosen_since=request.query_params.get("since", "30d"),
            charts=drawn,
            downloads={
                **{
                    f"{table.value.capitalize()} (CSV)": (
                        f"{CSV_PATH}?{urlencode({**query, 'table': table.value})}"
                    )
                    for table in CsvTable
                },
                "Everything (JSON)": f"{JSON_PATH}?{urlencode(query)}",
            },
            logout_path=LOGOUT_PATH,
        )

    async def export_csv(self, request: Request) -> Response:
        refused = await self._refusal(request, page=False)
        if refused is not None:
            return refused
        try:
            table = CsvTable(request.query_params.get("table", CsvTable.STEPS.value))
        except ValueError:
            return _plain(400, "table: one of steps, experiments, days")
        found = await self._report(request, page=False)
        if isinstance(found, Response):
            return found
        report, _ = found
        return Response(
            report_to_csv(report, table),
            media_type="text/csv; charset=utf-8",
            headers={
                **PAGE_HEADERS,
                "Content-Disposition": _attachment(report, table.value, "csv"),
            },
        )

    async def export_json(self, request: Request) -> Response:
        refused = await self._refusal(request, page=False)
        if refused is not None:
            return refused
        found = await self._report(request, page=False)
        if isinstance(found, Response):
            return found
        report, _ = found
        return Response(
            report_to_json(report),
            media_type="application/json",
            headers={**PAGE_HEADERS, "Content-Disposition": _attachment(report, "report", "json")},
        )

    async def login_form(self, request: Request) -> Response:
        return self._render(
            "report_login.html.j2", error=None, next=_local(request.query_params.get("next"))
        )

    async def login(self, request: Request) -> Response:
        if not _same_origin(request):
            return self._message(
                403, "Request refused", "The sign-in form was sent from another website."
            )
        form = await request.form()
        key = form.get("api_key")
        next_path = _local(form.get("next"))
        if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_LENGTH:
            return self._render(
                "report_login.html.j2", 400, error="Enter an API key.", next=next_path
            )
        try:
            await self._check_key(key.strip())
        except AccessRefused as refused:
            log.info("report sign-in refused", status=refused.status)
            return self._render(
                "report_login.html.j2", refused.status, error=refused.reason, next=next_path
            )
        response = RedirectResponse(
            next_path, status_code=303, headers={"Cache-Control": "no-store"}
        )
        response.set_cookie(
            SESSION_COOKIE,
            self._sessions.dumps(key.strip()),
            max_age=SESSION_SECONDS,
            path=REPORT_PATH,
            secure=self._secure,
            httponly=True,
            samesite="strict",
        )
        return response

    async def logout(self, request: Request) -> Response:
        if not _same_origin(request):
            return self._message(
                403, "Request refused", "The sign-out form was sent from another website."
            )
        response = RedirectResponse(
            LOGIN_PATH, status_code=303, headers={"Cache-Control": "no-store"}
        )
        response.delete_cookie(
            SESSION_COOKIE, path=REPORT_PATH, secure=self._secure, httponly=True, samesite="strict"
        )
        return response

    # -- helpers -------------------------------------------------------------------

    def _key_of(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer " and header[7:].strip():
            return header[7:].strip()
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie or len(cookie) > 4 * MAX_KEY_LENGTH:
            return None
        try:
            key = self._sessions.loads(cookie, max_age=SESSION_SECONDS)
        except BadSignature:  # also an expired one (SignatureExpired)
            return None
        return key if isinstance(key, str) else None

    async def _refusal(self, request: Request, *, page: bool) -> Response | None:
        """None when the caller may see reports; else what to answer."""
        key = self._key_of(request)
        if key is None:
            if page:
                here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                target = f"{LOGIN_PATH}?{urlencode({'next': here})}"
                return RedirectResponse(
                    target, status_code=303, headers={"Cache-Control": "no-store"}
                )
            return _plain(401, "an API key with the reports:read scope is needed", bearer=True)
        try:
            await self._check_key(key)
        except AccessRefused as refused:
            log.info("report refused", status=refused.status, path=request.url.path)
            if page:
                return self._message(refused.status, "No access to reports", refused.reason)
            return _plain(refused.status, refused.reason, bearer=refused.status == 401)
        return None

    async def _report(
        self, request: Request, *, page: bool = True
    ) -> tuple[PlanReport, dict[str, str]] | Response:
        params = request.query_params
        plan = params.get("plan") or self._lookup.default_plan()
        since = params.get("since") or "30d"
        until = params.get("until") or None
        try:
            period = parse_period(since, until, self._clock())
            report = await self._lookup.report(plan, period)
        except InvalidReportRequest as err:
            if page:
                return self._message(400, "Cannot show this report", f"{err.field}: {err.problem}")
            return _plain(400, f"{err.field}: {err.problem}")
        except UnknownPlan as err:
            if page:
                return self._message(404, "No such plan", str(err))
            return _plain(404, str(err))
        query = {"plan": report.plan, "since": since, **({"until": until} if until else {})}
        return report, query

    def _render(self, template: str, status: int = 200, **variables: Any) -> Response:
        page = self._env.get_template(template).render(brand=self._brand, **variables)
        return HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)

    def _message(self, status: int, title: str, text: str) -> Response:
        return self._render(
            "report_message.html.j2", status, title=title, text=text, login_path=LOGIN_PATH
        )


def _charts(report: PlanReport, colour: str) -> dict[str, dict[str, str]]:
    """Every chart of the page, each for a wide and a narrow screen."""
    # Imported at first use: matplotlib takes seconds to import, which the HTTP
    # process should not pay at start (nor the commands that import its wiring).
    from engine.insights import charts

    comparable = any(
        arm.uplift is not None for experiment in report.experiments for arm in experiment.variants
    )
    drawn = {}
    for width_name, width in (("wide", charts.WIDE), ("narrow", charts.NARROW)):
        drawn[width_name] = {
            "funnel": charts.funnel_chart(report, colour, width),
            "daily": charts.daily_chart(report, colour, width),
            # Only when some arm can be compared: an empty chart says nothing.
            "uplift": charts.uplift_chart(report.experiments, colour, width) if comparable else "",
        }
    return drawn


def _plain(status: int, text: str, *, bearer: bool = False) -> Response:
    headers = dict(PAGE_HEADERS)
    if bearer:
        headers["WWW-Authenticate"] = 'Bearer realm="aftercare reports"'
    return PlainTextResponse(text + "\n", status_code=status, headers=headers)


def _attachment(report: PlanReport, what: str, extension: str) -> str:
    since = report.period.since.strftime("%Y%m%d")
    until = report.period.until.strftime("%Y%m%d")
    return f'attachment; filename="aftercare-{report.plan}-{what}-{since}-{until}.{extension}"'


def _local(target: object) -> str:
    """Where to go after signing in: a path of the report only (no open redirect)."""
    if (
        isinstance(target, str)
        and target.startswith(REPORT_PATH)
        and "\\" not in target
        and all(ch.isprintable() for ch in target)
    ):
        return target
    return REPORT_PATH


def _same_origin(request: Request) -> bool:
    """A browser says where a form post comes from; a post from another site is
    refused (the SameSite cookie already keeps it from being signed in)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site.lower() not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    # Host only: behind a proxy ending TLS the scheme we see is not the browser's.
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()
