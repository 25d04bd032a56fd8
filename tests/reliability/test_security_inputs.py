"""Hostile checkpoints and ONNX files through the real commands (issue 12, items 8, 12, 13, 14, 25).

Each test performs the attack and asserts the safe outcome: one ``error:`` line, a non-zero exit,
no traceback, nothing written, and for the zip bomb a bounded time and memory.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.reliability.refusals import one_line_refusal
from toolkit.cli import main

TRITONKIT = str(Path(sys.executable).parent / "tritonkit")
SEEN = {"tried": 0, "tracebacks": 0}


def _one_line_refusal(output: str, exit_code: int, exception: BaseException | None = None) -> str:
    return one_line_refusal(output, exit_code, exception, SEEN)


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    """Print the figures for the issue's note: hostile inputs tried, tracebacks seen."""
    yield
    print(f"\nhostile inputs tried: {SEEN['tried']}, tracebacks seen: {SEEN['tracebacks']}")


def _invoke(args: list[str]) -> str:
    res = CliRunner().invoke(main, args)
    return _one_line_refusal(res.output, res.exit_code, res.exception)


# -- a tiny real checkpoint and its ONNX (untrained: built in about a second) -------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.runners.models import tiny_checkpoint, tiny_onnx
    from trainers.checkpoint import load_checkpoint

    root = tmp_path_factory.mktemp("tiny")
    ckpt = tiny_checkpoint(root)
    onnx_path = tiny_onnx(root)
    return {"root": root, "checkpoint": ckpt, "onnx": onnx_path, "payload": load_checkpoint(ckpt)}


def _save_raw(path: Path, payload: Any) -> Path:
    """torch.save without tritonkit's own checks: what a hostile or damaged writer produces."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    path.write_bytes(buf.getvalue())
    return path


# -- item 8: zip bombs ---------------------------------------------------------------------------
def _zip(path: Path, members: list[tuple[str, int, bytes, int, int]]) -> Path:
    """Write a zip by hand: (name, method, stored bytes, declared uncompressed size, crc32) each,
    so the central directory can declare exactly what an attacker wants."""
    out, central = bytearray(), bytearray()
    for name, method, data, size, crc in members:
        fname = name.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size, len(fname), 0)
        out += fname + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(data), size,
                               len(fname), 0, 0, 0, 0, 0, offset)
        central += fname
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0)
    path.write_bytes(bytes(out + central + eocd))
    return path


def _zeros_deflated(size: int) -> tuple[bytes, int]:
    """Raw deflate of ``size`` zero bytes (built from one repeated flushed block: fast) and its crc."""
    chunk = bytes(1 << 24)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    n, rest = divmod(size, len(chunk))
    tail = comp.compress(bytes(rest)) + comp.flush()
    crc = 0
    for _ in range(n):
        crc = zlib.crc32(chunk, crc)
    return block * n + tail, zlib.crc32(bytes(rest), crc)


def _torch_members() -> list[tuple[str, int, bytes, int, int]]:
    """The small members of a real torch.save archive, stored, data.pkl first."""
    buf = io.BytesIO()
    torch.save({"x": torch.zeros(3)}, buf)
    with zipfile.ZipFile(buf) as zf:
        return [(i.filename, zipfile.ZIP_STORED, zf.read(i), i.file_size, i.CRC) for i in zf.infolist()]


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The reported bomb (1.5 GB of zeros as data.pkl, about 1.5 MB on disk) and three variants."""
    root = tmp_path_factory.mktemp("bombs")
    real = _torch_members()
    gb, crc = _zeros_deflated(1536 * (1 << 20))
    out = {}
    out["pickle-1.5GB"] = _zip(root / "bomb.pt", [("archive/data.pkl", zipfile.ZIP_DEFLATED, gb, 1536 << 20, crc),
                                                  *real[1:]])
    # The declared size is small (within every limit) but the stream inflates to 1.5 GB: the scan
    # stops at the declared size and the crc fails.
    out["pickle-size-lie"] = _zip(root / "lie.pt", [("archive/data.pkl", zipfile.ZIP_DEFLATED, gb, 4096, crc),
                                                    *real[1:]])
    # The pickle is real; a tensor member is the bomb (what torch.load would inflate next).
    out["tensor-1.5GB"] = _zip(root / "tensor.pt", [real[0], *[m for m in real[1:] if m[0] != "archive/data/0"],
                                                    ("archive/data/0", zipfile.ZIP_DEFLATED, gb, 1536 << 20, crc)])
    # Small and stored, but 500,000 one-byte opcodes: a pure-Python scan of them would run for long.
    flood = b"\x80\x02" + b"N0" * 250_000 + b"N."
    out["opcode-flood"] = _zip(root / "flood.pt", [("archive/data.pkl", zipfile.ZIP_STORED, flood, len(flood),
                                                    zlib.crc32(flood)), *real[1:]])
    return out


