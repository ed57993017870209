"""One Temporal runtime per process, serving ``/metrics``, and our instruments on it.

Every metric (ours and the SDK's) goes through a Temporal SDK metric meter, so the
SDK's Prometheus exporter serves them all on one endpoint per process:
``http://<metrics_host>:<{api,worker,http,codec}_metrics_port>/metrics``. Each
series carries ``process=api|worker|http|codec`` (a global tag of the runtime), so
the dev stack, which runs the four in one OS process on four ports, exports exactly
what four deployed processes do.

A process's runtime is made once (:func:`process_runtime`), on first use, and kept:
clients made by :func:`engine.platform.temporal.connection.connect` for that process
use it, and workers inherit it from their client, so activities'
(``activity.metric_meter()``) and journeys' (``workflow.metric_meter()``) metrics
land there too. With the port setting at 0 (the default) there is no runtime: the
SDK's default one is used, nothing is bound, and every instrument records nowhere.

:class:`Instruments` hands out the catalogue's metrics bound to a meter, checking
that every recording carries exactly the catalogue's labels.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from enum import StrEnum

from temporalio import activity
from temporalio.common import (
    MetricCounter,
    MetricGaugeFloat,
    MetricHistogramFloat,
    MetricMeter,
)
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from engine.platform.settings import Settings
from engine.platform.telemetry.catalogue import ALL, Kind, Metric


class Process(StrEnum):
    """The processes of a deployment: the ``process`` label of every series."""

    API = "api"
    WORKER = "worker"
    HTTP = "http"
    CODEC = "codec"


# What `aftercare run` serves on unless the settings say otherwise (9464 is the
# customary Prometheus exporter port; nothing else of the stack is near it).
DEV_STACK_METRICS_PORTS: Mapping[Process, int] = {
    Process.API: 9464,
    Process.WORKER: 9465,
    Process.HTTP: 9466,
    Process.CODEC: 9467,
}


class MetricsConfigError(RuntimeError):
    """The metrics endpoint cannot be served (most often: its port is taken)."""


def port_setting(process: Process) -> str:
    """The settings field of ``process``'s metrics port (``api_metrics_port``...)."""
    return f"{process.value}_metrics_port"


def metrics_port(settings: Settings, process: Process) -> int:
    port: int = getattr(settings, port_setting(process))
    return port


def metrics_address(settings: Settings, process: Process) -> str | None:
    """host:port where ``process`` serves /metrics; None when it serves none."""
    port = metrics_port(settings, process)
    if port == 0:
        return None
    host = settings.metrics_host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def metrics_url(settings: Settings, process: Process) -> str | None:
    address = metrics_address(settings, process)
    return f"http://{address}/metrics" if address else None


def with_dev_stack_ports(settings: Settings) -> Settings:
    """``settings`` with the dev stack's metrics ports for those not set explicitly
    (an explicit 0 keeps that process's metrics off)."""
    unset = {
        port_setting(process): port
        for process, port in DEV_STACK_METRICS_PORTS.items()
        if port_setting(process) not in settings.model_fields_set
    }
    return settings.model_copy(update=unset) if unset else settings


_runtimes: dict[tuple[Process, str], Runtime] = {}
_lock = threading.Lock()


def process_runtime(settings: Settings, process: Process) -> Runtime | None:
    """The runtime serving ``process``'s metrics, started on first use (the port is
    bound then); None when its port setting is 0. Raises MetricsConfigError naming
    the setting when the port cannot be bound."""
    address = metrics_address(settings, process)
    if address is None:
        return None
    with _lock:
        runtime = _runtimes.get((process, address))
        if runtime is None:
            runtime = _runtimes[(process, address)] = _start(process, address)
        return runtime


def _start(process: Process, address: str) -> Runtime:
    buckets = {metric.name: list(metric.buckets) for metric in ALL if metric.buckets}
    config = TelemetryConfig(
        metrics=PrometheusConfig(
            bind_address=address,
            counters_total_suffix=True,
            durations_as_seconds=True,
            histogram_bucket_overrides=buckets,
        ),
        global_tags={"process": process.value},
        # Every series would otherwise carry service_name="temporal-core-sdk".
        attach_service_name=False,
    )
    try:
        return Runtime(telemetry=config)
    except ValueError as err:
        variable = f"AFTERCARE_{port_setting(process).upper()}"
        raise MetricsConfigError(
            f"cannot serve {process.value} metrics on {address} ({variable}): {err}"
        ) from err


def _check(metric: Metric, kind: Kind, labels: Mapping[str, str]) -> None:
    if metric.kind != kind:
        raise TypeError(f"{metric.name} is a {metric.kind}, not a {kind}")
    if labels.keys() != set(metric.labels):
        raise ValueError(f"{metric.name}: labels {sorted(labels)}, expected {metric.labels}")


class Counter:
    def __init__(self, metric: Metric, inner: MetricCounter) -> None:
        self._metric = metric
        self._inner = inner

    def add(self, value: int = 1, /, **labels: str) -> None:
        _check(self._metric, Kind.COUNTER, labels)
        self._inner.add(value, labels)


class Histogram:
    def __init__(self, metric: Metric, inner: MetricHistogramFloat) -> None:
        self._metric = metric
        self._inner = inner

    def record(self, value: float, /, **labels: str) -> None:
        _check(self._metric, Kind.HISTOGRAM, labels)
        self._inner.record(max(value, 0.0), labels)


class Gauge:
    def __init__(self, metric: Metric, inner: MetricGaugeFloat) -> None:
        self._metric = metric
        self._inner = inner

    def set(self, value: float, /, **labels: str) -> None:
        _check(self._metric, Kind.GAUGE, labels)
        self._inner.set(value, labels)


class Instruments:
    """The catalogue's metrics on one meter (a process's, an activity's)."""

    def __init__(self, meter: MetricMeter) -> None:
        self._meter = meter

    @classmethod
    def noop(cls) -> Instruments:
        """Instruments that record nowhere (metrics off, or a library user)."""
        return cls(MetricMeter.noop)

    def counter(self, metric: Metric) -> Counter:
        _check(metric, Kind.COUNTER, dict.fromkeys(metric.labels, ""))
        return Counter(metric, self._meter.create_counter(metric.name, metric.help))

    def histogram(self, metric: Metric) -> Histogram:
        _check(metric, Kind.HISTOGRAM, dict.fromkeys(metric.labels, ""))
        # Seconds as floats: the exporter's buckets for it come from the catalogue.
        return Histogram(metric, self._meter.create_histogram_float(metric.name, metric.help, "s"))

    def gauge(self, metric: Metric) -> Gauge:
        _check(metric, Kind.GAUGE, dict.fromkeys(metric.labels, ""))
        return Gauge(metric, self._meter.create_gauge_float(metric.name, metric.help))


def instruments_for(settings: Settings, process: Process) -> Instruments:
    """``process``'s instruments, starting its runtime (and /metrics) if needed."""
    runtime = process_runtime(settings, process)
    return Instruments(runtime.metric_meter) if runtime is not None else Instruments.noop()


def activity_instruments() -> Instruments:
    """The running activity's instruments (its worker's runtime; the series also carry
    the activity's namespace, task queue and type); no-op outside an activity."""
    if not activity.in_activity():
        return Instruments.noop()
    return Instruments(activity.metric_meter())
