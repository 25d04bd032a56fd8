"""The Predictor API against the real embedded Triton serving the digits model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from contract.errors import ClientError
from toolkit.client.endpoint import client_module, protocol_headers
from toolkit.client.predictions import heldout_samples
from toolkit.client.predictor import AsyncPredictor, Predictor
from toolkit.export.onnx import run_onnx, spec_from_onnx

pytestmark = pytest.mark.server
PROTOCOLS = ["grpc", "http"]


def _url(server, protocol: str) -> str:
    return server.grpc_url if protocol == "grpc" else server.http_url


@pytest.fixture(scope="module")
def digits_x(digits_onnx: Path) -> tuple[np.ndarray, np.ndarray]:
    return heldout_samples(spec_from_onnx(digits_onnx), 100)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_predict_many_matches_onnxruntime_when_split_into_concurrent_batches(
    triton_server, digits_onnx, digits_x, protocol
) -> None:
    x, _ = digits_x
    with Predictor("digits", _url(triton_server, protocol), protocol, batch_size=7, concurrency=4) as pred:
        served = pred.predict_many(x)
        assert pred.latency.percentiles()["count"] == 15  # ceil(100 / 7) requests
    assert float(np.abs(served - run_onnx(digits_onnx, x)).max()) <= 1e-5


def test_batch_size_is_capped_at_model_max_batch_size(triton_server, digits_x) -> None:
    with Predictor("digits", triton_server.grpc_url, batch_size=500) as pred:
        assert pred.max_batch_size == 32 and pred.batch_size == 32
        assert pred.predict_many(digits_x[0]).shape == (100, 10)
        assert pred.latency.percentiles()["count"] == 4


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_topk_uses_served_labels_and_matches_logit_order(triton_server, digits_x, protocol) -> None:
    x = digits_x[0][:8]
    with Predictor("digits", _url(triton_server, protocol), protocol) as pred:
        logits = pred.predict(x)
        top = pred.topk(x, 3)
        assert pred.labels == tuple(str(i) for i in range(10))
    for row, t in zip(logits, top):
        assert [k.index for k in t] == np.argsort(-row)[:3].tolist()
        assert [k.label for k in t] == [str(k.index) for k in t]
        assert np.allclose([k.score for k in t], np.sort(row)[::-1][:3], atol=1e-5)


def test_classify_gives_softmax_scores_best_first(triton_server, digits_x) -> None:
    with Predictor("digits", triton_server.grpc_url) as pred:
        rows = pred.classify(digits_x[0][:5], top_k=10)
    for row in rows:
        scores = [t.score for t in row]
        assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0, abs=1e-6)


def test_cache_answers_repeated_rows_without_a_request(triton_server, digits_x) -> None:
    x = digits_x[0][:10]
    with Predictor("digits", triton_server.grpc_url, cache_size=100) as pred:
        first = pred.predict(x)
        second = pred.predict(x)
        assert pred.latency.percentiles()["count"] == 1
        assert pred.cache.hits == 10 and np.array_equal(first, second)
        mixed = pred.predict(np.concatenate([x[:3], digits_x[0][50:52]]))
        assert pred.latency.percentiles()["count"] == 2 and np.array_equal(mixed[:3], first[:3])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_shared_memory_gives_same_logits_and_frees_its_regions(triton_server, digits_x, protocol) -> None:
    x = digits_x[0]
    url = _url(triton_server, protocol)
    with Predictor("digits", url, protocol) as plain:
        want = plain.predict_many(x)
    # tritonkit's servers restrict the shared-memory API to their admin header.
    pred = Predictor("digits", url, protocol, shared_memory="on", concurrency=2,
                     admin_headers=triton_server.admin_headers)
    got = pred.predict_many(x)
    names = pred.shared_memory_regions
    admin = client_module(protocol).InferenceServerClient(url)
    status = admin.get_system_shared_memory_status(
        headers=protocol_headers(protocol, triton_server.admin_headers),
        **({"as_json": True} if protocol == "grpc" else {}))
    admin.close()
    pred.close()
    assert np.array_equal(got, want)
    assert names and all(n in str(status) for n in names)
    assert not any(Path("/dev/shm", n).exists() for n in names)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_async_predictor_matches_sync_predictor(triton_server, digits_x, protocol) -> None:
    x = digits_x[0]
    url = _url(triton_server, protocol)
    with Predictor("digits", url, protocol) as pred:
        want = pred.predict_many(x)

    async def run() -> tuple[np.ndarray, list]:
        async with await AsyncPredictor.create("digits", url, protocol, batch_size=16, concurrency=4) as ap:
            return await ap.predict_many(x), await ap.topk(x[:2], 1)

    got, top = asyncio.run(run())
    assert np.array_equal(got, want)
    assert [t[0].index for t in top] == want[:2].argmax(1).tolist()


def test_validate_names_expected_shape_and_dtype_from_metadata(triton_server, digits_x) -> None:
    with Predictor("digits", triton_server.grpc_url) as pred:
        with pytest.raises(ClientError, match=r"expects FP32 \[N, 1, 8, 8\], got float32 \[2, 1, 4, 4\]"):
            pred.predict(np.zeros((2, 1, 4, 4), np.float32))
        with pytest.raises(ClientError, match=r"expects FP32 \[N, 1, 8, 8\], got float64"):
            pred.predict(digits_x[0][:2].astype(np.float64))


