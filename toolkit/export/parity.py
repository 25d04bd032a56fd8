"""The same inputs through two stages, and how far their outputs are apart.

A *runner* maps ``{input name: array}`` to ``{output name: array}``. Runners exist for a torch
checkpoint (or module), an ONNX model in ONNX Runtime, a TensorRT plan (GPU only) and any
numpy -> numpy callable (e.g. a Triton endpoint), so every stage is checked the same way.

Inputs are real samples from the model's data set (the held-out split, normalized exactly as in
training) and random ones drawn over the spec's raw value range, each at batch sizes 1, opt and
max. Tolerances come from presets per precision: fp32/fp16 compare element-wise
(``|a-b| <= atol + rtol*|b|``); int8 compares decisions (top-1 agreement, accuracy drop), because
quantization moves logits by far more than any element-wise bound while keeping the answer.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from contract.errors import ExportError, UsageError
from contract.spec import METADATA_SPEC_KEY, ModelSpec, check_batch_budget

Feeds = dict[str, np.ndarray]


# --------------------------------------------------------------------------- tolerances
@dataclass(frozen=True)
class Tolerance:
    """Pass/fail bounds. ``atol``/``rtol`` None = no element-wise check."""

    atol: float | None = 1e-5
    rtol: float | None = 1e-5
    min_top1_agreement: float | None = None
    max_accuracy_drop: float | None = None


PRESETS: dict[str, Tolerance] = {
    "fp32": Tolerance(atol=1e-5, rtol=1e-5),
    "fp16": Tolerance(atol=1e-2, rtol=1e-2),
    "int8": Tolerance(atol=None, rtol=None, min_top1_agreement=0.97, max_accuracy_drop=0.01),
}


def tolerance_for(precision: str = "fp32", **overrides: float | None) -> Tolerance:
    """The preset for ``precision`` with any non-None ``overrides`` (atol, rtol, ...) applied."""
    if precision not in PRESETS:
        raise UsageError(f"unknown precision {precision!r}; choose one of: {', '.join(PRESETS)}")
    return replace(PRESETS[precision], **{k: v for k, v in overrides.items() if v is not None})


# --------------------------------------------------------------------------- runners
class Runner:
    """Base runner: ``__call__(feeds) -> outputs``; ``spec`` when the artifact carries one."""

    name: str = "runner"
    spec: ModelSpec | None = None
    dataset: dict[str, Any] | None = None

    def __call__(self, feeds: Feeds) -> Feeds:  # pragma: no cover - interface
        raise NotImplementedError


class TorchRunner(Runner):
    """A torch module on the CPU (from a checkpoint file or a module + spec)."""

    def __init__(self, model: Any, spec: ModelSpec, *, name: str = "torch", dataset: dict | None = None):
        self.model, self.spec, self.name, self.dataset = model.eval(), spec, name, dataset

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str]) -> TorchRunner:
        from trainers.checkpoint import load_checkpoint, model_from_checkpoint, model_spec_of

        payload = load_checkpoint(path)
        return cls(model_from_checkpoint(payload, where=str(path)), model_spec_of(payload, where=str(path)),
                   name=f"torch:{Path(path).name}",
                   dataset=payload.get("dataset"))

    def __call__(self, feeds: Feeds) -> Feeds:
        import torch

        _require_inputs(self.name, [t.name for t in self.spec.inputs], feeds)
        args = [torch.from_numpy(np.ascontiguousarray(feeds[t.name])) for t in self.spec.inputs]
        try:
            with torch.no_grad():
                out = self.model(*args)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise ExportError(f"{self.name}: the model failed on inputs {_shapes(feeds)} ({_first_line(exc)}); "
                              "compare models that take the same inputs") from None
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {t.name: o.detach().cpu().numpy() for t, o in zip(self.spec.outputs, outs)}


def _dataset_metadata(raw: str | None, path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``tritonkit.dataset`` metadata as a dict; a hostile file's non-JSON or wrong shape is refused."""
    if raw is None:
        return None
    try:
        data = json.loads(raw) if len(raw) <= 1 << 20 else None
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("seed", 0), int) \
            or not isinstance(data.get("fractions", []), (list, tuple)):
        raise ExportError(f"{path}: metadata tritonkit.dataset is not a JSON object naming a data set "
                          "(name, seed, fractions); re-export the model")
    return data


