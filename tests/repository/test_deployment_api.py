"""The seed API ``create_deployment(model, config).deploy(...)`` over the same stage functions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contract.errors import MissingDependencyError, UsageError
from toolkit import PerformanceProfiler, create_deployment
from toolkit.repository.config import read_config
from toolkit.repository.manifest import verify_version
from toolkit.repository.storage import version_numbers
from toolkit.repository.validate import validate_repository


def test_deploy_checkpoint_publishes_a_valid_version_with_parity(tmp_path: Path, digits_checkpoint: Path) -> None:
    repo = tmp_path / "repo"
    pub = create_deployment(str(digits_checkpoint), {"repository": repo, "name": "digits", "max_batch_size": 16}
                            ).deploy(tmp_path / "digits.onnx", format="onnx", optimize=True)
    assert (pub.model, pub.version) == ("digits", 1) and verify_version(pub.path) == []
    assert read_config(repo / "digits" / "config.pbtxt").max_batch_size == 16
    assert [p for p in validate_repository(repo) if p.severity == "error"] == []
    import json

    manifest = json.loads((pub.path / "manifest.json").read_text())
    assert manifest["checkpoint_sha256"] and manifest["parity"]


def test_deploy_plain_module_with_input_shape(tmp_path: Path) -> None:
    from trainers.models import create_model

    net = create_model("smallcnn", num_classes=3, in_channels=1)
    pub = create_deployment(net.eval(), {"repository": tmp_path / "repo", "name": "net", "input_shape": (1, 8, 8),
                                         "num_outputs": 3}).deploy(tmp_path / "net.onnx")
    cfg = read_config(pub.path.parent / "config.pbtxt")
    assert [(i.name, list(i.dims)) for i in cfg.input] == [("input", [1, 8, 8])]
    assert [(o.name, list(o.dims)) for o in cfg.output] == [("output", [3])]


def test_deploy_tensorrt_without_tensorrt_exits_3_and_publishes_nothing(tmp_path: Path, digits_checkpoint: Path
                                                                       ) -> None:
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here: the missing-dependency path cannot be shown")
    except ImportError:
        pass
    repo = tmp_path / "repo"
    with pytest.raises(MissingDependencyError) as info:
        create_deployment(str(digits_checkpoint), {"repository": repo, "name": "m"}).deploy(
            tmp_path / "m.plan", format="tensorrt")
    assert info.value.exit_code == 3
    assert version_numbers(repo / "m") == [] and not (tmp_path / "m.plan").exists()


@pytest.mark.parametrize(("config", "message"), [
    ({"name": "../x"}, "invalid"),
    ({"max_batch_size": 4, "preferred_batch_sizes": [8]}, "outside"),
    ({"colour": "red"}, "unknown config keys"),
])
def test_create_deployment_refuses_bad_config(config: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        create_deployment("x.pt", config)


def test_performance_profiler_reexported_from_toolkit_measures_onnx(digits_onnx: Path) -> None:
    result = PerformanceProfiler(digits_onnx).profile(batch_sizes=[1, 8], num_iterations=20)
    rows = result.to_dict()["rows"]
    assert [r["batch_size"] for r in rows] == [1, 8]
    assert all(np.isfinite(r["samples_per_sec"]) and r["samples_per_sec"] > 0 for r in rows)
    assert all(r["p50_ms"] <= r["p99_ms"] for r in rows)
