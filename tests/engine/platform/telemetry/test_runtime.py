"""A process's runtime: made once per endpoint, absent when its port is 0, and a clear
error naming the setting when the port is taken."""

from __future__ import annotations

import socket

import pytest

from engine.platform.settings import Settings
from engine.platform.telemetry.catalogue import API_REQUESTS, MESSAGES_WAITING
from engine.platform.telemetry.runtime import (
    DEV_STACK_METRICS_PORTS,
    Instruments,
    MetricsConfigError,
    Process,
    metrics_url,
    process_runtime,
    with_dev_stack_ports,
)
from tests.support.net import free_port


def test_without_a_port_there_is_no_runtime_and_nothing_is_served() -> None:
    settings = Settings(_env_file=None)
    for process in Process:
        assert process_runtime(settings, process) is None
        assert metrics_url(settings, process) is None


def test_one_runtime_per_process_and_endpoint() -> None:
    settings = Settings(_env_file=None, worker_metrics_port=free_port())
    runtime = process_runtime(settings, Process.WORKER)
    assert runtime is not None
    assert process_runtime(settings.model_copy(), Process.WORKER) is runtime
    assert metrics_url(settings, Process.WORKER) == (
        f"http://127.0.0.1:{settings.worker_metrics_port}/metrics"
    )


def test_a_taken_port_is_refused_naming_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(_env_file=None, api_metrics_port=port)
        with pytest.raises(MetricsConfigError, match="AFTERCARE_API_METRICS_PORT"):
            process_runtime(settings, Process.API)


def test_the_dev_stack_fills_in_only_the_ports_not_set() -> None:
    settings = with_dev_stack_ports(Settings(_env_file=None, api_metrics_port=0))
    assert settings.api_metrics_port == 0  # set explicitly: stays off
    assert settings.worker_metrics_port == DEV_STACK_METRICS_PORTS[Process.WORKER]
    assert settings.codec_metrics_port == DEV_STACK_METRICS_PORTS[Process.CODEC]


def test_recordings_must_carry_the_catalogues_labels() -> None:
    instruments = Instruments.noop()
    with pytest.raises(ValueError, match="labels"):
        instruments.counter(API_REQUESTS).add(1, method="StartJourney")
    with pytest.raises(TypeError):
        instruments.counter(MESSAGES_WAITING)
    instruments.gauge(MESSAGES_WAITING).set(1, status="waiting")
