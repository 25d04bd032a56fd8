"""The export stage's defaults and choices, in a module without heavy imports.

The CLI's options name these values instead of copying them as literals, and ``tritonkit
--help`` stays fast (the stage modules import torch and onnx).
"""

from __future__ import annotations

from contract.errors import UsageError

DEFAULT_OPSET = 17  # parsed by ONNX Runtime >= 1.14 and TensorRT 10.x/11.x (opsets 9-20+)
MIN_OPSET = 9
MAX_OPSET = 20  # the TorchScript exporter's maximum, and TensorRT 10.0's

# Batch sizes: parity's cases (1, opt, max) and a plan's optimization profile (min, opt, max).
MIN_BATCH = 1
OPT_BATCH = 8
MAX_BATCH = 32

PARITY_PRECISIONS = ("fp32", "fp16", "int8")  # tolerance presets
QUANTIZE_PRECISIONS = ("fp16", "int8")  # what an fp32 ONNX can be converted to
PLAN_PRECISIONS = ("auto", "fp32", "fp16", "int8")  # auto: what the ONNX carries
HARDWARE_COMPAT = ("none", "ampere_plus", "same_compute_capability")
CALIBRATION_SAMPLES = 256


def check_calibration_samples(samples: int) -> int:
    """INT8 calibration needs at least one sample; refused before any model or data is read."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise UsageError(f"--calibration-samples {samples!r} must be 1 or more (default {CALIBRATION_SAMPLES}); "
                         "MinMax calibration needs samples to measure ranges on")
    return samples


def check_static_batch(dynamic_batch: bool, batch: int | None) -> int | None:
    """The fixed batch size of a static export (1 unless given); None for a dynamic one.

    A batch size only means something for a static export, so asking for one with a dynamic batch
    is refused rather than silently traced at another size."""
    if dynamic_batch:
        if batch is not None:
            raise UsageError(f"batch {batch} fixes the batch size but the export has a dynamic batch; add --static "
                             "(dynamic_batch=False), or drop --batch")
        return None
    if batch is None:
        return 1
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise UsageError(f"batch {batch!r} is not a batch size; give --static --batch N with N >= 1")
    return batch
