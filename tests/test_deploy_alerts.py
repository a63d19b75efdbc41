"""The alert rules parse and name only metrics the workers serve."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy_files import DEPLOY


def test_alert_rules_parse_and_name_only_metrics_the_workers_serve():
    """deploy/prometheus/alerts.yml: valid PromQL (a Prometheus-compatible parser), each
    rule actionable, and every pipeline metric it names one that core.service.metrics records
    (the end-to-end tests scrape those names from real workers)."""
    import promql_parser

    from core.service.metrics import PIPELINE_METRICS

    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    assert len(rules) >= 4
    histogram_parts = ("_bucket", "_count", "_sum")
    for rule in rules:
        promql_parser.parse(rule["expr"])  # raises ValueError on a syntax error
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["action"], rule["alert"]
        for name in re.findall(r"\bpipeline_[a-z_]+\b", rule["expr"]):
            base = next((name.removesuffix(p) for p in histogram_parts if name.endswith(p)), name)
            assert base in PIPELINE_METRICS, f"{rule['alert']}: {name} is not a metric the workers serve"
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(pipeline_audio_seconds_total[5m])")  # the parser does reject
