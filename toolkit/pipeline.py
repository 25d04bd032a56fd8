"""One export+publish path, as steps: ``make repo``, ``tritonkit pipeline``, ``repo add`` and the Python API.

Each :class:`Step` (as Model Navigator's commands) has a ``pre_run`` that returns why it can be
skipped (its output is already current) or None to run, a ``run`` that makes its output, and a
``post_run`` that records what later steps need in the shared :class:`Context`. A failing step
raises and stops the pipeline with its own one-line error: nothing is recorded and carried on.

``make repo`` runs :func:`build_repository` (train if no checkpoint, export if stale, publish if
changed, lint), so a second run adds nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contract.fileio import read_regular_text, sha256_of
from toolkit.export.records import record_path
from toolkit.repository.options import DEFAULT_REPOSITORY, ServingOptions
from toolkit.repository.sources import read_plan_record, spec_from_onnx_graph

if TYPE_CHECKING:  # publish imports Triton's protobuf, which `tritonkit --help` must not load
    from toolkit.repository.publish import Published

DEFAULT_MODEL = "digits"
DEFAULT_CHECKPOINT = Path("checkpoints/digits_smallcnn.pt")
DEFAULT_ONNX = Path("build/digits_smallcnn.onnx")
DEFAULT_EPOCHS = 15
MAX_RECORD_BYTES = 16 * 1024 * 1024


@dataclass
class Context:
    """What the steps share: inputs, the artifacts each step made, and what was skipped and why."""

    repository: Path
    name: str
    options: ServingOptions = field(default_factory=ServingOptions)
    checkpoint: Path | None = None
    onnx: Path | None = None
    plans: dict[str, Path] = field(default_factory=dict)  # compute capability -> plan
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # compute capability -> plan record
    labels: list[str] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    published: list[Published] = field(default_factory=list)
    problems: list[Any] = field(default_factory=list)
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds it ran
    skipped: list[str] = field(default_factory=list)
    log: Callable[[str], Any] = print


class Step:
    """One stage: skip-or-run, run, post-run. Subclasses set ``name`` and override what they need."""

    name = "step"

    def pre_run(self, ctx: Context) -> str | None:
        """Why this step can be skipped (its output is current), or None to run it."""
        return None

    def run(self, ctx: Context) -> None:
        """Make the step's output; raise a TritonkitError when it cannot."""

    def post_run(self, ctx: Context) -> None:
        """Record in ``ctx`` what later steps need (runs whether or not ``run`` did)."""


def run_steps(steps: Sequence[Step], ctx: Context) -> Context:
    """Run each step in order (skipping those whose output is current); returns ``ctx``."""
    for step in steps:
        reason = step.pre_run(ctx)
        if reason is not None:
            ctx.log(reason)
            ctx.skipped.append(step.name)
        else:
            started = time.perf_counter()
            step.run(ctx)
            ctx.steps[step.name] = time.perf_counter() - started
        step.post_run(ctx)
    return ctx


def read_record(path: Path) -> dict[str, Any]:
    """A side record (JSON object), or {} when absent or unusable (regular files only: a FIFO never blocks)."""
    try:
        data = json.loads(read_regular_text(path, limit=MAX_RECORD_BYTES))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def export_provenance(onnx_path: Path) -> dict[str, Any]:
    """What a manifest records about an export: its record, parity, and the checkpoint it came from."""
    record = read_record(record_path(onnx_path))
    if not record:
        return {}
    out = {"export": record, "parity": record.get("parity")}
    if record.get("checkpoint_sha256"):
        out["checkpoint_sha256"] = record["checkpoint_sha256"]
        ckpt = Path(str(record.get("checkpoint") or ""))
        if not ckpt.is_absolute() and record.get("cwd"):
            ckpt = Path(str(record["cwd"])) / ckpt
        metrics = checkpoint_metrics(ckpt, record["checkpoint_sha256"])
        if metrics:
            out["checkpoint_metrics"] = metrics
    return out


def checkpoint_metrics(checkpoint: Path, sha: str) -> dict[str, Any]:
    """The metrics a checkpoint records (test accuracy...), when the file is still the one exported
    (same sha256); {} otherwise, so ``repo list`` never shows another training's figures."""
    if not checkpoint.is_file() or sha256_of(checkpoint) != sha:
        return {}
    from contract.errors import TritonkitError
    from trainers.checkpoint import load_checkpoint  # imports torch

    try:
        metrics = load_checkpoint(checkpoint).get("metrics", {})
    except TritonkitError:
        return {}
    return metrics if isinstance(metrics, dict) else {}


