"""The dev stack's port check names the setting that moves each taken port."""

from __future__ import annotations

import socket

import pytest

from engine.devstack.preflight import PortNeed, PreflightError, check_ports
from tests.support.net import free_port


def test_a_taken_port_is_named_with_its_setting() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        free = free_port()
        with pytest.raises(PreflightError) as refused:
            check_ports(
                [
                    PortNeed("worker metrics", "127.0.0.1", port, "AFTERCARE_WORKER_METRICS_PORT"),
                    PortNeed("gRPC API", "127.0.0.1", free, "AFTERCARE_GRPC_PORT"),
                ]
            )
    message = str(refused.value)
    assert (
        f"worker metrics: 127.0.0.1:{port} is already in use (AFTERCARE_WORKER_METRICS_PORT)"
        in message
    )
    assert "AFTERCARE_GRPC_PORT" not in message  # free: not listed


def test_free_ports_pass() -> None:
    check_ports([PortNeed("HTTP app", "127.0.0.1", free_port(), "AFTERCARE_HTTP_PORT")])
