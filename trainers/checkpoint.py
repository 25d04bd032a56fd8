"""The checkpoint: the one contract between training and deployment.

A checkpoint is a single file written by :func:`save_checkpoint` with ``torch.save`` over plain
containers (dicts, lists, str, int, float, bool, None and tensors) and read by
:func:`load_checkpoint` with ``torch.load(weights_only=True)``, after a scan of the pickle that
refuses any global outside torch's tensor rebuilders (and any pickle torch might read other than
the one scanned). The scan is a first line that names what is wrong; ``weights_only=True`` stays
the guarantee that nothing in the file runs.

Keys (``format_version`` 1):

``format_version``   int, 1. Readers refuse other values.
``kind``             "tritonkit.checkpoint", to tell it from other ``.pt`` files.
``architecture``     {"name": registry name, "kwargs": constructor arguments}: the model is
                     rebuilt from the file alone with ``trainers.models.create_model``.
``model_spec``       :class:`contract.spec.ModelSpec` as a dict: input/output tensor names, shapes
                     without batch, dtypes, layout, per-channel mean/std, scale, value range, labels.
``labels``           list[str], class labels, index i = class i (also inside ``model_spec``).
``model_state``      the model's ``state_dict``.
``metrics``          dict[str, float] at save time (e.g. val_loss, val_accuracy, test_accuracy).
``epoch``, ``step``  int, completed epochs and optimizer steps.
``dataset``          {"name": ..., plus the arguments that rebuild the same split}.
``optimizer_state``  optimizer ``state_dict`` or None.
``scheduler_state``  scheduler ``state_dict`` or None.
``callbacks_state``  {callback state key: state dict}; the key is the class name plus the settings
                     that tell instances apart, e.g. ``ModelCheckpoint{'monitor': 'val_loss', 'mode':
                     'min', 'dir': 'checkpoints'}`` (files written before that used the bare class name,
                     which a resume still reads for the one instance of that class).
``rng_state``        {"torch": ByteTensor, "numpy": [name, keys (624 ints), pos, has_gauss,
                     cached_gaussian], "python": [version, state (625 ints), gauss_next]} or None:
                     plain tensors, lists and numbers so a weights-only load accepts them.
``config``           dict, the training configuration (free-form, JSON-serializable).
``created``          ISO-8601 UTC time of the save.
``history``          optional, list[dict[str, float]]: the per-epoch metrics logged so far
                     (written by ``trainers.trainer.Trainer``; ``metrics.jsonl`` is rewritten from it on resume).
``resume``           optional, where a Trainer stopped inside an epoch: {"batch_in_epoch": batches
                     done in the unfinished epoch (0 at an epoch boundary), "epoch_loss_sum",
                     "epoch_samples": the running train-loss sums of that epoch, "seed": the
                     batch-order seed, "max_epochs": the epochs the run was asked for}.

A checkpoint written by the Trainer (``checkpoints/last.pt`` and ``best-*.pt`` in a run folder)
holds all of the keys above; ``fit(..., resume=path)`` continues from any of them.
"""

from __future__ import annotations

import io
import os
import pickletools
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from contract.errors import CheckpointError, UsageError
from contract.fileio import (  # noqa: F401 - sha256_of is part of this module's API
    atomic_write_bytes,
    read_user_bytes,
    sha256_of,
)
from contract.spec import ModelSpec
from trainers.models import create_model

FORMAT_VERSION = 1
KIND = "tritonkit.checkpoint"
REQUIRED_KEYS = ("format_version", "kind", "architecture", "model_spec", "model_state")

