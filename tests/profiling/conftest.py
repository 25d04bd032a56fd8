"""Helpers for the profiling tests: run the real CLI in a subprocess; short measurement settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Short windows and a wide stability band: the tests check behaviour, not figures, on 2 busy cores.
FAST = ["--measurement-ms", "300", "--stability-pct", "100"]


def tk(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real ``tritonkit ARGS`` from the project root."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(Path(sys.executable).parent / "tritonkit"), *args], capture_output=True, text=True,
                          cwd=ROOT, env=full_env, timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line a failed command must print (no traceback)."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.fixture(scope="session")
def dynamic_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CNN exported with variable height and width (no fixed shape to profile at)."""
    import torch

    from contract.spec import ModelSpec, TensorSpec
    from toolkit.export.onnx import onnx_from_module
    from trainers.models import create_model

    torch.manual_seed(0)
    model = create_model("smallcnn", num_classes=10, in_channels=1, width=8)
    spec = ModelSpec(inputs=(TensorSpec("input", (1, 8, 8)),), outputs=(TensorSpec("logits", (10,)),))
    out = tmp_path_factory.mktemp("dyn") / "dyn.onnx"
    return onnx_from_module(model, spec, out, dynamic_hw=True, check_parity=False)
