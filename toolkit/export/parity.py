"""The same inputs through two stages, and how far their outputs are apart.

Both stages run through :mod:`toolkit.runners` (torch checkpoint or module, ONNX Runtime,
TensorRT plan, Triton endpoint or any numpy -> numpy callable), so every stage is checked the
same way. The error statistics come from Polygraphy's Comparator (``compare_accuracy`` with a
``SimpleCompareFunc``); what stays here are tritonkit's own judges: the element-wise bound
``|a-b| <= atol + rtol*|b|`` (numpy's ``allclose``, which ``--atol/--rtol`` mean; Polygraphy's
elemwise check passes an element within *either* tolerance, a looser test), top-1 agreement and
accuracy drop, with presets per precision.

Inputs are real samples from the model's data set (the held-out split, normalized exactly as in
training) and random ones drawn over the spec's raw value range, each at batch sizes 1, opt and
max. Tolerances come from presets per precision: fp32/fp16 compare element-wise
(``|a-b| <= atol + rtol*|b|``); int8 compares decisions (top-1 agreement, accuracy drop), because
quantization moves logits by far more than any element-wise bound while keeping the answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from polygraphy import mod
from polygraphy.logger import G_LOGGER

from contract.errors import ExportError, UsageError
from contract.spec import ModelSpec, check_batch_budget
from toolkit.export.defaults import MAX_BATCH, OPT_BATCH
from toolkit.runners import BaseRunner, Feeds, as_runner
from toolkit.runners.base import wrap_rows
from trainers.data import embedded_split, normalize

comparator = mod.lazy_import("polygraphy.comparator")  # loaded by the first comparison

__all__ = ["PRESETS", "Case", "ParityError", "ParityReport", "ParityRow", "Tolerance",
           "common_fixed_batch", "compare", "full_split_case", "parity_cases", "raise_if_failed", "real_samples",
           "tolerance_for"]


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


def real_samples(spec: ModelSpec, dataset: Mapping[str, Any] | None, split: str = "test"):
    """(normalized images, labels) of the model's data set split, or None when unknown here."""
    s = embedded_split(dataset, split) if dataset and len(spec.inputs) == 1 else None
    if s is None:
        return None
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
            cases.append(Case(f"real b{bs}", {spec.input.name: wrap_rows(x, bs)}, wrap_rows(y, bs)))
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
    notes: list[str] = field(default_factory=list)

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
            "notes": self.notes, "rows": [asdict(r) for r in self.rows],
        }

    def table(self) -> str:
        t = self.tolerance
        head = (f"parity {self.a} vs {self.b} ({self.precision}: atol={t.atol} rtol={t.rtol} "
                f"min_top1={t.min_top1_agreement} max_acc_drop={t.max_accuracy_drop})")
        cols = (f"{'case':<18} {'output':<10} {'batch':>5} {'max_abs':>10} {'max_rel':>10} {'p99_abs':>10} "
                f"{'top1':>7}  ok")
        lines = [head, *(f"note: {n}" for n in self.notes), cols, "-" * len(cols)]
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


def _rows(case: Case, oa: Feeds, ob: Feeds, tol: Tolerance, names: tuple[str, str]) -> list[ParityRow]:
    """One row per output of ``a``: Polygraphy's Comparator statistics plus tritonkit's judges."""
    for name in oa:
        if name not in ob:
            raise ExportError(f"parity: output {name!r} of {names[0]} is missing from {names[1]} ({sorted(ob)})")
        if np.shape(oa[name]) != np.shape(ob[name]):
            raise ExportError(f"parity: output {name!r} has shape {np.shape(oa[name])} vs {np.shape(ob[name])} "
                              f"on case {case.name!r}")
    a = {k: np.asarray(v) for k, v in oa.items()}
    b = {k: np.asarray(ob[k]) for k in a}
    results = comparator.RunResults([("a", [comparator.IterationResult(a, runner_name="a")]),
                                     ("b", [comparator.IterationResult(b, runner_name="b")])])
    with G_LOGGER.verbosity(G_LOGGER.CRITICAL):  # its report goes to stdout; ours is the table
        stats = comparator.Comparator.compare_accuracy(results, compare_func=comparator.SimpleCompareFunc(
            atol=tol.atol or 0.0, rtol=tol.rtol or 0.0))[0][("a", "b")][0]
    rows = []
    for name, out_a in a.items():
        out_b = b[name]
        diff = np.abs(out_a.astype(np.float64) - out_b.astype(np.float64))
        top1 = float(np.mean(out_a.argmax(1) == out_b.argmax(1))) if out_a.ndim == 2 and out_a.shape[1] > 1 \
            else None
        ok = True
        if tol.atol is not None and tol.rtol is not None:
            ok = bool(np.all(diff <= tol.atol + tol.rtol * np.abs(out_b.astype(np.float64))))
        st = stats[name]
        rows.append(ParityRow(case.name, name, int(out_a.shape[0]) if out_a.ndim else 1,
                              float(st.max_absdiff) if diff.size else 0.0,
                              float(st.max_reldiff) if diff.size else 0.0,
                              float(np.percentile(diff, 99)) if diff.size else 0.0, top1, ok))
    return rows


