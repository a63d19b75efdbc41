"""The Grafana dashboard and the compose ``monitoring`` profile that provisions it, checked
offline: Grafana's own typed models (its Foundation SDK) load the JSON without dropping
a key, every query parses as PromQL, and every metric a query names is one the workers
serve (the pipeline's from core.service.metrics; the SDK's are scraped from a real worker
by tests/test_pipeline.py)."""

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml

from core.service.metrics import PIPELINE_METRICS, SDK_METRICS_USED
from tests.deploy_files import COMPOSE, DEPLOY

DASHBOARD = DEPLOY / "grafana" / "podcast-pipeline.json"
# Grafana's interval macros, as a query sees them once Grafana has filled them in
MACROS = {"$__rate_interval": "5m", "$__range": "6h", "$__interval": "1m"}
HISTOGRAM_PARTS = ("_bucket", "_count", "_sum")


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dropped_keys(data: dict) -> list[str]:
    """Keys of ``data`` that Grafana's typed dashboard model does not know (a decode and
    encode loses them): a misspelt field that Grafana would ignore without a word."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    register_default_plugins()  # panel options and Prometheus queries as typed models
    again = json.loads(json.dumps(Dashboard.from_json(data), cls=JSONEncoder))
    lost: list[str] = []

    def walk(a, b, path: str) -> None:
        if isinstance(a, dict):
            for key, value in a.items():
                if not isinstance(b, dict) or key not in b:
                    lost.append(f"{path}/{key}")
                else:
                    walk(value, b[key], f"{path}/{key}")
        elif isinstance(a, list):
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{path}[{i}]")

    walk(data, again, "")
    return lost


def queries() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"]) for panel in dashboard()["panels"] for target in panel["targets"]
    ]


def test_the_dashboard_loads_in_grafanas_typed_models_without_losing_a_key():
    data = dashboard()
    assert dropped_keys(data) == []
    misspelt = copy.deepcopy(data)
    misspelt["panels"][0]["gridPoss"] = misspelt["panels"][0].pop("gridPos")
    assert dropped_keys(misspelt) == ["/panels[0]/gridPoss"]  # the check does catch one
    assert data["uid"] == "podcast-pipeline" and data["schemaVersion"] >= 39
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    ids = [panel["id"] for panel in data["panels"]]
    assert len(ids) == len(set(ids))
    for panel in data["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
        assert panel["description"], panel["title"]  # what it shows and what to do about it


def test_every_query_parses_and_names_only_metrics_the_workers_serve():
    import promql_parser

    assert len(queries()) >= 10
    for title, expr in queries():
        for macro, value in MACROS.items():
            expr = expr.replace(macro, value)
        assert "$" not in expr, (title, expr)  # a macro this test does not know
        promql_parser.parse(expr)  # raises ValueError on a syntax error
        names = re.findall(r"\b(?:pipeline|temporal)_[a-z_]+\b", expr)
        assert names, (title, expr)
        for name in names:
            base = next((name.removesuffix(p) for p in HISTOGRAM_PARTS if name.endswith(p)), name)
            assert base in PIPELINE_METRICS + SDK_METRICS_USED, f"{title}: {name} is not served"
    with pytest.raises(ValueError):
        promql_parser.parse("sum by (stage) (rate(pipeline_stage_failures_total[5m])")


def test_the_dashboard_shows_what_an_operator_watches():
    exprs = " ".join(expr for _, expr in queries())
    for metric in (*PIPELINE_METRICS, *SDK_METRICS_USED):
        assert metric in exprs, f"no panel draws {metric}"
    titles = " | ".join(panel["title"] for panel in dashboard()["panels"])
    for subject in (
        "by GPU class",
        "real-time factor",
        "ErrorType",
        "OOM",
        "GPU utilisation",
        "GPU memory",
        "backlog",
    ):
        assert subject in titles, subject


def test_the_monitoring_profile_provisions_prometheus_and_the_dashboard():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert prometheus["profiles"] == ["monitoring"] and grafana["profiles"] == ["monitoring"]
    mounts = {
        v.split(":")[1]: v.split(":")[0]
        for s in (prometheus, grafana)
        for v in s["volumes"]
        if v.startswith("./")
    }
    for source in mounts.values():
        assert (COMPOSE.parent / source).exists(), source
    assert (
        mounts["/var/lib/grafana/dashboards/podcast-pipeline.json"]
        == "./deploy/grafana/podcast-pipeline.json"
    )
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"  # read-only, no login to guess
    assert grafana["environment"]["GF_AUTH_DISABLE_LOGIN_FORM"] == "true"

    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    rules = config["rule_files"][0]
    assert mounts[rules] == "./deploy/prometheus/alerts.yml"
    port = re.search(
        r"^PIPELINE_METRICS_ADDRESS=.*:(\d+)$", (DEPLOY / "worker.env").read_text(), re.MULTILINE
    )
    assert port, "deploy/worker.env serves no metrics"
    targets = config["scrape_configs"][0]["static_configs"][0]["targets"]
    assert {t.split(":")[0] for t in targets} == {n for n in services if n.startswith("worker-")}
    assert {t.split(":")[1] for t in targets} == {port.group(1)}

    provisioning = DEPLOY / "grafana" / "provisioning"
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert (
        source["type"] == "prometheus" and source["url"] == "http://prometheus:9090" and source["isDefault"]
    )
    provider = yaml.safe_load((provisioning / "dashboards" / "podcast.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
