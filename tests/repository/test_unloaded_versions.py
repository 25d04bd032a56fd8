"""Versions the version_policy does not load are judged by the config they were published with.

After a shape change, Triton (``latest { num_versions: 1 }`` or a pinned ``specific`` list) loads only
the newest version and accepts the repository; the validator must agree, while still catching an
unloaded version that no longer matches even its own recorded config.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from toolkit.repository.manifest import read_live_config
from toolkit.repository.publish import publish_onnx
from toolkit.repository.validate import NOTE, summary, validate_repository


def linear_onnx(path: Path, features: int) -> Path:
    """A batchable graph [N, features] -> [N, 2]."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [features, 2], [0.5] * (features * 2))
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "linear",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", features])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _shape_change(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    publish_onnx(repo, "lin", linear_onnx(tmp_path / "a.onnx", 4))
    publish_onnx(repo, "lin", linear_onnx(tmp_path / "b.onnx", 6))
    return repo


def test_older_version_of_another_shape_is_a_note_not_an_error(tmp_path: Path) -> None:
    repo = _shape_change(tmp_path)
    assert list(read_live_config(repo / "lin").version_policy.specific.versions) == [2]
    problems = validate_repository(repo)
    assert [p for p in problems if p.is_error] == [], [p.line() for p in problems]
    notes = [p for p in problems if p.severity == NOTE]
    assert len(notes) == 1 and "version 1 is not loaded" in notes[0].message
    assert "repo rollback lin --to 1" in notes[0].fix
    assert summary(problems) == "repository is clean: 0 errors, 0 warnings, 1 note"


def test_the_loaded_version_is_still_checked_against_the_live_config(tmp_path: Path) -> None:
    repo = _shape_change(tmp_path)
    cfg = repo / "lin" / "config.pbtxt"
    # Pin version 1 under the new config: Triton would load the old graph with the new dims.
    cfg.write_text(cfg.read_text().replace("versions: 2", "versions: 1"))
    errors = [p.line() for p in validate_repository(repo, checksums=False) if p.is_error]
    assert any("dims" in e or "shape" in e for e in errors), errors


def test_unloaded_version_that_contradicts_its_own_record_is_an_error(tmp_path: Path) -> None:
    repo = _shape_change(tmp_path)
    # Swap version 1's graph for the 6-feature one: its manifest-recorded config says 4 features.
    (repo / "lin" / "1" / "model.onnx").write_bytes((repo / "lin" / "2" / "model.onnx").read_bytes())
    errors = [p.line() for p in validate_repository(repo, checksums=False) if p.is_error]
    assert any("version 1 (not loaded by version_policy) does not match the config it was published with" in e
               for e in errors), errors
