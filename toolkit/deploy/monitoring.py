"""Prometheus and Grafana assets for Triton replicas: autoscaling metric, alert rules, dashboard.

Every expression uses only series Triton 2.51 exports on its metrics port (``nv_inference_*``, checked
against a real scrape in the tests), plus ``up`` (Prometheus) and kube-state-metrics' Deployment replica
counts for "a replica is not ready". The ServiceMonitor scrapes the Service named like the Deployment, so
the Prometheus Operator labels every series ``job="<name>"``, ``namespace`` and ``pod``.

Queue time per request: Triton counts the microseconds requests spent queued (``nv_inference_queue_duration_us``)
and the requests that succeeded (``nv_inference_request_success``). Their increases over a window divide to the
average queue time of the requests in it; ``1 +`` in the denominator (as in Triton's own Kubernetes example)
keeps an idle pod at 0 instead of NaN.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from toolkit.deploy.yamltext import dump

if TYPE_CHECKING:
    from toolkit.deploy.k8s import DeployOptions

ADAPTER_WINDOW = "1m"
ALERT_WINDOW = "5m"
KUBE_STATE_METRICS = ("kube_deployment_status_replicas_available", "kube_deployment_spec_replicas")
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "${namespace}": "default", "${job}": "triton", "${model}": ".*",
                     "${deployment}": "triton"}


def adapter_query(window: str = ADAPTER_WINDOW) -> str:
    """prometheus-adapter's metricsQuery template (``<<.LabelMatchers>>``/``<<.GroupBy>>`` filled in by it)."""
    return (f"sum by (<<.GroupBy>>) (increase(nv_inference_queue_duration_us{{<<.LabelMatchers>>}}[{window}])) / "
            f"(1 + sum by (<<.GroupBy>>) (increase(nv_inference_request_success{{<<.LabelMatchers>>}}[{window}])))")


def adapter_config(opts: DeployOptions) -> dict[str, Any]:
    """prometheus-adapter's rules: the per-pod queue time per request as the custom metric the HPA reads."""
    from toolkit.deploy.k8s import QUEUE_METRIC

    return {"rules": [{
        "seriesQuery": f'nv_inference_queue_duration_us{{namespace!="",pod!="",job="{opts.name}"}}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": "^nv_inference_queue_duration_us$", "as": QUEUE_METRIC},
        "metricsQuery": adapter_query(),
    }]}


def _per_request(metric: str, sel: str, by: str, window: str) -> str:
    return (f"sum by ({by}) (rate({metric}{{{sel}}}[{window}])) / "
            f"sum by ({by}) (rate(nv_inference_request_success{{{sel}}}[{window}]))")


def alert_rules(opts: DeployOptions) -> dict[str, Any]:
    """Alerting rules (Prometheus rules-file layout, also the PrometheusRule's spec)."""
    sel = f'job="{opts.name}"'
    by = "namespace, pod, model"
    w = ALERT_WINDOW
    failure_rate = f"sum by ({by}) (rate(nv_inference_request_failure{{{sel}}}[{w}]))"
    success_rate = f"sum by ({by}) (rate(nv_inference_request_success{{{sel}}}[{w}]))"
    deploy = f'deployment="{opts.name}"'
    return {"groups": [{
        "name": f"tritonkit-{opts.name}",
        "rules": [
            {"alert": "TritonHighQueueTime",
             "expr": f"({_per_request('nv_inference_queue_duration_us', sel, by, w)}) > {opts.alert_queue_us}",
             "for": "10m",
             "labels": {"severity": "warning"},
             "annotations": {
                 "summary": "Triton requests wait long in the queue",
                 "description": "{{ $labels.pod }}: model {{ $labels.model }} queues requests for "
                                "{{ $value | humanize }} us on average (threshold "
                                f"{opts.alert_queue_us} us); add replicas or instances"}},
            {"alert": "TritonInferenceFailures",
             "expr": f"({failure_rate} / ({success_rate} + {failure_rate})) > {opts.alert_failure_ratio}",
             "for": "5m",
             "labels": {"severity": "critical"},
             "annotations": {
                 "summary": "Triton inference requests fail",
                 "description": "{{ $labels.pod }}: {{ $value | humanizePercentage }} of the requests to model "
                                "{{ $labels.model }} fail (threshold "
                                f"{opts.alert_failure_ratio:g}); read the pod's log"}},
            {"alert": "TritonReplicaNotReady",
             "expr": f"kube_deployment_status_replicas_available{{{deploy}}} < "
                     f"kube_deployment_spec_replicas{{{deploy}}}",
             "for": "10m",
             "labels": {"severity": "warning"},
             "annotations": {
                 "summary": "A Triton replica is not ready",
                 "description": "{{ $labels.namespace }}/{{ $labels.deployment }}: {{ $value }} replica(s) available, "
                                "fewer than wanted for 10 minutes; a model may fail to load at start"}},
            {"alert": "TritonMetricsDown",
             "expr": f"up{{{sel}}} == 0",
             "for": "5m",
             "labels": {"severity": "warning"},
             "annotations": {
                 "summary": "A Triton replica's metrics endpoint does not answer",
                 "description": "{{ $labels.pod }}: Prometheus cannot scrape Triton's metrics port"}},
        ],
    }]}


