"""The alert rules and the Prometheus config in ``deploy/prometheus/``, checked by
Prometheus's own ``promtool`` (Debian's package: ``make prometheus``): the rules load,
their unit tests (alerts.test.yml) pass, the config with its rule files is valid; and
each alert carries what the on-call person needs, reads only series we export, and
has a test that makes it fire."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.dashboard_queries import (
    ALERT_RULES,
    PROMETHEUS_CONFIG,
    exported_series,
    metric_names,
    rule_expressions,
)
from tools.prometheus_server import INSTALL_HINT, find_promtool

REPO_ROOT = Path(__file__).resolve().parents[2]
ALERT_TESTS = ALERT_RULES.with_name("alerts.test.yml")
OPERATIONS_DOC = REPO_ROOT / "docs" / "operations.md"
JOBS = ("aftercare-api", "aftercare-worker", "aftercare-http", "aftercare-codec")
SEVERITIES = ("critical", "warning")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = find_promtool()
    if binary is None:
        pytest.fail(INSTALL_HINT)
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=60, check=False, cwd=REPO_ROOT
    )


def alerts() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERT_RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings: lower case, punctuation
    dropped, spaces as hyphens."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*$", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_promtool_checks_the_rules() -> None:
    done = promtool("check", "rules", str(ALERT_RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_unit_tests_pass() -> None:
    done = promtool("test", "rules", str(ALERT_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_checks_the_config_and_its_rule_files() -> None:
    done = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr
    # The rule file was found and checked, not skipped.
    assert f"{len(alerts())} rules found" in done.stdout


def test_the_config_scrapes_every_process_and_loads_the_alerts() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert sorted(job["job_name"] for job in config["scrape_configs"]) == sorted(JOBS)
    rule_files = [PROMETHEUS_CONFIG.parent / path for path in config["rule_files"]]
    assert [path.resolve() for path in rule_files] == [ALERT_RULES.resolve()]


def test_the_config_scrapes_the_ports_the_compose_file_serves_metrics_on() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    env = compose["x-aftercare-env"]
    assert env["AFTERCARE_METRICS_HOST"] == "0.0.0.0"
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    for job in config["scrape_configs"]:
        part = job["job_name"].removeprefix("aftercare-")
        port = env[f"AFTERCARE_{part.upper()}_METRICS_PORT"]
        # The compose service of each part is named after it.
        if "dns_sd_configs" in job:
            (sd,) = job["dns_sd_configs"]
            assert (sd["names"], str(sd["port"])) == ([part], port), job["job_name"]
        else:
            (static,) = job["static_configs"]
            assert static["targets"] == [f"{part}:{port}"], job["job_name"]
        assert part in compose["services"]


def test_every_alert_says_how_bad_for_how_long_and_where_the_runbook_is() -> None:
    anchors = heading_anchors(OPERATIONS_DOC.read_text())
    for rule in alerts():
        name = rule["alert"]
        assert rule.get("for"), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), name
        assert annotations["description"].strip(), name
        doc, _, anchor = annotations["runbook_url"].partition("#")
        assert doc == "docs/operations.md", name
        assert anchor in anchors, f"{name}: no heading for #{anchor} in {OPERATIONS_DOC}"


def test_the_issue_s_alerts_are_all_there() -> None:
    names = {rule["alert"] for rule in alerts()}
    assert {
        "AftercareWorkerDown",
        "AftercareWorkflowTaskScheduleToStartHigh",
        "AftercareActivityScheduleToStartHigh",
        "AftercareSendFailureRatioHigh",
        "AftercareMessagesStuckWaiting",
        "AftercareSendingPausedLong",
        "AftercareCodecErrors",
        "AftercareApiErrorRatioHigh",
    } <= names


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not() -> None:
    document = yaml.safe_load(ALERT_TESTS.read_text())
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in document["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - fired == set(), "never shown to fire"
    assert names - quiet == set(), "never shown to stay quiet"


def test_the_rules_read_only_series_we_export() -> None:
    for rule in rule_expressions():
        assert metric_names(rule.expr) <= exported_series(), rule.name
