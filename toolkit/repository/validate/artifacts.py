"""What the model file itself says about its tensors: the ONNX graph or the TensorRT plan record.

A TensorRT plan cannot be read without TensorRT and a GPU, so tritonkit's export helper writes a
*plan record* (JSON) beside it. The linter reads these keys, and nothing else, from it:

``tensorrt_version``  str, the TensorRT that built the plan ("10.4.0.26"); compared with the target
                      Triton release's TensorRT on major.minor.patch.
``version_compatible`` bool, optional; true = built version-compatible (mismatch becomes a warning).
``profiles``          list, one entry per optimization profile, each ``{tensor: {"min": [..],
                      "opt": [..], "max": [..]}}`` with FULL shapes (batch dimension first).
                      The plan's usable max batch = smallest ``max[0]`` over the inputs of profile 0
                      (what Triton's TensorRT backend uses).
``max_batch_size``    int, optional; used when ``profiles`` says nothing about the batch.
``inputs``/``outputs`` list of ``{name, dtype, shape}``; dtype may be numpy ("float32"), Triton
                      ("TYPE_FP32" or "FP32") or TensorRT ("FLOAT", "HALF") spelling; shape may include
                      the batch dimension or not (decided from the profile's rank, else from the
                      config's dims).
``compute_capability`` str, optional ("8.6"); checked against the ``cc_model_filenames`` key.
``sha256``            str, optional; hex digest of the plan file, to catch a record for another plan.

Where the record is found, first match wins: ``<version>/<plan file>.json`` (e.g.
``1/model.plan.json``), then ``<version>/manifest.json`` key ``plan_records`` (a map from plan file
name to record) or ``plan_record`` (one record).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.errors import UsageError
from toolkit.dtypes import config_from_numpy, config_from_onnx, config_from_wire
from toolkit.repository.validate import fs

# Names numpy and the Triton wire lack: TensorRT's DataType names (float, half, bf16) and bfloat16.
_TENSORRT_DTYPES = {"float": "TYPE_FP32", "half": "TYPE_FP16", "bf16": "TYPE_BF16", "bfloat16": "TYPE_BF16"}

MAX_ONNX_BYTES = 2 * 1024**3
MAX_HASH_BYTES = 512 * 1024**2


@dataclass
class Tensor:
    """A tensor as the model file declares it: full shape (batch first when it has one)."""

    name: str
    dtype: str | None  # Triton TYPE_* name, None when unknown
    shape: tuple[int, ...] | None  # -1 = dynamic; None = rank unknown
    shape_has_batch: bool | None = True  # False: record shape excludes batch; None: undecided


@dataclass
class Artifact:
    """Inputs/outputs of one model file, plus plan facts when it is a plan."""

    source: str  # file the facts came from, relative to the model folder
    inputs: list[Tensor]
    outputs: list[Tensor]
    plan_max_batch: int | None = None
    profile_count: int = 0
    record: dict[str, Any] | None = None
    overridable: list[Tensor] = field(default_factory=list)  # ONNX initializers a request may override


def record_dtype(value: object) -> str | None:
    s = str(value).strip()
    if s.startswith("TYPE_"):
        return s
    s = s.removeprefix("DataType.").lower()
    if s in _TENSORRT_DTYPES:
        return _TENSORRT_DTYPES[s]
    for convert, name in ((config_from_numpy, "bytes" if s == "object" else s), (config_from_wire, s.upper())):
        try:
            return convert(name)
        except (UsageError, TypeError):
            continue
    return None


def read_onnx(path: Path, rel: str) -> tuple[Artifact | None, list[str], Any]:
    """(artifact, reasons it is unusable, the ModelProto) for an ONNX file; never raises."""
    if fs.size(path) > MAX_ONNX_BYTES:
        return None, ["is larger than 2 GiB, which a single ONNX protobuf cannot be"], None
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any parser failure is the file's problem
        return None, [f"does not parse as ONNX ({exc.__class__.__name__}: {str(exc)[:120]})"], None
    if not model.ir_version or not model.HasField("graph"):
        return None, ["is not an ONNX model (no ir_version or no graph)"], None
    why = _runtime_problem(model, path)
    if why:
        return None, [why], model
    graph = model.graph
    init_names = {i.name for i in graph.initializer}

    def tensor(vi: Any) -> Tensor:
        tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        dtype = config_from_onnx(tt.elem_type) if tt is not None else None
        shape: tuple[int, ...] | None = None
        if tt is not None and tt.HasField("shape"):
            shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tt.shape.dim)
        return Tensor(vi.name, dtype, shape)

    inputs = [tensor(v) for v in graph.input if v.name not in init_names]
    outputs = [tensor(v) for v in graph.output]
    if not outputs:
        return None, ["holds a graph without outputs"], model
    overridable = [tensor(v) for v in graph.input if v.name in init_names] if model.ir_version >= 4 else []
    return Artifact(rel, inputs, outputs, overridable=overridable), [], model


_RUNTIME_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "ai.onnx.preview.training"}


def _runtime_problem(model: Any, path: Path) -> str | None:
    """Why ONNX Runtime (and so Triton) could not load the graph: checker failures (cycles, unknown
    ops, unsupported opsets, bad IR) and ops in no domain ONNX Runtime ships. None when fine."""
    import onnx

    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and imp.version > onnx.defs.onnx_opset_version():
            return (f"imports opset {imp.version}, above the newest this ONNX knows "
                    f"({onnx.defs.onnx_opset_version()}); ONNX Runtime cannot load it")
    for node in model.graph.node:
        if node.domain not in _RUNTIME_DOMAINS:
            return (f"node {node.name or node.op_type!r} uses op {node.op_type!r} from custom domain "
                    f"{node.domain!r}, which needs a custom-op library ONNX Runtime does not ship")
        if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type):
            return f"node {node.name or node.op_type!r} uses unknown op {node.op_type!r}"
    try:  # by path when tensors live in external files, so they are looked up beside the model
        onnx.checker.check_model(str(path) if external_data_locations(model) else model)
    except Exception as exc:  # noqa: BLE001 - ValidationError and friends: the file's fault
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        return f"fails onnx.checker ({first[:160]})"
    return None


def external_data_locations(model: Any) -> list[str]:
    """Locations named by tensors stored as external data (initializers, also in subgraphs' top)."""
    locs: list[str] = []
    try:
        for init in model.graph.initializer:
            if init.data_location == 1:  # TensorProto.EXTERNAL
                for entry in init.external_data:
                    if entry.key == "location":
                        locs.append(entry.value)
    except Exception:  # noqa: BLE001
        pass
    return sorted(set(locs))


def find_plan_record(plan: Path, version_dir: Path, model_dir: Path) -> tuple[dict | None, str, str | None]:
    """(record, where it came from, why it is unusable). (None, "", None) when there is none."""
    beside = plan.with_name(plan.name + ".json")
    rel_beside = _rel(beside, model_dir)
    if fs.kind(beside) != "missing":
        text, why = fs.read_text(beside, 8 * 1024 * 1024)
        if text is None:
            return None, rel_beside, why
        return _as_record(text, rel_beside)
    manifest = version_dir / "manifest.json"
    if fs.kind(manifest) == "file":
        rel_manifest = _rel(manifest, model_dir)
        text, why = fs.read_text(manifest, 32 * 1024 * 1024)
        if text is None:
            return None, rel_manifest, why
        try:
            data = json.loads(text)
        except ValueError as exc:
            return None, rel_manifest, f"is not JSON ({exc})"
        if isinstance(data, dict):
            records = data.get("plan_records")
            if isinstance(records, dict) and isinstance(records.get(plan.name), dict):
                return records[plan.name], rel_manifest, None
            if isinstance(data.get("plan_record"), dict):
                return data["plan_record"], rel_manifest, None
    return None, "", None


def _rel(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.name


def _as_record(text: str, where: str) -> tuple[dict | None, str, str | None]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        return None, where, f"is not JSON ({exc})"
    if not isinstance(data, dict):
        return None, where, "is not a JSON object"
    return data, where, None


def _int_list(value: object) -> list[int] | None:
    if not isinstance(value, (list, tuple)):
        return None
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int):
            return None
        out.append(v)
    return out


def plan_artifact(record: dict, where: str) -> tuple[Artifact, list[str]]:
    """Artifact from a plan record, plus notes on keys that are malformed (never raises)."""
    notes: list[str] = []
    profiles = record.get("profiles")
    ranks: dict[str, int] = {}
    batch_maxes: list[int] = []
    count = 0
    if profiles is not None:
        if not isinstance(profiles, list) or not all(isinstance(p, dict) for p in profiles):
            notes.append("'profiles' is not a list of {tensor: {min, opt, max}}")
        else:
            count = len(profiles)
            for i, prof in enumerate(profiles):
                for tname, rng in prof.items():
                    mx = _int_list(rng.get("max")) if isinstance(rng, dict) else None
                    mn = _int_list(rng.get("min")) if isinstance(rng, dict) else None
                    if mx is None or mn is None or len(mx) != len(mn):
                        notes.append(f"profile {i} entry {tname!r} lacks equal-length int lists min/max")
                        continue
                    ranks.setdefault(str(tname), len(mx))
                    if i == 0 and mx:
                        batch_maxes.append(mx[0])
    plan_max = min(batch_maxes) if batch_maxes else None
    if plan_max is None:
        mbs = record.get("max_batch_size")
        if isinstance(mbs, int) and not isinstance(mbs, bool):
            plan_max = mbs

    def tensors(key: str) -> list[Tensor]:
        out: list[Tensor] = []
        items = record.get(key)
        if items is None:
            return out
        if not isinstance(items, list):
            notes.append(f"'{key}' is not a list of {{name, dtype, shape}}")
            return out
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                notes.append(f"an entry of '{key}' has no name")
                continue
            shape = _int_list(item.get("shape"))
            name = item["name"]
            has_batch: bool | None = None
            if shape is not None and name in ranks:
                has_batch = len(shape) == ranks[name]
            dtype = record_dtype(item["dtype"]) if "dtype" in item else None
            out.append(Tensor(name, dtype, tuple(shape) if shape is not None else None, has_batch))
        return out

    art = Artifact(where, tensors("inputs"), tensors("outputs"), plan_max, count, record)
    return art, notes