class OnnxRunner(Runner):
    """An ONNX model in ONNX Runtime on the CPU (external data checked first)."""

    def __init__(self, path: str | os.PathLike[str], *, name: str | None = None):
        import onnxruntime as ort

        from toolkit.export.safety import load_onnx

        self.path = Path(path)
        proto = load_onnx(self.path)  # refuses corrupt files and escaping external data
        meta = {p.key: p.value for p in proto.metadata_props}
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = min(2, os.cpu_count() or 1)
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"{path}: ONNX Runtime cannot load the model ({first}); re-export it") from None
        self.name = name or f"onnx:{self.path.name}"
        spec_json = meta.get(METADATA_SPEC_KEY)
        try:
            self.spec = ModelSpec.from_json(spec_json, where=f"{path}: metadata {METADATA_SPEC_KEY}") \
                if spec_json else None
        except UsageError as exc:
            raise ExportError(str(exc)) from None
        self.dataset = _dataset_metadata(meta.get("tritonkit.dataset"), path)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, feeds: Feeds) -> Feeds:
        _require_inputs(self.name, self.input_names, feeds)
        try:
            res = self.session.run(None, {n: feeds[n] for n in self.input_names})
        except Exception as exc:  # noqa: BLE001 - ORT raises its own unrelated types
            raise ExportError(f"{self.name}: ONNX Runtime failed on inputs {_shapes(feeds)} ({_first_line(exc)}); "
                              "compare models that take the same inputs") from None
        return dict(zip(self.output_names, res))


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[0] if lines else type(exc).__name__)[:200]


def _shapes(feeds: Feeds) -> str:
    return ", ".join(f"{k} {list(np.shape(v))}" for k, v in feeds.items())


def _require_inputs(name: str, needed: Sequence[str], feeds: Feeds) -> None:
    """Two artifacts compared must take the same inputs; say which names differ (not a KeyError)."""
    missing = [n for n in needed if n not in feeds]
    if missing:
        raise ExportError(f"{name}: takes input(s) {missing} but the inputs given are {sorted(feeds)}; "
                          "compare models with the same input names")


class TensorRTRunner(Runner):
    """A TensorRT plan through Polygraphy's TrtRunner (needs tensorrt and a GPU)."""

    def __init__(self, path: str | os.PathLike[str], *, name: str | None = None):
        from toolkit.export.tensorrt import require_tensorrt

        require_tensorrt()
        from polygraphy.backend.common import BytesFromPath
        from polygraphy.backend.trt import EngineFromBytes, TrtRunner

        self.path = Path(path)
        self.name = name or f"tensorrt:{self.path.name}"
        self._runner = TrtRunner(EngineFromBytes(BytesFromPath(str(self.path))))
        self._runner.activate()

    def __call__(self, feeds: Feeds) -> Feeds:
        out = self._runner.infer(feeds, copy_outputs_to_host=True)
        return {k: np.asarray(v) for k, v in out.items()}


class CallableRunner(Runner):
    """Any callable numpy -> numpy (one input) or dict -> dict, e.g. a Triton client call."""

    def __init__(self, func: Callable[..., Any], *, spec: ModelSpec | None = None, name: str | None = None):
        self.func, self.spec = func, spec
        self.name = name or getattr(func, "__name__", "callable")

    def __call__(self, feeds: Feeds) -> Feeds:
        single = len(feeds) == 1
        out = self.func(next(iter(feeds.values())) if single else feeds)
        if isinstance(out, Mapping):
            return {k: np.asarray(v) for k, v in out.items()}
        names = [t.name for t in self.spec.outputs] if self.spec else ["output"]
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {n: np.asarray(o) for n, o in zip(names, outs)}


def as_runner(obj: Any, *, spec: ModelSpec | None = None) -> Runner:
    """A runner for a checkpoint/ONNX/plan path, an ``nn.Module`` (needs ``spec``), or a callable."""
    if isinstance(obj, Runner):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        path = Path(obj)
        suffix = path.suffix.lower()
        if suffix == ".onnx":
            return OnnxRunner(path)
        if suffix in (".plan", ".engine", ".trt"):
            return TensorRTRunner(path)
        if suffix in (".pt", ".pth", ".ckpt"):
            return TorchRunner.from_checkpoint(path)
        raise UsageError(
            f"{path}: cannot tell what this is from its suffix; use .pt/.pth/.ckpt (checkpoint), "
            ".onnx (ONNX model) or .plan/.engine (TensorRT plan)"
        )
    try:
        import torch

        if isinstance(obj, torch.nn.Module):
            if spec is None:
                raise UsageError("comparing an nn.Module needs spec=ModelSpec(...) for its input/output names")
            return TorchRunner(obj, spec, name=type(obj).__name__)
    except ImportError:  # pragma: no cover
        pass
    if callable(obj):
        return CallableRunner(obj, spec=spec)
    raise UsageError(f"cannot compare a {type(obj).__name__}; give a path, an nn.Module or a callable")


