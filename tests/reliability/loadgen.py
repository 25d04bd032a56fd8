"""Load helpers shared by the reliability tests and the soak/overload benchmarks.

Closed loop (``saturation``) finds what the server sustains; open loop (``open_loop``) offers a fixed
request rate whatever the server does, which is what overload means. Every request carries a
client timeout, so nothing here can hang. RSS of the server and its python stubs is read from
``/proc`` (psutil when installed).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def tree_pids(root_pid: int) -> list[int]:
    """``root_pid`` and every descendant (the python stubs are children of tritonserver)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def stub_pids(server_pid: int) -> list[int]:
    """Python-backend stub processes under the server."""
    out = []
    for pid in tree_pids(server_pid):
        try:
            if b"triton_python_backend_stub" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
        except OSError:
            pass
    return out


def rss_mb(server_pid: int) -> float:
    """Resident memory of the server and all its children, in MiB."""
    total_kb = 0
    for pid in tree_pids(server_pid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total_kb / 1024


@dataclass
class LoadResult:
    """What a load run saw; rates are per second of the run."""

    seconds: float
    offered: int = 0
    ok: int = 0
    rejected: int = 0  # UNAVAILABLE (queue full) answers
    other_errors: int = 0
    timeouts: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    rejected_latencies_ms: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    rss_mb: list[tuple[float, float]] = field(default_factory=list)

    def pct(self, q: float, rejected: bool = False) -> float:
        a = self.rejected_latencies_ms if rejected else self.latencies_ms
        return float(np.percentile(a, q)) if a else float("nan")

    def summary(self) -> dict[str, Any]:
        s = self.seconds or 1.0
        rss = [r for _, r in self.rss_mb]
        return {
            "seconds": round(self.seconds, 1),
            "offered_per_s": round(self.offered / s, 1), "accepted_per_s": round(self.ok / s, 1),
            "rejected_per_s": round(self.rejected / s, 1), "offered": self.offered, "ok": self.ok,
            "rejected": self.rejected, "timeouts": self.timeouts, "other_errors": self.other_errors,
            "p50_ms": round(self.pct(50), 2), "p99_ms": round(self.pct(99), 2),
            "rejected_p99_ms": round(self.pct(99, True), 2),
            "rss_start_mb": round(rss[0], 1) if rss else None, "rss_end_mb": round(rss[-1], 1) if rss else None,
            "rss_max_mb": round(max(rss), 1) if rss else None,
            "error_samples": self.error_samples[:3],
        }


def _input(grpcclient: Any, batch: np.ndarray) -> Any:
    inp = grpcclient.InferInput("input", list(batch.shape), "FP32")
    inp.set_data_from_numpy(batch)
    return inp


def saturation(url: str, model: str, seconds: float = 3.0, threads: int = 8, batch: int = 1) -> float:
    """Requests/s the server sustains with ``threads`` synchronous clients always busy."""
    import tritonclient.grpc as grpcclient

    x = np.random.default_rng(0).random((batch, 1, 8, 8), dtype=np.float32)
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def work(i: int) -> None:
        client = grpcclient.InferenceServerClient(url)
        inp = _input(grpcclient, x)
        while time.monotonic() < stop:
            client.infer(model, [inp], client_timeout=10)
            counts[i] += 1
        client.close()

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


def open_loop(url: str, model: str, rate: float, seconds: float, *, server_pid: int | None = None,
              timeout_s: float = 10.0, batch: int = 1, rss_every_s: float = 1.0,
              max_in_flight: int = 2000) -> LoadResult:
    """Offer ``rate`` requests/s for ``seconds`` (async gRPC), whatever the server answers.

    Requests are sent on schedule, not when earlier ones finish; an answer is OK, a rejection
    (UNAVAILABLE: the queue is full), a timeout or another error. ``max_in_flight`` guards the
    client's own memory: beyond it a send counts as a client-side timeout.
    """
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    x = np.random.default_rng(0).random((batch, 1, 8, 8), dtype=np.float32)
    res = LoadResult(seconds=seconds)
    lock = threading.Lock()
    in_flight = [0]
    done = threading.Event()
    client = grpcclient.InferenceServerClient(url)
    inp = _input(grpcclient, x)
    out = [grpcclient.InferRequestedOutput("logits")]

    def callback(t0: float, result: Any, error: InferenceServerException | None) -> None:
        ms = (time.perf_counter() - t0) * 1000
        with lock:
            in_flight[0] -= 1
            if error is None:
                res.ok += 1
                res.latencies_ms.append(ms)
            else:
                status = str(error.status() or "")
                msg = error.message() or ""
                if "DEADLINE" in status or "Deadline" in msg:
                    res.timeouts += 1
                elif status == "StatusCode.UNAVAILABLE":
                    res.rejected += 1
                    res.rejected_latencies_ms.append(ms)
                else:
                    res.other_errors += 1
                    if len(res.error_samples) < 5:
                        res.error_samples.append(f"{status}: {msg.splitlines()[0] if msg else ''}")

    t_start = time.perf_counter()
    next_rss = 0.0
    i = 0
    interval = 1.0 / rate
    while True:
        now = time.perf_counter() - t_start
        if now >= seconds:
            break
        if server_pid and now >= next_rss:
            res.rss_mb.append((now, rss_mb(server_pid)))
            next_rss += rss_every_s
        due = i * interval
        if due > now:
            time.sleep(min(due - now, 0.005))
            continue
        # Catch up in a burst when the sender fell behind (keeps the offered rate honest).
        res.offered += 1
        i += 1
        with lock:
            if in_flight[0] >= max_in_flight:
                res.timeouts += 1
                continue
            in_flight[0] += 1
        t0 = time.perf_counter()
        client.async_infer(model, [inp], lambda result, error, t0=t0: callback(t0, result, error), outputs=out,
                           client_timeout=timeout_s)
    res.seconds = time.perf_counter() - t_start
    done.set()
    deadline = time.monotonic() + timeout_s + 5
    while time.monotonic() < deadline:
        with lock:
            if in_flight[0] <= 0:
                break
        time.sleep(0.05)
    with lock:
        res.timeouts += max(0, in_flight[0])  # never answered within the timeout
    if server_pid:
        res.rss_mb.append((time.perf_counter() - t_start, rss_mb(server_pid)))
    client.close()
    return res
