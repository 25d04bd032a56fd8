"""Label files outlive the config switch: a polling Triton may still load a version under the config it read
a moment before, so a label file goes only when no present version's recorded config names it (repo prune)."""

from __future__ import annotations

from pathlib import Path

from toolkit.repository.publish import publish_onnx
from toolkit.repository.versions import prune

DIGITS = [str(i) for i in range(10)]


def _label_files(model_dir: Path) -> list[str]:
    return sorted(p.name for p in model_dir.iterdir() if p.name.startswith("labels_"))


def test_labels_of_present_versions_stay_until_prune_removes_their_versions(tmp_path: Path,
                                                                              digits_onnx: Path) -> None:
    repo = tmp_path / "repo"
    publish_onnx(repo, "digits", digits_onnx, labels=DIGITS)
    [first] = _label_files(repo / "digits")
    publish_onnx(repo, "digits", digits_onnx, labels=[f"class {d}" for d in DIGITS])
    labels = _label_files(repo / "digits")
    assert len(labels) == 2 and first in labels  # version 1 still names the first file
    assert prune(repo, "digits", keep=1) == [1]
    assert _label_files(repo / "digits") == [n for n in labels if n != first]
