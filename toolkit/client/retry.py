"""The one retry policy of both predictors: capped exponential backoff within a call's deadline.

The policy decides (how long the next attempt may take, whether and how long to wait before
another); the sync and asyncio predictors only run the attempt and sleep. Clock and sleep are
fields, so tests drive retries with a fake clock instead of wall-clock bounds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

# Failure kinds (see toolkit.client.failures.failure_kind) worth another attempt.
RETRIED = ("unavailable", "timeout", "connect")
# A retry must start at least this long before the deadline, or it could not do anything useful.
DEADLINE_MARGIN_S = 0.01


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff for UNAVAILABLE/503, connection and deadline errors only.

    Args:
        attempts: attempts per call, the first included.
        initial_s: the first sleep; each next one doubles, up to ``max_s``.
        clock: monotonic seconds (injectable for tests).
        sleep / async_sleep: how the sync / asyncio predictor waits between attempts.
    """

    attempts: int = 3
    initial_s: float = 0.05
    max_s: float = 1.0
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    async_sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False, repr=False)

    def delays(self) -> Iterator[float]:
        """Sleeps between attempts: ``initial, 2*initial, ...`` capped at ``max_s``."""
        for i in range(max(0, self.attempts - 1)):
            yield min(self.max_s, self.initial_s * (2**i))

    def start(self, timeout: float, deadline: float | None) -> RetryState:
        """The state of one call whose attempts take ``timeout`` s each and ``deadline`` s in all."""
        return RetryState(self, timeout, deadline)


class RetryState:
    """One call's progress through a :class:`RetryPolicy`."""

    def __init__(self, policy: RetryPolicy, timeout: float, deadline: float | None) -> None:
        self.policy = policy
        self.timeout = timeout
        self.deadline = deadline
        self.started = policy.clock()
        self.attempts = 0
        self._delays = policy.delays()

    def budget(self) -> float:
        """Seconds the next attempt may take: ``timeout``, cut to what the deadline leaves (counts the attempt)."""
        self.attempts += 1
        if self.deadline is None:
            return self.timeout
        return max(0.001, min(self.timeout, self.started + self.deadline - self.policy.clock()))

    def next_delay(self, kind: str) -> float | None:
        """Seconds to wait before another attempt after a failure of ``kind``; None: give up."""
        delay = next(self._delays, None) if kind in RETRIED else None
        if delay is None:
            return None
        if self.deadline is not None and self.policy.clock() + delay >= (
                self.started + self.deadline - DEADLINE_MARGIN_S):
            return None
        return delay
