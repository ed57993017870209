"""Pictures of the Grafana dashboard's key panels for docs/operations.md, drawn by
Prometheus's own graph page from live data.

    python -m tools.dashboard_screenshots [--out docs/images] [--seconds 90]
    python -m tools.dashboard_screenshots --prometheus http://127.0.0.1:9090

Without ``--prometheus`` it starts what it needs: ``aftercare run`` on free ports
with metrics on, a real Prometheus scraping it every second (the alert rules
loaded), and some traffic for ``--seconds`` (journeys started and shipped, a few
invalid and unknown calls, the HTTP app's pages). Then, for each key panel, it fills
in the panel's query as Grafana would and screenshots Prometheus's graph page for it
in headless Chromium: ``dashboard-<name>.png`` under ``--out``. No Grafana is
needed, and the pictures show the very queries the dashboard runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
from aftercare.v1 import journey_pb2 as pb

from clients import AftercareClient
from clients.aftercare_client import AftercareError
from engine.cli.samples import sample_order, sample_shipment
from tools.dashboard_queries import ALERT_RULES, concrete, load_dashboard, panel_queries
from tools.ports import free_port
from tools.prometheus_server import INSTALL_HINT as PROMETHEUS_HINT
from tools.prometheus_server import PrometheusServer, find_prometheus
from tools.screenshots import HEADLESS_FLAGS, find_chromium
from tools.screenshots import INSTALL_HINT as CHROMIUM_HINT

AFTERCARE = Path(sys.executable).parent / "aftercare"
DEFAULT_OUT = Path("docs/images")
PROCESSES = ("api", "worker", "http", "codec")
# The rate window the pictures use for $__rate_interval: with a scrape a second,
# long enough to smooth single scrapes, short enough to show a minute's traffic.
RATE_INTERVAL = "15s"
GRAPH_RANGE = "2m"
WINDOW = (1200, 900)
STACK_START_SECONDS = 120.0
CHROMIUM_SECONDS = 60


@dataclass(frozen=True)
class KeyPanel:
    title: str  # the dashboard panel's title
    ref_id: str  # which of its queries
    name: str  # dashboard-<name>.png


KEY_PANELS: tuple[KeyPanel, ...] = (
    KeyPanel("Messages sent per channel", "A", "messages-sent"),
    KeyPanel("Provider call latency p50 / p95", "B", "provider-latency-p95"),
    KeyPanel("API requests by method and code", "A", "api-requests"),
    KeyPanel("Workflow task schedule-to-start p95", "A", "workflow-schedule-to-start"),
)


@dataclass(frozen=True)
class Stack:
    grpc_target: str
    http_url: str
    api_key: str
    metrics: dict[str, list[str]]  # Prometheus job -> host:port of its /metrics


@contextlib.asynccontextmanager
async def dev_stack(state_dir: Path) -> AsyncIterator[Stack]:
    """``aftercare run`` on free ports, every process's metrics on, until exit."""
    ports = {process: free_port() for process in PROCESSES}
    http_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERCARE_")}
    env.update(
        AFTERCARE_STATE_DIR=str(state_dir),
        AFTERCARE_GRPC_PORT=str(free_port()),
        AFTERCARE_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        AFTERCARE_TEMPORAL_UI_PORT=str(free_port()),
        AFTERCARE_SMTP_PORT=str(free_port()),
        AFTERCARE_HTTP_PORT=str(http_port),
        # Links in the stack's messages lead to its own HTTP app.
        AFTERCARE_PUBLIC_BASE_URL=f"http://127.0.0.1:{http_port}",
        AFTERCARE_CODEC_PORT=str(free_port()),
        AFTERCARE_LOG_FORMAT="json",
        **{f"AFTERCARE_{p.upper()}_METRICS_PORT": str(port) for p, port in ports.items()},
    )
    process = await asyncio.create_subprocess_exec(
        str(AFTERCARE), "run", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert process.stdout is not None
    output: list[str] = []
    reader = asyncio.create_task(_collect(process.stdout, output))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STACK_START_SECONDS
        while "Aftercare is running" not in "".join(output):
            if process.returncode is not None or loop.time() > deadline:
                raise RuntimeError("aftercare run did not start:\n" + "".join(output)[-3000:])
            await asyncio.sleep(0.5)
        api_key = await asyncio.to_thread((state_dir / "api-key").read_text)
        yield Stack(
            grpc_target=f"127.0.0.1:{env['AFTERCARE_GRPC_PORT']}",
            http_url=f"http://127.0.0.1:{env['AFTERCARE_HTTP_PORT']}",
            api_key=api_key.strip(),
            metrics={f"aftercare-{p}": [f"127.0.0.1:{port}"] for p, port in ports.items()},
        )
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                process.kill()
                await process.wait()
        await reader


async def _collect(stream: asyncio.StreamReader, sink: list[str]) -> None:
    while line := await stream.readline():
        sink.append(line.decode(errors="replace"))


async def drive(stack: Stack, seconds: float) -> int:
    """Traffic for ``seconds``: a journey started every second (each shipped, then out
    for delivery, a moment later), with now and then a call a client gets wrong and a
    visit to the HTTP app.
    Returns how many journeys were started."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    started: list[str] = []
    prefix = f"SHOT{os.getpid()}"
    async with (
        AftercareClient(stack.grpc_target, api_key=stack.api_key) as client,
        httpx.AsyncClient(base_url=stack.http_url, timeout=10) as http,
    ):
        while loop.time() < deadline:
            order_id = f"{prefix}-{len(started) + 1}"
            await client.start_journey(sample_order(order_id, len(started)))
            started.append(order_id)
            if len(started) > 2:
                shipped = started[-3]
                event = pb.OrderEvent(event_id=f"{shipped}-ship", type=pb.EVENT_TYPE_SHIPPED)
                event.shipment.CopyFrom(sample_shipment(shipped))
                await client.record_event(shipped, event)
            if len(started) > 4:
                # Out for delivery prefers SMS: the stack's Twilio fake takes it.
                out = started[-5]
                await client.record_event(
                    out,
                    pb.OrderEvent(event_id=f"{out}-out", type=pb.EVENT_TYPE_OUT_FOR_DELIVERY),
                )
            if len(started) % 5 == 0:
                # INVALID_ARGUMENT and NOT_FOUND: a client's mistakes, on the panel too.
                with contextlib.suppress(AftercareError):
                    await client.start_journey(pb.Order())
                with contextlib.suppress(AftercareError):
                    await client.get_journey(f"{prefix}-unknown")
                await http.get("/healthz")
            await asyncio.sleep(1)
    return len(started)


def graph_url(prometheus: str, expr: str, *, classic: bool) -> str:
    """Prometheus's graph page showing ``expr`` as a graph over GRAPH_RANGE. Debian's
    package serves the classic page (/classic/graph); upstream builds the new one
    (/graph), which reads the same parameters."""
    query = urlencode({"g0.expr": expr, "g0.tab": "0", "g0.range_input": GRAPH_RANGE})
    return f"{prometheus}/{'classic/graph' if classic else 'graph'}?{query}"


def screenshot(chromium: str, url: str, png: Path) -> None:
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="aftercare-chromium-") as profile:
        done = subprocess.run(
            [
                chromium,
                *HEADLESS_FLAGS,
                f"--user-data-dir={profile}",
                "--hide-scrollbars",
                # The graph is drawn by the page's scripts after its query returns:
                # let the page run (in virtual time) before the picture is taken.
                "--virtual-time-budget=10000",
                f"--screenshot={png}",
                f"--window-size={WINDOW[0]},{WINDOW[1]}",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=CHROMIUM_SECONDS,
            check=False,
        )
    if done.returncode != 0 or not png.is_file():
        raise RuntimeError(f"chromium made no screenshot of {url}:\n{done.stderr[-2000:]}")


async def render(prometheus: str, out: Path) -> list[Path]:
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError(CHROMIUM_HINT)
    async with httpx.AsyncClient(timeout=10) as http:
        classic = (await http.get(f"{prometheus}/classic/graph")).status_code == 200
    queries = {(q.panel, q.ref_id): q.expr for q in panel_queries(load_dashboard())}
    written = []
    for panel in KEY_PANELS:
        expr = concrete(queries[(panel.title, panel.ref_id)], rate_interval=RATE_INTERVAL)
        # A picture of "No datapoints found" documents nothing: refuse to take it.
        if not await _has_data(prometheus, expr):
            raise RuntimeError(f"no data for {panel.title!r} in {prometheus}: {expr}")
        png = out / f"dashboard-{panel.name}.png"
        await asyncio.to_thread(
            screenshot, chromium, graph_url(prometheus, expr, classic=classic), png
        )
        written.append(png)
    return written


async def _scraping(server: PrometheusServer, jobs: set[str], seconds: float = 30) -> None:
    """Until Prometheus has scraped every job once, successfully."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        up = await server.targets_up()
        if set(up) == jobs and all(up.values()):
            return
        if loop.time() > deadline:
            raise RuntimeError(f"Prometheus does not scrape every part: {up}")
        await asyncio.sleep(0.5)


async def _has_data(prometheus: str, expr: str) -> bool:
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(f"{prometheus}/api/v1/query", params={"query": expr})
    body = answer.json()
    return body.get("status") == "success" and bool(body["data"]["result"])


async def run(out: Path, seconds: float, prometheus: str | None) -> list[Path]:
    if prometheus is not None:
        return await render(prometheus.rstrip("/"), out)
    if find_prometheus() is None:
        raise RuntimeError(PROMETHEUS_HINT)
    with tempfile.TemporaryDirectory(prefix="aftercare-dashboard-") as state:
        async with (
            dev_stack(Path(state) / "state") as stack,
            PrometheusServer(stack.metrics, rule_files=[ALERT_RULES]) as server,
        ):
            await _scraping(server, set(stack.metrics))
            journeys = await drive(stack, seconds)
            print(f"{journeys} journeys driven; Prometheus at {server.url}", flush=True)
            # The last sends and their scrape.
            await asyncio.sleep(5)
            return await render(server.url, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.dashboard_screenshots",
        description="Screenshot the dashboard's key panels in Prometheus's graph page.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNGs")
    parser.add_argument(
        "--seconds", type=float, default=90.0, help="how long to drive traffic first"
    )
    parser.add_argument(
        "--prometheus",
        help="an existing Prometheus scraping a running stack (nothing is started)",
    )
    args = parser.parse_args(argv)
    try:
        written = asyncio.run(run(args.out, args.seconds, args.prometheus))
    except RuntimeError as err:
        print(err, file=sys.stderr)
        return 1
    for png in written:
        print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