class TrainStep(Step):
    """Train the default digits model when the checkpoint is missing."""

    name = "train"

    def __init__(self, epochs: int = DEFAULT_EPOCHS, label: str = "[1/3]") -> None:
        self.epochs, self.label = epochs, label

    def pre_run(self, ctx: Context) -> str | None:
        if ctx.checkpoint is not None and ctx.checkpoint.exists():
            return f"{self.label} checkpoint {ctx.checkpoint} exists: not retraining (delete it to retrain)"
        return None

    def run(self, ctx: Context) -> None:
        from trainers.recipes import train_digits_default  # imports torch

        ctx.log(f"{self.label} training the default digits model -> {ctx.checkpoint}")
        train_digits_default(ctx.checkpoint, epochs=self.epochs, quiet=False)
        ctx.log(f"{self.label} {accuracy_line(checkpoint_metrics(ctx.checkpoint, sha256_of(ctx.checkpoint)))}")


def accuracy_line(metrics: dict[str, Any]) -> str:
    """What training achieved, in one line (``make repo`` prints it: the figure a newcomer checks first)."""
    parts = [f"{key.removesuffix('_accuracy')} accuracy {metrics[key]:.4f}"
             for key in ("test_accuracy", "val_accuracy") if isinstance(metrics.get(key), (int, float))]
    if isinstance(metrics.get("train_seconds"), (int, float)):
        parts.append(f"trained in {metrics['train_seconds']:.1f} s")
    return ", ".join(parts) or "the checkpoint records no accuracy"


class ExportStep(Step):
    """Export ONNX to ``ctx.onnx`` unless its export record names the same checkpoint.

    ``export(path)`` makes the file (default: from ``ctx.checkpoint``); the Python API passes its
    ``ModelExporter`` for an ``nn.Module``, which has no checkpoint to compare, so it always runs.
    """

    name = "export"

    def __init__(self, export: Callable[[Path], Path] | None = None, label: str = "[2/3]") -> None:
        self.export, self.label = export, label
        self.checkpoint_sha: str | None = None

    def pre_run(self, ctx: Context) -> str | None:
        if self.export is not None or ctx.checkpoint is None or ctx.onnx is None:
            return None
        self.checkpoint_sha = sha256_of(ctx.checkpoint)
        record = record_path(ctx.onnx)
        if ctx.onnx.is_file() and record.is_file() and read_record(record).get("checkpoint_sha256") == \
                self.checkpoint_sha:
            return f"{self.label} {ctx.onnx} is current for this checkpoint: not re-exporting"
        return None

    def run(self, ctx: Context) -> None:
        if self.export is not None:
            ctx.onnx = Path(self.export(ctx.onnx))
            return
        from toolkit.export.onnx import onnx_from_checkpoint  # imports torch

        ctx.log(f"{self.label} exporting ONNX -> {ctx.onnx}")
        onnx_from_checkpoint(ctx.checkpoint, ctx.onnx)

    def post_run(self, ctx: Context) -> None:
        if self.checkpoint_sha is not None:  # a checkpoint's own figures, as `make repo` always recorded them
            record = read_record(record_path(ctx.onnx))
            ctx.provenance.update({"checkpoint_sha256": self.checkpoint_sha,
                                   "checkpoint_metrics": checkpoint_metrics(ctx.checkpoint, self.checkpoint_sha),
                                   "export": record, "parity": record.get("parity")})
        else:
            ctx.provenance.update(export_provenance(ctx.onnx))


