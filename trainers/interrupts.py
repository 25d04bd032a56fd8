"""SIGINT/SIGTERM during fit: a handler that only records the signal, so the loop can save and stop."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def catch_signals(enabled: bool, on_signal: Callable[[str], None]) -> Iterator[None]:
    """Route SIGINT/SIGTERM to ``on_signal(name)`` inside the block; restore the old handlers after.

    Only the main thread can install handlers; elsewhere (or when not ``enabled``) nothing changes.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    old: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        on_signal(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        old[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)
