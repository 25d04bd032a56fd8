"""Predictions through a running Triton server with the ``tritonclient`` SDK (HTTP or gRPC).

The names importers know, re-exported from the modules that hold them:
:class:`Predictor` (sync, thread pool; ``sync.py``) and :class:`AsyncPredictor` (asyncio;
``aio.py``) over one :class:`~toolkit.client.core.PredictorCore` (options, metadata,
validation, preprocessing, errors), with one :class:`RetryPolicy` (``retry.py``), the LRU
:class:`ResultCache` (``cache.py``), shared memory (``shm.py``) and :class:`LatencyTracker`.

- every call carries a timeout that bounds the whole attempt (connect, send, the complete answer),
  over HTTP as over gRPC; ``deadline`` bounds a call with all its retries; only UNAVAILABLE/503,
  connection and deadline errors are retried, with capped exponential backoff;
- a peer that does not speak Triton's protocol fails in one line naming the server;
- every failure is a :class:`~contract.errors.TritonkitError` with a one-line message.
"""

from __future__ import annotations

from toolkit.client.aio import AsyncPredictor
from toolkit.client.cache import ResultCache
from toolkit.client.core import PredictorCore
from toolkit.client.endpoint import DEFAULT_URLS, GRPC_HEADER_PREFIX, PROTOCOLS
from toolkit.client.failures import START_HINT, failure_kind, loaded_models
from toolkit.client.latency import LatencyTracker
from toolkit.client.retry import RETRIED, RetryPolicy
from toolkit.client.shm import SHM_MODES
from toolkit.client.sync import Predictor

__all__ = [
    "DEFAULT_URLS", "GRPC_HEADER_PREFIX", "PROTOCOLS", "RETRIED", "SHM_MODES", "START_HINT", "AsyncPredictor",
    "LatencyTracker", "Predictor", "PredictorCore", "ResultCache", "RetryPolicy", "failure_kind",
    "loaded_models",
]
