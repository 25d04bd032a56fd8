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
``model_spec``       :class:`toolkit.spec.ModelSpec` as a dict: input/output tensor names, shapes
                     without batch, dtypes, layout, per-channel mean/std, scale, value range, labels.
``labels``           list[str], class labels, index i = class i (also inside ``model_spec``).
``model_state``      the model's ``state_dict``.
``metrics``          dict[str, float] at save time (e.g. val_loss, val_accuracy, test_accuracy).
``epoch``, ``step``  int, completed epochs and optimizer steps.
``dataset``          {"name": ..., plus the arguments that rebuild the same split}.
``optimizer_state``  optimizer ``state_dict`` or None.
``scheduler_state``  scheduler ``state_dict`` or None.
``callbacks_state``  {callback key: state dict}.
``rng_state``        {"torch": ByteTensor, "numpy": [name, keys (624 ints), pos, has_gauss,
                     cached_gaussian], "python": [version, state (625 ints), gauss_next]} or None:
                     plain tensors, lists and numbers so a weights-only load accepts them.
``config``           dict, the training configuration (free-form, JSON-serializable).
``created``          ISO-8601 UTC time of the save.
``history``          optional, list[dict[str, float]]: the per-epoch metrics logged so far
                     (written by ``trainers.trainer.Trainer``; restores ``metrics.jsonl`` on resume).
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

from toolkit.errors import CheckpointError
from toolkit.fileio import atomic_write_bytes, sha256_of  # noqa: F401 - part of this module's API
from toolkit.spec import ModelSpec

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


def _data_pickle(zf: zipfile.ZipFile) -> bytes | None:
    """The one pickle torch.load reads (``<archive>/data.pkl``); None when that is ambiguous.

    torch takes the archive name from the first entry; a second ``.pkl``, a duplicate name or a
    data.pkl elsewhere could make this scan and torch read different bytes, so they are refused.
    """
    names = zf.namelist()
    if not names or len(names) != len(set(names)):
        return None
    prefix = names[0].split("/", 1)[0]
    pickles = [n for n in names if n.endswith(".pkl")]
    if pickles != [f"{prefix}/data.pkl"]:
        return None
    return zf.read(pickles[0])


def _unsafe_globals(raw: bytes) -> list[str]:
    """Globals (and code-running opcodes) in the checkpoint's pickle that are not allowed.

    ``STACK_GLOBAL`` is accepted only when its module and name are string literals pushed right
    before it: names fetched from the memo could differ from what a literal scan sees.
    """
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        data = _data_pickle(zf)
    if data is None:
        return ["<not exactly one <archive>/data.pkl>"]
    bad: list[str] = []
    recent: list[tuple[str, Any]] = []  # last opcodes, memo writes skipped
    for opcode, arg, _ in pickletools.genops(data):
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
            recent = [*recent[-1:], (name, arg)]
    return bad


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint without executing pickled code, and check its format.

    Raises:
        CheckpointError: missing, empty, truncated, unsafe, or another format/version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; train one with 'tritonkit train'")
    raw = path.read_bytes()
    if not raw:
        raise CheckpointError(f"{path}: checkpoint is empty (0 bytes); re-save it")
    if not zipfile.is_zipfile(io.BytesIO(raw)):
        raise CheckpointError(
            f"{path}: not a tritonkit checkpoint (not a torch zip file, or truncated); "
            "re-save it with tritonkit"
        )
    try:
        bad = _unsafe_globals(raw)
    except Exception as exc:  # noqa: BLE001 - any parse failure means a damaged file
        raise CheckpointError(f"{path}: checkpoint is damaged ({exc}); re-save it") from None
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
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format_version {version!r} is not supported (this tritonkit "
            f"reads {FORMAT_VERSION}); re-save it with a matching tritonkit"
        )
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks keys {missing}; re-save it")
    return payload


def model_spec_of(payload: dict[str, Any]) -> ModelSpec:
    """The :class:`ModelSpec` stored in a loaded checkpoint."""
    return ModelSpec.from_dict(payload["model_spec"])


def model_from_checkpoint(payload_or_path: dict[str, Any] | str | os.PathLike[str]) -> torch.nn.Module:
    """Rebuild the model from the file alone (registry name + kwargs + weights), in eval mode."""
    from trainers.models import create_model

    payload = (
        payload_or_path if isinstance(payload_or_path, dict) else load_checkpoint(payload_or_path)
    )
    arch = payload["architecture"]
    model = create_model(arch["name"], **dict(arch.get("kwargs", {})))
    try:
        model.load_state_dict(payload["model_state"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(
            f"checkpoint weights do not fit architecture {arch['name']!r} ({first}); "
            "the checkpoint was saved from another architecture"
        ) from None
    return model.eval()
