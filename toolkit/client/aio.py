"""The asyncio predictor: the same :class:`PredictorCore` as :class:`~toolkit.client.sync.Predictor`,
over ``tritonclient.grpc.aio`` / ``tritonclient.http.aio``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from contract.errors import ClientError
from toolkit.client.core import PredictorCore, Steps, next_call
from toolkit.client.endpoint import client_module
from toolkit.client.failures import failure_kind
from toolkit.client.predictions import TopK, topk_from_logits


class AsyncPredictor(PredictorCore):
    """The asyncio twin of :class:`~toolkit.client.sync.Predictor`: same checks, same answers.

    Create with ``await AsyncPredictor.create(model, url, protocol, ...)`` (it checks readiness and
    reads metadata), then ``await predict(...)``, ``await predict_many(...)``; ``await close()``.
    Shared memory is not offered here (use the sync Predictor); ``admin_headers`` and ``deadline``
    mean what they mean there.
    """

    def __init__(self, model: str, url: str | None = None, protocol: str = "grpc", timeout: float = 30.0,
                 version: str = "", **options: Any) -> None:
        super().__init__(model, url, protocol, timeout, version, **options)
        self._mod = client_module(protocol, aio=True)
        self._aclient: Any = None

    @classmethod
    async def create(cls, model: str, url: str | None = None, protocol: str = "grpc", timeout: float = 30.0,
                     version: str = "", **kwargs: Any) -> AsyncPredictor:
        self = cls(model, url, protocol, timeout, version, **kwargs)
        try:
            if protocol == "http":
                self._aclient = self._mod.InferenceServerClient(self.url, conn_timeout=self.timeout)
            else:
                self._aclient = self._mod.InferenceServerClient(self.url)
            await self._run(self.connect_steps())
        except BaseException:
            await self.close()
            raise
        return self

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One call; each attempt bounded end to end by ``wait_for`` (and gRPC's own deadline)."""
        state = self.retry.start(self.timeout, self.deadline)
        while True:
            budget = state.budget()
            extra = {"client_timeout": budget} if self.protocol == "grpc" else {}
            try:
                return await asyncio.wait_for(getattr(self._aclient, method)(*args, **kwargs, **extra), budget)
            except Exception as exc:  # noqa: BLE001 - classified just below
                kind = failure_kind(exc)
                delay = state.next_delay(kind)
                if delay is None:
                    raise self.error(exc, kind, state.attempts, method) from None
                await self.retry.async_sleep(delay)

    async def _run(self, steps: Steps) -> None:
        """Await the calls a core step sequence asks for, feeding back results (or the ClientError)."""
        result: Any = None
        failed: ClientError | None = None
        while (call := next_call(steps, result, failed)) is not None:
            try:
                result, failed = await self._call(call.method, *call.args, **call.kwargs), None
            except ClientError as exc:
                result, failed = None, exc

    async def _infer(self, batch: np.ndarray, class_count: int = 0) -> np.ndarray:
        inp, outputs = self.request(self._mod, batch, class_count)
        inp.set_data_from_numpy(batch)
        call = self.infer_call(inp, outputs)
        t0 = time.perf_counter()
        res = await self._call(call.method, *call.args, **call.kwargs)
        self.latency.add((time.perf_counter() - t0) * 1000)
        return self.read_output(res, len(batch))

    async def predict(self, batch: np.ndarray) -> np.ndarray:
        """The first output (logits) for one batch ``(N, ...)`` of preprocessed inputs."""
        batch = self.validate(batch)
        if self.cache is None:
            return await self._infer(batch)
        keys, hits, miss = self.cache.split(batch)
        out = await self._infer(batch[miss]) if miss else None
        return self.cache.merge(keys, hits, miss, out, self.empty_output())

    async def predict_many(self, batch: np.ndarray, batch_size: int | None = None,
                           concurrency: int | None = None) -> np.ndarray:
        """Logits for any number of rows: batches sent ``concurrency`` at a time, results in order."""
        batch = self.validate(batch)
        gate = asyncio.Semaphore(int(concurrency or self.concurrency))

        async def one(s: int, e: int) -> np.ndarray:
            async with gate:
                return await self.predict(batch[s:e])

        parts = await asyncio.gather(*(one(s, e) for s, e in self.chunks(len(batch), batch_size)))
        return np.concatenate(parts) if parts else self.empty_output()

    async def classify(self, batch: np.ndarray, top_k: int = 5, batch_size: int | None = None,
                       concurrency: int | None = None) -> list[list[TopK]]:
        """Top-k labels with softmax probabilities per row (logits from the server, labels from it too)."""
        logits = await self.predict_many(batch, batch_size, concurrency)
        return topk_from_logits(logits, await self.labels(), top_k)

    async def topk(self, batch: np.ndarray, k: int = 5) -> list[list[TopK]]:
        """Top-k per row from Triton's classification extension (raw output values, server labels)."""
        return self.classes(await self._infer(self.validate(batch), class_count=max(1, int(k))))

    async def labels(self) -> tuple[str, ...]:
        """Class labels as served (a coroutine here: the first call asks the server)."""
        if self._labels is None:
            n = self.num_classes()
            self._labels = self.labels_from(await self._infer(self.zero_row(), class_count=n) if n else None)
        return self._labels

    async def close(self) -> None:
        if self._aclient is not None:
            try:
                await self._aclient.close()
            except Exception:  # noqa: BLE001
                pass
            self._aclient = None

    async def __aenter__(self) -> AsyncPredictor:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