# --------------------------------------------------------------------------- inputs
@dataclass
class Case:
    """One named input batch (and its labels when the samples are real)."""

    name: str
    feeds: Feeds
    labels: np.ndarray | None = None


def _concrete(shape: Sequence[int], reference: Sequence[int] | None) -> list[int]:
    ref = list(reference) if reference is not None else [8] * len(shape)
    return [d if d > 0 else (ref[i] if ref[i] > 0 else 8) for i, d in enumerate(shape)]


@functools.lru_cache(maxsize=4)
def _digits_split(seed: int, fractions: tuple[float, ...], split: str) -> Any:
    from trainers.data import load_digits_splits

    return load_digits_splits(seed=seed, fractions=fractions)[split]  # type: ignore[arg-type]


def real_samples(spec: ModelSpec, dataset: Mapping[str, Any] | None, split: str = "test"):
    """(normalized images, labels) of the model's data set split, or None when unknown here."""
    name = (dataset or {}).get("name")
    if name != "digits" or len(spec.inputs) != 1:
        return None
    from trainers.data import normalize

    s = _digits_split(int(dataset.get("seed", 0)), tuple(dataset.get("fractions", (0.7, 0.15, 0.15))), split)
    shape = spec.input.shape
    if any(d > 0 and d != a for d, a in zip(shape, s.images.shape[1:])) or len(shape) != 3:
        return None
    x = normalize(s.images, spec.scale, spec.mean, spec.std).astype(spec.input.dtype)
    return x, s.labels


def parity_cases(
    spec: ModelSpec,
    *,
    dataset: Mapping[str, Any] | None = None,
    batch_sizes: Sequence[int] = (1, 8, 32),
    seed: int = 0,
    reference_shapes: Mapping[str, Sequence[int]] | None = None,
) -> list[Case]:
    """Real (when the data set is known) and random input batches at each batch size.

    Random samples are drawn uniformly over the spec's raw ``value_range`` and normalized like
    real ones, so they stay in the range the model was trained on.
    """
    rng = np.random.default_rng(seed)
    cases: list[Case] = []
    real = real_samples(spec, dataset)
    if real is not None:
        x, y = real
        for bs in batch_sizes:
            cases.append(Case(f"real b{bs}", {spec.input.name: x[:bs]}, y[:bs]))
    for bs in batch_sizes:
        feeds: Feeds = {}
        for t in spec.inputs:
            shape = [bs, *_concrete(t.shape, (reference_shapes or {}).get(t.name))]
            check_batch_budget(t.name, shape[1:], t.dtype, bs, where="parity random inputs",
                               hint="; use a smaller --max-batch")
            if t.dtype.startswith("float"):
                lo, hi = spec.value_range
                raw = rng.uniform(lo, hi, size=shape).astype(np.float32)
                if len(shape) == 4 and spec.mean:
                    from trainers.data import normalize

                    raw = normalize(raw, spec.scale, spec.mean, spec.std)
                else:
                    raw = raw * np.float32(spec.scale)
                feeds[t.name] = raw.astype(t.dtype)
            else:
                feeds[t.name] = rng.integers(0, 2, size=shape).astype(t.dtype)
        cases.append(Case(f"random b{bs}", feeds))
    return cases


def full_split_case(spec: ModelSpec, dataset: Mapping[str, Any] | None) -> Case | None:
    """The whole held-out split as one case (for accuracy), or None when unknown."""
    real = real_samples(spec, dataset)
    if real is None:
        return None
    return Case("real test (all)", {spec.input.name: real[0]}, real[1])


# --------------------------------------------------------------------------- report
@dataclass
class ParityRow:
    case: str
    output: str
    batch: int
    max_abs: float
    max_rel: float
    p99_abs: float
    top1_agreement: float | None
    within_tolerance: bool


