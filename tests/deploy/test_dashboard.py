"""The Grafana dashboard (deploy/grafana/aftercare-dashboard.json) as Grafana reads it:
valid JSON, its Prometheus chosen through the ``DS_PROMETHEUS`` variable, panels that
do not overlap, and a non-empty query over our own series in every panel. That each
query runs is tested against a real Prometheus (tests/deploy/test_prometheus_scrape.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from tools.dashboard_queries import (
    concrete,
    exported_series,
    load_dashboard,
    metric_names,
    panel_queries,
    panels,
)

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
# What the issue asks the dashboard to show, by panel title.
EXPECTED_PANELS = (
    "Messages sent per channel",
    "Outcomes other than sent, per category",
    "Send failure ratio",
    "Provider call latency p50 / p95",
    "Step lateness p95",
    "Event to message p95",
    "Ledger duplicates avoided",
    "Messages waiting",
    "Oldest waiting message",
    "API requests by method and code",
    "API latency p95",
    "HTTP requests by route and status",
    "Workflow task schedule-to-start p95",
    "Activity schedule-to-start p95",
    "Sticky cache size",
    "Task slots available",
    "Pauses in force",
)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def test_the_dashboard_is_grafana_json_with_a_datasource_variable(
    dashboard: dict[str, Any],
) -> None:
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"]
    assert dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"


def test_every_panel_has_queries_over_our_series(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
            assert metric_names(target["expr"]) <= exported_series(), panel["title"]
            # Every placeholder is one the tests and the screenshot tool can fill in.
            assert "$" not in concrete(target["expr"]), panel["title"]


def test_the_issue_s_panels_are_all_there(dashboard: dict[str, Any]) -> None:
    titles = [panel["title"] for panel in panels(dashboard)]
    assert len(titles) == len(set(titles))
    assert set(EXPECTED_PANELS) <= set(titles)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_panels_sit_on_the_grid_without_overlapping(dashboard: dict[str, Any]) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells


def test_concrete_fills_in_grafana_s_placeholders() -> None:
    expr = 'rate(x{job="$job"}[$__rate_interval]) + rate(y[${__interval}]) + z[[[win]]]'
    assert concrete(expr, rate_interval="20s", variables={"job": "a", "win": "5m"}) == (
        'rate(x{job="a"}[20s]) + rate(y[15s]) + z[5m]'
    )
    with pytest.raises(KeyError):
        concrete("rate(x[$unknown])")


def test_panel_queries_lists_each_target(dashboard: dict[str, Any]) -> None:
    queries = panel_queries(dashboard)
    assert len(queries) >= len(EXPECTED_PANELS)
    provider = [q for q in queries if q.panel == "Provider call latency p50 / p95"]
    assert [q.ref_id for q in provider] == ["A", "B"]