def test_checkpoint_scan_refuses_zip_bomb_in_under_2s_with_bounded_memory_when_members_declare_1_5_gb(
        bombs: dict[str, Path]) -> None:
    from contract.errors import CheckpointError
    from trainers.checkpoint import load_checkpoint

    for kind, path in bombs.items():
        assert path.stat().st_size < 2 << 20, f"{kind}: the bomb itself should be small"
        t0 = time.perf_counter()
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        elapsed = time.perf_counter() - t0
        tracemalloc.start()  # a second run for memory: tracing slows the scan several times
        with pytest.raises(CheckpointError):
            load_checkpoint(path)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        SEEN["tried"] += 1
        print(f"\n{kind}: {elapsed * 1000:.0f} ms, traced peak {peak / 2**20:.1f} MiB: {err.value}")
        assert elapsed < 2.0, f"{kind}: the scan took {elapsed:.1f} s"
        # The whole file is read once (1.5 MB); nothing close to the declared 1.5 GB is inflated.
        assert peak < 16 << 20, f"{kind}: traced peak {peak / 2**20:.0f} MiB"
        assert str(path) in str(err.value) and "\n" not in str(err.value)
        expected = {"pickle-1.5GB": "over the 32 MiB limit", "pickle-size-lie": "damaged (Bad CRC-32",
                    "tensor-1.5GB": "decompression bomb", "opcode-flood": "more than 200,000 opcodes"}[kind]
        assert expected in str(err.value), f"{kind}: {err.value}"


def test_export_evaluate_parity_refuse_zip_bomb_in_one_line_when_run_as_commands(
        tmp_path: Path, bombs: dict[str, Path], tiny: dict[str, Any]) -> None:
    bomb = bombs["pickle-1.5GB"]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    # The installed command in its own process: peak RSS of that process, as the kernel counts it.
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "sys.stdout.write(r.stderr + r.stdout); "
             "print('RC', r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
             "time.perf_counter() - t)")
    res = subprocess.run([sys.executable, "-c", probe, TRITONKIT, "export", str(bomb), "-o", str(out_dir / "m.onnx")],
                         capture_output=True, text=True, timeout=300)
    *output, last = res.stdout.strip().splitlines()
    _, rc, maxrss_kb, seconds = last.split()
    line = _one_line_refusal("\n".join(output), int(rc))
    print(f"\nexport: rc {rc}, peak RSS {int(maxrss_kb) / 1024:.0f} MiB, {float(seconds):.1f} s: {line}")
    assert "decompression bomb" in line or "32 MiB limit" in line, line
    # The process imports torch (about 400 MiB here); inflating the bomb would add 1.5-3.4 GB.
    assert int(maxrss_kb) < 1024 * 1024, f"peak RSS {int(maxrss_kb) / 1024:.0f} MiB"
    assert list(out_dir.iterdir()) == []
    for args in (["evaluate", str(bomb), "--bootstrap", "10"], ["parity", str(bomb), str(tiny["onnx"])]):
        line = _invoke(args)
        assert str(bomb) in line and ("decompression bomb" in line or "32 MiB limit" in line), line


