"""The one retry policy, driven by a fake clock: no test waits, none depends on wall-clock time."""

from __future__ import annotations

import asyncio

import pytest

from contract.errors import ClientError
from toolkit.client.predictor import AsyncPredictor, Predictor, RetryPolicy


class FakeClock:
    """A monotonic clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


def _policy(clock: FakeClock, **kwargs) -> RetryPolicy:
    return RetryPolicy(clock=clock, sleep=clock.sleep, async_sleep=clock.async_sleep, **kwargs)


def test_retry_state_sleeps_doubling_delays_then_gives_up_when_attempts_run_out() -> None:
    clock = FakeClock()
    state = _policy(clock, attempts=4, initial_s=0.1, max_s=0.3).start(timeout=5.0, deadline=None)
    delays = []
    while True:
        assert state.budget() == 5.0
        delay = state.next_delay("unavailable")
        if delay is None:
            break
        delays.append(delay)
    assert delays == [0.1, 0.2, 0.3] and state.attempts == 4


@pytest.mark.parametrize("kind", ["bad", "protocol"])
def test_retry_state_gives_up_at_once_when_failure_is_not_retried(kind: str) -> None:
    state = _policy(FakeClock(), attempts=5).start(timeout=1.0, deadline=None)
    state.budget()
    assert state.next_delay(kind) is None and state.attempts == 1


def test_retry_state_cuts_attempt_budget_and_stops_retrying_when_deadline_nears() -> None:
    clock = FakeClock()
    state = _policy(clock, attempts=10, initial_s=0.5, max_s=0.5).start(timeout=2.0, deadline=3.0)
    assert state.budget() == 2.0
    clock.now += 2.0  # the first attempt used its whole budget
    assert state.next_delay("timeout") == 0.5
    clock.now += 0.5
    assert state.budget() == pytest.approx(0.5)  # 3.0 - 2.5 left, under the 2 s timeout
    clock.now += 0.2
    assert state.next_delay("timeout") is None  # a 0.5 s sleep would end past the deadline


class _Refusing:
    """A stand-in tritonclient client whose every call fails as a full queue does."""

    def __init__(self) -> None:
        self.calls = 0

    def _fail(self, *args, **kwargs):
        from tritonclient.utils import InferenceServerException

        self.calls += 1
        raise InferenceServerException("queue is full", status="StatusCode.UNAVAILABLE")

    is_server_live = _fail

    def close(self) -> None:
        pass


def test_sync_and_async_predictors_retry_by_the_same_policy_when_server_is_unavailable(monkeypatch) -> None:
    import tritonclient.grpc as grpcclient
    import tritonclient.grpc.aio as grpcaio

    class _AsyncRefusing(_Refusing):
        async def is_server_live(self, *args, **kwargs):
            return self._fail()

        async def close(self) -> None:
            pass

    made: dict[str, _Refusing] = {}
    monkeypatch.setattr(grpcclient, "InferenceServerClient",
                        lambda url, **kw: made.setdefault("sync", _Refusing()))
    monkeypatch.setattr(grpcaio, "InferenceServerClient",
                        lambda url, **kw: made.setdefault("async", _AsyncRefusing()))
    sync_clock, async_clock = FakeClock(), FakeClock()
    with pytest.raises(ClientError) as sync_err:
        Predictor("m", "127.0.0.1:1", "grpc", retry=_policy(sync_clock, attempts=3, initial_s=0.25))
    with pytest.raises(ClientError) as async_err:
        asyncio.run(AsyncPredictor.create("m", "127.0.0.1:1", "grpc", retry=_policy(async_clock, attempts=3,
                                                                                   initial_s=0.25)))
    assert sync_clock.slept == async_clock.slept == [0.25, 0.5]
    assert made["sync"].calls == made["async"].calls == 3
    assert str(sync_err.value) == str(async_err.value)
    assert "unavailable after 3 attempt(s)" in str(sync_err.value)
