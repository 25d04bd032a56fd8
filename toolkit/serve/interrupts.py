"""Signals during a server's start-up: turned into an exception, so the half-started server is stopped.

tritonserver runs in its own session, so a signal that kills tritonkit mid start-up (SIGTERM's default
action, a closed terminal's SIGHUP) would leave it running with nothing recording it. While a server
starts, these signals raise :class:`StartInterrupted` instead and the starter's cleanup runs; around a
child's creation they are held for a moment, so the exception never lands where the child's handle
would be lost.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

START_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StartInterrupted(KeyboardInterrupt):
    """A signal arrived while a server was starting; the server has been (or is being) stopped."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def _swap(handler: Any) -> dict[int, Any] | None:
    """Install ``handler`` for :data:`START_SIGNALS`; the previous handlers, or None off the main thread
    (where Python cannot set handlers, and the caller keeps the default behaviour)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return {sig: signal.signal(sig, handler) for sig in START_SIGNALS}


def _restore(previous: dict[int, Any] | None) -> None:
    for sig, handler in (previous or {}).items():
        signal.signal(sig, handler)


@contextmanager
def interrupts_raise() -> Iterator[None]:
    """Within the block SIGINT, SIGTERM and SIGHUP raise :class:`StartInterrupted`; before and after,
    the handlers are as they were."""
    def handler(signum: int, _frame: Any) -> None:
        raise StartInterrupted(signum)

    previous = _swap(handler)
    try:
        yield
    finally:
        _restore(previous)


@contextmanager
def signals_held() -> Iterator[None]:
    """Within the block those signals are only noted; the first is re-delivered when the block ends
    (to whatever handler was in place), so the code inside (a child's creation) is never cut in two."""
    pending: list[int] = []
    previous = _swap(lambda signum, _frame: pending.append(signum))
    try:
        yield
    finally:
        _restore(previous)
        if pending:
            signal.raise_signal(pending[0])
