"""Reduced precision as an ONNX transformation: FP16 and INT8 (explicit Q/DQ), checked on a CPU.

Why in the ONNX and not in the TensorRT builder: TensorRT 11 removed the FP16/INT8 builder flags
and INT8 calibrators (networks are strongly typed, precision comes from the ONNX). Doing it here
also means ONNX Runtime can measure the accuracy of each precision on this CPU-only machine before
any engine is built, and the same file serves TensorRT 10, 11 and ONNX Runtime.

- FP16: ``onnxconverter_common.float16.convert_float_to_float16`` with ``keep_io_types=True`` (the
  model still takes and returns fp32, so the Triton config does not change) and numerically
  sensitive ops (reductions, exp/log/pow, softmax, normalizations) kept in fp32 through its
  ``op_block_list``. It is a small, maintained converter already in the dependencies; NVIDIA
  ModelOpt's AutoCast does the same with more policy but pulls in a large, GPU-oriented package.
- INT8: ONNX Runtime's ``quantize_static`` in QDQ format with symmetric int8 activations and
  per-channel symmetric int8 weights, calibrated (MinMax) on real training-split samples; the first
  layer (the conv reading the image) stays fp32, which removed the whole accuracy drop on digits
  (1.9 -> 0 points) at almost no cost (1 input channel). QDQ with
  zero points of 0 is exactly the explicit quantization TensorRT 10/11 consume, ONNX Runtime runs
  it on a CPU, and it ships with onnxruntime (no extra package, unlike ModelOpt).

Every output gets ``<out>.quantize.json``: precision, calibration, the held-out accuracy of the
source and the result (ONNX Runtime), the parity summary, hashes and the call.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from contract.errors import ExportError, UsageError
from contract.fileio import NotRegularFileError, open_regular, sha256_of
from contract.spec import MAX_BATCH_BYTES, ModelSpec
from toolkit.export.defaults import CALIBRATION_SAMPLES, QUANTIZE_PRECISIONS, check_calibration_samples
from toolkit.export.onnx import spec_from_onnx
from toolkit.export.parity import compare, raise_if_failed
from toolkit.export.records import write_record
from toolkit.export.safety import ensure_writable, load_onnx, publish_onnx, save_onnx
from toolkit.runners import OnnxRunner
from toolkit.runners.base import wrap_rows
from trainers.data import DEFAULT_DATASET, embedded_split, normalize

MAX_CALIBRATION_IMAGE_PIXELS = 16_777_216
"""Largest calibration image (pixels, read from its header before decoding): 4096 x 4096."""

PRECISIONS = QUANTIZE_PRECISIONS
# Kept in fp32 by the FP16 conversion: their range or accumulated error does not fit fp16.
FP16_SENSITIVE_OPS = (
    "Softmax", "LogSoftmax", "Exp", "Log", "Pow", "Sqrt", "Reciprocal", "ReduceMean", "ReduceSum",
    "ReduceSumSquare", "ReduceL2", "ReduceLogSumExp", "LayerNormalization", "InstanceNormalization",
    "GroupNormalization", "BatchNormalization", "Erf", "CumSum", "TopK", "Resize", "Range",
)


# --------------------------------------------------------------------------- calibration data
def _check_shape(x: np.ndarray, spec: ModelSpec, source: str) -> np.ndarray:
    t = spec.input
    want = tuple(t.shape)
    given = tuple(x.shape)
    if x.ndim == len(want):  # a single sample
        x = x[None]
    ok = x.ndim == len(want) + 1 and all(w < 0 or w == g for w, g in zip(want, x.shape[1:]))
    if not ok:
        shown = "(N, " + ", ".join("?" if d < 0 else str(d) for d in want) + ")"
        raise UsageError(
            f"calibration data {source} has shape {given} but input {t.name!r} expects {shown}; "
            f"give model inputs (normalized, NCHW) of that shape, or use --calibration-data {DEFAULT_DATASET}"
        )
    if x.shape[0] == 0:
        raise UsageError(f"calibration data {source} holds no samples; give at least one")
    return x.astype(t.dtype)


def _from_images(folder: Path, spec: ModelSpec) -> np.ndarray:
    """Images -> raw values over the spec's value range -> the spec's normalization."""
    from PIL import Image

    c, h, w = spec.input.shape
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    arrs = []
    for f in files:
        try:
            with os.fdopen(open_regular(f), "rb") as fh, Image.open(fh) as src:  # header only until convert()
                pixels = src.size[0] * src.size[1]
                if pixels > MAX_CALIBRATION_IMAGE_PIXELS:
                    raise UsageError(f"calibration image {f} is {src.size[0]}x{src.size[1]} pixels, over the "
                                     f"{MAX_CALIBRATION_IMAGE_PIXELS:,} allowed; resize it first")
                img = src.convert("L" if c == 1 else "RGB").resize((w, h))
        except Image.DecompressionBombError:
            raise UsageError(f"calibration image {f} declares over {MAX_CALIBRATION_IMAGE_PIXELS:,} pixels (a "
                             "decompression bomb, refused before decoding); resize it first") from None
        except (OSError, ValueError, SyntaxError, NotRegularFileError) as exc:
            raise UsageError(f"calibration image {f} cannot be decoded ({type(exc).__name__}); "
                             "give PNG/JPEG/BMP images or remove it from the folder") from None
        a = np.asarray(img, dtype=np.float32)
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        lo, hi = spec.value_range
        arrs.append(lo + a / 255.0 * (hi - lo))
    return normalize(np.stack(arrs), spec.scale, spec.mean, spec.std) if arrs else np.zeros((0, c, h, w))


def _from_arrays(path: Path) -> np.ndarray:
    """A .npy/.npz of model inputs (regular files only, so a FIFO never blocks); declared sizes are
    checked against :data:`~contract.spec.MAX_BATCH_BYTES` before anything is read into memory."""
    import zipfile

    def over(declared: int) -> UsageError:
        return UsageError(f"calibration data {path} declares {declared:,} bytes, over the {MAX_BATCH_BYTES:,}-byte "
                          "budget of one batch; give fewer samples")

    try:
        with os.fdopen(open_regular(path), "rb") as fh:
            if path.suffix == ".npz":
                with zipfile.ZipFile(fh) as zf:  # npz members may be deflated: declared sizes first
                    declared = sum(i.file_size for i in zf.infolist())
                if declared > MAX_BATCH_BYTES:
                    raise over(declared)
                fh.seek(0)
                with np.load(fh, allow_pickle=False) as z:
                    if not z.files:
                        raise UsageError(f"calibration data {path} is an empty .npz; store the inputs under 'input'")
                    return np.asarray(z[z.files[0]] if "input" not in z.files else z["input"])
            version = np.lib.format.read_magic(fh)
            readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in readers:
                raise ValueError(f"npy format version {version} is not supported here")
            shape, _, dtype = readers[version](fh)  # the header only
            declared = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if declared > MAX_BATCH_BYTES:
                raise over(declared)
            fh.seek(0)
            return np.asarray(np.load(fh, allow_pickle=False))
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, NotRegularFileError) as exc:
        raise UsageError(f"calibration data {path} cannot be read as numpy ({exc}); give .npy or .npz") from None


def load_calibration(
    source: str | os.PathLike[str], spec: ModelSpec, *, samples: int = 256, dataset: dict | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Calibration inputs, already normalized, shape (N, *input shape).

    ``source``: the embedded data set's name (the model's training split), a ``.npz``/``.npy`` file of model inputs
    (normalized NCHW; the ``input`` array of an npz, else its first), or a folder of such files
    and/or images (scaled over the spec's value range, then normalized).

    Raises:
        UsageError: unknown source, unreadable file, or wrong shape (the message gives the expected one).
    """
    if str(source) == DEFAULT_DATASET:  # the embedded data set: the model's own training split
        split = embedded_split(dataset or {"name": DEFAULT_DATASET}, "train")
        if split is None:
            raise UsageError(f"the model was trained on {(dataset or {}).get('name')!r}, not the embedded "
                             f"{DEFAULT_DATASET!r} set; give --calibration-data DIR or an .npz/.npy file")
        x = _check_shape(normalize(split.images, spec.scale, spec.mean, spec.std), spec, repr(DEFAULT_DATASET))
    else:
        path = Path(source)
        if path.is_dir():
            parts = [_from_arrays(p) for p in sorted(path.iterdir()) if p.suffix in (".npy", ".npz")]
            parts = [_check_shape(p, spec, str(path)) for p in parts]
            imgs = _from_images(path, spec) if len(spec.input.shape) == 3 else np.zeros((0,))
            if len(imgs):
                parts.append(_check_shape(imgs, spec, str(path)))
            if not parts:
                raise UsageError(f"calibration folder {path} has no .npy, .npz or image files")
            x = np.concatenate(parts)
        elif path.is_file() and path.suffix in (".npy", ".npz"):
            x = _check_shape(_from_arrays(path), spec, str(path))
        else:
            raise UsageError(
                f"calibration data {source!r} not found; use '{DEFAULT_DATASET}', a folder, or an .npz/.npy file"
            )
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))[: max(1, samples)]
    return np.ascontiguousarray(x[np.sort(idx)])


