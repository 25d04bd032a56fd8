"""One overload run: measure saturation, offer a multiple of it open-loop, sample RSS; shared by the
CI test and ``benchmarks/bench_overload.py`` / ``bench_soak.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.reliability.conftest import write_slow_model
from tests.reliability.loadgen import open_loop, saturation
from toolkit.serve.embedded import EmbeddedServer
from toolkit.serve.ports import free_port


def run_overload(root: Path, seconds: float, factor: float = 4.0, *, max_queue_size: int = 8,
                 sleep_ms: int = 20, max_batch_size: int = 4, timeout_s: float = 5.0,
                 model: str = "slow", onnx: Path | None = None) -> dict[str, Any]:
    """Serve ``model`` with a bounded queue, find saturation, offer ``factor`` x it for ``seconds``.

    ``slow``: the fixed-cost python model (the server, not this 2-core client, is the bottleneck);
    ``digits``: the real ONNX model published with ``ServingOptions(max_queue_size=...)``.
    """
    repo = root / "repo"
    if model == "slow":
        write_slow_model(repo, "slow", max_queue_size=max_queue_size, sleep_ms=sleep_ms,
                         max_batch_size=max_batch_size)
    else:
        from toolkit.repository.config import ServingOptions
        from toolkit.repository.publish import publish_onnx

        assert onnx is not None
        publish_onnx(repo, model, onnx, ServingOptions(max_batch_size=max_batch_size,
                                                        max_queue_size=max_queue_size))
    server = EmbeddedServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                            log_path=root / "triton.log")
    with server:
        sat = saturation(server.grpc_url, model, seconds=3.0, threads=max(8, 2 * max_batch_size))
        res = open_loop(server.grpc_url, model, factor * sat, seconds, server_pid=server.pid, timeout_s=timeout_s)
        alive = server.is_running() and server.is_ready()
        after = saturation(server.grpc_url, model, seconds=1.0, threads=4)
    return {"model": model, "max_queue_size": max_queue_size, "factor": factor,
            "saturation_per_s": round(sat, 1), "after_per_s": round(after, 1), "server_ready_after": alive,
            **res.summary()}