# -- item 12 (+25): malformed checkpoints x export / evaluate / parity ----------------------------
def _malformed(root: Path, payload: dict[str, Any], onnx_path: Path) -> dict[str, Path]:
    def variant(name: str, **changes: Any) -> Path:
        return _save_raw(root / f"{name}.pt", {**payload, **changes})

    arch = payload["architecture"]
    kw = arch["kwargs"]
    cases = {
        "architecture-string": variant("arch_str", architecture="smallcnn"),
        "kwargs-list": variant("kw_list", architecture={"name": "smallcnn", "kwargs": [10, 1, 4]}),
        "width-negative": variant("w_neg", architecture={**arch, "kwargs": {**kw, "width": -5}}),
        "width-200000": variant("w_huge", architecture={**arch, "kwargs": {**kw, "width": 200000}}),
        "width-string": variant("w_str", architecture={**arch, "kwargs": {**kw, "width": "abc"}}),
        "unknown-argument": variant("w_unknown", architecture={**arch, "kwargs": {**kw, "depth": 3}}),
        "unknown-architecture": variant("arch_unknown", architecture={"name": "nope", "kwargs": {}}),
        "name-not-string": variant("arch_int", architecture={"name": 5, "kwargs": {}}),
        "model-state-list": variant("state_list", model_state=[1, 2, 3]),
        "model-state-values": variant("state_vals", model_state={"features.0.weight": "x"}),
        "weights-other-arch": variant("state_other", architecture={**arch, "kwargs": {**kw, "width": 8}}),
        "spec-string": variant("spec_str", model_spec="input"),
        "spec-huge-shape": variant("spec_huge", model_spec={**payload["model_spec"], "inputs": [
            {"name": "input", "shape": [1, 100000, 100000], "dtype": "float32"}]}),
        "format-version-string": variant("fv_str", format_version="1"),
        "dataset-string": variant("ds_str", dataset="digits"),
        "dataset-seed-string": variant("ds_seed", dataset={"name": "digits", "seed": "zero"}),
        "labels-string": variant("labels_str", labels="0123456789"),
        "not-a-dict": _save_raw(root / "list.pt", [1, 2, 3]),
        "num-classes-0": variant("nc0", architecture={**arch, "kwargs": {**kw, "num_classes": 0}}),
        "state-extra-key": variant("state_extra", model_state={**payload["model_state"], "evil": torch.zeros(1)}),
        "spec-mean-3-channels": variant("mean3", model_spec={**payload["model_spec"], "mean": [0.1, 0.2, 0.3],
                                                             "std": [1.0, 1.0, 1.0]}),
        "spec-std-0": variant("std0", model_spec={**payload["model_spec"], "std": [0.0]}),
        "spec-scale-nan": variant("nan", model_spec={**payload["model_spec"], "scale": float("nan")}),
        "spec-name-newline": variant("name_nl", model_spec={**payload["model_spec"], "inputs": [
            {"name": "in\nput", "shape": [1, 8, 8], "dtype": "float32"}]}),
    }
    onnx_as_pt = root / "model_onnx.pt"
    onnx_as_pt.write_bytes(onnx_path.read_bytes())
    cases["onnx-given-as-checkpoint"] = onnx_as_pt
    return cases


_EXPECTED = {  # a word each refusal must contain: it says what is wrong
    "architecture-string": "'architecture' is a string",
    "kwargs-list": "kwargs is a list",
    "width-negative": "width=-5 is out of range",
    "width-200000": "width=200000 is out of range",
    "width-string": "width='abc' is str, expected int",
    "unknown-argument": "unknown argument 'depth'",
    "unknown-architecture": "unknown model 'nope'",
    "name-not-string": "name is an integer",
    "model-state-list": "'model_state' is a list",
    "model-state-values": "expected a tensor",
    "weights-other-arch": "do not fit architecture",
    "spec-string": "'model_spec' is a string",
    "spec-huge-shape": "budget for one input batch",
    "format-version-string": "'1' (a string) is not supported (this tritonkit reads the integer 1)",
    "dataset-string": "'dataset' is a string",
    "dataset-seed-string": "seed is a string",
    "labels-string": "'labels' must be a list of strings",
    "not-a-dict": "not a tritonkit checkpoint",
    "num-classes-0": "num_classes=0 is out of range",
    "state-extra-key": 'Unexpected key(s) in state_dict: "evil"',
    "spec-mean-3-channels": "mean/std have 3 values for 1 input channel(s)",
    "spec-std-0": "std [0.0] must be positive",
    "spec-scale-nan": "scale must be a finite number",
    "spec-name-newline": "must be 1-256 printable characters",
    "onnx-given-as-checkpoint": "is an ONNX model, not a tritonkit checkpoint",
}