class PublishStep(Step):
    """Publish ``ctx.onnx`` (or ``ctx.plans``) as a new version; with ``skip_if_unchanged`` a rerun adds nothing.

    ``ensemble`` also publishes ``<name>_image`` (raw or encoded images in, the classifier's outputs out).
    """

    name = "publish"

    def __init__(self, *, skip_if_unchanged: bool = False, ensemble: bool = False, label: str = "[3/3]") -> None:
        self.skip_if_unchanged, self.ensemble, self.label = skip_if_unchanged, ensemble, label
        self.made: list[Published] = []

    def run(self, ctx: Context) -> None:
        from toolkit.repository.publish import publish_image_ensemble, publish_onnx, publish_plan

        before = len(ctx.published)
        if ctx.plans:
            ctx.published.append(publish_plan(ctx.repository, ctx.name, ctx.plans, ctx.records, ctx.options,
                                              labels=ctx.labels, provenance=ctx.provenance,
                                              skip_if_unchanged=self.skip_if_unchanged))
        else:
            ctx.published.append(publish_onnx(ctx.repository, ctx.name, ctx.onnx, ctx.options, labels=ctx.labels,
                                              provenance=ctx.provenance, skip_if_unchanged=self.skip_if_unchanged))
        if self.ensemble:
            ctx.published.extend(publish_image_ensemble(
                ctx.repository, f"{ctx.name}_image", ctx.name, spec_from_onnx_graph(ctx.onnx),
                ctx.options.max_batch_size, skip_if_unchanged=self.skip_if_unchanged))
        self.made = ctx.published[before:]

    def post_run(self, ctx: Context) -> None:
        made = self.made
        if not self.label:
            return
        for p in made:
            if p.created:
                ctx.log(f"{self.label} published {p.model} version {p.version} -> {p.path}")
            else:
                ctx.log(f"{self.label} {p.model} version {p.version} already holds this model and config: "
                        "nothing added")
        if made and not any(p.created for p in made):
            ctx.skipped.append(self.name)


class ValidateStep(Step):
    """Lint the whole repository (the same rules ``tritonkit repo validate`` runs); problems go to ``ctx``."""

    name = "validate"

    def run(self, ctx: Context) -> None:
        from toolkit.repository.validate import summary, validate_repository

        ctx.log(f"linting {ctx.repository}")
        ctx.problems = validate_repository(ctx.repository)
        for p in ctx.problems:
            ctx.log(f"{p.severity}: {p.line()}")
        ctx.log(summary(ctx.problems))


def plans_by_capability(plans: Sequence[str | Path], records: Sequence[str | Path] = ()
                        ) -> tuple[dict[str, Path], dict[str, dict[str, Any]]]:
    """Plans and their records keyed by the compute capability each record names.

    Raises:
        RepositoryError: record count mismatch, or two plans for one compute capability.
    """
    from contract.errors import RepositoryError

    if records and len(records) != len(plans):
        raise RepositoryError(f"{len(plans)} --plan but {len(records)} --plan-record; give one record per plan "
                              "or none (then PLAN.json beside each plan is used)")
    by_cc: dict[str, Path] = {}
    recs: dict[str, dict[str, Any]] = {}
    for i, plan in enumerate(plans):
        record = read_plan_record(records[i] if records else f"{plan}.json")
        cc = str(record.get("compute_capability") or f"plan{i}")
        if cc in by_cc:
            raise RepositoryError(f"{plan} and {by_cc[cc]} were both built for compute capability {cc}; "
                                  "give one plan per GPU kind")
        by_cc[cc], recs[cc] = Path(plan), record
    return by_cc, recs


@dataclass
class BuildResult:
    """What :func:`build_repository` did: its artifacts, the versions, the seconds per step, what it skipped."""

    checkpoint: Path
    onnx: Path
    published: list[Published] = field(default_factory=list)
    steps: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    problems: list[Any] = field(default_factory=list)


def build_repository(
    repository: str | Path = DEFAULT_REPOSITORY,
    *,
    name: str = DEFAULT_MODEL,
    checkpoint: str | Path = DEFAULT_CHECKPOINT,
    onnx_path: str | Path = DEFAULT_ONNX,
    options: ServingOptions | None = None,
    epochs: int = DEFAULT_EPOCHS,
    validate: bool = False,
    log: Any = print,
) -> BuildResult:
    """Train (if no checkpoint), export (if stale) and publish (if changed) the default model and its
    image ensemble; with ``validate``, lint the repository last (problems in the result)."""
    ctx = Context(repository=Path(repository), name=name, options=options or ServingOptions(),
                  checkpoint=Path(checkpoint), onnx=Path(onnx_path), log=log)
    steps: list[Step] = [TrainStep(epochs), ExportStep(), PublishStep(skip_if_unchanged=True, ensemble=True)]
    if validate:
        steps.append(ValidateStep())
    run_steps(steps, ctx)
    return BuildResult(checkpoint=Path(checkpoint), onnx=Path(onnx_path), published=ctx.published, steps=ctx.steps,
                       skipped=ctx.skipped, problems=ctx.problems)
