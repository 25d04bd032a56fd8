"""Checkpoint -> ONNX: metadata, cleanup, record, dynamic shapes, external data, parity gate, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from contract.errors import ExportError, UsageError
from contract.spec import ModelSpec, TensorSpec
from toolkit.cli import main
from toolkit.export.onnx import METADATA_SPEC_KEY, onnx_from_module, spec_from_onnx
from toolkit.export.optimize import count_batchnorms, optimize_for_inference
from toolkit.export.parity import ParityError
from toolkit.export.records import record_path
from trainers.models import create_model, register_model

TK = str(Path(sys.executable).with_name("tritonkit"))


def _spec(shape=(1, 8, 8)) -> ModelSpec:
    return ModelSpec(inputs=(TensorSpec("input", shape),), outputs=(TensorSpec("logits", (10,)),))


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_export_writes_checked_onnx_with_metadata_and_record_when_checkpoint_is_valid(tk_onnx, tk_checkpoint):
    from trainers.checkpoint import sha256_of

    proto = onnx.load(str(tk_onnx))
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["tritonkit.checkpoint_sha256"] == sha256_of(tk_checkpoint)
    assert json.loads(meta["tritonkit.labels"]) == [str(i) for i in range(10)]
    assert json.loads(meta["tritonkit.normalization"])["mean"] == [0.3]
    assert json.loads(meta["tritonkit.input_spec"]) == [{"name": "input", "shape": [1, 8, 8], "dtype": "float32"}]
    assert "tritonkit.version" in meta and METADATA_SPEC_KEY in meta
    assert proto.opset_import[0].version == 17
    ops = [n.op_type for n in proto.graph.node]
    assert "BatchNormalization" not in ops and "Constant" not in ops  # folded and cleaned up
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    rec = json.loads(record_path(tk_onnx).read_text())
    assert rec["call"].startswith("toolkit.export.onnx.onnx_from_checkpoint(")
    assert rec["checkpoint_sha256"] == sha256_of(tk_checkpoint)
    assert rec["sha256"] == sha256_of(tk_onnx)
    assert rec["parity"]["logits"]["max_abs"] < 1e-4


def test_export_cli_writes_model_and_saves_exact_command_when_run_as_a_program(tk_checkpoint, tmp_path):
    out = tmp_path / "m.onnx"
    res = subprocess.run([TK, "export", str(tk_checkpoint), "-o", str(out), "--opset", "16"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "wrote" in res.stdout
    rec = json.loads(record_path(out).read_text())
    assert rec["command"] == f"tritonkit export {tk_checkpoint} -o {out} --opset 16"
    assert onnx.load(str(out)).opset_import[0].version == 16
    assert _files(tmp_path) == ["m.onnx", "m.onnx.export.json"]


def test_export_accepts_other_image_sizes_when_dynamic_hw_is_set(tk_checkpoint, tmp_path):
    from toolkit.export.onnx import onnx_from_checkpoint, run_onnx

    out = onnx_from_checkpoint(tk_checkpoint, tmp_path / "hw.onnx", dynamic_hw=True)
    assert spec_from_onnx(out).input.shape == (1, -1, -1)
    assert run_onnx(out, np.zeros((3, 1, 12, 16), np.float32)).shape == (3, 10)


def test_export_static_batch_fixes_batch_dimension_when_static(tk_checkpoint, tmp_path):
    from toolkit.export.onnx import onnx_from_checkpoint

    out = onnx_from_checkpoint(tk_checkpoint, tmp_path / "s.onnx", dynamic_batch=False, batch=3)
    assert onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3


def test_export_puts_weights_in_data_file_beside_model_when_external_data_forced(tk_checkpoint, tmp_path):
    from toolkit.export.onnx import onnx_from_checkpoint, run_onnx

    out = onnx_from_checkpoint(tk_checkpoint, tmp_path / "ext.onnx", external_data=True)
    assert (tmp_path / "ext.onnx.data").stat().st_size > 50_000
    assert out.stat().st_size < 20_000
    assert run_onnx(out, np.zeros((1, 1, 8, 8), np.float32)).shape == (1, 10)


def test_export_goes_through_file_with_external_data_when_weights_exceed_threshold(tmp_path):
    model = create_model("smallcnn")
    onnx_from_module(model, _spec(), tmp_path / "big.onnx", external_data_threshold=10_000)
    assert (tmp_path / "big.onnx.data").exists()
    assert _files(tmp_path) == ["big.onnx", "big.onnx.data"]


def test_export_names_op_and_suggests_opset_when_opset_cannot_express_it(tmp_path):
    class Sampler(torch.nn.Module):
        def forward(self, x):
            grid = torch.zeros(x.shape[0], 4, 4, 2)
            return torch.nn.functional.grid_sample(x, grid, align_corners=False).flatten(1)[:, :10]

    expected = r"op 'aten::grid_sampler' is not supported at opset 14; export with --opset 16"
    with pytest.raises(ExportError, match=expected):
        onnx_from_module(Sampler(), _spec(), tmp_path / "g.onnx", opset=14, optimize=False)
    assert _files(tmp_path) == []


def test_export_refuses_opset_outside_supported_range_when_asked_for_opset_30(tmp_path):
    with pytest.raises(UsageError, match="opset 30 is outside"):
        onnx_from_module(create_model("smallcnn"), _spec(), tmp_path / "x.onnx", opset=30)


@register_model("tk_test_branchy")
class Branchy(torch.nn.Module):
    """Data-dependent control flow: tracing freezes one branch, so ONNX disagrees with torch."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 8) -> None:
        super().__init__()
        self.head = torch.nn.Linear(64, num_classes)

    def forward(self, x):
        y = self.head(x.flatten(1))
        if bool(x.sum() > 0):
            return y * 2.0
        return y


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_export_fails_with_parity_table_and_writes_nothing_when_torch_and_onnx_disagree(tk_checkpoint, tmp_path):
    from trainers.checkpoint import load_checkpoint, save_checkpoint

    payload = load_checkpoint(tk_checkpoint)
    payload["architecture"] = {"name": "tk_test_branchy", "kwargs": {}}
    payload["model_state"] = Branchy().state_dict()
    bad = save_checkpoint(payload, tmp_path / "branchy.pt")
    out = tmp_path / "out" / "b.onnx"
    res = CliRunner().invoke(main, ["export", str(bad), "-o", str(out)])
    assert res.exit_code == 1
    assert "case" in res.output and "max_abs" in res.output  # the table
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("error: export parity (torch fp32 vs ONNX Runtime) failed")
    assert not out.exists() and _files(out.parent) == []


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_export_parity_error_carries_report_when_called_from_python(tmp_path):
    model = Branchy()
    with pytest.raises(ParityError) as info:
        onnx_from_module(model, _spec(), tmp_path / "b.onnx")
    assert not info.value.report.passed
    assert "FAIL" in info.value.report.table()