@pytest.mark.parametrize("command", ["export", "evaluate", "parity", "profile-local"])
def test_malformed_checkpoints_are_refused_in_one_line_and_nothing_written_when_run_through_command(
        tmp_path: Path, tiny: dict[str, Any], command: str) -> None:
    cases = _malformed(tmp_path, tiny["payload"], tiny["onnx"])
    assert set(cases) == set(_EXPECTED)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for kind, path in cases.items():
        args = {"export": ["export", str(path), "-o", str(out_dir / "new" / "m.onnx")],
                "evaluate": ["evaluate", str(path), "--bootstrap", "10", "--plots", str(out_dir / "plots")],
                "parity": ["parity", str(path), str(tiny["onnx"])],
                "profile-local": ["profile-local", str(path), "--batch", "1", "--iterations", "1"]}[command]
        line = _invoke(args)
        assert _EXPECTED[kind] in line, f"{kind}: {line}"
        assert str(path) in line, f"{kind}: the line does not say which file: {line}"
        assert "not all arguments converted" not in line
        assert list(out_dir.iterdir()) == [], f"{kind}: wrote {list(out_dir.iterdir())}"
    if command in ("export", "evaluate"):  # the others take an .onnx by its suffix
        line = _invoke([command, str(tiny["onnx"]), *(["-o", str(out_dir / "new" / "m.onnx")] if command == "export"
                                                       else [])])
        assert "is an ONNX model, not a tritonkit checkpoint" in line, line
        assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("command", ["export", "evaluate", "parity", "profile-local"])
def test_checkpoints_whose_spec_does_not_fit_the_model_are_refused_in_one_line_when_run_through_command(
        tmp_path: Path, tiny: dict[str, Any], command: str) -> None:
    """The spec is well-formed but not the model's: the model itself fails, and says so in one line."""
    spec = tiny["payload"]["model_spec"]
    cases = {
        "rank-1-input": _save_raw(tmp_path / "rank1.pt", {**tiny["payload"], "model_spec": {**spec, "inputs": [
            {"name": "input", "shape": [64], "dtype": "float32"}]}, "dataset": {"name": "imagefolder",
                                                                                "root": str(tmp_path)}}),
        "3-channels": _save_raw(tmp_path / "ch3.pt", {**tiny["payload"], "model_spec": {**spec, "mean": [], "std": [],
                                "inputs": [{"name": "input", "shape": [3, 8, 8], "dtype": "float32"}]}}),
        "nan-weights": _save_raw(tmp_path / "nanw.pt", {**tiny["payload"], "model_state": {
            k: v * float("nan") if v.is_floating_point() else v for k, v in tiny["payload"]["model_state"].items()}}),
    }
    out_dir = tmp_path / "out"
    for kind, path in cases.items():
        args = {"export": ["export", str(path), "-o", str(out_dir / "m.onnx")],
                "evaluate": ["evaluate", str(path), "--bootstrap", "10"],
                "parity": ["parity", str(path), str(tiny["onnx"])],
                "profile-local": ["profile-local", str(path), "--batch", "1", "--iterations", "1"]}[command]
        if kind == "nan-weights" and command == "profile-local":
            continue  # timing NaN arithmetic is not an error
        _invoke(args)
        assert not out_dir.exists() or list(out_dir.iterdir()) == [], f"{kind}: wrote {list(out_dir.iterdir())}"


def test_model_with_200000_width_is_refused_before_allocating_when_bounds_are_not_declared() -> None:
    """A user's architecture without bounds: the meta-device parameter count refuses it."""
    from contract.errors import UsageError
    from trainers.models import _BOUNDS, _REGISTRY, create_model, register_model

    @register_model("test_unbounded_mlp")
    class Mlp(torch.nn.Module):
        def __init__(self, width: int = 8) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(width, width)

    try:
        with pytest.raises(UsageError, match="would have 40,000,200,000 parameters"):
            create_model("test_unbounded_mlp", width=200000)  # 160 GB of float32 if it were built
        with pytest.raises(UsageError, match="cannot be built with these arguments"):
            create_model("test_unbounded_mlp", width=-5)
        assert sum(p.numel() for p in create_model("test_unbounded_mlp", width=8).parameters()) == 72
    finally:
        _REGISTRY.pop("test_unbounded_mlp", None)
        _BOUNDS.pop("test_unbounded_mlp", None)


