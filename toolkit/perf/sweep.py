"""``tritonkit profile`` as a library call: every model x batch x concurrency, plus in-process baselines.

A batch larger than a model's ``max_batch_size`` is kept as a failed run (not silently skipped),
so the report says what was not measured and why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

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
from toolkit.perf.server import model_config, shapes_for


def model_version(text: str) -> tuple[str, str]:
    """``MODEL[:VERSION]`` -> (model, version or "")."""
    name, _, version = text.partition(":")
    return name, version


def sweep(models: Sequence[str], url: str, out_dir: str | Path, *, protocol: str = "grpc",
          concurrency: Sequence[int] = DEFAULT_CONCURRENCY, batches: Sequence[int] = DEFAULT_BATCHES,
          shapes: dict[str, list[int]] | None = None, measurement_ms: int = DEFAULT_MEASUREMENT_MS,
          stability_pct: int = DEFAULT_STABILITY_PCT, max_trials: int = DEFAULT_MAX_TRIALS,
          progress: Callable[[str, int, int], None] | None = None) -> tuple[list[PerfRun], dict[str, int]]:
    """Profile each ``MODEL[:VERSION]`` at every batch size and concurrency on a running server.

    ``progress(model, batch, concurrency)`` is called as each level starts.

    Returns:
        The runs (one per model and batch size) and each model's ``max_batch_size``.
    """
    runs: list[PerfRun] = []
    max_batch: dict[str, int] = {}
    for spec in models:
        name, version = model_version(spec)
        cfg = model_config(url, name, protocol=protocol, version=version)
        model_shapes = shapes_for(cfg, shapes)
        mb = int(cfg.get("max_batch_size", 0))
        max_batch[name] = mb
        for b in batches:
            if b > max(mb, 1):
                runs.append(PerfRun(model=name, command=[], version=version, batch_size=b, ok=False,
                                    error=f"batch {b} exceeds max_batch_size {mb} of {name}: not run"))
                continue

            def step(c: int, name: str = name, b: int = b) -> None:
                if progress is not None:
                    progress(name, b, c)

            runs.append(run_perf_analyzer(name, url, Path(out_dir), protocol=protocol, concurrency=concurrency,
                                          batch_size=b, measurement_ms=measurement_ms, stability_pct=stability_pct,
                                          max_trials=max_trials, shapes=model_shapes, version=version,
                                          progress=step))
    return runs, max_batch


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
