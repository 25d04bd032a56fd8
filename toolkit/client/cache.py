"""An LRU of answered rows, so a predictor sends only the rows it has not seen."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np


class ResultCache:
    """LRU of output rows keyed by a hash of each input row's dtype, shape and bytes."""

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self._rows: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(row: np.ndarray) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{row.dtype.str}{row.shape}".encode())
        h.update(np.ascontiguousarray(row).tobytes())
        return h.digest()

    def get(self, key: bytes) -> np.ndarray | None:
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                self.misses += 1
                return None
            self._rows.move_to_end(key)
            self.hits += 1
            return row

    def put(self, key: bytes, row: np.ndarray) -> None:
        with self._lock:
            self._rows[key] = row
            self._rows.move_to_end(key)
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)

    def __len__(self) -> int:
        return len(self._rows)

    def split(self, batch: np.ndarray) -> tuple[list[bytes], dict[int, np.ndarray], list[int]]:
        """(row keys, cached rows by index, indices still to send) for a batch."""
        keys = [self.key(r) for r in batch]
        hits = {i: row for i, k in enumerate(keys) if (row := self.get(k)) is not None}
        return keys, hits, [i for i in range(len(batch)) if i not in hits]

    def merge(self, keys: list[bytes], hits: dict[int, np.ndarray], miss: list[int],
              out: np.ndarray | None, empty: np.ndarray) -> np.ndarray:
        """The whole batch's answer from cached rows and the fresh ``out`` (rows ``miss``), which are cached."""
        fresh = dict(zip(miss, out)) if out is not None else {}
        for i, row in fresh.items():
            self.put(keys[i], row.copy())
        if not keys:
            return empty
        return np.stack([hits[i] if i in hits else fresh[i] for i in range(len(keys))])
