"""Any callable as a runner: numpy -> numpy (one input) or dict -> dict."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from contract.spec import ModelSpec
from toolkit.runners.base import BaseRunner, Feeds, InputMetadata


class FunctionRunner(BaseRunner):
    """Wraps ``func``: a single-input model's array goes in alone, several go in as a dict.

    Outputs returned as an array (or tuple) are named by ``spec`` (``output`` without one).
    """

    def __init__(self, func: Callable[..., Any], *, spec: ModelSpec | None = None, name: str | None = None) -> None:
        super().__init__(name or getattr(func, "__name__", "callable"))
        self.func, self.spec = func, spec

    def get_input_metadata_impl(self) -> InputMetadata:
        if self.spec is None:
            return {"input": (np.dtype(np.float32), [-1])}
        return {t.name: (np.dtype(t.dtype), [-1, *t.shape]) for t in self.spec.inputs}

    def infer_impl(self, feed_dict: Feeds) -> Feeds:
        out = self.func(next(iter(feed_dict.values())) if len(feed_dict) == 1 else feed_dict)
        if isinstance(out, Mapping):
            return {k: np.asarray(v) for k, v in out.items()}
        names = [t.name for t in self.spec.outputs] if self.spec else ["output"]
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {n: np.asarray(o) for n, o in zip(names, outs)}