@pytest.mark.parametrize(
    ("args_factory", "pattern"),
    [
        (lambda tmp: [str(tmp / "missing.pt"), "-o", str(tmp / "o.onnx")], "checkpoint not found"),
        (lambda tmp: [str(_text_file(tmp / "notes.pt")), "-o", str(tmp / "o.onnx")], "not a tritonkit checkpoint"),
    ],
    ids=["missing", "unknown-format"],
)
def test_export_cli_prints_one_error_line_and_writes_nothing_when_checkpoint_is_bad(args_factory, pattern, tmp_path):
    res = CliRunner().invoke(main, ["export", *args_factory(tmp_path)])
    assert res.exit_code == 1
    assert len(res.output.strip().splitlines()) == 1 and pattern in res.output
    assert not (tmp_path / "o.onnx").exists()


def _text_file(path: Path) -> Path:
    path.write_text("not a checkpoint\n")
    return path


def test_export_cli_refuses_output_path_when_its_folder_is_a_file(tk_checkpoint, tmp_path):
    blocker = _text_file(tmp_path / "afile")
    res = CliRunner().invoke(main, ["export", str(tk_checkpoint), "-o", str(blocker / "m.onnx")])
    assert res.exit_code == 2
    assert "is a file, not a folder" in res.output and len(res.output.strip().splitlines()) == 1


def test_optimize_for_inference_folds_batchnorm_and_keeps_output_when_model_has_conv_bn():
    torch.manual_seed(0)
    for name, shape in (("smallcnn", (4, 1, 8, 8)), ("resnet_small", (2, 3, 16, 16))):
        model = create_model(name)
        for m in model.modules():  # non-trivial running statistics
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        model.eval()
        x = torch.randn(shape)
        fused = optimize_for_inference(model)
        assert count_batchnorms(model) > 0 and count_batchnorms(fused) == 0
        torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-5)
        assert model.training is False and count_batchnorms(model) > 0  # original untouched


def test_optimize_for_inference_drops_dropout_when_model_is_in_training_mode():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.9)).train()
    fused = optimize_for_inference(model)
    x = torch.ones(2, 4)
    assert not fused.training
    assert not any(isinstance(m, torch.nn.Dropout) for m in fused.modules())
    torch.testing.assert_close(fused(x), fused(x))