def _panel(pid: int, title: str, unit: str, targets: list[tuple[str, str]], x: int, y: int,
           kind: str = "timeseries") -> dict[str, Any]:
    return {
        "id": pid, "type": kind, "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if kind == "timeseries" else {},
        "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend,
                     "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                    for i, (expr, legend) in enumerate(targets)],
    }


def dashboard(opts: DeployOptions) -> dict[str, Any]:
    """A Grafana dashboard: requests/s, failures, queue and compute time per request, p99, pending, replicas."""
    sel = 'namespace="${namespace}", job="${job}", model=~"${model}"'
    r = "$__rate_interval"
    success = f"sum by (model) (rate(nv_inference_request_success{{{sel}}}[{r}]))"
    panels = [
        _panel(1, "Requests/s", "reqps", [(success, "{{model}}")], 0, 0),
        _panel(2, "Failures/s", "reqps",
               [(f"sum by (model, reason) (rate(nv_inference_request_failure{{{sel}}}[{r}]))",
                 "{{model}} {{reason}}")], 12, 0),
        _panel(3, "Queue time per request", "µs",
               [(_per_request("nv_inference_queue_duration_us", sel, "model", r), "{{model}}")], 0, 8),
        _panel(4, "Compute time per request", "µs",
               [(_per_request("nv_inference_compute_infer_duration_us", sel, "model", r), "{{model}} infer"),
                (_per_request("nv_inference_compute_input_duration_us", sel, "model", r), "{{model}} input"),
                (_per_request("nv_inference_compute_output_duration_us", sel, "model", r), "{{model}} output")],
               12, 8),
        _panel(5, "p99 request latency (worst replica; needs summary_latencies)", "µs",
               [(f'max by (model) (nv_inference_request_summary_us{{{sel}, quantile="0.99"}})', "{{model}}")], 0, 16),
        _panel(6, "Pending requests", "short",
               [(f"sum by (model) (nv_inference_pending_request_count{{{sel}}})", "{{model}}")], 12, 16),
        _panel(7, "Replicas ready", "short",
               [('sum(kube_deployment_status_replicas_available{namespace="${namespace}", '
                 'deployment="${deployment}"})', "available"),
                ('sum(kube_deployment_spec_replicas{namespace="${namespace}", deployment="${deployment}"})',
                 "wanted"),
                ('sum(up{namespace="${namespace}", job="${job}"})', "scraped")], 0, 24),
    ]

    def variable(name: str, query: str, *, multi: bool = False) -> dict[str, Any]:
        var: dict[str, Any] = {"name": name, "type": "query", "label": name, "refresh": 2,
                               "datasource": {"type": "prometheus", "uid": "${datasource}"},
                               "query": {"query": query, "refId": f"var-{name}"}, "definition": query,
                               "includeAll": multi, "multi": multi}
        if multi:
            var["allValue"] = ".*"
        return var

    return {
        "uid": f"tritonkit-{opts.name}"[:40],
        "title": f"Triton: {opts.name}",
        "tags": ["triton", "tritonkit"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
            variable("namespace", 'label_values(nv_inference_request_success{job="${job}"}, namespace)'),
            {"name": "job", "type": "constant", "query": opts.name, "hide": 2},
            {"name": "deployment", "type": "constant", "query": opts.name, "hide": 2},
            variable("model", 'label_values(nv_inference_request_success{namespace="${namespace}", job="${job}"}, '
                              'model)', multi=True),
        ]},
        "panels": panels,
    }


def dashboard_queries(board: dict[str, Any]) -> list[str]:
    """Every PromQL expression the dashboard's panels run."""
    return [t["expr"] for p in board["panels"] for t in p["targets"]]


def files(opts: DeployOptions) -> dict[str, str]:
    """The monitoring/ folder: a Kustomize tree of ConfigMaps plus the same assets as plain files."""
    from toolkit.deploy.k8s import kustomization, labels

    board = json.dumps(dashboard(opts), indent=2, ensure_ascii=False) + "\n"
    cm_labels = {k: v for k, v in labels(opts).items() if k != "app.kubernetes.io/component"}
    generator = {"options": {"disableNameSuffixHash": True, "labels": cm_labels}}
    kust = kustomization([], namespace=opts.monitoring_namespace, configMapGenerator=[
        {"name": f"{opts.name}-prometheus-adapter", "files": ["config.yaml=prometheus-adapter-config.yaml"],
         **generator},
        {"name": f"{opts.name}-grafana-dashboard", "files": [f"triton-{opts.name}.json=grafana-dashboard.json"],
         "options": {**generator["options"], "labels": {**cm_labels, "grafana_dashboard": "1"}}},
    ])
    kust.pop("resources")
    return {
        "monitoring/kustomization.yaml": dump(kust),
        "monitoring/prometheus-adapter-config.yaml": dump(adapter_config(opts)),
        "monitoring/grafana-dashboard.json": board,
        "monitoring/alerts.rules.yml": dump(alert_rules(opts)),
    }