def test_parity_refuses_in_one_line_when_the_two_models_take_different_inputs(
        tmp_path: Path, tiny: dict[str, Any]) -> None:
    import onnx

    other_name = _identity_onnx(tmp_path / "x.onnx", ["N", 1, 8, 8])
    proto = onnx.load(str(_identity_onnx(tmp_path / "tmp.onnx", ["N", 1, 16, 16])))
    proto.graph.input[0].name = proto.graph.node[0].input[0] = "input"
    other_shape = tmp_path / "shape.onnx"
    onnx.save(proto, str(other_shape))
    for b, expected in ((other_name, "takes input(s) ['x']"), (other_shape, "ONNX Runtime failed on inputs")):
        for args in (["parity", str(tiny["checkpoint"]), str(b)], ["parity", str(b), str(tiny["onnx"])]):
            line = _invoke(args)
            assert expected in line and b.name in line, line


# -- item 13: ONNX whose tritonkit.model_spec metadata is not a spec ------------------------------
def _with_metadata(src: Path, dst: Path, value: str, key: str = "tritonkit.model_spec") -> Path:
    import onnx

    proto = onnx.load(str(src))
    props = {p.key: p for p in proto.metadata_props}
    (props[key] if key in props else proto.metadata_props.add(key=key)).value = value
    onnx.save(proto, str(dst))
    return dst


_BAD_SPECS = {
    "json-array": "[1, 2, 3]",
    "json-string": '"input"',
    "inputs-not-list": json.dumps({"inputs": "input", "outputs": []}),
    "huge-shape": json.dumps({"inputs": [{"name": "input", "shape": [1, 100000, 100000], "dtype": "float32"}],
                              "outputs": [{"name": "logits", "shape": [10], "dtype": "float32"}]}),
    "not-json": "{not json",
    "deeply-nested": "[" * 100000,
}


@pytest.mark.parametrize("command", ["parity", "quantize", "repo-add"])
def test_onnx_with_malformed_spec_metadata_is_refused_in_one_line_when_run_through_command(
        tmp_path: Path, tiny: dict[str, Any], command: str) -> None:
    repo = tmp_path / "repo"
    out = tmp_path / "new" / "q.onnx"
    for kind, value in _BAD_SPECS.items():
        path = _with_metadata(tiny["onnx"], tmp_path / f"{kind}.onnx", value)
        args = {"parity": ["parity", str(tiny["checkpoint"]), str(path)],
                "quantize": ["quantize", str(path), "--precision", "fp16", "-o", str(out)],
                "repo-add": ["repo", "add", "m", "--repository", str(repo), "--onnx", str(path)]}[command]
        line = _invoke(args)
        assert "model spec" in line and str(path) in line, f"{kind}: {line}"
        assert not out.parent.exists() and (not repo.exists() or not any(repo.rglob("*.onnx"))), f"{kind}: wrote"
    if command != "repo-add":  # the data set metadata is read by parity and quantize
        path = _with_metadata(tiny["onnx"], tmp_path / "dataset.onnx", "{not json", key="tritonkit.dataset")
        args = {"parity": ["parity", str(tiny["checkpoint"]), str(path)],
                "quantize": ["quantize", str(path), "--precision", "int8", "-o", str(out)]}[command]
        line = _invoke(args)
        assert "tritonkit.dataset" in line and str(path) in line, line
        assert not out.parent.exists()


