"""Config search: instance count x max_queue_delay x preferred batch sizes, measured for real.

Like Triton Model Analyzer, bounded by what the model allows: every variant is the model's own
ONNX published (with :func:`toolkit.repository.publish.publish_onnx`) into a temporary repository with
different :class:`~toolkit.repository.config.ServingOptions`, loaded into ONE embedded server in
explicit model-control mode (one server start for the whole search), measured with perf_analyzer,
and unloaded. A variant that fails to load is reported and never proposed. The winner is the
highest throughput whose p99 stays within the latency budget.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.errors import ProfileError, UsageError
from toolkit.perf.analyzer import PerfRow, run_perf_analyzer
from toolkit.repository.options import DEFAULT_REPOSITORY, ONNX_PLATFORM, ServingOptions

# The search's defaults (the CLI shows these): a short grid a 2-core machine finishes in minutes.
DEFAULT_LATENCY_BUDGET_MS = 10.0
DEFAULT_MAX_INSTANCES = 4
DEFAULT_DELAYS_US = (0, 1000)
DEFAULT_TUNE_CONCURRENCY = (4, 16)
DEFAULT_TUNE_MEASUREMENT_MS = 1000
DEFAULT_TUNE_STABILITY_PCT = 30


@dataclass
class Variant:
    """One point of the grid; ``current`` marks the model's own config."""

    instances: int
    delay_us: int
    preferred: list[int]
    current: bool = False

    @property
    def name(self) -> str:
        if self.current:
            return "current"
        return f"i{self.instances}_d{self.delay_us}_p{'-'.join(map(str, self.preferred)) or 'none'}"


@dataclass
class Trial:
    """A variant and what it did: rows per concurrency, the best row within budget, or why not."""

    variant: Variant
    rows: list[PerfRow] = field(default_factory=list)
    best: PerfRow | None = None
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        v = self.variant
        b = self.best
        return {"variant": v.name, "instances": v.instances, "max_queue_delay_us": v.delay_us,
                "preferred_batch_sizes": v.preferred, "current": v.current, "error": self.error,
                "samples_per_sec": b.infer_per_sec if b else None, "p99_ms": b.p99_us / 1000 if b else None,
                "concurrency": b.concurrency if b else None, "formed_batch": b.formed_batch if b else None,
                "rows": [{"concurrency": r.concurrency, "samples_per_sec": r.infer_per_sec, "p99_ms": r.p99_us / 1000,
                          "stable": r.stable, "formed_batch": r.formed_batch} for r in self.rows]}


@dataclass
class TuneResult:
    name: str
    budget_ms: float
    trials: list[Trial]
    winner: Trial | None
    onnx_path: Path
    options: ServingOptions
    labels: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.name, "latency_budget_ms": self.budget_ms,
                "winner": self.winner.to_dict() if self.winner else None,
                "trials": [t.to_dict() for t in self.trials]}

    def table(self) -> str:
        lines = [f"{'variant':<22} {'inst':>4} {'delay us':>8} {'preferred':>10} {'samples/s':>10} {'p99 ms':>8} "
                 f"{'conc':>4} {'batch':>5}  note"]
        for t in self.trials:
            v, b = t.variant, t.best
            note = t.error or ("WINNER" if t is self.winner else "")
            pref = ",".join(map(str, v.preferred)) or "-"
            tput, p99 = (f"{b.infer_per_sec:.1f}", f"{b.p99_us / 1000:.2f}") if b else ("-", "-")
            conc, fb = (str(b.concurrency), f"{b.formed_batch:.1f}") if b else ("-", "-")
            lines.append(f"{v.name:<22} {v.instances:>4} {v.delay_us:>8} {pref:>10} {tput:>10} {p99:>8} "
                         f"{conc:>4} {fb:>5}  {note}")
        return "\n".join(lines)


def _powers_upto(n: int) -> list[int]:
    out, p = [], 1
    while p <= n:
        out.append(p)
        p *= 2
    if n >= 1 and n not in out:
        out.append(n)
    return out


