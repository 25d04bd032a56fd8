"""The sync and asyncio predictors share one core: same inputs, same answers, same refusals."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contract.errors import ClientError
from toolkit.client.predictions import heldout_samples
from toolkit.client.predictor import AsyncPredictor, Predictor
from toolkit.export.onnx import spec_from_onnx

pytestmark = pytest.mark.server
PROTOCOLS = ["grpc", "http"]


def _url(server, protocol: str) -> str:
    return server.grpc_url if protocol == "grpc" else server.http_url


@pytest.fixture(scope="module")
def rows(digits_onnx: Path) -> np.ndarray:
    return heldout_samples(spec_from_onnx(digits_onnx), 40)[0]


def _both(server, protocol: str, sync_fn, async_fn, **kwargs: Any) -> tuple[Any, Any]:
    """(what ``sync_fn(Predictor)`` returns, what ``await async_fn(AsyncPredictor)`` returns)."""
    url = _url(server, protocol)
    with Predictor("digits", url, protocol, **kwargs) as pred:
        want = sync_fn(pred)

    async def run() -> Any:
        async with await AsyncPredictor.create("digits", url, protocol, **kwargs) as apred:
            return await async_fn(apred)

    return want, asyncio.run(run())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sync_and_async_predict_many_give_identical_logits_when_split_into_batches(
        triton_server, rows, protocol) -> None:
    want, got = _both(triton_server, protocol, lambda p: p.predict_many(rows),
                      lambda p: p.predict_many(rows), batch_size=7, concurrency=3)
    assert want.shape == got.shape == (40, 10) and np.array_equal(want, got)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sync_and_async_give_identical_topk_and_classify_rows(triton_server, rows, protocol) -> None:
    want, got = _both(triton_server, protocol, lambda p: (p.topk(rows[:5], 3), p.classify(rows[:5], 3), p.labels),
                      lambda p: _async_classes(p, rows[:5]))
    assert want == got


async def _async_classes(p: AsyncPredictor, x: np.ndarray) -> tuple[Any, Any, Any]:
    return await p.topk(x, 3), await p.classify(x, 3), await p.labels()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sync_and_async_predict_many_return_zero_rows_of_class_width_when_given_no_rows(
        triton_server, rows, protocol) -> None:
    none = rows[:0]

    async def aempty(p: AsyncPredictor) -> np.ndarray:
        return await p.predict_many(none)

    want, got = _both(triton_server, protocol, lambda p: p.predict_many(none), aempty)
    assert want.shape == got.shape == (0, 10)
    cached_want, cached_got = _both(triton_server, protocol, lambda p: p.predict(none), lambda p: p.predict(none),
                                    cache_size=8)
    assert cached_want.shape == cached_got.shape == (0, 10)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sync_and_async_refuse_an_answer_without_the_output_when_server_omits_it(
        triton_server, rows, protocol, monkeypatch) -> None:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    import tritonclient.http.aio as httpaio

    for result in {grpcclient.InferResult, httpclient.InferResult, httpaio.InferResult}:
        monkeypatch.setattr(result, "as_numpy", lambda self, name: None)

    def sync_refusal(p: Predictor) -> str:
        with pytest.raises(ClientError) as err:
            p.predict(rows[:2])
        return str(err.value)

    async def async_refusal(p: AsyncPredictor) -> str:
        with pytest.raises(ClientError) as err:
            await p.predict(rows[:2])
        return str(err.value)

    want, got = _both(triton_server, protocol, sync_refusal, async_refusal)
    assert want == got and "returned no" in want and "output" in want