# -- item 14: profile-local on a declared shape that would need 37 GiB ----------------------------
def _identity_onnx(path: Path, dims: list[Any]) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_profile_local_refuses_input_over_budget_before_allocating_when_shape_declares_37_gib(
        tmp_path: Path) -> None:
    huge = _identity_onnx(tmp_path / "huge.onnx", ["N", 1, 100000, 100000])
    tracemalloc.start()
    line = _invoke(["profile-local", str(huge), "--batch", "1", "--iterations", "1", "--warmup", "0"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"\n{line} (traced peak {peak / 2**20:.0f} MiB)")
    assert "37.3 GiB" in line and "2.0 GiB budget" in line and "--max-batch-mib" in line, line
    assert peak < 256 << 20
    # Variable dims given on the command line are held to the same budget.
    var = _identity_onnx(tmp_path / "var.onnx", ["N", 1, "H", "W"])
    line = _invoke(["profile-local", str(var), "--shape", "x:1,100000,100000", "--iterations", "1"])
    assert "budget for one input batch" in line, line
    # The budget is an option: a small one refuses a large batch of a small model...
    small = _identity_onnx(tmp_path / "small.onnx", ["N", 1, 8, 8])
    line = _invoke(["profile-local", str(small), "--batch", "1,8192", "--max-batch-mib", "1", "--iterations", "1"])
    assert "[8192, 1, 8, 8]" in line and "1.0 MiB budget" in line, line
    # ...and within it the model is profiled.
    res = CliRunner().invoke(main, ["profile-local", str(small), "--batch", "1,2", "--iterations", "2",
                                    "--warmup", "0", "--max-batch-mib", "1", "--json"])
    assert res.exit_code == 0, res.output
    assert [r["batch_size"] for r in json.loads(res.output)["rows"]] == [1, 2]



@pytest.mark.parametrize(("location", "expected"), [("/etc/passwd", "is absolute"),
                                                    ("../secret.bin", "leaves the model folder")],
                         ids=["absolute", "dotdot"])
def test_profile_local_refuses_onnx_when_its_external_data_escapes_the_model_folder(
        tmp_path: Path, location: str, expected: str) -> None:
    from tests.toolkit.test_export_safety import _model, _write

    (tmp_path / "secret.bin").write_bytes(b"\1" * 16)
    path = _write(tmp_path / "model", _model(location))
    line = _invoke(["profile-local", str(path), "--batch", "1", "--iterations", "1"])
    assert expected in line, line


def test_onnx_commands_refuse_a_fifo_in_one_line_without_blocking_when_given_as_the_model(
        tmp_path: Path, tiny: dict[str, Any]) -> None:
    fifo = tmp_path / "m.onnx"
    os.mkfifo(fifo)
    for args in (["profile-local", str(fifo), "--iterations", "1"], ["parity", str(tiny["checkpoint"]), str(fifo)],
                 ["quantize", str(fifo), "--precision", "fp16", "-o", str(tmp_path / "q.onnx")]):
        line = _invoke(args)
        assert "is a FIFO, not a regular file" in line, line
    ckpt_fifo = tmp_path / "c.pt"
    os.mkfifo(ckpt_fifo)
    for args in (["export", str(ckpt_fifo), "-o", str(tmp_path / "o.onnx")], ["evaluate", str(ckpt_fifo)],
                 ["profile-local", str(ckpt_fifo)]):
        line = _invoke(args)
        assert "is a FIFO, not a regular file" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "m.onnx"]


# -- quantize's calibration data: bombs, lying headers and FIFOs ----------------------------------
def _png_declaring(path: Path, width: int, height: int) -> Path:
    """A real 8x8 PNG whose IHDR (with a correct crc) declares ``width`` x ``height``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8 + 8  # signature, then length + "IHDR"
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4:ihdr + 13])))
    path.write_bytes(bytes(data))
    return path


def test_quantize_refuses_hostile_calibration_data_in_one_line_when_sizes_lie_or_files_are_not_regular(
        tmp_path: Path, tiny: dict[str, Any]) -> None:
    cases: dict[str, tuple[Path, str]] = {}
    header = tmp_path / "huge_header.npy"
    with header.open("wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (1_000_000, 1, 1000, 1000)})
        fh.write(b"\0" * 64)
    cases["npy-header-4TB"] = (header, "over the 2,147,483,648-byte budget")
    member, crc = _zeros_deflated(1 << 20)
    cases["npz-bomb-3GB"] = (_zip(tmp_path / "bomb.npz", [("input.npy", zipfile.ZIP_DEFLATED, member, 3 << 30, crc)]),
                             "over the 2,147,483,648-byte budget")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cases["npy-pickled-objects"] = (tmp_path / "objects.npy", "cannot be read as numpy")
    folder = tmp_path / "images"
    folder.mkdir()
    _png_declaring(folder / "a.png", 60000, 60000)
    cases["png-60000x60000"] = (folder, "decompression bomb")
    folder = tmp_path / "images2"
    folder.mkdir()
    _png_declaring(folder / "a.png", 8000, 8000)  # under PIL's own bomb limit, over tritonkit's
    cases["png-8000x8000"] = (folder, "8000x8000 pixels")
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "x.png").write_bytes(b"this is not an image")
    cases["png-garbage"] = (garbage, "cannot be decoded")
    fifo_dir = tmp_path / "fifo"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "x.npy")
    cases["fifo-npy"] = (fifo_dir, "is a FIFO")
    out = tmp_path / "new" / "q.onnx"
    for kind, (path, expected) in cases.items():
        line = _invoke(["quantize", str(tiny["onnx"]), "--precision", "int8", "--calibration-data", str(path),
                        "-o", str(out)])
        assert expected in line, f"{kind}: {line}"
        assert not out.parent.exists(), f"{kind}: made {out.parent}"
