"""Fixtures for the export/parity/quantize/build tests: one small digits model per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tk_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits SmallCNN trained for 3 epochs (a few seconds), ~98% test accuracy."""
    from trainers.recipes import train_digits_default

    return train_digits_default(tmp_path_factory.mktemp("tk_ckpt") / "digits.pt", epochs=3, quiet=True)


@pytest.fixture(scope="session")
def tk_onnx(tk_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoint exported with the defaults (opset 17, dynamic batch, parity checked)."""
    from toolkit.export.onnx import onnx_from_checkpoint

    return onnx_from_checkpoint(tk_checkpoint, tmp_path_factory.mktemp("tk_onnx") / "digits.onnx")
