"""The sync predictor: :class:`PredictorCore` over ``tritonclient`` clients, concurrency on threads."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from contract.errors import ClientError, UsageError
from toolkit.client.core import PredictorCore, Steps, next_call
from toolkit.client.endpoint import client_module
from toolkit.client.failures import failure_kind, first_line
from toolkit.client.predictions import TopK, topk_from_logits
from toolkit.client.shm import SHM_MODES, SharedMemoryRegions


class Predictor(PredictorCore):
    """Classify with a model served by Triton (sync API; concurrency through a thread pool).

    Args:
        model: model name in the repository.
        url: ``host:port`` of the server (HTTP 8000 / gRPC 8001 by default).
        protocol: ``grpc`` or ``http``.
        timeout: seconds one attempt of any call (connect, metadata, each inference) may take in all,
            the complete answer included: a server that trickles bytes cannot stretch it.
        version: model version ("" = the server's choice).
        shared_memory: ``off``, ``auto`` (inputs >= ``shm_threshold`` bytes) or ``on`` (always);
            system shared memory needs the server on this host.

    Keyword options (shared with :class:`~toolkit.client.aio.AsyncPredictor`):
        spec: the model's ModelSpec (preprocessing); default: the served config's parameter if any.
        cache_size: rows kept in an LRU result cache (0 = off).
        retry: backoff for UNAVAILABLE/503 and deadline errors.
        batch_size: rows per request in ``predict_many`` (capped at max_batch_size; default 32).
        concurrency: requests in flight in ``predict_many``.
        admin_headers: the server's admin header, HTTP form (``{"tritonkit-admin-key": ...}``; a
            ``tritonkit`` server's ``admin_headers``), sent only on the calls such a server restricts
            (shared-memory registration, the model index that lists ready models); converted to
            Triton's gRPC metadata form over gRPC.
        deadline: seconds one call may take with all its retries and backoff (default: no bound
            beyond ``retry.attempts`` x ``timeout``); the CLI's ``--timeout`` sets it.

    Raises:
        ServerError: nothing answers at the URL.
        ClientError: the model is missing or not ready (the message lists the ready ones).
    """

    def __init__(self, model: str, url: str | None = None, protocol: str = "grpc", timeout: float = 30.0,
                 version: str = "", *, shared_memory: str = "off", shm_threshold: int = 1 << 20,
                 **options: Any) -> None:
        super().__init__(model, url, protocol, timeout, version, **options)
        if shared_memory not in SHM_MODES:
            raise UsageError(f"shared memory mode {shared_memory!r} is unknown; use one of {', '.join(SHM_MODES)}")
        self.shared_memory = shared_memory
        self.shm_threshold = int(shm_threshold)
        self._mod = client_module(protocol)
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._shm = SharedMemoryRegions(self._register_region, self._unregister_region)
        try:
            self._run(self.connect_steps())
        except BaseException:
            self.close()
            raise

    # -- plumbing ------------------------------------------------------------------------------
    def _client(self) -> Any:
        """gRPC clients are thread-safe (one is shared); HTTP clients are not (one per thread)."""
        if self.protocol == "grpc" and self._clients:
            return self._clients[0]
        client = getattr(self._local, "client", None)
        if client is None:
            try:
                if self.protocol == "http":
                    client = self._mod.InferenceServerClient(
                        self.url, connection_timeout=self.timeout, network_timeout=self.timeout
                    )
                else:
                    client = self._mod.InferenceServerClient(self.url)
            except Exception as exc:  # noqa: BLE001 - a malformed URL surfaces in many types
                raise UsageError(f"cannot make a {self.protocol} client for {self.url!r} ({first_line(exc)}); "
                                 "give --url as host:port") from None
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def _attempt(self, method: str, budget: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """One attempt, bounded end to end by ``budget`` seconds.

        gRPC's ``client_timeout`` is a deadline for the whole call. The HTTP client's own timeouts
        apply to each socket operation (a server sending one byte a second never trips them), so
        the HTTP attempt runs under a ``gevent.Timeout``: the client's sockets are gevent's, and the
        timer interrupts whichever wait the attempt is in (connect, send, or reading the answer).
        """
        if self.protocol == "grpc":
            return getattr(self._client(), method)(*args, **kwargs, client_timeout=budget)
        import gevent

        with gevent.Timeout(budget, TimeoutError(f"no complete answer within {budget:g} s")):
            return getattr(self._client(), method)(*args, **kwargs)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One call bounded by ``timeout`` per attempt (and ``deadline`` in all), retried as the policy says."""
        state = self.retry.start(self.timeout, self.deadline)
        while True:
            try:
                return self._attempt(method, state.budget(), args, kwargs)
            except Exception as exc:  # noqa: BLE001 - classified just below
                kind = failure_kind(exc)
                delay = state.next_delay(kind)
                if self.protocol == "http" and kind in ("timeout", "connect", "protocol"):
                    self._drop_thread_client()  # a timed-out or confused HTTP connection is not reusable
                if delay is None:
                    raise self.error(exc, kind, state.attempts, method) from None
                self.retry.sleep(delay)

    def _run(self, steps: Steps) -> None:
        """Make the calls a core step sequence asks for, feeding back results (or the ClientError)."""
        result: Any = None
        failed: ClientError | None = None
        while (call := next_call(steps, result, failed)) is not None:
            try:
                result, failed = self._call(call.method, *call.args, **call.kwargs), None
            except ClientError as exc:
                result, failed = None, exc

    def _drop_thread_client(self) -> None:
        client = getattr(self._local, "client", None)
        if client is not None:
            self._local.client = None
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass

    def _register_region(self, name: str, key: str, size: int) -> Any:
        return self._call("register_system_shared_memory", name, key, size, headers=self.admin_request_headers())

    def _unregister_region(self, name: str) -> Any:
        return self._attempt("unregister_system_shared_memory", self.timeout, (name,),
                             {"headers": self.admin_request_headers()})

    def _infer(self, batch: np.ndarray, class_count: int = 0) -> np.ndarray:
        inp, outputs = self.request(self._mod, batch, class_count)
        if self.shared_memory == "on" or (self.shared_memory == "auto" and batch.nbytes >= self.shm_threshold):
            inp.set_shared_memory(self._shm.write(batch).name, batch.nbytes)
        else:
            inp.set_data_from_numpy(batch)
        call = self.infer_call(inp, outputs)
        t0 = time.perf_counter()
        res = self._call(call.method, *call.args, **call.kwargs)
        self.latency.add((time.perf_counter() - t0) * 1000)
        return self.read_output(res, len(batch))

    @property
    def shared_memory_regions(self) -> list[str]:
        """Names of this predictor's registered shared-memory regions (empty when shared memory is off)."""
        return self._shm.names

    # -- public --------------------------------------------------------------------------------
    def predict(self, batch: np.ndarray) -> np.ndarray:
        """The first output (logits) for one batch ``(N, ...)`` of preprocessed inputs."""
        batch = self.validate(batch)
        if self.cache is None:
            return self._infer(batch)
        keys, hits, miss = self.cache.split(batch)
        return self.cache.merge(keys, hits, miss, self._infer(batch[miss]) if miss else None, self.empty_output())

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.predict(batch)

    def predict_many(self, batch: np.ndarray, batch_size: int | None = None,
                     concurrency: int | None = None) -> np.ndarray:
        """Logits for any number of rows: batches sent ``concurrency`` at a time, results in order."""
        return self.predict_many_timed(batch, batch_size, concurrency)[0]

    def predict_many_timed(self, batch: np.ndarray, batch_size: int | None = None,
                           concurrency: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`predict_many`, plus each row's request latency in ms (its batch's round trip)."""
        batch = self.validate(batch)
        spans = self.chunks(len(batch), batch_size)
        workers = int(concurrency or self.concurrency)

        def one(span: tuple[int, int]) -> tuple[np.ndarray, float]:
            t0 = time.perf_counter()
            out = self.predict(batch[span[0]:span[1]])
            return out, (time.perf_counter() - t0) * 1000

        if workers <= 1 or len(spans) <= 1:
            parts = [one(se) for se in spans]
        else:
            parts = list(self._executor(workers).map(one, spans))
        if not parts:
            return self.empty_output(), np.zeros(0)
        ms = np.concatenate([np.full(e - s, t) for (s, e), (_, t) in zip(spans, parts)])
        return np.concatenate([p for p, _ in parts]), ms

    def _executor(self, workers: int) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._pool._max_workers != workers:  # noqa: SLF001
                if self._pool is not None:
                    self._pool.shutdown(wait=True)
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="tritonkit-predict")
            return self._pool

    def classify(self, batch: np.ndarray, top_k: int = 5, batch_size: int | None = None,
                 concurrency: int | None = None) -> list[list[TopK]]:
        """Top-k labels with softmax probabilities per row (logits from the server, labels from it too)."""
        return topk_from_logits(self.predict_many(batch, batch_size, concurrency), self.labels, top_k)

    def topk(self, batch: np.ndarray, k: int = 5) -> list[list[TopK]]:
        """Top-k per row from Triton's classification extension (raw output values, server labels)."""
        batch = self.validate(batch)
        return self.classes(self._infer(batch, class_count=max(1, int(k))))

    @property
    def labels(self) -> tuple[str, ...]:
        """Class labels as served (the output's label file, through the classification extension)."""
        if self._labels is None:
            n = self.num_classes()
            self._labels = self.labels_from(self._infer(self.zero_row(), class_count=n) if n else None)
        return self._labels

    def close(self) -> None:
        """Free shared memory regions, the thread pool and the connections."""
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if getattr(self, "_shm", None) is not None:
            self._shm.close()
        for client in list(getattr(self, "_clients", [])):
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass
        self._clients = []

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
