"""The default end-to-end build that ``make repo`` runs: checkpoint -> ONNX -> repository.

Each step is skipped when its output is already up to date, so a second run adds nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.repository.config import ServingOptions
from toolkit.repository.publish import Published, publish_image_ensemble, publish_onnx, spec_from_onnx_graph

DEFAULT_MODEL = "digits"
DEFAULT_CHECKPOINT = Path("checkpoints/digits_smallcnn.pt")
DEFAULT_ONNX = Path("build/digits_smallcnn.onnx")


@dataclass
class BuildResult:
    checkpoint: Path
    onnx: Path
    published: list[Published] = field(default_factory=list)
    steps: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _export_is_current(onnx_path: Path, checkpoint_sha: str) -> bool:
    record = Path(f"{onnx_path}.export.json")
    if not onnx_path.is_file() or not record.is_file():
        return False
    data = _read_json(record)
    return data.get("checkpoint_sha256") == checkpoint_sha


def build_repository(
    repository: str | Path = "model_repository",
    *,
    name: str = DEFAULT_MODEL,
    checkpoint: str | Path = DEFAULT_CHECKPOINT,
    onnx_path: str | Path = DEFAULT_ONNX,
    options: ServingOptions | None = None,
    epochs: int = 15,
    log: Any = print,
) -> BuildResult:
    """Train (if no checkpoint), export (if stale) and publish (if changed) the default model."""
    from toolkit.export.onnx import onnx_from_checkpoint
    from trainers.checkpoint import load_checkpoint, sha256_of

    checkpoint, onnx_path, repository = Path(checkpoint), Path(onnx_path), Path(repository)
    result = BuildResult(checkpoint=checkpoint, onnx=onnx_path)
    t0 = time.perf_counter()
    if not checkpoint.exists():
        from trainers.recipes import train_digits_default

        log(f"[1/3] training the default digits model -> {checkpoint}")
        train_digits_default(checkpoint, epochs=epochs, quiet=False)
        result.steps["train"] = time.perf_counter() - t0
    else:
        log(f"[1/3] checkpoint {checkpoint} exists: not retraining (delete it to retrain)")
        result.skipped.append("train")
    payload = load_checkpoint(checkpoint)
    sha = sha256_of(checkpoint)
    t1 = time.perf_counter()
    if _export_is_current(onnx_path, sha):
        log(f"[2/3] {onnx_path} is current for this checkpoint: not re-exporting")
        result.skipped.append("export")
    else:
        log(f"[2/3] exporting ONNX -> {onnx_path}")
        onnx_from_checkpoint(checkpoint, onnx_path)
        result.steps["export"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    export_record = _read_json(Path(f"{onnx_path}.export.json"))
    provenance = {
        "checkpoint_sha256": sha,
        "checkpoint_metrics": payload.get("metrics", {}),
        "export": export_record,
        "parity": export_record.get("parity"),
    }
    pub = publish_onnx(
        repository, name, onnx_path, options or ServingOptions(),
        provenance=provenance, skip_if_unchanged=True,
    )
    result.published.append(pub)
    opts = options or ServingOptions()
    result.published.extend(publish_image_ensemble(
        repository, f"{name}_image", name, spec_from_onnx_graph(onnx_path), opts.max_batch_size,
        skip_if_unchanged=True,
    ))
    result.steps["publish"] = time.perf_counter() - t2
    created = [p for p in result.published if p.created]
    for p in result.published:
        if p.created:
            log(f"[3/3] published {p.model} version {p.version} -> {p.path}")
        else:
            log(f"[3/3] {p.model} version {p.version} already holds this model and config: nothing added")
    if not created:
        result.skipped.append("publish")
    return result


def _read_json(path: Path) -> dict[str, Any]:
    """A side record, or {} when absent or unusable (regular files only: a FIFO never blocks)."""
    from contract.fileio import read_regular_text

    try:
        data = json.loads(read_regular_text(path, limit=16 * 1024 * 1024))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