# Globals a plain-container torch checkpoint may name; anything else is refused unread.
_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch", "Size"),
    ("torch", "device"),
    ("torch", "dtype"),
} | {
    ("torch", name)
    for name in (
        "FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage", "LongStorage",
        "IntStorage", "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage",
        "float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8",
        "uint8", "bool",
    )
}


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Validate the keys and write the checkpoint atomically. Returns the path."""
    payload = dict(payload)
    payload.setdefault("format_version", FORMAT_VERSION)
    payload.setdefault("kind", KIND)
    payload.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"checkpoint for {path}: missing keys {missing}; this is a bug")
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


_STRING_OPS = ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "SHORT_BINSTRING", "BINSTRING",
               "STRING")
_MEMO_OPS = ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT")


# Size limits checked from the zip central directory before anything is decompressed. torch.save
# stores every member uncompressed and keeps tensor bytes in their own members, so the pickle is
# small (17 KB for an 8x8 SmallCNN with its optimizer state; about 0.2 MB for a ResNet-50
# training checkpoint) and the members add up to about the file's size.
MAX_PICKLE_BYTES = 32 << 20
"""Largest ``data.pkl`` (uncompressed, as declared) a checkpoint may hold."""
MAX_EXPANSION = 16
"""The members may declare at most this many times the file's size (plus 1 MiB) uncompressed."""
MAX_PICKLE_OPCODES = 200_000
"""Most pickle opcodes scanned (an 8x8 SmallCNN checkpoint has about 4,000; a ResNet with 218 tensors and
its AdamW state about 18,000), so a pickle of tiny opcodes cannot make the scan run for minutes."""
_EXPANSION_SLACK = 1 << 20
_MAX_MEMBERS = 1 << 20


def _data_pickle(zf: zipfile.ZipFile, archive_bytes: int) -> zipfile.ZipInfo | str:
    """The one pickle torch.load reads (``<archive>/data.pkl``), or why it is refused.

    torch takes the archive name from the first entry; a second ``.pkl``, a duplicate name or a
    data.pkl elsewhere could make this scan and torch read different bytes, so they are refused.
    Sizes come from the central directory (what zipfile and torch's reader both trust), so a
    decompression bomb is refused before a byte of it is inflated.
    """
    infos = zf.infolist()
    names = [i.filename for i in infos]
    if not names or len(names) != len(set(names)) or len(names) > _MAX_MEMBERS:
        return "<not exactly one <archive>/data.pkl>"
    prefix = names[0].split("/", 1)[0]
    pickles = [i for i in infos if i.filename.endswith(".pkl")]
    if [i.filename for i in pickles] != [f"{prefix}/data.pkl"]:
        return "<not exactly one <archive>/data.pkl>"
    info = pickles[0]
    if info.file_size > MAX_PICKLE_BYTES:
        return (f"its pickle {info.filename} declares {info.file_size} bytes uncompressed, over the "
                f"{MAX_PICKLE_BYTES >> 20} MiB limit (a real checkpoint's pickle is a few KB to a few MB)")
    declared = sum(i.file_size for i in infos)
    if declared > MAX_EXPANSION * archive_bytes + _EXPANSION_SLACK:
        return (f"its members declare {declared} bytes uncompressed from a {archive_bytes}-byte file "
                f"(over {MAX_EXPANSION}x; torch stores checkpoints uncompressed): a decompression bomb")
    return info


def _unsafe_globals(raw: bytes) -> list[str]:
    """Globals (and code-running opcodes) in the checkpoint's pickle that are not allowed.

    The pickle is read as a stream (``pickletools.genops`` over the zip member, never the whole
    member in memory at once beyond one opcode's argument), after the size limits of
    :func:`_data_pickle`. ``STACK_GLOBAL`` is accepted only when its module and name are string
    literals pushed right before it: names fetched from the memo could differ from what a literal
    scan sees.

    Raises:
        CheckpointError: the archive's declared sizes are over the limits (``_SizeRefused``).
    """
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        info = _data_pickle(zf, len(raw))
        if isinstance(info, str):
            if info.startswith("<"):
                return [info]
            raise _SizeRefused(info)
        with zf.open(info) as stream:
            return _scan_stream(stream)


class _SizeRefused(Exception):
    """The archive's declared sizes are over the limits (internal: becomes a CheckpointError)."""


def _scan_stream(stream: Any) -> list[str]:
    bad: list[str] = []
    recent: list[tuple[str, Any]] = []  # last opcodes, memo writes skipped
    for count, (opcode, arg, _) in enumerate(pickletools.genops(stream)):
        if count >= MAX_PICKLE_OPCODES:
            raise _SizeRefused(f"its pickle has more than {MAX_PICKLE_OPCODES:,} opcodes (a tritonkit "
                               "checkpoint has a few thousand)")
        name = opcode.name
        if name == "GLOBAL":
            module, attr = arg.split(" ", 1)
            if (module, attr) not in _ALLOWED_GLOBALS:
                bad.append(f"{module}.{attr}")
        elif name == "STACK_GLOBAL":
            if len(recent) >= 2 and recent[-1][0] in _STRING_OPS and recent[-2][0] in _STRING_OPS:
                module, attr = str(recent[-2][1]), str(recent[-1][1])
                if (module, attr) not in _ALLOWED_GLOBALS:
                    bad.append(f"{module}.{attr}")
            else:
                bad.append("STACK_GLOBAL with names from the memo")
        elif name in ("INST", "OBJ", "EXT1", "EXT2", "EXT4"):
            bad.append(f"opcode {name}")
        if name not in _MEMO_OPS:
            # Only strings are needed later: other arguments are not kept (bounded memory).
            recent = [*recent[-1:], (name, arg if name in _STRING_OPS else None)]
        if len(bad) > 16:
            break
    return bad


