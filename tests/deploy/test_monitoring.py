"""The monitoring assets `deploy k8s` writes, tested with real tools on synthetic and real series.

- ``promtool check rules`` on the alert rules (the plain file and the PrometheusRule's spec are the same);
- ``promtool test rules``: each alert fires for the replica that misbehaves and only after its ``for``;
  prometheus-adapter's query (its template filled in as the adapter does) gives the per-pod queue time
  per request the HPA scales on;
- the Grafana dashboard is JSON whose every panel query parses (as recording rules, through promtool);
- every Triton metric any of them names is one a real Triton 2.51 exports (a scrape of the embedded server
  with latency summaries on).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import promtool_or_skip, run_cli
from toolkit.deploy.monitoring import GRAFANA_VARIABLES, KUBE_STATE_METRICS, adapter_query, dashboard_queries

pytestmark = pytest.mark.slow

SERIES = 'job="triton",namespace="ml",pod="{pod}",model="digits",version="1"'


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A written tree (no repository read: --image and --gpus say everything)."""
    out = tmp_path_factory.mktemp("assets") / "k8s"
    done = run_cli("deploy", "k8s", "--repository", "s3://minio.storage.svc:9000/models/prod", "--image",
                   "nvcr.io/nvidia/tritonserver:24.09-py3", "--gpus", "0", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool_or_skip(), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def _rules(assets: Path) -> dict[str, Any]:
    return yaml.safe_load((assets / "monitoring" / "alerts.rules.yml").read_text())


def test_alert_rules_pass_promtool_check_and_match_the_prometheusrule(assets: Path) -> None:
    done = _promtool("check", "rules", "monitoring/alerts.rules.yml", cwd=assets)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 4 rules found" in done.stdout
    crd = yaml.safe_load((assets / "base" / "prometheusrule.yaml").read_text())
    assert crd["spec"] == _rules(assets)
    names = {r["alert"] for r in _rules(assets)["groups"][0]["rules"]}
    assert names == {"TritonHighQueueTime", "TritonInferenceFailures", "TritonReplicaNotReady", "TritonMetricsDown"}


def _annotations(assets: Path, alert: str, **values: str) -> dict[str, str]:
    """The alert's annotations with its template fields filled as Prometheus fills them."""
    rule = next(r for r in _rules(assets)["groups"][0]["rules"] if r["alert"] == alert)
    out = {}
    for key, text in rule["annotations"].items():
        for field, value in values.items():
            text = re.sub(r"\{\{ \$" + re.escape(field).replace(r"\.", r"\.") + r"[^}]*\}\}", value, text)
        out[key] = text
    return out


def test_alerts_fire_for_the_misbehaving_replica_only_and_after_their_for(assets: Path) -> None:
    a, b = SERIES.format(pod="triton-a"), SERIES.format(pod="triton-b")
    # triton-a: 200 ms queued per request (1 req/s) and 1 failure per 5 requests; triton-b: 10 ms, no failures.
    # The Deployment loses a replica at 2m45s; triton-b's metrics stop answering at 2m30s.
    series = [
        (f"nv_inference_queue_duration_us{{{a}}}", "0+3000000x80"),
        (f"nv_inference_request_success{{{a}}}", "0+15x80"),
        (f'nv_inference_request_failure{{{a},reason="BACKEND"}}', "0+3x80"),
        (f'nv_inference_request_failure{{{a},reason="REJECTED"}}', "0+0x80"),
        (f"nv_inference_queue_duration_us{{{b}}}", "0+150000x80"),
        (f"nv_inference_request_success{{{b}}}", "0+15x80"),
        (f'nv_inference_request_failure{{{b},reason="BACKEND"}}', "0+0x80"),
        ('kube_deployment_status_replicas_available{namespace="ml",deployment="triton"}', "2x10 1x70"),
        ('kube_deployment_spec_replicas{namespace="ml",deployment="triton"}', "2x80"),
        ('up{job="triton",namespace="ml",pod="triton-a"}', "1x80"),
        ('up{job="triton",namespace="ml",pod="triton-b"}', "1x9 0x71"),
    ]
    pod_a = {"namespace": "ml", "pod": "triton-a", "model": "digits"}
    cases = [
        ("4m", "TritonHighQueueTime", []),  # above the threshold, but not yet for 10 minutes
        ("12m", "TritonHighQueueTime", [({**pod_a, "severity": "warning"}, _annotations(
            assets, "TritonHighQueueTime", **{"labels.pod": "triton-a", "labels.model": "digits", "value": "200k"}))]),
        ("3m", "TritonInferenceFailures", []),
        ("12m", "TritonInferenceFailures", [({**pod_a, "severity": "critical"}, _annotations(
            assets, "TritonInferenceFailures",
            **{"labels.pod": "triton-a", "labels.model": "digits", "value": "16.67%"}))]),
        ("10m", "TritonReplicaNotReady", []),  # one replica short for 7m15s only
        ("15m", "TritonReplicaNotReady", [({"namespace": "ml", "deployment": "triton", "severity": "warning"},
                                           _annotations(assets, "TritonReplicaNotReady", **{
                                               "labels.namespace": "ml", "labels.deployment": "triton",
                                               "value": "1"}))]),
        ("6m", "TritonMetricsDown", []),
        ("9m", "TritonMetricsDown", [({"job": "triton", "namespace": "ml", "pod": "triton-b", "severity": "warning"},
                                      _annotations(assets, "TritonMetricsDown", **{"labels.pod": "triton-b"}))]),
    ]
    test = {
        "rule_files": ["monitoring/alerts.rules.yml"],
        "evaluation_interval": "15s",
        "tests": [{
            "interval": "15s",
            "input_series": [{"series": s, "values": v} for s, v in series],
            "alert_rule_test": [{"eval_time": t, "alertname": name,
                                 "exp_alerts": [{"exp_labels": labels, "exp_annotations": ann} for labels, ann in exp]}
                                for t, name, exp in cases],
        }],
    }
    (assets / "alerts.test.yml").write_text(json.dumps(test))
    done = _promtool("test", "rules", "alerts.test.yml", cwd=assets)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_adapter_query_gives_queue_time_per_request_per_pod(assets: Path) -> None:
    adapter = yaml.safe_load((assets / "monitoring" / "prometheus-adapter-config.yaml").read_text())
    (rule,) = adapter["rules"]
    assert rule["metricsQuery"] == adapter_query()
    # prometheus-adapter fills <<.LabelMatchers>> with the namespace and the HPA's pods, <<.GroupBy>> with "pod"
    query = (rule["metricsQuery"].replace("<<.LabelMatchers>>", 'namespace="ml",pod=~"triton-a|triton-b|triton-c"')
             .replace("<<.GroupBy>>", "pod"))
    (assets / "adapter.rules.yml").write_text(yaml.safe_dump(
        {"groups": [{"name": "adapter", "rules": [{"record": "test:queue_us_per_request", "expr": query}]}]}))
    a, b, c = (SERIES.format(pod=p) for p in ("triton-a", "triton-b", "triton-c"))
    series = [
        # per minute: a queues 1000 us over 4 requests -> 1000 / (1 + 4) = 200; b 2000 us / (1 + 24) = 80; c idle -> 0
        (f"nv_inference_queue_duration_us{{{a}}}", "0+250x20"), (f"nv_inference_request_success{{{a}}}", "0+1x20"),
        (f"nv_inference_queue_duration_us{{{b}}}", "0+500x20"), (f"nv_inference_request_success{{{b}}}", "0+6x20"),
        (f"nv_inference_queue_duration_us{{{c}}}", "0x20"), (f"nv_inference_request_success{{{c}}}", "0x20"),
        ('nv_inference_queue_duration_us{job="triton",namespace="other",pod="triton-a",model="m",version="1"}',
         "0+99999x20"),  # another namespace's pod of the same name is not mixed in
    ]
    test = {"rule_files": ["adapter.rules.yml"], "evaluation_interval": "15s", "tests": [{
        "interval": "15s",
        "input_series": [{"series": s, "values": v} for s, v in series],
        "promql_expr_test": [{"expr": "test:queue_us_per_request", "eval_time": "3m", "exp_samples": [
            {"labels": 'test:queue_us_per_request{pod="triton-a"}', "value": 200},
            {"labels": 'test:queue_us_per_request{pod="triton-b"}', "value": 80},
            {"labels": 'test:queue_us_per_request{pod="triton-c"}', "value": 0},
        ]}],
    }]}
    (assets / "adapter.test.yml").write_text(json.dumps(test))
    done = _promtool("test", "rules", "adapter.test.yml", cwd=assets)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboard_is_json_and_every_panel_query_parses(assets: Path) -> None:
    board = json.loads((assets / "monitoring" / "grafana-dashboard.json").read_text())
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) == 7
    titles = " ".join(p["title"] for p in board["panels"]).lower()
    for word in ("requests/s", "failures", "queue time", "compute time", "p99", "pending", "replicas ready"):
        assert word in titles
    rules = []
    for i, expr in enumerate(dashboard_queries(board)):
        for var, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    (assets / "dashboard.rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = _promtool("check", "rules", "dashboard.rules.yml", cwd=assets)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout


@pytest.fixture(scope="module")
def real_metric_names(digits_build: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Metric families a real Triton 2.51 exports, latency summaries on (as the Deployment runs it)."""
    from toolkit.serve.embedded import EmbeddedServer
    from toolkit.serve.ports import free_port

    repo = tmp_path_factory.mktemp("scraped") / "model_repository"
    shutil.copytree(digits_build["repository"], repo)
    server = EmbeddedServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                            log_path=repo.parent / "triton.log",
                            extra_args=["--metrics-config=summary_latencies=true"])
    server.start(timeout=180)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=30) as resp:
            text = resp.read().decode()
    finally:
        server.stop()
    return set(re.findall(r"^# TYPE (\S+) ", text, re.M))


def test_every_triton_metric_named_is_one_triton_exports(assets: Path, real_metric_names: set[str]) -> None:
    board = json.loads((assets / "monitoring" / "grafana-dashboard.json").read_text())
    texts = dashboard_queries(board) + [adapter_query()]
    texts += [r["expr"] for r in _rules(assets)["groups"][0]["rules"]]
    named = set(re.findall(r"\b(nv_[a-z_]+|kube_[a-z_]+)\b", " ".join(texts)))
    triton = {n for n in named if n.startswith("nv_")}
    assert {"nv_inference_queue_duration_us", "nv_inference_request_success", "nv_inference_request_failure",
            "nv_inference_request_summary_us", "nv_inference_pending_request_count"} <= triton
    assert triton <= real_metric_names, triton - real_metric_names
    assert named - triton <= set(KUBE_STATE_METRICS)
