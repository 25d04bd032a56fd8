"""Per-request latencies of a predictor, with percentiles for reports and benchmarks."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np


class LatencyTracker:
    """Per-request latencies in milliseconds (thread-safe), with percentiles."""

    def __init__(self, keep: int = 100_000) -> None:
        self._samples: deque[float] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def add(self, ms: float) -> None:
        with self._lock:
            self._samples.append(ms)

    @property
    def samples(self) -> list[float]:
        with self._lock:
            return list(self._samples)

    def reset(self) -> None:
        with self._lock:
            self._samples.clear()

    def percentiles(self) -> dict[str, float]:
        """``p50 p90 p95 p99 mean max`` in ms and ``count``; empty when nothing was sent."""
        a = np.asarray(self.samples)
        if not a.size:
            return {}
        out = {f"p{q}": float(np.percentile(a, q)) for q in (50, 90, 95, 99)}
        return out | {"mean": float(a.mean()), "max": float(a.max()), "count": int(a.size)}
