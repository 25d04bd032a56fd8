"""Every runner: activate / infer / deactivate, the context manager, last_inference_time; the
evaluator and parity through runners; the TensorRT and Triton runners' edges."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import toolkit.runners.triton as triton
from contract.errors import MissingDependencyError, UsageError
from tests.runners.models import MODELS, TinyModel, tiny_checkpoint, tiny_onnx
from toolkit.export.parity import compare
from toolkit.runners import TensorRTRunner, TorchRunner, runner_for_path
from trainers.data import create_dataloader, load_digits_splits
from trainers.evaluation import create_evaluator

BATCH = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny_models")


@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_runner_infers_named_outputs_between_activate_and_deactivate(model: TinyModel, root: Path) -> None:
    runner = model.build(root)
    assert not runner.is_active and runner.last_inference_time() is None
    with pytest.raises(UsageError, match="activate"):
        runner.infer({"input": BATCH})
    runner.activate()
    (name, (dtype, shape)), = runner.get_input_metadata().items()
    out = runner.infer({name: BATCH.astype(dtype)})
    assert tuple(out) == model.outputs and out["logits"].shape == (3, 10)
    assert runner.last_inference_time() is not None and runner.last_inference_time() > 0
    assert len(shape) == 4
    runner.deactivate()
    assert not runner.is_active and runner.last_inference_time() is None


@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_runner_as_context_manager_activates_once_and_deactivates_on_exit(model: TinyModel, root: Path) -> None:
    runner = model.build(root)
    with runner as active:
        assert active is runner and runner.is_active
        runner.activate()  # a second activation does nothing
        first = runner.logits(BATCH)
        np.testing.assert_array_equal(first, runner.logits(BATCH))
    assert not runner.is_active


def test_torch_and_onnxruntime_runners_give_the_same_evaluation_when_same_checkpoint(root: Path) -> None:
    test = load_digits_splits(seed=0)["test"]
    loader = create_dataloader(test, {"batch_size": 32, "shuffle": False})
    with TorchRunner.from_checkpoint(tiny_checkpoint(root)) as torch_runner, \
            runner_for_path(tiny_onnx(root)) as onnx_runner:
        via_torch = create_evaluator(torch_runner.logits).evaluate(loader)
        via_ort = create_evaluator(onnx_runner.logits).evaluate(loader)
    assert via_torch.metrics["confusion_matrix"] == via_ort.metrics["confusion_matrix"]
    np.testing.assert_allclose(via_torch.logits, via_ort.logits, atol=1e-4)


def test_parity_statistics_come_from_polygraphy_comparator_when_outputs_differ(root: Path) -> None:
    onnx = runner_for_path(tiny_onnx(root))
    onnx.activate()
    report = compare(onnx, lambda x: onnx.infer({"input": x})["logits"] + 0.5, spec=onnx.spec, accuracy=False)
    assert not report.passed and "max abs 0.5" in report.failures[0]
    assert all(r.max_abs == pytest.approx(0.5, abs=1e-6) and r.top1_agreement == 1.0 for r in report.rows)
    assert onnx.is_active  # a runner the caller activated stays active
    onnx.deactivate()


def test_parity_leaves_no_runner_active_when_it_activated_them(root: Path) -> None:
    a, b = TorchRunner.from_checkpoint(tiny_checkpoint(root)), runner_for_path(tiny_onnx(root))
    assert compare(a, b, opt_batch=2, max_batch=4, accuracy=False).passed
    assert not a.is_active and not b.is_active


def test_runner_for_path_lists_the_suffixes_when_unknown(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\.onnx"):
        runner_for_path(tmp_path / "model.bin")


def test_tensorrt_runner_exits_3_naming_the_install_when_tensorrt_missing(tmp_path: Path) -> None:
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here: the missing-dependency path cannot happen")
    except ImportError:
        pass
    with pytest.raises(MissingDependencyError, match="tritonkit\\[tensorrt\\]") as err:
        TensorRTRunner(tmp_path / "model.plan")
    assert err.value.exit_code == 3


class FakePredictor:
    """The public Predictor API (constructor, predict_many, close, inputs/outputs/max_batch_size/spec) without a
    server."""

    instances: list[FakePredictor] = []

    def __init__(self, model: str, **kwargs: Any) -> None:
        self.model, self.kwargs, self.closed, self.seen = model, kwargs, False, []
        self.inputs = [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
        self.outputs = [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
        self.max_batch_size = 32
        self.spec = None
        FakePredictor.instances.append(self)

    def predict_many(self, batch: np.ndarray) -> np.ndarray:
        self.seen.append(batch.dtype)
        return np.zeros((len(batch), 10), np.float32)

    def close(self) -> None:
        self.closed = True


def test_triton_runner_wraps_one_predictor_and_casts_to_the_served_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(triton, "Predictor", FakePredictor)
    runner = triton.TritonRunner("localhost:8001", "digits", "grpc", concurrency=2)
    with pytest.raises(UsageError, match="activate"):
        runner.get_input_metadata()  # read from the server: only once connected
    with runner:
        out = runner.infer({"input": BATCH.astype(np.float64)})
        assert runner.get_input_metadata() == {"input": (np.dtype(np.float32), [-1, 1, 8, 8])}
        assert runner.logits(BATCH).shape == (3, 10) and runner.last_inference_time() is not None
    pred = FakePredictor.instances[-1]
    assert out["logits"].shape == (3, 10) and pred.seen[0] == np.float32
    assert pred.kwargs["url"] == "localhost:8001" and pred.kwargs["concurrency"] == 2 and pred.closed
