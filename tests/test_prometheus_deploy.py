"""deploy/: the Prometheus scrape configuration, its alerting rules and the Grafana dashboard,
checked against the code's metrics and against docker-compose.yml (no Docker engine needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.core import Metric

from settings import load_settings
from telemetry.metrics import API_REGISTRY, WORKER_REGISTRY, FactsCollector
from tests.test_compose import resolved_environment

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
METRICS_SERVICES = {"prometheus", "grafana"}
# The Temporal SDK's series the dashboard plots (named by temporal_runtime's options).
SDK_SERIES = {
    "temporal_workflow_task_schedule_to_start_latency_seconds_bucket",
    "temporal_workflow_task_execution_latency_seconds_bucket",
    "temporal_activity_execution_latency_seconds_bucket",
    "temporal_workflow_task_execution_failed_total",
}


def series_of(family: Metric) -> set[str]:
    if family.type == "counter":
        return {f"{family.name}_total"}
    if family.type == "histogram":
        return {f"{family.name}_{suffix}" for suffix in ("bucket", "count", "sum")}
    return {family.name}


def afteraction_series() -> set[str]:
    """Every afteraction_* series name the API and the worker can expose."""
    families = [
        *API_REGISTRY.collect(),
        *WORKER_REGISTRY.collect(),
        *FactsCollector(None).describe(),  # type: ignore[arg-type]  # describe reads nothing
    ]
    names = {name for family in families for name in series_of(family)}
    names.add("afteraction_read_model_up")
    return {name for name in names if name.startswith("afteraction_")}


def used_series(text: str) -> set[str]:
    return set(re.findall(r"\b((?:afteraction|temporal)_[a-z_]+)\b", text))


def load(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "afteraction.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_dashboard_plots_every_afteraction_metric_and_no_unknown_one() -> None:
    used = used_series("\n".join(dashboard_exprs()))
    known = afteraction_series()
    families = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in known}
    plotted = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in used}
    assert families - plotted == set(), "metrics without a panel"
    unknown = {name for name in used if name.startswith("afteraction_")} - known
    assert unknown == set()
    assert {name for name in used if name.startswith("temporal_")} <= SDK_SERIES


def test_alert_rules_use_only_metrics_that_exist() -> None:
    rules = [rule for group in load("alerts.yml")["groups"] for rule in group["rules"]]
    assert rules
    for rule in rules:
        assert rule["alert"].startswith("Afteraction") and rule["expr"].strip()
        names = {n for n in used_series(rule["expr"]) if n.startswith("afteraction_")}
        assert names and names <= afteraction_series(), rule["alert"]


def _job(config: dict[str, Any], name: str) -> dict[str, Any]:
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == name]
    return job


def test_prometheus_scrapes_the_api_with_a_token_file_and_both_worker_endpoints() -> None:
    config = load("prometheus.yml")
    services = COMPOSE["services"]
    prometheus = services["prometheus"]

    api = _job(config, "afteraction-api")
    assert api["metrics_path"] == "/metrics"
    assert api["authorization"]["type"] == "Bearer"
    [secret] = prometheus["secrets"]
    assert api["authorization"]["credentials_file"] == f"/run/secrets/{secret}"
    assert secret in COMPOSE["secrets"]
    api_port = resolved_environment(services["api"])["AFTERACTION_API_PORT"]
    assert api["static_configs"] == [{"targets": [f"api:{api_port}"]}]

    environment = resolved_environment(services["worker"])
    worker = load_settings(
        worker_metrics_address=environment["AFTERACTION_WORKER_METRICS_ADDRESS"],
        temporal_metrics_address=environment["AFTERACTION_TEMPORAL_METRICS_ADDRESS"],
    )
    for job, address in (
        ("afteraction-worker", worker.worker_metrics_address),
        ("temporal-sdk", worker.temporal_metrics_address),
    ):
        assert address is not None and address.startswith("0.0.0.0:"), job
        [discovery] = _job(config, job)["dns_sd_configs"]
        assert discovery["names"] == ["worker"] and discovery["type"] == "A"
        assert str(discovery["port"]) == address.rsplit(":", 1)[1], job

    mounted = {volume.split(":")[1] for volume in prometheus["volumes"]}
    assert "/etc/prometheus/prometheus.yml" in mounted
    assert set(config["rule_files"]) <= mounted


@pytest.mark.parametrize("name", sorted(METRICS_SERVICES))
def test_prometheus_and_grafana_run_only_under_the_metrics_profile(name: str) -> None:
    services = COMPOSE["services"]
    assert services[name]["profiles"] == ["metrics"]
    for other, service in services.items():
        if other not in METRICS_SERVICES:
            assert "profiles" not in service, other
            assert not set(service.get("depends_on") or ()) & METRICS_SERVICES, other


def test_grafana_provisions_the_prometheus_source_and_the_dashboard() -> None:
    grafana = COMPOSE["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    [source] = load("grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    [provider] = load("grafana/provisioning/dashboards/afteraction.yml")["providers"]
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
