"""``tritonkit deploy k8s`` output: every variant renders with kustomize and every object validates.

Core kinds are checked against the Kubernetes schemas of 1.29, 1.32, 1.35 and 1.37 (kubernetes-validate, strict:
unknown fields fail); a kind without a schema fails instead of warning. The CRDs (ServiceMonitor,
PrometheusRule, InferenceService) are checked against the schemas kept in ``tests/deploy/schemas``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import CLUSTER_ENDPOINT, KUBE_VERSIONS, render, run_cli, validate_object
from tests.objectstore import CREDENTIALS
from toolkit.deploy.k8s import QUEUE_METRIC

pytestmark = pytest.mark.slow

CORE_KINDS = {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"}


def _write(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "k8s"
    done = run_cli("deploy", "k8s", "--out", str(out), *args)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    return out


def _by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [o["kind"] for o in objects]
    assert len(kinds) == len(set(kinds)), kinds
    return {o["kind"]: o for o in objects}


def _validate_all(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        passed = validate_object(obj)
        assert passed, obj["kind"]


def _container(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (container,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def _check_deployment(objects: dict[str, dict[str, Any]], triton_url: str, image: str, control: str = "poll") -> None:
    dep = objects["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    c = _container(objects)
    assert c["image"] == image
    assert f"--model-repository={triton_url}" in c["args"]
    assert {f"--model-control-mode={control}", "--strict-readiness=false", "--metrics-config=summary_latencies=true"} \
        <= set(c["args"])
    assert any(a.startswith("--repository-poll-secs=") for a in c["args"]) == (control == "poll")
    restricted = [a for a in c["args"] if a.startswith(("--http-restricted-api=", "--grpc-restricted-protocol="))]
    assert len(restricted) == 2 and all("model-repository" in a and "$(TRITONKIT_ADMIN_KEY)" in a for a in restricted)
    assert c["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8000, "grpc": 8001, "metrics": 8002}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsUser"] == 1000 and pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    assert "emptyDir" in volumes[mounts["/tmp"]]
    for env in c["env"]:  # credentials only by reference
        if env["name"].startswith(("AWS_", "AZURE_", "TRITONKIT_")):
            assert "value" not in env and "secretKeyRef" in env["valueFrom"], env
    assert objects["Service"]["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert {p["name"]: p["port"] for p in objects["Service"]["spec"]["ports"]} == \
        {"http": 8000, "grpc": 8001, "metrics": 8002}
    hpa = objects["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == QUEUE_METRIC
    netpol = objects["NetworkPolicy"]["spec"]
    allowed = sorted(p["port"] for rule in netpol["ingress"] for p in rule["ports"])
    assert allowed == [8000, 8001, 8002] and netpol["policyTypes"] == ["Ingress"]
    assert objects["ServiceMonitor"]["spec"]["endpoints"][0]["port"] == "metrics"


def _no_credentials(out: Path) -> None:
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text()
            for name in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
                assert CREDENTIALS[name] not in text, f"{path} holds the value of {name}"


def test_onnx_repository_gives_the_cpu_variant_and_every_object_validates(s3_env, repos, tmp_path: Path) -> None:
    out = _write(tmp_path, "--repository", repos["onnx"], "--cluster-endpoint", CLUSTER_ENDPOINT, "--kserve",
                 "--replicas", "3")
    assert not (out / "overlays" / "gpu").exists()  # no plans: no GPU requested
    objects = render(out / "overlays" / "cpu")
    kinds = _by_kind(objects)
    assert set(kinds) == CORE_KINDS | {"ServiceMonitor", "PrometheusRule"}
    _validate_all(objects)
    triton_url = f"s3://{CLUSTER_ENDPOINT}/{repos['onnx'].split('/', 3)[3]}"
    _check_deployment(kinds, triton_url, "nvcr.io/nvidia/tritonserver:24.09-py3")
    assert kinds["Deployment"]["spec"]["replicas"] == 3
    assert "nvidia.com/gpu" not in str(_container(kinds)["resources"])
    assert kinds["Deployment"]["metadata"]["labels"]["tritonkit.io/variant"] == "cpu"
    assert render(out / "base") == [_strip_variant(o) for o in objects]

    monitoring = render(out / "monitoring")
    assert {o["metadata"]["name"] for o in monitoring} == {"triton-prometheus-adapter", "triton-grafana-dashboard"}
    assert all(o["kind"] == "ConfigMap" and o["metadata"]["namespace"] == "monitoring" for o in monitoring)
    _validate_all(monitoring)
    adapter = yaml.safe_load(next(o for o in monitoring if "adapter" in o["metadata"]["name"])["data"]["config.yaml"])
    assert adapter["rules"][0]["name"]["as"] == QUEUE_METRIC

    kserve = _by_kind(render(out / "kserve"))
    _validate_all(list(kserve.values()))
    model = kserve["InferenceService"]["spec"]["predictor"]["model"]
    assert model["storageUri"] == "s3://" + repos["onnx"].split("/", 3)[3]
    assert model["modelFormat"]["name"] == "triton" and model["runtimeVersion"] == "24.09-py3"
    assert kserve["ServiceAccount"]["secrets"] == [{"name": "tritonkit-storage"}]
    assert CLUSTER_ENDPOINT in (out / "kserve" / "README.md").read_text()
    _no_credentials(out)


def _strip_variant(obj: dict[str, Any]) -> dict[str, Any]:
    """The base's object: the overlay only adds the variant label."""
    import copy

    obj = copy.deepcopy(obj)
    if obj.get("kind") != "Kustomization":
        obj["metadata"]["labels"].pop("tritonkit.io/variant", None)
        template = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("labels")
        if template is not None:
            template.pop("tritonkit.io/variant", None)
    return obj


