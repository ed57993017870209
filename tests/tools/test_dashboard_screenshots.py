"""The dashboard screenshot tool's pieces that need no stack: its key panels are the
dashboard's, and the graph page it opens shows the query it was given. (It draws
against a real Prometheus in tests/deploy/test_prometheus_scrape.py.)"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tools.dashboard_queries import load_dashboard, panel_queries
from tools.dashboard_screenshots import GRAPH_RANGE, KEY_PANELS, graph_url


def test_every_key_panel_is_a_query_of_the_dashboard() -> None:
    queries = {(q.panel, q.ref_id) for q in panel_queries(load_dashboard())}
    for panel in KEY_PANELS:
        assert (panel.title, panel.ref_id) in queries, panel
    assert len({panel.name for panel in KEY_PANELS}) == len(KEY_PANELS)


def test_the_graph_page_gets_the_query_as_a_graph() -> None:
    expr = 'sum by (channel) (rate(aftercare_messages_total{outcome="sent"}[15s]))'
    for classic, path in ((True, "/classic/graph"), (False, "/graph")):
        url = urlsplit(graph_url("http://127.0.0.1:9090", expr, classic=classic))
        assert url.path == path
        assert parse_qs(url.query) == {
            "g0.expr": [expr],
            "g0.tab": ["0"],
            "g0.range_input": [GRAPH_RANGE],
        }
