"""``tritonkit profile`` as a library call: every model x batch x concurrency, plus in-process baselines.

Every model is checked on the server first (:func:`preflight`), so a missing model or server
fails before anything is measured or written. A batch larger than a model's ``max_batch_size``
is kept as a failed run (not silently skipped), so the report says what was not measured and why.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.fileio import atomic_write_text
from toolkit.perf.analyzer import (
    DEFAULT_BATCHES,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_TRIALS,
    DEFAULT_MEASUREMENT_MS,
    DEFAULT_STABILITY_PCT,
    PerfRun,
    run_perf_analyzer,
)
from toolkit.perf.local import LocalProfile, PerformanceProfiler
from toolkit.perf.server import chosen_inputs, model_config, shapes_for

MODEL_FILES = ("model.onnx", "model.plan")


@dataclass
class Target:
    """One ``MODEL[:VERSION]`` as served: its config, shapes, and the one input to send (if it wants one)."""

    name: str
    version: str
    config: dict[str, Any]
    shapes: dict[str, list[int]]
    only: dict[str, list[int]] | None

    @property
    def max_batch(self) -> int:
        return int(self.config.get("max_batch_size", 0))


def model_version(text: str) -> tuple[str, str]:
    """``MODEL[:VERSION]`` -> (model, version or "")."""
    name, _, version = text.partition(":")
    return name, version


def preflight(models: Sequence[str], url: str, *, protocol: str = "grpc",
              shapes: dict[str, list[int]] | None = None) -> list[Target]:
    """Each model's served config and the shapes to send; raises before anything is measured."""
    targets = []
    for spec in models:
        name, version = model_version(spec)
        cfg = model_config(url, name, protocol=protocol, version=version)
        only = chosen_inputs(cfg, shapes)
        targets.append(Target(name, version, cfg, only if only is not None else shapes_for(cfg, shapes), only))
    return targets


def _input_data(target: Target, out_dir: Path) -> Path | None:
    """perf_analyzer ``--input-data`` JSON naming only ``target.only`` (zeros of its shape)."""
    if target.only is None:
        return None
    data = {name: {"content": [0] * math.prod(dims), "shape": dims} for name, dims in target.only.items()}
    path = out_dir / f"{target.name}-input.json"
    atomic_write_text(path, json.dumps({"data": [data]}))
    return path


def sweep(targets: Sequence[Target], url: str, out_dir: str | Path, *, protocol: str = "grpc",
          concurrency: Sequence[int] = DEFAULT_CONCURRENCY, batches: Sequence[int] = DEFAULT_BATCHES,
          measurement_ms: int = DEFAULT_MEASUREMENT_MS, stability_pct: int = DEFAULT_STABILITY_PCT,
          max_trials: int = DEFAULT_MAX_TRIALS,
          progress: Callable[[str, int, int], None] | None = None) -> list[PerfRun]:
    """Profile each target at every batch size and concurrency on a running server.

    ``progress(model, batch, concurrency)`` is called as each level starts.
    """
    runs: list[PerfRun] = []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for t in targets:
        data = _input_data(t, out_dir)
        for b in batches:
            if b > max(t.max_batch, 1):
                runs.append(PerfRun(model=t.name, command=[], version=t.version, batch_size=b, ok=False,
                                    error=f"batch {b} exceeds max_batch_size {t.max_batch} of {t.name}: not run"))
                continue

            def step(c: int, name: str = t.name, b: int = b) -> None:
                if progress is not None:
                    progress(name, b, c)

            runs.append(run_perf_analyzer(t.name, url, out_dir, protocol=protocol, concurrency=concurrency,
                                          batch_size=b, measurement_ms=measurement_ms, stability_pct=stability_pct,
                                          max_trials=max_trials, shapes=t.shapes, version=t.version,
                                          progress=step, input_data=data))
    return runs


def served_file(repository: str | Path, target: Target) -> Path | None:
    """The served version's model file in a local repository (None: not there, or an ensemble/python model).

    The version is the one asked for, else the newest the served config names.
    """
    folder = Path(repository) / target.name
    version = target.version
    if not version:
        named = (target.config.get("version_policy") or {}).get("specific", {}).get("versions", [])
        numbers = [int(v) for v in named] or sorted(int(p.name) for p in folder.glob("[0-9]*") if p.name.isdigit())
        if not numbers:
            return None
        version = str(max(numbers))
    names = [target.config["default_model_filename"]] if target.config.get("default_model_filename") else MODEL_FILES
    for name in names:
        path = folder / version / name
        if path.is_file():
            return path
    return None


def local_baselines(local: Sequence[str], runs: list[PerfRun], first: str) -> dict[str, LocalProfile]:
    """In-process profiles (``[MODEL=]FILE``) at the batch sizes the server formed at saturation, by model."""
    out = {}
    for item in local:
        model, _, path = item.rpartition("=")
        model = model or first
        formed = [r.saturation().formed_batch for r in runs if r.model == model and r.saturation()]
        sizes = {1}
        for f in formed:
            if f:
                sizes |= {max(1, int(f)), max(1, int(f + 0.999))}
        out[model] = PerformanceProfiler(path).profile(sorted(sizes), num_iterations=100)
    return out
