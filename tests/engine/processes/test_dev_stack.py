"""``aftercare run`` as a user runs it: a real process with every part, stopped by Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aftercare.v1 import journey_pb2 as pb

from clients import AftercareClient, AuthenticationError
from engine.cli.samples import sample_order
from engine.devstack.preflight import _is_free
from tests.support.ids import new_order_id
from tests.support.net import free_port
from tests.support.waiting import eventually

AFTERCARE = Path(sys.executable).parent / "aftercare"


@dataclass
class StackProcess:
    process: asyncio.subprocess.Process
    env: dict[str, str]
    output: list[str]

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.env['AFTERCARE_GRPC_PORT']}"

    @property
    def key_file(self) -> Path:
        return Path(self.env["AFTERCARE_STATE_DIR"]) / "api-key"

    def client(self) -> AftercareClient:
        """A client with the key the stack made for local use."""
        return AftercareClient(self.grpc_target, api_key=self.key_file.read_text().strip())


def stack_env(state_dir: Path) -> dict[str, str]:
    temporal_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERCARE_")}
    env.update(
        AFTERCARE_STATE_DIR=str(state_dir),
        AFTERCARE_GRPC_PORT=str(free_port()),
        AFTERCARE_TEMPORAL_ADDRESS=f"127.0.0.1:{temporal_port}",
        AFTERCARE_TEMPORAL_UI_PORT=str(free_port()),
        AFTERCARE_SMTP_PORT=str(free_port()),
        AFTERCARE_HTTP_PORT=str(free_port()),
        AFTERCARE_BOUNCE_SMTP_PORT=str(free_port()),
        AFTERCARE_API_METRICS_PORT=str(free_port()),
        AFTERCARE_WORKER_METRICS_PORT=str(free_port()),
        AFTERCARE_HTTP_METRICS_PORT=str(free_port()),
        AFTERCARE_CODEC_METRICS_PORT=str(free_port()),
        AFTERCARE_LOG_FORMAT="json",
    )
    return env


def _read(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        text: str = answer.read().decode()
        return text


async def _collect(stream: asyncio.StreamReader, sink: list[str]) -> None:
    while line := await stream.readline():
        sink.append(line.decode(errors="replace"))


async def run_aftercare(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run ``aftercare ARGS`` to completion; returns exit code and combined output."""
    process = await asyncio.create_subprocess_exec(
        str(AFTERCARE),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(errors="replace")


@asynccontextmanager
async def running_stack(env: dict[str, str]) -> AsyncIterator[StackProcess]:
    process = await asyncio.create_subprocess_exec(
        str(AFTERCARE),
        "run",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    output: list[str] = []
    reader = asyncio.create_task(_collect(process.stdout, output))
    stack = StackProcess(process, env, output)
    try:
        await eventually(
            lambda: asyncio.sleep(0, result="".join(output)),
            lambda text: "Aftercare is running" in text or process.returncode is not None,
            seconds=90,
        )
        assert process.returncode is None, "".join(output)
        yield stack
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            await asyncio.wait_for(process.wait(), 60)
        await reader


async def test_run_serves_survives_restart_and_stops_cleanly(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "state")
    order_id = new_order_id("RUN")
    async with running_stack(env) as stack:
        banner = "".join(stack.output)
        for shown in (stack.grpc_target, env["AFTERCARE_TEMPORAL_UI_PORT"], "mail"):
            assert shown in banner
        assert f"smtp://127.0.0.1:{env['AFTERCARE_BOUNCE_SMTP_PORT']}" in banner
        # Where each part serves its metrics, and they are served.
        worker_metrics = f"http://127.0.0.1:{env['AFTERCARE_WORKER_METRICS_PORT']}/metrics"
        for part in ("API", "WORKER", "HTTP", "CODEC"):
            assert f"127.0.0.1:{env[f'AFTERCARE_{part}_METRICS_PORT']}/metrics" in banner
        served = await asyncio.to_thread(_read, worker_metrics)
        assert 'process="worker"' in served
        # The local key: in a file only its owner reads, and the banner says how to use it.
        assert str(stack.key_file.resolve()) in banner
        assert "AFTERCARE_API_KEY" in banner
        assert stack.key_file.stat().st_mode & 0o777 == 0o600
        async with AftercareClient(stack.grpc_target) as anonymous:
            with pytest.raises(AuthenticationError):
                await anonymous.start_journey(sample_order(order_id))
        async with stack.client() as client:
            started = await client.start_journey(sample_order(order_id))
            assert started.created
        mail_dir = tmp_path / "state" / "mail"
        emails = await eventually(
            lambda: asyncio.sleep(0, result=sorted(mail_dir.glob("*.eml"))),
            lambda found: len(found) == 1,
        )
        assert order_id in emails[0].read_text()

        # A second instance on the same folder refuses before touching anything.
        code, out = await run_aftercare(env, "run")
        assert code == 1
        assert "already running" in out

        # Another folder, same ports: a clear message naming the taken port.
        other = dict(env, AFTERCARE_STATE_DIR=str(tmp_path / "other"))
        code, out = await run_aftercare(other, "run")
        assert code == 1
        assert "already in use" in out
        assert env["AFTERCARE_GRPC_PORT"] in out

        process = stack.process
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 60) == 0

    # Every part let go of its port: nothing was left running.
    temporal_port = int(env["AFTERCARE_TEMPORAL_ADDRESS"].rsplit(":", 1)[1])
    for port in (int(env["AFTERCARE_GRPC_PORT"]), temporal_port, int(env["AFTERCARE_SMTP_PORT"])):
        assert _is_free("127.0.0.1", port), port

    # The journey lives in the persistent Temporal database and survives a restart.
    key = (tmp_path / "state" / "api-key").read_text()
    async with running_stack(env) as stack, stack.client() as client:
        # The restart kept the key.
        assert stack.key_file.read_text() == key
        journey = await client.get_journey(order_id)
        assert journey.status == pb.JOURNEY_STATUS_RUNNING
        assert [m.step for m in journey.sent] == ["order_confirmation"]
        await client.record_event(
            order_id, pb.OrderEvent(event_id="ship", type=pb.EVENT_TYPE_SHIPPED)
        )
        await eventually(
            lambda: asyncio.sleep(0, result=sorted(mail_dir.glob("*.eml"))),
            lambda found: len(found) == 2,
        )

        # The demo and the journey commands work against the running stack.
        code, out = await run_aftercare(env, "demo", "--prefix", "DEMO-T")
        assert code == 0, out
        assert "DEMO-T-2: stage delivered, 4 message(s) sent" in out
        # The second sample customer prefers WhatsApp: out-for-delivery and delivered
        # go as approved templates through the local Twilio fake, which keeps them.
        sent = [
            json.loads(path.read_text())
            for path in sorted((tmp_path / "state" / "sms").glob("*.json"))
        ]
        templates = [
            message
            for message in sent
            if message["to"].startswith("whatsapp:") and "DEMO-T-2" in json.dumps(message)
        ]
        assert len(templates) == 2, sent
        assert all(m["params"]["ContentSid"][0].startswith("HX") for m in templates), templates
        # The first sample customer has the app: their shipping notice is a push, which
        # the local FCM fake keeps.
        pushes = [
            json.loads(path.read_text())["message"]
            for path in sorted((tmp_path / "state" / "push").glob("*.json"))
        ]
        assert any(
            (push["data"]["journey_id"], push["data"]["step"])
            == ("order-DEMO-T-1", "shipping_notice")
            for push in pushes
        ), pushes
        # Their browser's subscription got it too, through the fake push service,
        # which decrypted it as the browser would.
        browser = [
            json.loads(path.read_text())["payload"]
            for path in sorted((tmp_path / "state" / "webpush").glob("*.json"))
        ]
        assert any(
            (web["data"]["journey_id"], web["data"]["step"])
            == ("order-DEMO-T-1", "shipping_notice")
            for web in browser
        ), browser
        assert "then thank_you at" in out
        assert "DEMO-T-3: stage order_cancelled, 2 message(s) sent" in out
        code, out = await run_aftercare(env, "journey", "show", "DEMO-T-1")
        assert code == 0, out
        assert '"stage": "JOURNEY_STAGE_SHIPPED"' in out
        code, out = await run_aftercare(env, "journey", "show", "NO-SUCH-ORDER")
        assert code == 1
        assert "NOT_FOUND" in out
        code, out = await run_aftercare(env, "journey", "event", "DEMO-T-4", "shipped")
        assert code == 0, out
        code, out = await run_aftercare(env, "journey", "cancel", "DEMO-T-4")
        assert code == 0, out
        # Visibility (what list reads) trails the journey by a moment.
        await eventually(
            lambda: run_aftercare(
                env, "journey", "list", "--customer", "cus_1002", "--stage", "delivered"
            ),
            lambda result: result[0] == 0 and "DEMO-T-2" in result[1],
        )


@pytest.mark.parametrize("command", [["--help"], ["journey", "--help"], ["db", "--help"]])
async def test_cli_help_lists_the_commands(command: list[str]) -> None:
    code, out = await run_aftercare(dict(os.environ), *command)
    assert code == 0, out
    if command == ["--help"]:
        for name in ("run", "worker", "api", "journey", "demo", "db"):
            assert name in out
    if command == ["journey", "--help"]:
        for name in ("start", "event", "show", "cancel", "list"):
            assert name in out