def _run_chunked(runner: BaseRunner, feeds: Feeds, chunk: int, fixed: int | None = None) -> Feeds:
    """All rows in chunks; at a fixed batch the last chunk is padded (:func:`wrap_rows`) and cut after."""
    n = len(next(iter(feeds.values())))
    if fixed:
        chunk = fixed
        feeds = {k: wrap_rows(v, -(-n // fixed) * fixed) for k, v in feeds.items()}
    parts = [runner.infer({k: v[i:i + chunk] for k, v in feeds.items()}) for i in range(0, n, chunk)]
    return {k: np.concatenate([p[k] for p in parts])[:n] for k in parts[0]}


def common_fixed_batch(*runners: BaseRunner) -> int | None:
    """The fixed batch of the (active) runners, None when all are dynamic; two different ones are refused."""
    fixed = {r.name: b for r in runners if (b := r.fixed_batch()) is not None}
    if len(set(fixed.values())) > 1:
        shown = ", ".join(f"{n} {b}" for n, b in fixed.items())
        raise UsageError(f"the models have different fixed batch sizes ({shown}); compare models exported with "
                         "the same --static --batch N, or with a dynamic batch")
    return next(iter(fixed.values()), None)


def compare(
    a: Any,
    b: Any,
    inputs: Sequence[Case] | Feeds | np.ndarray | None = None,
    *,
    precision: str = "fp32",
    tolerance: Tolerance | None = None,
    spec: ModelSpec | None = None,
    opt_batch: int = OPT_BATCH,
    max_batch: int = MAX_BATCH,
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
    if inputs is None and spec is None:
        raise UsageError("no model spec found in either artifact; pass spec=... or explicit inputs")
    report = ParityReport(ra.name, rb.name, precision, tol)
    names = (ra.name, rb.name)
    with contextlib.ExitStack() as active:
        for r in (ra, rb):
            if not r.is_active:  # a runner the caller activated stays active
                active.enter_context(r)
        fixed = common_fixed_batch(ra, rb)  # TensorRT and Triton tell their shapes only once active
        if inputs is None:
            sizes = sorted({1, opt_batch, max_batch})
            if fixed is not None:
                report.notes.append(f"fixed batch {fixed}: compared at batch {fixed} only (asked {sizes})")
                sizes = [fixed]
            cases = parity_cases(spec, dataset=dataset, batch_sizes=sizes, seed=seed)
        elif isinstance(inputs, np.ndarray):
            name = spec.input.name if spec else "input"
            cases = [Case(f"given b{len(inputs)}", {name: inputs})]
        elif isinstance(inputs, Mapping):
            cases = [Case("given", dict(inputs))]
        else:
            cases = list(inputs)
        for case in cases:
            report.rows.extend(_rows(case, ra.infer(case.feeds), rb.infer(case.feeds), tol, names))
        if accuracy and spec is not None and inputs is None:
            full = full_split_case(spec, dataset)
            if full is not None and full.labels is not None:
                out = spec.output.name
                oa = {out: _run_chunked(ra, full.feeds, max_batch, fixed)[out]}
                ob = {out: _run_chunked(rb, full.feeds, max_batch, fixed)[out]}
                report.rows.extend(_rows(full, oa, ob, tol, names))
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