@dataclass
class ParityReport:
    """Per case and output: max abs, max rel, p99 abs error, top-1 agreement; and a verdict."""

    a: str
    b: str
    precision: str
    tolerance: Tolerance
    rows: list[ParityRow] = field(default_factory=list)
    accuracy_a: float | None = None
    accuracy_b: float | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def accuracy_drop(self) -> float | None:
        if self.accuracy_a is None or self.accuracy_b is None:
            return None
        return self.accuracy_a - self.accuracy_b

    def summary(self) -> dict[str, dict[str, float | None]]:
        """Per output over all cases: worst max abs/rel, worst p99, lowest top-1 agreement."""
        out: dict[str, dict[str, float | None]] = {}
        for r in self.rows:
            s = out.setdefault(r.output, {"max_abs": 0.0, "max_rel": 0.0, "p99_abs": 0.0, "top1_agreement": None})
            s["max_abs"] = max(s["max_abs"], r.max_abs)
            s["max_rel"] = max(s["max_rel"], r.max_rel)
            s["p99_abs"] = max(s["p99_abs"], r.p99_abs)
            if r.top1_agreement is not None:
                cur = s["top1_agreement"]
                s["top1_agreement"] = r.top1_agreement if cur is None else min(cur, r.top1_agreement)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a, "b": self.b, "precision": self.precision, "tolerance": asdict(self.tolerance),
            "passed": self.passed, "failures": self.failures, "summary": self.summary(),
            "accuracy_a": self.accuracy_a, "accuracy_b": self.accuracy_b, "accuracy_drop": self.accuracy_drop,
            "rows": [asdict(r) for r in self.rows],
        }

    def table(self) -> str:
        t = self.tolerance
        head = (f"parity {self.a} vs {self.b} ({self.precision}: atol={t.atol} rtol={t.rtol} "
                f"min_top1={t.min_top1_agreement} max_acc_drop={t.max_accuracy_drop})")
        cols = (f"{'case':<18} {'output':<10} {'batch':>5} {'max_abs':>10} {'max_rel':>10} {'p99_abs':>10} "
                f"{'top1':>7}  ok")
        lines = [head, cols, "-" * len(cols)]
        for r in self.rows:
            top1 = "-" if r.top1_agreement is None else f"{r.top1_agreement:.4f}"
            lines.append(f"{r.case:<18} {r.output:<10} {r.batch:>5} {r.max_abs:>10.3g} {r.max_rel:>10.3g} "
                         f"{r.p99_abs:>10.3g} {top1:>7}  {'yes' if r.within_tolerance else 'NO'}")
        if self.accuracy_a is not None:
            lines.append(f"accuracy on held-out set: {self.a} {self.accuracy_a:.4f}, {self.b} "
                         f"{self.accuracy_b:.4f} (drop {100 * (self.accuracy_drop or 0):.2f} points)")
        lines.append("PASS" if self.passed else "FAIL: " + "; ".join(self.failures))
        return "\n".join(lines)


class ParityError(ExportError):
    """Parity failed; ``report`` holds the table the CLI prints before the one-line error."""

    def __init__(self, message: str, report: ParityReport):
        super().__init__(message)
        self.report = report


def _row(case: Case, name: str, a: np.ndarray, b: np.ndarray, tol: Tolerance) -> ParityRow:
    if a.shape != b.shape:
        raise ExportError(f"parity: output {name!r} has shape {a.shape} vs {b.shape} on case {case.name!r}")
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    diff = np.abs(a64 - b64)
    rel = diff / np.maximum(np.abs(b64), 1e-12)
    top1 = None
    if a.ndim == 2 and a.shape[1] > 1:
        top1 = float(np.mean(a.argmax(1) == b.argmax(1)))
    ok = True
    if tol.atol is not None and tol.rtol is not None:
        ok = bool(np.all(diff <= tol.atol + tol.rtol * np.abs(b64)))
    return ParityRow(case.name, name, int(a.shape[0]) if a.ndim else 1, float(diff.max(initial=0.0)),
                     float(rel.max(initial=0.0)), float(np.percentile(diff, 99)) if diff.size else 0.0, top1, ok)


