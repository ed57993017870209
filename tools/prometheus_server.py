"""A real Prometheus (Debian's ``prometheus`` package) scraping a running stack.

The metrics test and ``tools.dashboard_screenshots`` start one on a throwaway config
and database: every job scraped each second, the alert rules loaded, the web UI and
HTTP API on a free port of 127.0.0.1; :meth:`PrometheusServer.query` runs PromQL
through ``/api/v1/query`` and raises :class:`PromQLError` on anything Prometheus
refuses, so a broken expression fails loudly instead of reading as "no data".
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import yaml

from tools.ports import free_port

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
INSTALL_HINT = "Prometheus is not installed: run `make prometheus` (Debian's package)."
READY_SECONDS = 30.0
STOP_SECONDS = 10.0


class PrometheusNotFound(RuntimeError):
    pass


class PromQLError(RuntimeError):
    """Prometheus refused a query (bad syntax, unknown function, wrong types)."""


def find_binary(name: str, debian_path: str) -> str | None:
    """Debian installs into /usr/bin; a PATH may point elsewhere (another install)."""
    if os.access(debian_path, os.X_OK):
        return debian_path
    return shutil.which(name)


def find_prometheus() -> str | None:
    return find_binary("prometheus", PROMETHEUS)


def find_promtool() -> str | None:
    return find_binary("promtool", PROMTOOL)


def scrape_config(
    jobs: Mapping[str, Sequence[str]],
    *,
    interval: str = "1s",
    rule_files: Sequence[Path] = (),
) -> dict[str, Any]:
    """A Prometheus config scraping each job's ``host:port`` targets every ``interval``."""
    for job, targets in jobs.items():
        # A lone "host:port" is a sequence too: of characters.
        if isinstance(targets, str):
            raise TypeError(f"job {job}: targets must be a list of host:port, not {targets!r}")
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path.resolve()) for path in rule_files],
        "scrape_configs": [
            {
                "job_name": job,
                # Scrapes must finish within the interval; the default (10 s) would not.
                "scrape_timeout": interval,
                "static_configs": [{"targets": list(targets)}],
            }
            for job, targets in jobs.items()
        ],
    }


class PrometheusServer:
    """``async with PrometheusServer({"aftercare-api": ["127.0.0.1:9464"]}) as prom``."""

    def __init__(
        self,
        jobs: Mapping[str, Sequence[str]],
        *,
        interval: str = "1s",
        rule_files: Sequence[Path] = (),
        log_file: Path | None = None,
    ) -> None:
        self._config = scrape_config(jobs, interval=interval, rule_files=rule_files)
        self._log_file = log_file
        self._port = free_port()
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._http: httpx.AsyncClient | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        binary = find_prometheus()
        if binary is None:
            raise PrometheusNotFound(INSTALL_HINT)
        self._workdir = tempfile.TemporaryDirectory(prefix="aftercare-prometheus-")
        workdir = Path(self._workdir.name)
        config = workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self._config, sort_keys=False))
        log_path = self._log_file or workdir / "prometheus.log"
        with log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self._port}",
                "--log.level=warn",
                stdout=log,
                stderr=log,
            )
        self._http = httpx.AsyncClient(base_url=self.url, timeout=10.0)
        try:
            await self._wait_ready(log_path)
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self, log_path: Path) -> None:
        assert self._http is not None
        assert self._process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_SECONDS
        while True:
            if self._process.returncode is not None:
                log = await asyncio.to_thread(log_path.read_text, errors="replace")
                raise RuntimeError(
                    f"prometheus exited with {self._process.returncode}:\n{log[-2000:]}"
                )
            try:
                if (await self._http.get("/-/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if loop.time() >= deadline:
                raise RuntimeError(f"prometheus not ready within {READY_SECONDS}s")
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_SECONDS)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar, as one sample) ``expr`` gives now."""
        assert self._http is not None, "not started"
        answer = await self._http.get("/api/v1/query", params={"query": expr})
        body = answer.json()
        if body.get("status") != "success":
            raise PromQLError(f"{body.get('errorType')}: {body.get('error')} in {expr!r}")
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    async def http_get(self, path: str) -> dict[str, Any]:
        """The JSON another API endpoint answers (``/api/v1/rules``, ``/api/v1/targets``)."""
        assert self._http is not None, "not started"
        answer = await self._http.get(path)
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        return body

    async def targets_up(self) -> dict[str, bool]:
        """Each scraped job: did its last scrape of every target succeed?"""
        jobs: dict[str, bool] = {}
        for sample in await self.query("up"):
            job = sample["metric"].get("job", "")
            jobs[job] = jobs.get(job, True) and sample["value"][1] == "1"
        return jobs
