"""Predictions as people read them: top-k labels from logits or from Triton's classification
extension, the spec that says how inputs are made, and held-out rows to send."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.errors import TritonkitError, UsageError
from contract.fileio import NotRegularFileError, open_regular, read_regular_text
from contract.spec import ModelSpec
from toolkit.repository.manifest import MANIFEST, read_live_config
from toolkit.repository.storage import version_numbers
from toolkit.repository.validate.manifest import named_versions
from trainers.evaluation.metrics import softmax

# A spec or manifest is a few KiB; anything far larger is not one.
SPEC_FILE_LIMIT = 16 << 20


def heldout_count(seed: int = 0) -> int:
    """How many held-out (test split) digits there are: ``--digits`` may ask for at most this many."""
    from trainers.data import DEFAULT_DATASET, embedded_split

    return len(embedded_split({"name": DEFAULT_DATASET, "seed": seed}, "test").labels)


def heldout_raw(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` test-split digits as raw ``(N, 1, 8, 8)`` values (0..16), for a server that
    preprocesses itself (the image ensemble), and their labels."""
    from trainers.data import DEFAULT_DATASET, embedded_split

    test = embedded_split({"name": DEFAULT_DATASET, "seed": seed}, "test")
    return test.images[:n], test.labels[:n]


def heldout_samples(spec: ModelSpec, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` test-split samples of the embedded data set, with the model's own normalization."""
    from trainers.data import DEFAULT_DATASET, embedded_split, normalize

    test = embedded_split({"name": DEFAULT_DATASET, "seed": seed}, "test")
    n = min(n, len(test.labels))
    x = normalize(test.images[:n], spec.scale, spec.mean, spec.std)
    return x, test.labels[:n]


@dataclass(frozen=True)
class TopK:
    """One of the k best classes for a row: class index, label and score."""

    index: int
    label: str
    score: float


def topk_from_logits(logits: np.ndarray, labels: tuple[str, ...] | list[str], k: int) -> list[list[TopK]]:
    """Softmax probabilities of the k best classes per row, best first (ties: lower index first)."""
    probs = softmax(np.asarray(logits, dtype=np.float64))
    k = max(1, min(int(k), probs.shape[1]))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [
        [TopK(int(j), labels[j] if j < len(labels) else str(int(j)), float(row[j])) for j in idx]
        for row, idx in zip(probs, order)
    ]


def parse_classification(values: np.ndarray) -> list[list[TopK]]:
    """Rows of Triton classification strings ``b"score:index[:label]"`` -> TopK (raw output values)."""
    rows: list[list[TopK]] = []
    for row in np.asarray(values).reshape(len(values), -1):
        out = []
        for item in row:
            text = item.decode() if isinstance(item, bytes) else str(item)
            score, index, *label = text.split(":", 2)
            out.append(TopK(int(index), label[0] if label else index, float(score)))
        rows.append(out)
    return rows


def load_spec(path: str | os.PathLike[str]) -> ModelSpec:
    """A ModelSpec from a spec JSON, a repository ``manifest.json`` or a tritonkit ``.onnx`` file.

    Only a regular file is read (a FIFO given by mistake or malice never blocks), at most
    ``SPEC_FILE_LIMIT`` bytes of JSON.

    Raises:
        UsageError: the file is missing, not a regular file, or holds no spec.
    """
    path = Path(path)
    hint = "give a spec .json, a manifest.json or an .onnx file"
    try:
        if path.suffix == ".onnx":
            os.close(open_regular(path))
        else:
            text = read_regular_text(path, limit=SPEC_FILE_LIMIT)
    except FileNotFoundError:
        raise UsageError(f"spec file {path} does not exist; {hint}") from None
    except NotRegularFileError as exc:
        raise UsageError(f"spec file {exc}; {hint}") from None
    except UnicodeDecodeError:
        raise UsageError(f"spec file {path} is not UTF-8 JSON; {hint}") from None
    except OSError as exc:
        raise UsageError(f"spec file {path} cannot be read ({exc.strerror or type(exc).__name__}); {hint}") from None
    if path.suffix == ".onnx":
        from toolkit.export.onnx import spec_from_onnx

        try:
            return spec_from_onnx(path)
        except TritonkitError as exc:
            raise UsageError(str(exc)) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"spec file {path} is not JSON ({type(exc).__name__}); {hint}") from None
    if isinstance(data, dict) and isinstance(data.get("spec"), dict):
        data = data["spec"]
    if not isinstance(data, dict) or "inputs" not in data:
        raise UsageError(f"spec file {path} holds no model spec (no 'inputs'); give the manifest.json of a "
                         "repository version or the exported .onnx")
    try:
        return ModelSpec.from_dict(data)
    except TritonkitError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        raise UsageError(f"spec file {path} holds a malformed model spec ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); {hint}") from None


def spec_from_repository(repository: str | os.PathLike[str], model: str) -> ModelSpec:
    """The spec in the manifest of the newest version the live config of ``model`` serves.

    A version folder the config does not name (left by a killed publish) is never read.
    """
    model_dir = Path(repository) / model
    try:
        served = named_versions(read_live_config(model_dir), version_numbers(model_dir)) if model_dir.is_dir() else []
    except TritonkitError as exc:
        raise UsageError(str(exc)) from None
    if not served:
        have = sorted(p.name for p in Path(repository).iterdir() if p.is_dir()) if Path(repository).is_dir() else []
        raise UsageError(f"repository {repository} serves no version of model {model!r}; models there: "
                         f"{', '.join(have) or 'none'}")
    return load_spec(model_dir / str(served[-1]) / MANIFEST)