# --------------------------------------------------------------------------- conversions
def quantize_fp16(src: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """FP16 weights and compute, fp32 inputs/outputs and sensitive ops; written to ``out``."""
    from onnxconverter_common import float16

    proto = load_onnx(src)
    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(FP16_SENSITIVE_OPS))
    converted = float16.convert_float_to_float16(proto, keep_io_types=True, op_block_list=block,
                                                 disable_shape_infer=False)
    return save_onnx(converted, out)


class _Reader:
    """ONNX Runtime CalibrationDataReader over an array, in batches.

    ``fixed``: the model's fixed batch size; every chunk then has exactly that many rows (the
    last one padded by repeating samples, which leaves MinMax ranges unchanged)."""

    def __init__(self, name: str, x: np.ndarray, batch: int = 32, fixed: int | None = None):
        if fixed:
            batch = fixed
            x = wrap_rows(x, -(-len(x) // fixed) * fixed)
        self._it: Iterator[dict[str, np.ndarray]] = iter(
            [{name: x[i:i + batch]} for i in range(0, len(x), batch)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:  # pragma: no cover - not used by MinMax
        pass


def first_layers(proto: Any) -> list[str]:
    """Names of the compute nodes (Conv/Gemm/MatMul) that read a graph input directly.

    They see the raw input distribution and have few channels, so INT8 hurts them most and saves
    least: on the digits model quantizing the first conv cost 1.9 points, keeping it fp32 cost 0.
    """
    inputs = {i.name for i in proto.graph.input} - {i.name for i in proto.graph.initializer}
    return [n.name for n in proto.graph.node
            if n.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") and inputs & set(n.input) and n.name]


def quantize_int8(
    src: str | os.PathLike[str], out: str | os.PathLike[str], calibration: np.ndarray, *,
    keep_fp32: list[str] | None = None, fixed_batch: int | None = None,
) -> Path:
    """Explicit Q/DQ INT8 (symmetric, per-channel weights) calibrated on ``calibration``.

    ``keep_fp32``: node names left unquantized; None = :func:`first_layers`.
    ``fixed_batch``: the model's fixed batch size (calibration runs in chunks of it).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    src_proto = load_onnx(src)
    name = src_proto.graph.input[0].name
    reader = type("Reader", (_Reader, CalibrationDataReader), {})(name, calibration, fixed=fixed_batch)
    work = Path(tempfile.mkdtemp(prefix=".quantize.", dir=Path(out).parent))
    try:
        onnx.save_model(src_proto, str(work / "src.onnx"))
        # ORT logs a "consider pre-processing" hint on the root logger; the graph is already
        # cleaned and folded by the export, so the hint does not apply.
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            quantize_static(
                str(work / "src.onnx"), str(work / "q.onnx"), reader, quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=first_layers(src_proto) if keep_fp32 is None else keep_fp32,
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
            )
        finally:
            root.setLevel(level)
        q = onnx.load(str(work / "q.onnx"))
        del q.metadata_props[:]
        q.metadata_props.extend(src_proto.metadata_props)
        return save_onnx(q, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _set_meta(path: Path, extra: dict[str, str]) -> None:
    proto = load_onnx(path)
    keep = [p for p in proto.metadata_props if p.key not in extra]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for k, v in extra.items():
        entry: onnx.StringStringEntryProto = proto.metadata_props.add()
        entry.key, entry.value = k, v
    save_onnx(proto, path)


def onnx_precision(path_or_proto: Any) -> str:
    """What precision an ONNX carries: ``int8`` (Q/DQ nodes), ``fp16`` (fp16 weights) or ``fp32``."""
    proto = path_or_proto if isinstance(path_or_proto, onnx.ModelProto) else load_onnx(path_or_proto)
    ops = {n.op_type for n in proto.graph.node}
    if {"QuantizeLinear", "DequantizeLinear"} & ops:
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer):
        return "fp16"
    return "fp32"


def quantize_onnx(
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    precision: str,
    calibration: str | os.PathLike[str] | np.ndarray = DEFAULT_DATASET,
    calibration_samples: int = CALIBRATION_SAMPLES,
    check: bool = True,
    command: list[str] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Write a ``precision`` version of ``model`` to ``out`` and its record; return both.

    The result is compared with the source on the held-out set with the precision's parity preset
    (fp16: element-wise 1e-2; int8: top-1 agreement and accuracy drop). With ``check`` a failure
    raises :class:`toolkit.export.parity.ParityError` and nothing is written.

    Raises:
        UsageError: unknown precision, bad calibration data, unwritable output.
        ExportError: unreadable model.
    """

    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    t0 = time.perf_counter()
    check_calibration_samples(calibration_samples)
    out = ensure_writable(Path(out), create=False)  # the folder is made only once the inputs are accepted
    src = OnnxRunner(model)  # refuses missing/corrupt/unsafe models first
    spec = spec_from_onnx(model)
    cal_info: dict[str, Any] | None = None
    warnings: list[str] = []
    if precision == "int8":
        if isinstance(calibration, np.ndarray):
            x, cal_name = _check_shape(calibration, spec, "array"), "array"
        else:
            x = load_calibration(calibration, spec, samples=calibration_samples, dataset=src.dataset)
            cal_name = str(calibration)
            if len(x) < calibration_samples:
                warnings.append(f"calibration data {cal_name} holds {len(x)} samples, fewer than the "
                                f"{calibration_samples} asked; calibrated on {len(x)} (give more data or a lower "
                                "--calibration-samples)")
        cal_info = {"source": cal_name, "samples": int(len(x)), "method": "MinMax",
                    "split": "train" if cal_name == DEFAULT_DATASET else None,
                    "nodes_kept_fp32": first_layers(load_onnx(model, load_external_data=False))}
    out = ensure_writable(out)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tmp = work / out.name
        if precision == "fp16":
            quantize_fp16(model, tmp)
        else:
            quantize_int8(model, tmp, x, fixed_batch=src.fixed_batch())
        _set_meta(tmp, {"tritonkit.precision": precision})
        report = compare(src, OnnxRunner(tmp), precision=precision, spec=spec)
        if check:
            raise_if_failed(report, what=f"{precision} quantization check")
        record = {
            "call": (f"toolkit.export.precision.quantize_onnx({str(model)!r}, {str(out)!r}, precision={precision!r}, "
                     f"calibration={str(calibration) if not isinstance(calibration, np.ndarray) else 'array'!r}, "
                     f"calibration_samples={calibration_samples}, check={check})"),
            "command": shlex.join(command) if command else None,
            "precision": precision,
            "source": str(model),
            "source_sha256": sha256_of(model),
            "calibration": cal_info,
            "fp16_ops_kept_fp32": list(FP16_SENSITIVE_OPS) if precision == "fp16" else None,
            "accuracy": {"fp32": report.accuracy_a, precision: report.accuracy_b},
            "accuracy_drop_points": None if report.accuracy_drop is None else round(100 * report.accuracy_drop, 3),
            "evaluated_on": "held-out test split (ONNX Runtime, CPU)" if report.accuracy_a is not None else None,
            "parity": {"passed": report.passed, "failures": report.failures, "summary": report.summary()},
            "warnings": warnings,
            "seconds": None,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        publish_onnx(tmp, out)
        record["sha256"] = sha256_of(out)
        record["seconds"] = round(time.perf_counter() - t0, 3)
        write_record(out, "quantize", record)
    except ExportError:
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out, record
