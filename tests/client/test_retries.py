"""Timeouts and retries against a real Triton whose model sleeps, refuses, or has a full queue."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from contract.errors import ClientError
from toolkit.client.predictor import Predictor, RetryPolicy, failure_kind

pytestmark = pytest.mark.server


def _url(server, protocol: str) -> str:
    return server.grpc_url if protocol == "grpc" else server.http_url


def _rows(seconds: float, n: int = 1) -> np.ndarray:
    return np.full((n, 1), seconds, dtype=np.float32)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_predict_raises_one_line_timeout_after_retries_when_model_is_slower_than_timeout(sleepy_server, protocol):
    slept: list[float] = []
    pred = Predictor("sleepy", _url(sleepy_server, protocol), protocol, timeout=0.4,
                     retry=RetryPolicy(attempts=2, initial_s=0.01, sleep=slept.append))
    with pytest.raises(ClientError) as err:
        pred.predict(_rows(1.0))
    pred.close()
    msg = str(err.value)
    assert "timed out after 0.4 s" in msg and "2 attempt(s)" in msg and "\n" not in msg
    assert slept == [0.01]  # two attempts, one backoff between them


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_predict_fails_at_once_without_retry_when_server_refuses_the_request(sleepy_server, protocol):
    slept: list[float] = []
    pred = Predictor("sleepy", _url(sleepy_server, protocol), protocol, timeout=30,
                     retry=RetryPolicy(attempts=5, initial_s=1.0, max_s=1.0))
    pred.predict(_rows(0.0))  # waits until earlier tests' sleepers have left the queue
    pred.retry = RetryPolicy(attempts=5, initial_s=1.0, max_s=1.0, sleep=slept.append)
    with pytest.raises(ClientError, match="input must not be negative"):
        pred.predict(_rows(-1.0))
    assert slept == []  # refused at once: no backoff, no second attempt
    pred.close()


def _burst(pred: Predictor, n: int) -> list[str]:
    """Send n one-row requests at once; the error text of each (``""`` = answered)."""

    def one(_: int) -> str:
        try:
            pred.predict(_rows(0.3))
            return ""
        except ClientError as exc:
            return str(exc)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_full_queue_fails_as_unavailable_when_retries_are_off(sleepy_server):
    pred = Predictor("sleepy_q1", sleepy_server.grpc_url, "grpc", timeout=10, retry=RetryPolicy(attempts=1))
    errors = [e for e in _burst(pred, 4) if e]
    pred.close()
    assert errors, "a queue of one must refuse some of 4 simultaneous requests"
    assert all("unavailable after 1 attempt(s)" in e for e in errors)


def test_full_queue_requests_all_succeed_when_retried_with_backoff(sleepy_server):
    pred = Predictor("sleepy_q1", sleepy_server.grpc_url, "grpc", timeout=10,
                     retry=RetryPolicy(attempts=10, initial_s=0.2, max_s=0.8))
    assert _burst(pred, 4) == ["", "", "", ""]
    pred.close()


def test_failure_kind_retries_only_unavailable_and_deadline_errors():
    from tritonclient.utils import InferenceServerException as E

    assert failure_kind(E("busy", status="StatusCode.UNAVAILABLE")) == "unavailable"
    assert failure_kind(E("busy", status="503")) == "unavailable"
    assert failure_kind(E("Deadline Exceeded", status="StatusCode.DEADLINE_EXCEEDED")) == "timeout"
    assert failure_kind(E("bad shape", status="StatusCode.INVALID_ARGUMENT")) == "bad"
    assert failure_kind(E("bad shape", status="400")) == "bad"
    assert failure_kind(ConnectionRefusedError(111, "refused")) == "connect"


def test_retry_delays_double_and_stop_at_the_cap():
    assert list(RetryPolicy(attempts=6, initial_s=0.1, max_s=0.5).delays()) == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert list(RetryPolicy(attempts=1).delays()) == []