def _run_chunked(runner: Runner, feeds: Feeds, chunk: int) -> Feeds:
    n = len(next(iter(feeds.values())))
    parts: list[Feeds] = [runner({k: v[i:i + chunk] for k, v in feeds.items()}) for i in range(0, n, chunk)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def compare(
    a: Any,
    b: Any,
    inputs: Sequence[Case] | Feeds | np.ndarray | None = None,
    *,
    precision: str = "fp32",
    tolerance: Tolerance | None = None,
    spec: ModelSpec | None = None,
    opt_batch: int = 8,
    max_batch: int = 32,
    seed: int = 0,
    accuracy: bool = True,
) -> ParityReport:
    """Run the same inputs through ``a`` (the reference) and ``b``; measure and judge.

    Args:
        a, b: checkpoint/.onnx/.plan paths, runners, ``nn.Module`` (with ``spec``) or callables.
        inputs: cases, one feeds dict, one array (single-input models), or None for the default:
            real samples of the model's data set and random ones at batch sizes 1, opt, max.
        precision: tolerance preset (``fp32``, ``fp16``, ``int8``); ``tolerance`` overrides it.
        accuracy: also run the whole held-out split (when known) and compare accuracies.

    Returns:
        A :class:`ParityReport`; check ``passed`` or call :func:`raise_if_failed`.
    """
    ra, rb = as_runner(a, spec=spec), as_runner(b, spec=spec)
    spec = spec or ra.spec or rb.spec
    dataset = ra.dataset or rb.dataset
    tol = tolerance or tolerance_for(precision)
    if max_batch < 1 or opt_batch < 1 or opt_batch > max_batch:
        raise UsageError(f"batch sizes must satisfy 1 <= opt ({opt_batch}) <= max ({max_batch})")
    if inputs is None:
        if spec is None:
            raise UsageError("no model spec found in either artifact; pass spec=... or explicit inputs")
        cases = parity_cases(spec, dataset=dataset, batch_sizes=sorted({1, opt_batch, max_batch}), seed=seed)
    elif isinstance(inputs, np.ndarray):
        name = spec.input.name if spec else "input"
        cases = [Case(f"given b{len(inputs)}", {name: inputs})]
    elif isinstance(inputs, Mapping):
        cases = [Case("given", dict(inputs))]
    else:
        cases = list(inputs)
    report = ParityReport(ra.name, rb.name, precision, tol)
    for case in cases:
        oa, ob = ra(case.feeds), rb(case.feeds)
        for name in oa:
            if name not in ob:
                raise ExportError(f"parity: output {name!r} of {ra.name} is missing from {rb.name} ({sorted(ob)})")
            report.rows.append(_row(case, name, np.asarray(oa[name]), np.asarray(ob[name]), tol))
    if accuracy and spec is not None and inputs is None:
        full = full_split_case(spec, dataset)
        if full is not None and full.labels is not None:
            oa = _run_chunked(ra, full.feeds, max_batch)
            ob = _run_chunked(rb, full.feeds, max_batch)
            out = spec.output.name
            report.rows.append(_row(full, out, oa[out], ob[out], tol))
            report.accuracy_a = float(np.mean(oa[out].argmax(1) == full.labels))
            report.accuracy_b = float(np.mean(ob[out].argmax(1) == full.labels))
    _judge(report)
    return report


def _judge(report: ParityReport) -> None:
    tol = report.tolerance
    for r in report.rows:
        if not r.within_tolerance:
            report.failures.append(
                f"{r.output} on {r.case}: max abs {r.max_abs:.3g} exceeds atol {tol.atol} + rtol {tol.rtol}"
            )
            break
    if tol.min_top1_agreement is not None:
        # For decision-based presets only real samples count: random ones are out of distribution.
        # Pooled over samples (one flipped image of a batch of 1 is not a 0% agreement); for
        # decision-based presets only real samples count: random ones are out of distribution.
        rows = [r for r in report.rows if r.top1_agreement is not None]
        if tol.atol is None:
            rows = [r for r in rows if r.case.startswith("real")] or rows
        full = [r for r in rows if r.case == "real test (all)"]
        rows = full or rows
        if rows:
            n = sum(r.batch for r in rows)
            pooled = sum((r.top1_agreement or 0.0) * r.batch for r in rows) / max(n, 1)
            if pooled < tol.min_top1_agreement:
                where = rows[0].case if len(rows) == 1 else f"{len(rows)} cases"
                report.failures.append(
                    f"{rows[0].output} on {where}: top-1 agreement {pooled:.4f} below {tol.min_top1_agreement}"
                )
    drop = report.accuracy_drop
    if tol.max_accuracy_drop is not None and drop is not None and drop > tol.max_accuracy_drop:
        report.failures.append(f"accuracy drop {100 * drop:.2f} points exceeds {100 * tol.max_accuracy_drop:.2f}")


def raise_if_failed(report: ParityReport, *, what: str = "parity") -> ParityReport:
    """Raise :class:`ParityError` (one line; the table on ``.report``) when the report failed."""
    if not report.passed:
        raise ParityError(
            f"{what} failed: {report.a} vs {report.b} ({report.precision}): {report.failures[0]}; "
            "see the table above", report,
        )
    return report
