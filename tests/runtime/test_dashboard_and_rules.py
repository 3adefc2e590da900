"""The Prometheus rules pass promtool's checks and unit tests; every PromQL expression in the Grafana dashboard parses
(promtool) and names only metrics the project exports (or the DCGM exporter, or our recording rules)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from modelfleet.devcluster.prometheus import POD_RELABELLING, find_tool

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "manifests" / "prometheus"
DASHBOARD = ROOT / "manifests" / "grafana" / "modelfleet-dashboard.json"
GRAFANA_VARIABLES = {"$namespace": ".*", "$model": ".*", "$__range": "1h", "$__rate_interval": "5m", "$datasource": "x"}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"), "gauge": ("",)}


def exported_metrics() -> set[str]:
    """Every series name the operator and the model server can export."""
    import numpy as np

    from modelfleet import metrics as operator_metrics
    from modelfleet.clients import prometheus as prometheus_client_module
    from modelfleet.drift.profile import build_profile
    from modelfleet.drift.window import Reference
    from modelfleet.server.app import ServerMetrics
    from modelfleet.server.drift import DriftMonitor

    names: set[str] = set()
    families = [
        m
        for module in (operator_metrics, prometheus_client_module)
        for m in vars(module).values()
        if hasattr(m, "_type") and hasattr(m, "_name")
    ]
    server = ServerMetrics()
    families += list(server.registry._collector_to_names)
    for family in families:
        base = family._name
        names |= {base + suffix for suffix in SUFFIXES.get(family._type, ("",))}
    reference = Reference.from_profile(build_profile({"x": ("numeric", np.arange(10.0))}))
    registry = CollectorRegistry()
    registry.register(DriftMonitor(reference, model="m", version="1"))
    names |= {family.name for family in registry.collect()}
    names |= {"DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_DEV_GPU_UTIL", "up"}
    rules = yaml.safe_load((RULES / "rules.yaml").read_text())
    names |= {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    return names


def dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        query = variable.get("query", "")
        if query.startswith("label_values("):  # label_values(<selector>, label): the selector is PromQL
            exprs.append(query[len("label_values(") :].rsplit(",", 1)[0])
    return exprs


def substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def test_rules_pass_promtool_checks_and_unit_tests() -> None:
    promtool = find_tool("promtool")
    check = subprocess.run([promtool, "check", "rules", "rules.yaml"], cwd=RULES, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([promtool, "test", "rules", "tests.yaml"], cwd=RULES, capture_output=True, text=True)
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr
    alerts = {
        r["alert"]
        for g in yaml.safe_load((RULES / "rules.yaml").read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    tested = {
        case["alertname"]
        for t in yaml.safe_load((RULES / "tests.yaml").read_text())["tests"]
        for case in t.get("alert_rule_test", [])
    }
    assert alerts == tested  # every alert has a promtool test case


def test_rules_name_only_exported_metrics() -> None:
    known = exported_metrics()
    rules = yaml.safe_load((RULES / "rules.yaml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            unknown = metric_names(rule["expr"]) - known
            assert not unknown, (rule.get("record") or rule.get("alert"), unknown)


def metric_names(expr: str) -> set[str]:
    """Names used as selectors: an identifier directly followed by `{` (dashboard and rules always write them so)."""
    selectors = set(re.findall(r"([A-Za-z_:][A-Za-z0-9_:]*)[{\[]", expr))
    # And every name in the project's (or DCGM's) namespaces anywhere, bare ones included (`absent(name == 1)`).
    ours = set(re.findall(r"\b(modelfleet_[a-z0-9_]+|modelfleet:[a-z0-9_:]+|DCGM_[A-Z_]+|request_[a-z_]+)\b", expr))
    return selectors | ours


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    exprs = dashboard_expressions()
    assert len(exprs) >= 10
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:check_{i}", "expr": substitute(e)} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    check = subprocess.run([find_tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_dashboard_names_only_metrics_that_exist() -> None:
    known = exported_metrics()
    for expr in dashboard_expressions():
        names = metric_names(expr)
        assert names, f"write metric names with a selector in {expr!r}"
        assert names <= known, (expr, names - known)


def test_a_typo_would_be_caught() -> None:
    assert metric_names('sum(rate(modelfleet_server_request_total{model="m"}[5m]))') - exported_metrics() == {
        "modelfleet_server_request_total"
    }


def test_the_plain_scrape_config_is_valid_and_relabels_as_the_tests_do() -> None:
    """manifests/prometheus/scrape-config.yaml (for a Prometheus without the operator) passes `promtool check config`
    and relabels pods exactly as the job the tests and the demo scrape the dev cluster with."""
    path = RULES / "scrape-config.yaml"
    check = subprocess.run([find_tool("promtool"), "check", "config", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    (job,) = yaml.safe_load(path.read_text())["scrape_configs"]
    assert job["relabel_configs"] == POD_RELABELLING
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