def test_served_plans_pick_their_tensorrt_release_and_request_a_gpu(s3_env, repos, tmp_path: Path) -> None:
    out = _write(tmp_path, "--repository", repos["plans"], "--cluster-endpoint", CLUSTER_ENDPOINT,
                 "--namespace", "inference", "--kserve")
    assert not (out / "overlays" / "cpu").exists()  # plans cannot run without a GPU
    objects = render(out / "overlays" / "gpu")
    kinds = _by_kind(objects)
    _validate_all(objects)
    # version 2 (served) was built with TensorRT 10.4 -> 24.09; version 1 (10.7, not served) does not count
    _check_deployment(kinds, f"s3://{CLUSTER_ENDPOINT}/{repos['plans'].split('/', 3)[3]}",
                      "nvcr.io/nvidia/tritonserver:24.09-py3")
    resources = _container(kinds)["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == "1" and resources["limits"]["nvidia.com/gpu"] == "1"
    assert resources["requests"]["cpu"] == "2"  # the patch merges into the base's resources
    assert kinds["Deployment"]["spec"]["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert {o["metadata"]["namespace"] for o in objects} == {"inference"}
    kserve = _by_kind(render(out / "kserve"))
    _validate_all(list(kserve.values()))
    assert kserve["InferenceService"]["spec"]["predictor"]["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    _no_credentials(out)


@pytest.mark.parametrize("repository, extra, secret_kind", [
    ("gs://models-bucket/prod", ["--gpus", "0", "--model-control", "none", "--kserve"], "volume"),
    ("as://account1/models/prod", ["--gpus", "2"], "azure"),
    ("s3://https://s3.eu-west-1.amazonaws.com:443/models/prod", ["--gpus", "0"], "aws"),
])
def test_other_stores_and_the_cpu_stand_in_image_render_without_reading(tmp_path: Path, repository: str,
                                                                         extra: list[str], secret_kind: str) -> None:
    image = "localhost/tritonkit/tritonserver-cpu:2.51.0"
    out = _write(tmp_path, "--repository", repository, "--image", image, "--secret", "store.creds", *extra)
    overlays = sorted(p.name for p in (out / "overlays").iterdir())
    assert overlays == (["cpu", "gpu"] if "2" in extra else ["cpu"])
    for overlay in overlays:
        objects = render(out / "overlays" / overlay)
        _validate_all(objects)
        kinds = _by_kind(objects)
        _check_deployment(kinds, repository, image, "none" if "none" in extra else "poll")
        env = {e["name"]: e for e in _container(kinds)["env"]}
        if secret_kind == "volume":
            volumes = kinds["Deployment"]["spec"]["template"]["spec"]["volumes"]
            assert any(v.get("secret", {}).get("secretName") == "store.creds" for v in volumes)
            assert env["GOOGLE_APPLICATION_CREDENTIALS"]["value"].endswith("/credentials.json")
        elif secret_kind == "azure":
            assert env["AZURE_STORAGE_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "store.creds"
        else:
            assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "store.creds"
    if "--kserve" in extra:  # a stand-in image replaces the runtime's image instead of naming a release
        model = _by_kind(render(out / "kserve"))["InferenceService"]["spec"]["predictor"]["model"]
        assert model["image"] == image and "runtimeVersion" not in model and model["storageUri"] == repository
    if "2" in extra:
        gpu = _by_kind(render(out / "overlays" / "gpu"))
        assert _container(gpu)["resources"]["limits"]["nvidia.com/gpu"] == "2"


def test_schemas_cover_every_kind_and_versions_are_shipped() -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import all_versions

    shipped = {".".join(v.split(".")[:2]) for v in all_versions()}
    assert set(KUBE_VERSIONS) <= shipped
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):  # what validate_object turns into a failure
        kubernetes_validate.validate({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
                                      "metadata": {"name": "x"}}, "1.32", strict=True)


def test_validation_catches_a_broken_object() -> None:
    """The validators are not vacuous: a typo'd field and a bad CRD field both fail."""
    bad_core = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                "spec": {"ports": [{"port": 8000}], "selectr": {"a": "b"}}}
    with pytest.raises(AssertionError, match="invalid for Kubernetes"):
        validate_object(bad_core)
    bad_crd = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "x"},
               "spec": {"selector": {"matchLabels": {"a": "b"}}, "endpoints": [{"port": "metrics", "interval": "15"}]}}
    with pytest.raises(AssertionError, match="servicemonitor.json"):
        validate_object(bad_crd)