def grid(max_batch: int, max_instances: int, delays_us: list[int], preferred: list[list[int]] | None) -> list[Variant]:
    """The search grid; preferred batch sizes above the model's max batch are refused up front."""
    if max_instances < 1:
        raise UsageError(f"--max-instances {max_instances} must be >= 1")
    if max_batch <= 0:
        raise UsageError("the model has max_batch_size 0 (no batching); only the instance count can be tuned: "
                         "re-publish it with --max-batch > 0 first")
    if preferred is None:  # auto: none, and one size at half the max batch
        preferred = [[], [max(1, _powers_upto(max(1, max_batch // 2))[-1])]]
    for p in preferred:
        bad = [b for b in p if not 1 <= b <= max_batch]
        if bad:
            raise UsageError(f"preferred batch sizes {bad} are outside [1, max_batch_size={max_batch}] of the model")
    return [Variant(i, d, list(p)) for i in _powers_upto(max_instances) for d in delays_us for p in preferred]


def _current_options(model_dir: Path) -> tuple[ServingOptions, Path, list[str], Any]:
    """The serving options of the version the live config serves, read from the config it recorded."""
    from toolkit.repository.publish import (
        live_labels,
        named_versions,
        read_live_config,
        recorded_config,
        version_numbers,
    )

    live = read_live_config(model_dir)
    if live is None:
        raise UsageError(f"{model_dir}: no config.pbtxt; give --repository holding model {model_dir.name}")
    platform = live.platform or live.backend
    if platform not in (ONNX_PLATFORM, "onnxruntime"):
        raise UsageError(f"{model_dir.name}: tune handles ONNX models (platform {ONNX_PLATFORM}); this one is "
                         f"{platform!r}")
    served = named_versions(live, version_numbers(model_dir))
    if not served:
        raise UsageError(f"{model_dir}: the live config names no version folder; publish the model with "
                         "'tritonkit repo add' first")
    newest = model_dir / str(served[-1])
    # The live config pins versions; the user's own policy (latest N...) is in the recorded config.
    cfg = recorded_config(newest) if (newest / "manifest.json").exists() else live
    onnx_path = newest / (cfg.default_model_filename or "model.onnx")
    if not onnx_path.is_file():
        raise UsageError(f"{onnx_path}: missing; the served version of {model_dir.name} has no ONNX file")
    labels = live_labels(model_dir)
    db = cfg.dynamic_batching if cfg.HasField("dynamic_batching") else None
    opts = ServingOptions(
        max_batch_size=cfg.max_batch_size, dynamic_batching=db is not None,
        max_queue_delay_us=db.max_queue_delay_microseconds if db else 0,
        preferred_batch_sizes=list(db.preferred_batch_size) if db else [],
        max_queue_size=db.default_queue_policy.max_queue_size if db else 0,
        instances=sum(g.count or 1 for g in cfg.instance_group) or 1,
        keep_versions=cfg.version_policy.latest.num_versions or 1 if cfg.version_policy.HasField("latest") else 1,
        warmup=len(cfg.model_warmup) > 0,
        label_filename="labels.txt" if labels else None,
    )
    return opts, onnx_path, labels, cfg


def _options_for(base: ServingOptions, v: Variant) -> ServingOptions:
    if v.current:
        return base
    return ServingOptions(**{**base.__dict__, "dynamic_batching": True, "instances": v.instances,
                             "max_queue_delay_us": v.delay_us, "preferred_batch_sizes": list(v.preferred)})


def tune(
    name: str,
    repository: str | os.PathLike[str] = DEFAULT_REPOSITORY,
    *,
    latency_budget_ms: float = DEFAULT_LATENCY_BUDGET_MS,
    max_instances: int = DEFAULT_MAX_INSTANCES,
    delays_us: list[int] | None = None,
    preferred: list[list[int]] | None = None,
    concurrency: list[int] | None = None,
    measurement_ms: int = DEFAULT_TUNE_MEASUREMENT_MS,
    stability_pct: int = DEFAULT_TUNE_STABILITY_PCT,
    shapes: dict[str, list[int]] | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> TuneResult:
    """Measure every variant; the winner is the highest samples/s with p99 <= the budget.

    Raises:
        UsageError: the model is missing, not ONNX, cannot batch, or the grid is invalid.
    """
    from tritonclient.utils import InferenceServerException

    from toolkit.repository.publish import publish_onnx
    from toolkit.serve.embedded import EmbeddedServer
    from toolkit.serve.ports import free_port

    repository = Path(repository)
    model_dir = repository / name
    if not model_dir.is_dir():
        have = sorted(p.name for p in repository.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if repository.is_dir() else []
        raise UsageError(f"model {name!r} not found in {repository}; models there: {', '.join(have) or 'none'}")
    base, onnx_path, labels, _cfg = _current_options(model_dir)
    variants = [Variant(base.instances, base.max_queue_delay_us, list(base.preferred_batch_sizes), current=True)]
    delays = delays_us if delays_us is not None else list(DEFAULT_DELAYS_US)
    variants += grid(base.max_batch_size, max_instances, delays, preferred)
    concurrency = concurrency or list(DEFAULT_TUNE_CONCURRENCY)
    owned = work_dir is None
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix=f"tritonkit-tune-{name}-"))
    trials: list[Trial] = []
    try:
        temp_repo = work / "repository"
        temp_repo.mkdir(parents=True, exist_ok=True)
        server = EmbeddedServer(temp_repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                                model_control="explicit", log_path=work / "triton.log")
        server.start(timeout=180)
        try:
            import tritonclient.grpc as grpcclient

            client = grpcclient.InferenceServerClient(server.grpc_url)
            # Triton's gRPC restricted-protocol check expects the header with this prefix.
            admin = {f"triton-grpc-protocol-{k}": v for k, v in server.admin_headers.items()}
            for k, v in enumerate(variants, 1):
                trial = Trial(v)
                trials.append(trial)
                vname = f"{name}__{v.name}"
                log(f"[{k}/{len(variants)}] {v.name}")
                try:
                    publish_onnx(temp_repo, vname, onnx_path, _options_for(base, v), labels=labels or None)
                    client.load_model(vname, headers=admin)
                except InferenceServerException as exc:
                    msg = (exc.message() or str(exc)).strip().splitlines()[0]
                    trial.error = f"failed to load: {msg}"
                    continue
                except UsageError as exc:
                    trial.error = f"not publishable: {exc}"
                    continue
                try:
                    run = run_perf_analyzer(vname, server.grpc_url, work / "perf", concurrency=concurrency,
                                            measurement_ms=measurement_ms, stability_pct=stability_pct, max_trials=5,
                                            shapes=shapes)
                    trial.rows = run.rows
                    within = [r for r in run.rows if r.stable and r.p99_us / 1000 <= latency_budget_ms]
                    trial.best = max(within, key=lambda r: r.infer_per_sec) if within else None
                    if not run.ok:
                        trial.error = run.error
                    elif trial.best is None:
                        trial.error = (f"p99 over the {latency_budget_ms:g} ms budget at every concurrency"
                                       if any(r.stable for r in run.rows) else "no stable measurement")
                finally:
                    try:
                        client.unload_model(vname, headers=admin)
                    except InferenceServerException:
                        pass
            client.close()
        finally:
            server.stop()
    finally:
        if owned:
            shutil.rmtree(work, ignore_errors=True)
    ranked = [t for t in trials if t.best is not None]
    winner = max(ranked, key=lambda t: t.best.infer_per_sec) if ranked else None  # type: ignore[union-attr]
    return TuneResult(name, latency_budget_ms, trials, winner, onnx_path, base, labels)


def apply_winner(result: TuneResult, repository: str | os.PathLike[str]) -> Any:
    """Publish the winner as a new version of the model (nothing when the current config won).

    Raises:
        ProfileError: no variant met the budget.
    """
    from toolkit.repository.publish import publish_onnx

    if result.winner is None:
        raise ProfileError(f"no variant of {result.name} met the {result.budget_ms:g} ms p99 budget; nothing to apply "
                           "(raise --latency-budget-ms)")
    if result.winner.variant.current:
        return None
    options = _options_for(result.options, result.winner.variant)
    return publish_onnx(repository, result.name, result.onnx_path, options, labels=result.labels or None,
                        provenance={"tuned": json.loads(json.dumps(result.winner.to_dict()))})
