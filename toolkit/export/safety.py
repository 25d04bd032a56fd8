"""Reading and writing ONNX files safely: external data stays inside the model's folder.

An ONNX file may keep its weights in "external data" files named by a ``location`` string in each
tensor. ONNX itself follows that string, so a file from elsewhere could read ``/etc/shadow`` or
``../../secret`` into a tensor, or (on save) make us write outside the output folder. Every
tensor, including those in nested subgraphs (If/Loop/Scan bodies), is checked on read and on save:
relative, no ``..`` component, and after resolving symlinks still under the model folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

import onnx

from contract.errors import ExportError, UsageError
from contract.fileio import read_user_bytes

# protobuf cannot serialize a message over 2 GiB; keep a margin for the graph itself.
EXTERNAL_DATA_THRESHOLD = 1_800_000_000


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _graph_tensors(attr.g)
            for sub in attr.graphs:
                yield from _graph_tensors(sub)


def all_tensors(proto: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of the model, including those of nested subgraphs and function bodies."""
    yield from _graph_tensors(proto.graph)
    for func in proto.functions:
        for node in func.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                if attr.HasField("g"):
                    yield from _graph_tensors(attr.g)


def external_locations(proto: onnx.ModelProto) -> list[str]:
    """The ``location`` of every externally stored tensor (deduplicated, in order)."""
    seen: dict[str, None] = {}
    for t in all_tensors(proto):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            loc = next((e.value for e in t.external_data if e.key == "location"), "")
            seen.setdefault(loc, None)
    return list(seen)


def check_location(location: str, model_dir: str | os.PathLike[str], *, where: str = "") -> Path:
    """Return the resolved path of one external-data location, refusing any that escapes.

    Raises:
        ExportError: empty, absolute, with a ``..`` component, or resolving (symlinks) outside
        ``model_dir``.
    """
    where = where or str(model_dir)
    fix = "keep external data files beside the .onnx file (re-save with a plain file name)"
    if not location:
        raise ExportError(f"{where}: a tensor has external data without a location; {fix}")
    posix, win = PurePosixPath(location), PureWindowsPath(location)
    if posix.is_absolute() or win.is_absolute() or win.drive:
        raise ExportError(f"{where}: external data location {location!r} is absolute: refused; {fix}")
    if ".." in posix.parts or ".." in win.parts:
        raise ExportError(f"{where}: external data location {location!r} leaves the model folder: refused; {fix}")
    base = Path(model_dir).resolve()
    target = (base / location).resolve()
    if target != base and base not in target.parents:
        raise ExportError(
            f"{where}: external data location {location!r} resolves to {target} outside "
            f"{base} (symlink): refused; {fix}"
        )
    return target


def check_external_data(proto: onnx.ModelProto, model_dir: str | os.PathLike[str], *, where: str = "") -> None:
    """Refuse a model whose external data (anywhere, subgraphs included) escapes ``model_dir``."""
    for loc in external_locations(proto):
        check_location(loc, model_dir, where=where)


def load_onnx(path: str | os.PathLike[str], *, load_external_data: bool = True) -> onnx.ModelProto:
    """Load an ONNX file after checking its external data locations.

    Raises:
        ExportError: missing, corrupt or truncated file; unsafe or missing external data.
    """

    path = Path(path)
    # Regular files only: a FIFO or device never blocks the reader.
    raw = read_user_bytes(path, ExportError, missing="ONNX file not found; export one with 'tritonkit export'",
                          hint="give an .onnx file")
    try:
        proto = onnx.load_model_from_string(raw)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise ExportError(
            f"{path}: not a readable ONNX model (corrupt or truncated: {type(exc).__name__}); re-export it"
        ) from None
    if not proto.graph.node and not proto.graph.output:
        raise ExportError(f"{path}: not a readable ONNX model (empty graph, corrupt or truncated); re-export it")
    check_external_data(proto, path.parent, where=str(path))
    if load_external_data and external_locations(proto):
        try:
            onnx.external_data_helper.load_external_data_for_model(proto, str(path.parent))
        except Exception as exc:  # noqa: BLE001
            raise ExportError(
                f"{path}: external data cannot be read ({type(exc).__name__}: {exc}); "
                "copy the .data file beside the model"
            ) from None
    return proto


def ensure_writable(out: str | os.PathLike[str], *, what: str = "output", create: bool = True) -> Path:
    """Check before any work that ``out`` can be written (its folder exists or can be made).

    ``create=False`` only checks, so a later failure leaves no new folder behind.

    Raises:
        UsageError: the folder is a file, cannot be created, or is not writable.
    """
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"{what} path {out} is a folder; give a file name, e.g. {out / 'model.onnx'}")
    parent = out.parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"cannot write {what} {out}: {probe} is a file, not a folder; choose another -o")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {what} {out}: {probe} is not writable; choose another -o")
    try:  # access() says yes to root everywhere; a file made and removed is the real answer
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise UsageError(f"cannot write {what} {out}: {probe} refuses new files ({exc.strerror}); "
                         "choose another -o") from None
    if not create:
        return out
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write {what} {out}: {exc.strerror}; choose another -o") from None
    return out


def model_bytes(proto: onnx.ModelProto) -> int:
    """Approximate size of the tensors held in the proto (raw data and typed fields)."""
    total = 0
    for t in all_tensors(proto):
        total += len(t.raw_data) + 4 * (len(t.float_data) + len(t.int32_data)) + 8 * (
            len(t.int64_data) + len(t.double_data)
        )
    return total


def save_onnx(
    proto: onnx.ModelProto,
    out: str | os.PathLike[str],
    *,
    external_data: bool | None = None,
    threshold: int = EXTERNAL_DATA_THRESHOLD,
) -> Path:
    """Write ``proto`` to ``out`` atomically; weights go to ``<name>.data`` beside it when large.

    ``external_data=None`` decides by size (``threshold`` bytes, default under protobuf's 2 GiB
    limit). Everything is written in a temporary folder beside ``out`` and renamed in, data file
    first, so a reader never sees a model whose data is missing.

    Raises:
        ExportError: a tensor's existing external location escapes the output folder.
    """
    out = ensure_writable(out)
    use_external = model_bytes(proto) > threshold if external_data is None else external_data
    location = f"{out.name}.data"
    # Locations already in the proto must be safe for the destination folder too.
    check_external_data(proto, out.parent, where=str(out))
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tmp_model = tmpdir / out.name
        if use_external:
            onnx.save_model(
                proto, str(tmp_model), save_as_external_data=True, all_tensors_to_one_file=True,
                location=location, size_threshold=0 if external_data else 1024,
            )
            check_location(location, out.parent, where=str(out))
            if (tmpdir / location).exists():
                os.replace(tmpdir / location, out.parent / location)
        else:
            onnx.save_model(proto, str(tmp_model))
            (out.parent / location).unlink(missing_ok=True)  # a stale data file from an older save
        os.replace(tmp_model, out)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return out


def publish_onnx(tmp_model: Path, out: Path) -> None:
    """Rename a finished model (its ``.data`` file first) from its temporary folder into place.

    A stale ``.data`` file beside ``out`` from an older, larger save is removed.
    """
    data = tmp_model.with_name(f"{tmp_model.name}.data")
    if data.exists():
        os.replace(data, out.with_name(f"{out.name}.data"))
    else:
        out.with_name(f"{out.name}.data").unlink(missing_ok=True)
    os.replace(tmp_model, out)
