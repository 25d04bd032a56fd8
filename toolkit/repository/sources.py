"""What a publish reads from its inputs: the ONNX graph's tensors, external data, plan records.

Every input is checked before anything is staged (a regular, non-empty file; external data that
stays beside the model; a plan record that names its tensors), so a bad input never reaches the
repository.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from contract.errors import ExportError, RepositoryError
from contract.fileio import read_regular_text
from contract.spec import METADATA_SPEC_KEY, ModelSpec, TensorSpec
from toolkit.repository.storage import lstat


def fixed_batch_of(path: Path) -> int | None:
    """N when every graph input's first dim is the same fixed N (an export with ``--static``), else None."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - spec_from_onnx_graph names the problem in one line
        return None
    initializers = {i.name for i in proto.graph.initializer}
    firsts = set()
    for v in proto.graph.input:
        if v.name in initializers:
            continue
        dims = v.type.tensor_type.shape.dim
        firsts.add(dims[0].dim_value if dims and dims[0].HasField("dim_value") else None)
    return firsts.pop() if len(firsts) == 1 and None not in firsts and 0 not in firsts else None


def spec_from_onnx_graph(path: Path, labels: tuple[str, ...] = (), *, batched: bool = True) -> ModelSpec:
    """Inputs/outputs read from the ONNX graph itself (dims without batch, -1 for dynamic).

    ``batched=False`` (a config with ``max_batch_size: 0``) keeps every dim: Triton then passes the
    full shape, so dropping the first one would publish a config Triton refuses.
    """
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001
        raise RepositoryError(f"{path}: not a readable ONNX model ({type(exc).__name__}); re-export it") from None
    initializers = {i.name for i in proto.graph.initializer}

    def tensors(values: Any) -> tuple[TensorSpec, ...]:
        out = []
        for v in values:
            if v.name in initializers:
                continue
            tt = v.type.tensor_type
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
            if not dims:
                raise RepositoryError(f"{path}: tensor {v.name!r} has no shape; re-export with shapes")
            shape = tuple(dims[1:] if batched else dims)
            out.append(TensorSpec(v.name, shape, "object" if dtype == "object" else dtype))
        return tuple(out)

    meta = {p.key: p.value for p in proto.metadata_props}
    base = (ModelSpec.from_json(meta[METADATA_SPEC_KEY], where=f"{path} ({METADATA_SPEC_KEY} metadata)")
            if METADATA_SPEC_KEY in meta else None)
    return ModelSpec(
        inputs=tensors(proto.graph.input),
        outputs=tensors(proto.graph.output),
        layout=base.layout if base else "NCHW",
        mean=base.mean if base else (),
        std=base.std if base else (),
        scale=base.scale if base else 1.0,
        value_range=base.value_range if base else (0.0, 1.0),
        labels=labels or (base.labels if base else ()),
    )


def external_data_files(onnx_path: Path) -> dict[str, Path]:
    """External data files the model needs, published beside it; a location escaping the model's
    folder (absolute, ``..``, symlink), in any subgraph, is refused before anything is written."""
    import onnx

    from toolkit.export.safety import check_location, external_locations  # imports onnx: lazy for --help

    proto = onnx.load(str(onnx_path), load_external_data=False)
    out: dict[str, Path] = {}
    for loc in external_locations(proto):
        try:
            src = check_location(loc, onnx_path.parent, where=str(onnx_path))
        except ExportError as exc:
            raise RepositoryError(str(exc)) from None
        if not src.is_file():
            raise RepositoryError(f"{onnx_path}: external data file {loc!r} is missing; copy it beside the model")
        out[loc] = onnx_path.parent / loc
    return out


def check_source(path: Path, what: str, fix: str) -> None:
    """A file to publish must be a non-empty regular file (a FIFO would hang the copy)."""
    st = lstat(path)
    if st is None:
        raise RepositoryError(f"{path}: {what} does not exist; {fix}")
    try:
        st = os.stat(path)
    except OSError as exc:
        raise RepositoryError(f"{path}: {what} cannot be read ({exc.strerror}); {fix}") from None
    if not stat.S_ISREG(st.st_mode):
        raise RepositoryError(f"{path}: {what} is not a regular file (a FIFO, device or folder); {fix}")
    if st.st_size == 0:
        raise RepositoryError(f"{path}: {what} is empty; {fix}")


def read_plan_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON record written beside a TensorRT plan (profiles, versions, I/O, sha256)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise RepositoryError(f"{path}: cannot read the plan record ({exc}); rebuild with 'tritonkit build'") from None
    if not isinstance(record, dict):
        raise RepositoryError(f"{path}: a plan record is a JSON object; rebuild with 'tritonkit build'")
    for key in ("inputs", "outputs", "max_batch_size", "tensorrt_version"):
        if key not in record:
            raise RepositoryError(f"{path}: plan record lacks {key!r}; rebuild with 'tritonkit build'")
    try:
        int(record["max_batch_size"])
        for t in [*record["inputs"], *record["outputs"]]:
            TensorSpec(str(t["name"]), tuple(int(d) for d in t["shape"]), str(t["dtype"]))
    except (TypeError, ValueError, KeyError) as exc:
        raise RepositoryError(f"{path}: plan record has malformed max_batch_size or tensors ({exc}); "
                              "rebuild with 'tritonkit build'") from None
    return record




MAX_LABELS_BYTES = 64 * 1024 * 1024


def read_labels_file(path: str | os.PathLike[str]) -> list[str]:
    """Labels from a text file, one per line (blank lines dropped); RepositoryError (one line) otherwise."""
    try:
        text = read_regular_text(path, limit=MAX_LABELS_BYTES)
    except FileNotFoundError:
        raise RepositoryError(f"{path}: labels file does not exist; give one label per line") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RepositoryError(f"{path}: cannot read labels ({exc}); give a UTF-8 text file, "
                              "one label per line") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip()]
