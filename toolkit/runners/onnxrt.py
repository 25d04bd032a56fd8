"""An ONNX model in ONNX Runtime on the CPU, read through the ONNX file safety checks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from polygraphy import mod

from contract.errors import ExportError, UsageError
from contract.spec import METADATA_SPEC_KEY, ModelSpec
from toolkit.export.safety import EXTERNAL_DATA_THRESHOLD, load_onnx, model_bytes
from toolkit.runners.base import BaseRunner, Feeds, InputMetadata, failed_on, first_line, require_inputs

ort = mod.lazy_import("onnxruntime")  # loaded on first use: building a runner reads only the file

DATASET_KEY = "tritonkit.dataset"
DEFAULT_THREADS = min(2, os.cpu_count() or 1)



def graph_inputs(proto: Any) -> InputMetadata:
    """``{name: (numpy dtype, dims)}`` of the graph's real inputs (initializers excluded); a
    variable dim is its symbolic name (a str) or -1. Dtypes come from ONNX's own table."""
    initializers = {i.name for i in proto.graph.initializer}
    out: InputMetadata = {}
    for i in proto.graph.input:
        if i.name in initializers:
            continue
        t = i.type.tensor_type
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)) if t.elem_type else np.dtype(object)
        out[i.name] = (dtype, [d.dim_value if d.HasField("dim_value") else (d.dim_param or -1)
                               for d in t.shape.dim])
    return out


def dataset_metadata(raw: str | None, path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``tritonkit.dataset`` metadata as a dict; a hostile file's non-JSON or wrong shape is refused."""
    if raw is None:
        return None
    try:
        data = json.loads(raw) if len(raw) <= 1 << 20 else None
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("seed", 0), int) \
            or not isinstance(data.get("fractions", []), (list, tuple)):
        raise ExportError(f"{path}: metadata {DATASET_KEY} is not a JSON object naming a data set "
                          "(name, seed, fractions); re-export the model")
    return data


class OnnxRunner(BaseRunner):
    """ONNX Runtime (CPU) over a checked ``.onnx`` file.

    The file is read and checked when the runner is built (corrupt files and external data that
    escapes the model's folder are refused, metadata is read); the session is made on activation.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (None = ONNX Runtime's default, all cores).
    """

    def __init__(self, path: str | os.PathLike[str], *, name: str | None = None,
                 threads: int | None = DEFAULT_THREADS) -> None:
        self.path = Path(path)
        super().__init__(name or f"onnx:{self.path.name}")
        self.threads = threads
        proto = load_onnx(self.path)  # refuses corrupt files and escaping external data
        meta = {p.key: p.value for p in proto.metadata_props}
        spec_json = meta.get(METADATA_SPEC_KEY)
        try:
            self.spec = ModelSpec.from_json(spec_json, where=f"{path}: metadata {METADATA_SPEC_KEY}") \
                if spec_json else None
        except UsageError as exc:
            raise ExportError(str(exc)) from None
        self.dataset = dataset_metadata(meta.get(DATASET_KEY), path)
        # Only a model too large for one protobuf goes to ORT by path (after the check above).
        self._model: str | bytes = str(self.path) if model_bytes(proto) > EXTERNAL_DATA_THRESHOLD \
            else proto.SerializeToString()
        self._inputs = graph_inputs(proto)
        self.input_names = list(self._inputs)
        self.output_names = [o.name for o in proto.graph.output]
        self.session: Any = None

    @property
    def runtime(self) -> str:
        """``onnxruntime VERSION CPU`` for reports."""
        return f"onnxruntime {ort.__version__} CPU"

    def activate_impl(self) -> None:
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(self._model, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises several unrelated types
            raise ExportError(f"{self.path}: ONNX Runtime cannot load the model ({first_line(exc)}); "
                              "re-export it") from None

    def deactivate_impl(self) -> None:
        self.session = None

    def get_input_metadata_impl(self) -> InputMetadata:
        return dict(self._inputs)

    def infer_impl(self, feed_dict: Feeds) -> Feeds:
        require_inputs(self.name, self.input_names, feed_dict)
        try:
            res = self.session.run(self.output_names, {n: feed_dict[n] for n in self.input_names})
        except Exception as exc:  # noqa: BLE001 - ORT raises its own unrelated types
            raise failed_on(self.name, "ONNX Runtime", feed_dict, exc) from None
        return dict(zip(self.output_names, res))
