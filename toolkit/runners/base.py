"""The runner interface every runtime shares, in Polygraphy's style.

A runner is built cheaply (it may read the artifact's metadata), then ``activate()`` loads the
runtime, ``infer(feed_dict)`` maps ``{input name: array}`` to ``{output name: array}`` and
``deactivate()`` frees it; ``with runner:`` does both. ``last_inference_time()`` is the seconds
the last ``infer`` took. Polygraphy's own ``BaseRunner`` is not subclassed: its input checks raise
Polygraphy's errors (not tritonkit's one-line ones) and importing it would load Polygraphy for
``tritonkit --help``; the interface and its names are the same.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from contract.errors import ExportError, UsageError
from contract.spec import ModelSpec

Feeds = dict[str, np.ndarray]
InputMetadata = dict[str, tuple[np.dtype, list[Any]]]


class BaseRunner:
    """activate / infer / deactivate over one runtime; subclasses override the ``*_impl`` hooks.

    Attributes:
        name: what reports call this runner (``onnx:model.onnx``).
        spec: the model's :class:`ModelSpec` when the artifact carries one.
        dataset: the data set the model was trained on (name, seed, fractions), when known.
    """

    spec: ModelSpec | None = None
    dataset: dict[str, Any] | None = None
    device_memory_bytes: int = 0  # what the runtime holds on a GPU once active (TensorRT)

    def __init__(self, name: str) -> None:
        self.name = name
        self.is_active = False
        self.inference_time: float | None = None

    @property
    def runtime(self) -> str:
        """The runtime and its version, for reports (``onnxruntime 1.20.1 CPU``)."""
        return type(self).__name__

    # -- hooks ------------------------------------------------------------------------------
    def activate_impl(self) -> None:
        """Load the runtime (session, engine, client). Nothing by default."""

    def infer_impl(self, feed_dict: Feeds) -> Feeds:  # pragma: no cover - interface
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        """Free what ``activate_impl`` loaded. Nothing by default."""

    def get_input_metadata_impl(self) -> InputMetadata:  # pragma: no cover - interface
        raise NotImplementedError

    # -- the interface ------------------------------------------------------------------------
    def activate(self) -> None:
        """Load the runtime; a second call does nothing."""
        if not self.is_active:
            self.activate_impl()
            self.is_active = True

    def deactivate(self) -> None:
        """Free the runtime; an inactive runner does nothing."""
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False
            self.inference_time = None

    def get_input_metadata(self) -> InputMetadata:
        """``{input name: (numpy dtype, shape with the batch dimension; -1 or a str = variable)}``.

        The Triton and TensorRT runners read it from the runtime, so they must be active."""
        return self.get_input_metadata_impl()

    def fixed_batch(self) -> int | None:
        """The batch size every input is fixed to (a static-batch export), or None when it varies.

        Stages that choose batch sizes (parity, profile-local, calibration) must then run this one."""
        firsts = {shape[0] if shape else None for _, shape in self.get_input_metadata().values()}
        first = firsts.pop() if len(firsts) == 1 else None
        return first if isinstance(first, int) and not isinstance(first, bool) and first > 0 else None

    def require_active(self, what: str) -> None:
        """UsageError unless active: runtimes (sessions, engines, connections) exist only then."""
        if not self.is_active:
            raise UsageError(f"{self.name}: activate the runner (or use 'with runner:') before {what}")

    def infer(self, feed_dict: Feeds) -> Feeds:
        """Outputs by name for one batch; the runner must be active."""
        self.require_active("infer()")
        t0 = time.perf_counter()
        out = self.infer_impl(feed_dict)
        self.inference_time = time.perf_counter() - t0
        return out

    def last_inference_time(self) -> float | None:
        """Seconds the last :meth:`infer` took (None before the first one)."""
        return self.inference_time

    def logits(self, batch: Any) -> np.ndarray:
        """First output for one batch of a single-input model: the ``numpy -> logits`` callable
        that ``trainers.evaluation`` takes (the runner must be active, as for :meth:`infer`)."""
        arr = batch.detach().cpu().numpy() if hasattr(batch, "detach") else np.asarray(batch)
        names = list(self.get_input_metadata())
        return next(iter(self.infer({names[0]: arr}).values()))

    def __enter__(self) -> BaseRunner:
        self.activate()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.deactivate()


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (runtimes raise pages of text)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[0] if lines else type(exc).__name__)[:200]


def wrap_rows(arr: np.ndarray, rows: int) -> np.ndarray:
    """``arr`` with exactly ``rows`` rows: cut, or padded by repeating its rows from the start
    (a fixed-batch model takes only full batches; repeated real rows keep statistics honest)."""
    if len(arr) == rows:
        return arr
    return arr[np.arange(rows) % len(arr)]


def shapes_of(feeds: Feeds) -> str:
    """``name [shape], ...`` for error messages."""
    return ", ".join(f"{k} {list(np.shape(v))}" for k, v in feeds.items())


def require_inputs(name: str, needed: Sequence[str], feeds: Feeds) -> None:
    """Two artifacts compared must take the same inputs; say which names differ (not a KeyError)."""
    missing = [n for n in needed if n not in feeds]
    if missing:
        raise ExportError(f"{name}: takes input(s) {missing} but the inputs given are {sorted(feeds)}; "
                          "compare models with the same input names")


def failed_on(name: str, what: str, feeds: Feeds, exc: BaseException) -> ExportError:
    """The one-line error of a runtime that failed on the given inputs."""
    return ExportError(f"{name}: {what} failed on inputs {shapes_of(feeds)} ({first_line(exc)}); "
                       "compare models that take the same inputs")
