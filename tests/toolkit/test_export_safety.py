"""External data must stay inside the model folder: absolute, '..', symlink, nested subgraphs; read and save."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data

from contract.errors import ExportError
from toolkit.cli import main
from toolkit.export.safety import load_onnx, save_onnx


def _external(name: str, location: str) -> TensorProto:
    t = numpy_helper.from_array(np.ones(4, np.float32), name)
    set_external_data(t, location=location, offset=0, length=16)
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    return t


def _model(location: str, *, nested: bool = False) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    if not nested:
        g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], [_external("w", location)])
    else:
        # the escaping tensor lives in the then-branch of an If: a nested subgraph
        then_g = helper.make_graph([helper.make_node("Identity", ["w"], ["t"])], "then", [],
                                   [helper.make_tensor_value_info("t", TensorProto.FLOAT, [4])],
                                   [_external("w", location)])
        else_g = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                                   [helper.make_tensor_value_info("e", TensorProto.FLOAT, [4])])
        cond = helper.make_tensor("c", TensorProto.BOOL, [], [True])
        nodes = [helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)]
        g = helper.make_graph(nodes, "g", [x], [y], [cond])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _write(folder, proto, name="m.onnx"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(proto.SerializeToString())
    return path


@pytest.mark.parametrize(
    ("location", "nested", "pattern"),
    [
        ("/etc/passwd", False, "is absolute"),
        ("../secret.bin", False, "leaves the model folder"),
        ("data/../../secret.bin", False, "leaves the model folder"),
        ("/etc/passwd", True, "is absolute"),
        ("sub/../../secret.bin", True, "leaves the model folder"),
    ],
    ids=["absolute", "dotdot", "nested-dotdot-path", "subgraph-absolute", "subgraph-dotdot"],
)
def test_load_onnx_refuses_external_data_when_location_escapes(tmp_path, location, nested, pattern):
    (tmp_path / "secret.bin").write_bytes(np.ones(4, np.float32).tobytes())
    path = _write(tmp_path / "model", _model(location, nested=nested))
    with pytest.raises(ExportError, match=pattern):
        load_onnx(path)


def test_load_onnx_refuses_external_data_when_symlink_points_outside(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(4, np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    os.symlink(secret, folder / "w.bin")
    path = _write(folder, _model("w.bin"))
    with pytest.raises(ExportError, match="symlink"):
        load_onnx(path)


def test_load_onnx_reads_weights_when_external_data_sits_beside_model(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "w.bin").write_bytes(np.full(4, 2.0, np.float32).tobytes())
    proto = load_onnx(_write(folder, _model("w.bin")))
    assert numpy_helper.to_array(proto.graph.initializer[0]).tolist() == [2.0] * 4


def test_save_onnx_refuses_and_writes_nothing_when_existing_location_escapes(tmp_path):
    out = tmp_path / "out" / "m.onnx"
    with pytest.raises(ExportError, match="leaves the model folder"):
        save_onnx(_model("../x.bin", nested=True), out)
    assert list(out.parent.iterdir()) == []


def test_save_onnx_writes_data_file_beside_model_when_external(tmp_path):
    proto = _model("w.bin")
    t = proto.graph.initializer[0]
    t.ClearField("external_data")
    t.data_location = TensorProto.DEFAULT
    t.raw_data = np.ones(4, np.float32).tobytes()
    out = save_onnx(proto, tmp_path / "m.onnx", external_data=True, threshold=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]
    assert numpy_helper.to_array(load_onnx(out).graph.initializer[0]).tolist() == [1.0] * 4


@pytest.mark.parametrize("command", ["parity", "quantize", "build"])
def test_cli_prints_one_line_when_model_external_data_escapes(tmp_path, command):
    path = _write(tmp_path / "model", _model("/etc/passwd"))
    args = {"parity": ["parity", str(path), str(path)],
            "quantize": ["quantize", str(path), "--precision", "fp16", "-o", str(tmp_path / "q.onnx")],
            "build": ["build", str(path), "-o", str(tmp_path / "m.plan")]}[command]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "is absolute: refused" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_cli_prints_one_line_when_onnx_is_truncated(tk_onnx, tmp_path):
    bad = tmp_path / "t.onnx"
    bad.write_bytes(tk_onnx.read_bytes()[: tk_onnx.stat().st_size // 2])
    res = CliRunner().invoke(main, ["quantize", str(bad), "--precision", "fp16", "-o", str(tmp_path / "q.onnx")])
    assert res.exit_code == 1 and "corrupt or truncated" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "q.onnx").exists()
