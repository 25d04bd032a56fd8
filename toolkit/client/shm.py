"""System shared memory for large inputs (same host as the server): one region per thread, reused.

Python's own POSIX shared memory is used, not ``tritonclient.utils.shared_memory``: that module
imports ``pkg_resources``, which current setuptools no longer ships. Triton maps the same
``/name`` key either way.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from typing import Any

SHM_MODES = ("off", "auto", "on")

# register(name, key, size) and unregister(name): the predictor's calls, with its admin header.
Register = Callable[[str, str, int], Any]
Unregister = Callable[[str], Any]


class SharedMemoryRegions:
    """This process's registered regions; each thread writes its batches into its own."""

    def __init__(self, register: Register, unregister: Unregister) -> None:
        self._register = register
        self._unregister = unregister
        self._local = threading.local()
        self._lock = threading.Lock()
        self._regions: list[Any] = []

    def region(self, nbytes: int) -> Any:
        """This thread's registered region, grown (re-registered) to hold ``nbytes``."""
        from multiprocessing import shared_memory

        region = getattr(self._local, "region", None)
        if region is not None and region.size >= nbytes:
            return region
        if region is not None:
            self._local.region = None
            self.free(region)
        size = 1 << max(12, (nbytes - 1).bit_length())
        name = f"tritonkit_{os.getpid()}_{uuid.uuid4().hex[:12]}"
        region = shared_memory.SharedMemory(name=name, create=True, size=size)
        with self._lock:
            self._regions.append(region)
        try:
            self._register(name, "/" + name, size)
        except BaseException:
            self.free(region, registered=False)
            raise
        self._local.region = region
        return region

    @property
    def names(self) -> list[str]:
        """Names of the regions registered now (each ``/name`` in the server's status)."""
        with self._lock:
            return [r.name for r in self._regions]

    def write(self, batch: Any) -> Any:
        """Copy ``batch`` into this thread's region; the region (its name carries the data to Triton)."""
        import numpy as np

        region = self.region(batch.nbytes)
        np.frombuffer(region.buf, dtype=np.uint8, count=batch.nbytes)[:] = batch.reshape(-1).view(np.uint8)
        return region

    def free(self, region: Any, registered: bool = True) -> None:
        """Unregister (best effort: the server may be gone), close and unlink one region."""
        with self._lock:
            if region in self._regions:
                self._regions.remove(region)
        if registered:
            try:
                self._unregister(region.name)
            except Exception:  # noqa: BLE001 - the server may be gone; the local region still goes
                pass
        region.close()
        try:
            region.unlink()
        except FileNotFoundError:
            pass

    def close(self) -> None:
        """Free every region."""
        with self._lock:
            regions = list(self._regions)
        for region in regions:
            self.free(region)