def test_cleanup_graph_folds_constant_subgraphs_when_present():
    from onnx import TensorProto, helper

    from toolkit.export.graph_cleanup import cleanup_graph

    c = helper.make_node("Constant", [], ["c"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [2.0]))
    twice = helper.make_node("Add", ["c", "c"], ["c2"])
    dead = helper.make_node("Neg", ["x"], ["unused"])
    add = helper.make_node("Add", ["x", "c2"], ["y"])
    graph = helper.make_graph([c, twice, dead, add], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    entry = model.metadata_props.add()
    entry.key, entry.value = "k", "v"
    cleaned = cleanup_graph(model)
    assert [n.op_type for n in cleaned.graph.node] == ["Add"]
    assert {p.key: p.value for p in cleaned.metadata_props} == {"k": "v"}
    assert cleaned.opset_import[0].version == 17


def test_export_from_plain_module_uses_spec_names_when_no_checkpoint(tmp_path):
    out = onnx_from_module(create_model("smallcnn"), _spec(), tmp_path / "plain.onnx")
    proto = onnx.load(str(out))
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert os.listdir(tmp_path) == ["plain.onnx"]  # no record without a call to record


def test_model_exporter_exports_plain_module_when_given_input_shape(tmp_path):
    from toolkit.api import ModelExporter

    path = ModelExporter(create_model("smallcnn"), input_shape=(1, 8, 8), num_outputs=10).export(
        tmp_path / "m.onnx", format="onnx", optimize=True)
    assert path == tmp_path / "m.onnx"
    assert spec_from_onnx(path).output == TensorSpec("output", (10,))
    assert json.loads(record_path(path).read_text())["call"].startswith("ModelExporter(SmallCNN")


def test_model_exporter_exports_checkpoint_and_rejects_unknown_format(tk_checkpoint, tmp_path):
    from toolkit.api import ModelExporter

    exporter = ModelExporter(tk_checkpoint)
    with pytest.raises(UsageError, match="choose one of: onnx"):
        exporter.export(tmp_path / "m.tflite", format="tflite")
    assert exporter.export(tmp_path / "m.onnx").exists()


def test_format_converter_writes_fp16_onnx_and_refuses_tensorrt_cleanly_when_absent(tk_onnx, tmp_path):
    import shutil

    from contract.errors import MissingDependencyError
    from toolkit.api import FormatConverter
    from toolkit.runners.trt import gpu_visible

    src = Path(shutil.copy(tk_onnx, tmp_path / "m.onnx"))
    fp16 = FormatConverter(src).convert(target_format="onnx", precision="fp16")
    assert fp16 == tmp_path / "m.fp16.onnx" and fp16.exists()
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        if gpu_visible():
            pytest.skip("tensorrt and a GPU are present: covered by the gpu test")
    with pytest.raises(MissingDependencyError):
        FormatConverter(src).convert(target_format="tensorrt", precision="fp16")
    assert not (tmp_path / "m.plan").exists()


def test_export_cli_has_no_torchscript_format_when_asked_for_one(tk_checkpoint, tmp_path):
    """TorchScript led nowhere (no later stage takes it), so the option is gone: refused before any work."""
    res = CliRunner().invoke(main, ["export", str(tk_checkpoint), "-o", str(tmp_path / "m.pt"), "--format",
                                    "torchscript"])
    assert res.exit_code == 2 and "No such option '--format'" in res.output
    assert list(tmp_path.iterdir()) == []


class _Untraceable(torch.nn.Module):
    """Data-dependent control flow (fx cannot trace it) around a Conv -> BN -> ReLU Sequential."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU())

    def forward(self, x):
        y = self.body(x)
        return y * 2.0 if bool(x.sum() > 0) else y


def test_optimize_folds_batchnorm_inside_sequential_when_fx_cannot_trace_the_model():
    torch.manual_seed(0)
    model = _Untraceable().eval()
    model.body[1].running_mean.uniform_(-1, 1)
    model.body[1].running_var.uniform_(0.5, 2)
    x = torch.randn(2, 1, 8, 8)
    folded = optimize_for_inference(model)
    assert count_batchnorms(folded) == 0 and count_batchnorms(model) == 1
    torch.testing.assert_close(folded(x), model(x), atol=1e-5, rtol=1e-5)


def test_export_refuses_in_one_line_and_writes_nothing_when_given_an_onnx_file(tk_onnx, tmp_path):
    from tests.profiling.conftest import one_error_line, tk

    line = one_error_line(tk("export", str(tk_onnx), "-o", str(tmp_path / "new" / "m.onnx")))
    assert "is an ONNX model, not a tritonkit checkpoint" in line and "tritonkit parity" in line
    assert list(tmp_path.iterdir()) == []


def test_model_exporter_refuses_torchscript_in_one_line_when_asked_for_it(tk_checkpoint: Path, tmp_path: Path) -> None:
    from toolkit.api import ModelExporter

    with pytest.raises(UsageError, match="unknown export format 'torchscript'; choose one of: onnx"):
        ModelExporter(tk_checkpoint).export(tmp_path / "m.pt", format="torchscript")
    assert not (tmp_path / "m.pt").exists()
