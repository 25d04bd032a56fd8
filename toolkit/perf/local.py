"""In-process profiling: the throughput a server can approach, without any server.

:class:`PerformanceProfiler` runs a model file through :mod:`toolkit.runners` — ONNX with ONNX
Runtime (CPU), a TensorRT plan with Polygraphy's TensorRT runner (only where ``tensorrt`` and a
GPU exist), a tritonkit checkpoint with torch — warms it up, then times ``num_iterations`` calls
per batch size (each call's time is the runner's ``last_inference_time()``).

Memory: for CPU runtimes the figure is the *peak resident set growth* during the timed calls:
Linux's high-water mark (``VmHWM``) is reset through ``/proc/self/clear_refs`` before each batch
size and read after, minus the resident size before (tracemalloc would miss ONNX Runtime's and
torch's native allocations). Where the reset is not allowed, the process-lifetime peak
(``ru_maxrss``) growth is used and said so. For TensorRT it is the engine's device memory.

Input budget: the inputs are generated from the model's declared shapes, so a file declaring
``[N, 1, 100000, 100000]`` would ask for 37 GiB. Every input batch is checked against
``max_batch_bytes`` (default :data:`contract.spec.MAX_BATCH_BYTES`, 2 GiB; ``profile-local
--max-batch-mib`` raises it) for all batch sizes before the first one is allocated.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contract.errors import ExportError, MissingDependencyError, TritonkitError, UsageError
from contract.spec import MAX_BATCH_BYTES, check_batch_budget
from toolkit.model_files import model_kind
from toolkit.runners import (
    BaseRunner,
    runner_for_path,
)

MEM_HWM = "peak RSS growth (VmHWM reset per batch size)"
MEM_MAXRSS = "peak RSS growth (ru_maxrss; process-lifetime peak, may under-report)"
MEM_TRT = "TensorRT engine device memory"


@dataclass
class LocalRow:
    """Timings of one batch size (milliseconds per call) and its throughput."""

    batch_size: int
    iterations: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    samples_per_sec: float
    peak_memory_bytes: int


@dataclass
class LocalProfile:
    """What :meth:`PerformanceProfiler.profile` measured, with how."""

    model: str
    runtime: str
    threads: int | None
    memory_method: str
    warmup: int
    rows: list[LocalRow] = field(default_factory=list)
    note: str | None = None  # e.g. a fixed-batch model profiled at its batch only

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LocalProfile:
        rows = [LocalRow(**r) for r in d.get("rows", [])]
        return cls(**{k: v for k, v in d.items() if k != "rows"}, rows=rows)

    def at_batch(self, batch: float) -> float:
        """Samples/s at ``batch`` (linear interpolation between measured sizes, clamped)."""
        xs = [r.batch_size for r in self.rows]
        ys = [r.samples_per_sec for r in self.rows]
        return float(np.interp(batch, xs, ys))

    def table(self) -> str:
        lines = [f"{self.model} ({self.runtime}, threads {self.threads or 'default'}; memory: {self.memory_method})",
                 *([f"note: {self.note}"] if self.note else []),
                 f"{'batch':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'samples/s':>11} {'peak MiB':>9}"]
        for r in self.rows:
            lines.append(f"{r.batch_size:>5} {r.p50_ms:>8.3f} {r.p90_ms:>8.3f} {r.p99_ms:>8.3f} "
                         f"{r.samples_per_sec:>11.1f} {r.peak_memory_bytes / 2**20:>9.1f}")
        return "\n".join(lines)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM")


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _example(dims: list[int], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    if np.issubdtype(dtype, np.floating):
        return rng.random(dims, dtype=np.float32).astype(dtype)
    return np.zeros(dims, dtype=dtype)


_BUDGET_HINT = "; use smaller --batch/--shape values, or raise the budget with --max-batch-mib"


def _concrete(name: str, dims: list[Any], shapes: dict[str, list[int]], where: str) -> list[int]:
    """Dims without batch, variable ones taken from ``shapes``; one clear line when missing."""
    if name in shapes:
        given = list(shapes[name])
        wrong = len(given) != len(dims) or any(isinstance(d, int) and d > 0 and d != g for d, g in zip(dims, given))
        if wrong:
            fixed = ",".join(str(d) if isinstance(d, int) and d > 0 else "N" for d in dims)
            raise UsageError(f"{where}: --shape {name}:{','.join(map(str, given))} contradicts the model's dims "
                             f"{dims} (without the batch dimension); give --shape {name}:{fixed} with N for the "
                             "variable dims only, or drop --shape")
        return given
    if any(not isinstance(d, int) or d < 0 for d in dims):
        example = ",".join(str(d) if isinstance(d, int) and d >= 0 else "N" for d in dims)
        raise UsageError(f"{where}: input {name!r} has variable dims {dims}; pass --shape {name}:{example} "
                         "(dims without the batch dimension)")
    return [int(d) for d in dims]


class PerformanceProfiler:
    """Time a model file in-process per batch size (the limit a server can approach).

    Args:
        model_path: ``.onnx`` (ONNX Runtime), ``.plan``/``.engine`` (TensorRT, GPU only) or a
            tritonkit checkpoint ``.pt`` (torch).
        shapes: input name -> dims without batch, for inputs with variable dims.
        threads: intra-op threads (ONNX Runtime, torch); None = the runtime's default (all cores).
        max_batch_bytes: budget of one generated input batch; larger declared shapes are refused
            before anything is allocated.
    """

    def __init__(self, model_path: str | os.PathLike[str], *, shapes: dict[str, list[int]] | None = None,
                 threads: int | None = None, max_batch_bytes: int = MAX_BATCH_BYTES) -> None:
        self.model_path = Path(model_path)
        self.max_batch_bytes = int(max_batch_bytes)
        # (name, dims without batch, dtype) of each generated input, known once the runner is made.
        self._inputs: list[tuple[str, list[int], np.dtype]] = []
        self.kind = model_kind(self.model_path)
        self.shapes = dict(shapes or {})
        self.threads = threads
        self._device_memory = 0
        self.fixed_batch: int | None = None  # known once the runner is made
        self._runner: Callable[[int], Callable[[], float]] | None = None
        self.runtime = ""

    def _activate(self) -> BaseRunner:
        """The runner for the file, active; ONNX Runtime refusing the model is a usage error here."""
        try:
            runner = runner_for_path(self.model_path, threads=self.threads or 0)  # 0: the runtime's default
        except MissingDependencyError as exc:  # a plan where TensorRT or a GPU is missing
            raise MissingDependencyError(f"{self.model_path}: profiling a TensorRT plan: {exc}") from None
        try:
            runner.activate()
        except ExportError as exc:  # the runtime refuses the file: the user named the wrong one
            raise UsageError(str(exc)) from None
        self.runtime = runner.runtime
        self._device_memory = runner.device_memory_bytes
        return runner

    def _make(self) -> Callable[[int], Callable[[], float]]:
        """make(batch) -> a zero-argument call that runs one batch and returns its seconds."""
        if self._runner is not None:
            return self._runner
        runner = self._activate()
        self.fixed_batch = runner.fixed_batch()
        rng = np.random.default_rng(0)
        inputs = []
        for name, (dtype, shape) in runner.get_input_metadata().items():
            if dtype.kind not in "biuf":
                raise UsageError(f"input {name!r} has type {dtype}, not supported by profile-local; use float or "
                                 "integer inputs")
            inputs.append((name, _concrete(name, list(shape[1:]), self.shapes, str(self.model_path)), dtype))
        self._inputs = inputs

        def make(batch: int) -> Callable[[], float]:
            self._check_budget(batch)
            feeds = {n: _example([batch, *dims], dt, rng) for n, dims, dt in inputs}

            def call() -> float:
                runner.infer(feeds)
                return runner.last_inference_time() or 0.0

            return call

        self._runner = make
        return make

    def _check_budget(self, batch: int) -> None:
        for name, dims, dtype in self._inputs:
            check_batch_budget(name, dims, dtype.name, batch, where=str(self.model_path),
                               budget=self.max_batch_bytes, hint=_BUDGET_HINT)

    def profile(self, batch_sizes: list[int] | tuple[int, ...] = (1, 8, 16, 32), num_iterations: int = 100,
                warmup: int = 10) -> LocalProfile:
        """Warm up, then time ``num_iterations`` calls per batch size.

        Returns:
            A :class:`LocalProfile`: p50/p90/p99/mean ms per call, samples/s, peak memory.
        """
        if num_iterations < 1 or warmup < 0 or not batch_sizes or min(batch_sizes) < 1:
            raise UsageError("batch sizes must be >= 1, iterations >= 1 and warm-up >= 0, e.g. --batch 1,8 "
                             "--iterations 100")
        make = self._make()
        note = None
        if self.fixed_batch is not None and list(batch_sizes) != [self.fixed_batch]:
            note = (f"the model's batch is fixed at {self.fixed_batch}: profiled at {self.fixed_batch} only "
                    f"(asked {', '.join(map(str, batch_sizes))})")
            batch_sizes = [self.fixed_batch]
        for batch in batch_sizes:  # every size before the first allocation
            self._check_budget(int(batch))
        if self.kind == "plan":
            method = MEM_TRT
        else:
            method = MEM_HWM if _reset_hwm() else MEM_MAXRSS
        result = LocalProfile(str(self.model_path), self.runtime, self.threads, method, warmup, note=note)
        for batch in batch_sizes:
            # Memory is counted from before the warm-up: the first calls allocate the arenas.
            rss0 = _rss_bytes()
            if method == MEM_HWM:
                _reset_hwm()
            max0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            call = make(int(batch))
            try:
                for _ in range(warmup):
                    call()
                times = np.empty(num_iterations)
                t_start = time.perf_counter()
                for i in range(num_iterations):
                    times[i] = call()
                wall = time.perf_counter() - t_start
            except TritonkitError:
                raise
            except Exception as exc:  # noqa: BLE001 - runtimes raise many types; the model's inputs are wrong
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                raise UsageError(f"{self.model_path}: the model failed at batch size {batch} ({first}); its "
                                 "declared inputs do not match the model: re-export it") from None
            if method == MEM_HWM:
                peak = max(0, _hwm_bytes() - rss0)
            elif method == MEM_MAXRSS:
                peak = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - max0)
            else:
                peak = self._device_memory
            ms = times * 1000
            result.rows.append(LocalRow(
                batch_size=int(batch), iterations=num_iterations,
                p50_ms=float(np.percentile(ms, 50)), p90_ms=float(np.percentile(ms, 90)),
                p99_ms=float(np.percentile(ms, 99)), mean_ms=float(ms.mean()),
                samples_per_sec=batch * num_iterations / wall, peak_memory_bytes=int(peak),
            ))
        return result