def _looks_like_onnx(raw: bytes) -> bool:
    """An ONNX ModelProto (protobuf: ir_version first, a graph inside), to say so in the error."""
    if raw[:1] != b"\x08":
        return False
    try:
        import onnx

        proto = onnx.ModelProto()
        proto.ParseFromString(raw)
    except Exception:  # noqa: BLE001 - anything unparsable is simply not ONNX
        return False
    return proto.HasField("graph") and bool(proto.graph.node or proto.graph.input)


def _type_name(value: Any) -> str:
    return {str: "a string", int: "an integer", float: "a float", bool: "a boolean", list: "a list",
            tuple: "a tuple", dict: "a dict", type(None): "null"}.get(type(value), type(value).__name__)


def _check_structure(path: Path, payload: dict[str, Any]) -> None:
    """The keys every reader relies on have the types the format documents, before any is used.

    A hostile or damaged file otherwise reaches the model constructor with a string for a dict
    or a list for a state_dict and fails deep inside torch with a traceback.
    """
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{path}: checkpoint is malformed: {what}; re-save it with tritonkit")

    arch = payload["architecture"]
    if not isinstance(arch, dict):
        raise bad(f"'architecture' is {_type_name(arch)}, expected a dict {{'name': ..., 'kwargs': {{...}}}}")
    if not isinstance(arch.get("name"), str) or not arch["name"]:
        raise bad(f"'architecture' name is {_type_name(arch.get('name'))}, expected a registry name string")
    kwargs = arch.get("kwargs", {})
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise bad(f"'architecture' kwargs is {_type_name(kwargs)}, expected a dict of argument names to values")
    state = payload["model_state"]
    if not isinstance(state, dict):
        raise bad(f"'model_state' is {_type_name(state)}, expected a state_dict (names to tensors)")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise bad(f"'model_state' entry {str(key)[:60]!r} is {_type_name(value)}, expected a tensor")
    if not isinstance(payload["model_spec"], dict):
        raise bad(f"'model_spec' is {_type_name(payload['model_spec'])}, expected a dict")
    for key in ("dataset", "metrics", "config"):
        value = payload.get(key)
        if value is not None and not isinstance(value, dict):
            raise bad(f"{key!r} is {_type_name(value)}, expected a dict")
    dataset = payload.get("dataset") or {}
    for key, types, what in (("name", (str,), "a string"), ("root", (str,), "a string"),
                             ("seed", (int,), "an integer"), ("fractions", (list, tuple), "a list of numbers")):
        value = dataset.get(key)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            raise bad(f"'dataset' {key} is {_type_name(value)}, expected {what}")
    fractions = dataset.get("fractions") or []
    if not all(isinstance(f, (int, float)) and not isinstance(f, bool) and 0 <= f <= 1 for f in fractions):
        raise bad("'dataset' fractions must be numbers between 0 and 1")
    labels = payload.get("labels")
    if labels is not None and not (isinstance(labels, (list, tuple)) and all(isinstance(x, str) for x in labels)):
        raise bad("'labels' must be a list of strings")


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint without executing pickled code, and check its format.

    The file is read once (regular files only, so a FIFO cannot hang the reader); the scan and
    torch.load see the same bytes. Size limits are checked before anything is decompressed.

    Raises:
        CheckpointError: missing, empty, truncated, unsafe, oversized, malformed, or another
            format/version.
    """
    path = Path(path)
    raw = read_user_bytes(path, CheckpointError, missing="checkpoint not found; train one with 'tritonkit train'",
                          hint="give a checkpoint file (.pt) written by tritonkit")
    if not raw:
        raise CheckpointError(f"{path}: checkpoint is empty (0 bytes); re-save it")
    if not zipfile.is_zipfile(io.BytesIO(raw)):
        if _looks_like_onnx(raw):
            raise CheckpointError(
                f"{path}: is an ONNX model, not a tritonkit checkpoint; give the .pt checkpoint it was "
                "exported from (an .onnx goes to 'tritonkit parity', 'quantize' or 'repo add')"
            )
        raise CheckpointError(
            f"{path}: not a tritonkit checkpoint (not a torch zip file, or truncated); "
            "re-save it with tritonkit"
        )
    try:
        bad = _unsafe_globals(raw)
    except _SizeRefused as exc:
        raise CheckpointError(f"{path}: refused: {exc}; re-save it with tritonkit") from None
    except Exception as exc:  # noqa: BLE001 - any parse failure means a damaged file
        text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: checkpoint is damaged ({text}); re-save it") from None
    if bad:
        raise CheckpointError(
            f"{path}: refused: the file carries pickled code ({', '.join(sorted(set(bad))[:3])}); "
            "only plain tensors and containers are loaded. Re-save it with tritonkit"
        )
    try:
        payload = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: cannot read checkpoint ({first}); re-save it") from None
    if not isinstance(payload, dict) or payload.get("kind") != KIND:
        raise CheckpointError(
            f"{path}: not a tritonkit checkpoint (no kind={KIND!r}); export from a tritonkit run"
        )
    version = payload.get("format_version")
    if version != FORMAT_VERSION or type(version) is not int:
        shown = f"{version!r} ({_type_name(version)})" if type(version) is not int else repr(version)
        raise CheckpointError(
            f"{path}: checkpoint format_version {shown} is not supported (this tritonkit reads the "
            f"integer {FORMAT_VERSION}); re-save it with a matching tritonkit"
        )
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks keys {missing}; re-save it")
    _check_structure(path, payload)
    return payload


def model_spec_of(payload: dict[str, Any], *, where: str = "checkpoint") -> ModelSpec:
    """The :class:`ModelSpec` stored in a loaded checkpoint.

    Raises:
        CheckpointError: the stored spec is malformed (``where`` names the file).
    """
    try:
        return ModelSpec.from_dict(payload["model_spec"], where=where)
    except UsageError as exc:
        raise CheckpointError(str(exc)) from None


def model_from_checkpoint(payload_or_path: dict[str, Any] | str | os.PathLike[str], *,
                          where: str | None = None) -> torch.nn.Module:
    """Rebuild the model from the file alone (registry name + kwargs + weights), in eval mode.

    The constructor arguments are checked against the registry (types, declared bounds, and the
    parameter count of a build on the meta device) before any weight is allocated.

    Raises:
        CheckpointError: unknown architecture, bad arguments, or weights that do not fit.
    """
    if isinstance(payload_or_path, dict):
        payload = payload_or_path
    else:
        where = where or str(payload_or_path)
        payload = load_checkpoint(payload_or_path)
    where = where or "checkpoint"
    arch = payload["architecture"]
    if not isinstance(arch, dict) or not isinstance(arch.get("kwargs", {}), dict):
        raise CheckpointError(f"{where}: checkpoint is malformed: 'architecture' must be "
                              "{'name': ..., 'kwargs': {...}}; re-save it with tritonkit")
    try:
        model = create_model(arch.get("name"), **dict(arch.get("kwargs", {})))  # type: ignore[arg-type]
    except UsageError as exc:
        raise CheckpointError(f"{where}: checkpoint architecture: {exc}; the file is damaged or was not "
                              "written by tritonkit: re-save it") from None
    state = payload["model_state"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{where}: checkpoint is malformed: 'model_state' is {_type_name(state)}, "
                              "expected a state_dict; re-save it with tritonkit")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError, AttributeError) as exc:
        # torch's first line is only "Error(s) in loading state_dict for X:"; the next one says what.
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()] or [type(exc).__name__]
        first = (lines[1] if len(lines) > 1 and lines[0].startswith("Error(s)") else lines[0])[:200]
        raise CheckpointError(
            f"{where}: checkpoint weights do not fit architecture {arch['name']!r} ({first}); "
            "the checkpoint was saved from another architecture"
        ) from None
    return model.eval()
