"""Evaluation: metrics through the torch adapter and any callable, analysis helpers, plots.

ONNX Runtime / TensorRT / Triton evaluation goes through ``toolkit.runners`` (tests/runners)."""

from __future__ import annotations

import numpy as np
import pytest

from contract.errors import UsageError
from tests.trainers.helpers import subset, tiny_model
from trainers.data import create_dataloader
from trainers.evaluation import create_evaluator
from trainers.evaluation.adapters import TorchAdapter
from trainers.evaluation.analysis import bootstrap_ci, kfold_cross_validate, mcnemar_test, write_plots
from trainers.evaluation.metrics import classification_metrics, expected_calibration_error


def test_metrics_match_hand_counts_on_a_known_confusion():
    y = np.array([0, 0, 1, 1, 2, 2])
    logits = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 5.0
    m = classification_metrics(y, logits, ["a", "b", "c"])
    assert m["top1_accuracy"] == pytest.approx(4 / 6)
    assert m["top5_accuracy"] == 1.0  # k is capped at the class count
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["a"]["recall"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx(np.mean([0.5, 0.8, 2 / 3]))


def test_ece_is_zero_when_confidence_equals_accuracy_and_large_when_overconfident():
    y = np.array([0, 1, 0, 1])
    probs_right = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs_right, y) == pytest.approx(0.0)
    probs_wrong = probs_right[:, ::-1].copy()
    assert expected_calibration_error(probs_wrong, y) == pytest.approx(1.0)


def test_evaluator_gives_same_metrics_through_torch_module_and_a_plain_callable(digits):
    model = tiny_model().eval()
    loader = create_dataloader(subset(digits["test"], 100), {"batch_size": 32, "shuffle": False})
    labels = digits["test"].classes
    via_torch = create_evaluator(model, {"labels": labels}).evaluate(loader)
    via_fn = create_evaluator(TorchAdapter(model), {"labels": labels}).evaluate(loader)
    assert via_torch.metrics["confusion_matrix"] == via_fn.metrics["confusion_matrix"]
    np.testing.assert_allclose(via_torch.logits, via_fn.logits, atol=1e-6)
    assert via_torch.num_batches == 4 and via_torch.mean_batch_latency_ms > 0


def test_evaluator_refuses_a_model_path_and_names_the_runners_when_given_a_file(tmp_path):
    with pytest.raises(UsageError, match="toolkit.runners"):
        create_evaluator(str(tmp_path / "m.onnx"))


def test_evaluator_accepts_any_callable_mapping_numpy_to_logits(digits):
    loader = create_dataloader(subset(digits["test"], 64), {"batch_size": 64, "shuffle": False})
    y = digits["test"].labels[:64]

    def oracle(batch: np.ndarray) -> np.ndarray:
        assert isinstance(batch, np.ndarray)
        return np.eye(10, dtype=np.float32)[y[: len(batch)]] * 10

    result = create_evaluator(oracle).evaluate(loader)
    assert result.top1_accuracy == 1.0 and result.metrics["macro_f1"] == 1.0


def test_bootstrap_ci_brackets_the_point_estimate_and_narrows_with_more_data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 2000)
    pred = np.where(rng.random(2000) < 0.8, y, (y + 1) % 3)
    small = bootstrap_ci(y[:100], pred[:100], "accuracy", n_resamples=300)
    big = bootstrap_ci(y, pred, "accuracy", n_resamples=300)
    assert small["low"] <= small["point"] <= small["high"]
    assert big["high"] - big["low"] < small["high"] - small["low"]
    f1 = bootstrap_ci(y[:300], pred[:300], "macro_f1", n_resamples=100)
    assert f1["low"] < f1["point"] < f1["high"]


@pytest.mark.parametrize(
    ("a_right", "b_right", "significant"),
    [(100, 100, False), (100, 60, True), (100, 97, False)],
)
def test_mcnemar_flags_a_real_difference_between_models(a_right, b_right, significant):
    y = np.zeros(100, dtype=int)
    pred_a = np.where(np.arange(100) < a_right, 0, 1)
    pred_b = np.where(np.arange(100) < b_right, 0, 1)
    res = mcnemar_test(y, pred_a, pred_b)
    assert (res["p_value"] < 0.05) is significant


def test_kfold_uses_disjoint_stratified_folds_that_cover_every_item():
    labels = np.repeat(np.arange(3), 10)
    seen: list[np.ndarray] = []

    def fit_and_score(train_idx, val_idx):
        assert not set(train_idx) & set(val_idx)
        seen.append(val_idx)
        return {"val_share_class0": float(np.mean(labels[val_idx] == 0))}

    res = kfold_cross_validate(fit_and_score, labels, k=5)
    assert sorted(np.concatenate(seen).tolist()) == list(range(30))
    assert res["mean"]["val_share_class0"] == pytest.approx(1 / 3)
    assert len(res["folds"]) == 5


def test_write_plots_makes_three_pngs(tmp_path, digits):
    loader = create_dataloader(subset(digits["test"], 64), {"batch_size": 64, "shuffle": False})
    result = create_evaluator(TorchAdapter(tiny_model())).evaluate(loader)
    paths = write_plots(result, tmp_path / "plots")
    assert set(paths) == {"confusion_matrix", "reliability", "per_class_f1"}
    for p in paths.values():
        assert p.read_bytes()[:4] == b"\x89PNG"


def test_per_class_f1_axis_is_zoomed_to_the_data_when_every_class_scores_high() -> None:
    from trainers.evaluation.analysis import f1_axis_floor

    assert 0.9 < f1_axis_floor([0.962, 0.98, 1.0]) < 0.962
    assert f1_axis_floor([0.2, 0.9]) == 0.0
    assert f1_axis_floor([]) == 0.0


def test_reliability_diagram_marks_empty_bins_and_counts_when_confidence_is_concentrated(tmp_path) -> None:
    import numpy as np

    from trainers.evaluation.analysis import plot_reliability_diagram
    from trainers.evaluation.metrics import reliability_bins

    probs = np.array([[0.95, 0.05]] * 8 + [[0.55, 0.45]] * 2)
    y = np.array([0] * 8 + [1] * 2)
    rb = reliability_bins(probs, y, 10)
    assert rb["count"][9] == 8 and rb["count"][5] == 2 and rb["count"][0] == 0  # empty bins stay counted as 0
    assert plot_reliability_diagram(probs, y, tmp_path / "r.png", n_bins=10).read_bytes()[:4] == b"\x89PNG"
