"""The PromQL in ``deploy/``: every panel query of the Grafana dashboard and every
alert rule's expression, made runnable against a plain Prometheus.

Grafana fills in ``$__rate_interval``, ``$__interval``, ``$__range`` and template
variables before a query leaves it; :func:`concrete` does the same with fixed
values, so that the metrics test can run each panel's query and the screenshot tool
can show it in Prometheus's own graph page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engine.platform.telemetry import catalogue

REPO_ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "aftercare-dashboard.json"
ALERT_RULES = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref_id: str
    expr: str


@dataclass(frozen=True)
class RuleExpression:
    name: str  # the alert's (or recording rule's) name
    expr: str


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text())
    return dashboard


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        # A collapsed row keeps its panels inside it.
        yield from _panels(panel.get("panels", []))


def panels(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every panel that shows data (rows are only headings)."""
    return [p for p in _panels(dashboard.get("panels", [])) if p.get("type") != "row"]


def panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    return [
        PanelQuery(panel["title"], target.get("refId", ""), target.get("expr", ""))
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def rule_expressions(path: Path = ALERT_RULES) -> list[RuleExpression]:
    document = yaml.safe_load(path.read_text())
    return [
        RuleExpression(rule.get("alert") or rule.get("record"), rule["expr"])
        for group in document["groups"]
        for rule in group["rules"]
    ]


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


def concrete(
    expr: str,
    *,
    rate_interval: str = "1m",
    interval: str = "15s",
    range_: str = "1h",
    variables: Mapping[str, str] | None = None,
) -> str:
    """``expr`` as Grafana would send it, with these values for its placeholders.

    An unknown variable raises ``KeyError``: a query must not reach Prometheus with a
    ``$`` left in it.
    """
    values = {
        "__rate_interval": rate_interval,
        "__interval": interval,
        "__interval_ms": str(_milliseconds(interval)),
        "__range": range_,
        "__range_s": str(_milliseconds(range_) // 1000),
        **(variables or {}),
    }

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        return values[name]

    return _VARIABLE.sub(substitute, expr)


_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def _milliseconds(duration: str) -> int:
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _UNIT_MS[u] for n, u in parts)


def metric_names(expr: str) -> set[str]:
    """The ``aftercare_*`` and ``temporal_*`` series an expression reads."""
    return set(re.findall(r"\b((?:aftercare|temporal)_[a-z0-9_]+)\b", expr))


def exported_series() -> frozenset[str]:
    """Every series the rules and the dashboard may read: ours as Prometheus names
    them (a histogram through its _bucket, _sum and _count), and the SDK's that the
    catalogue lists."""
    histograms = {m.series for m in catalogue.ALL if m.kind == catalogue.Kind.HISTOGRAM} | {
        catalogue.SDK_WORKFLOW_TASK_SCHEDULE_TO_START,
        catalogue.SDK_ACTIVITY_SCHEDULE_TO_START,
    }
    return frozenset(
        {m.series for m in catalogue.ALL}
        | {catalogue.SDK_STICKY_CACHE_SIZE, catalogue.SDK_WORKER_TASK_SLOTS_AVAILABLE}
        | {f"{name}{suffix}" for name in histograms for suffix in ("_bucket", "_sum", "_count")}
    )
