"""One sentence per measured configuration: where a request's time goes and what limits it.

The advice is checked against the sweep it comes from: "raise concurrency" is said only when a
higher level of the same run actually gave more throughput (or none was measured), never when
the data shows it did not help.
"""

from __future__ import annotations

import math

from toolkit.perf.analyzer import PerfRow, PerfRun

# A higher level must beat this one by this fraction to count as "more concurrency helped".
HELPED = 1.10


def time_split(row: PerfRow) -> dict[str, float]:
    """Where one request's time goes (us): queue, compute input, infer, output, client+network."""
    return {
        "queue": row.server_queue_us,
        "compute input": row.server_compute_input_us,
        "compute infer": row.server_compute_infer_us,
        "compute output": row.server_compute_output_us,
        "client+network": row.client_send_us + row.network_us + row.client_recv_us,
    }


def higher_helped(row: PerfRow, run: PerfRun | None) -> bool | None:
    """Did a higher concurrency of ``run`` (stable) give clearly more throughput? None: none measured."""
    if run is None:
        return None
    above = [r for r in run.rows if r.stable and r.concurrency > row.concurrency]
    if not above:
        return None
    return max(r.infer_per_sec for r in above) >= HELPED * row.infer_per_sec


def _idle_server_advice(row: PerfRow, helped: bool | None) -> str:
    if helped is False:
        return ("the server is waiting for work, yet higher concurrency did not raise throughput: the client "
                "(perf_analyzer shares the cores) is the limit; measure from another machine or raise the batch size")
    if helped is None:
        return "the server is waiting for work; try higher concurrency or a larger batch size"
    return "the server is waiting for work; higher concurrency raised throughput (see the next levels)"


def bottleneck_sentence(row: PerfRow, max_batch: int = 0, run: PerfRun | None = None) -> str:
    """The bottleneck of one configuration in one sentence, consistent with the rest of ``run``."""
    if not row.stable:
        return ("unknown: the level did not stabilize (the machine was busy); only its last window's "
                "throughput and mean latency are shown")
    split = time_split(row)
    total = sum(split.values()) or 1.0
    share = {k: v / total for k, v in split.items()}
    io = share["compute input"] + share["compute output"]
    helped = higher_helped(row, run)
    if share["queue"] >= 0.4:
        full = max_batch and row.formed_batch >= 0.9 * max_batch
        return (f"the model instance is saturated: requests spend {share['queue']:.0%} of their time queued"
                + (" even with full batches" if full else "")
                + ", so more concurrency adds latency, not throughput (more cores/instances or a faster model help)")
    if share["compute infer"] >= 0.4:
        return (f"model compute dominates ({share['compute infer']:.0%}): the model itself is the limit"
                + (f"; batching (formed batch {row.formed_batch:.1f}) is what amortizes it" if row.formed_batch
                   else ""))
    if io >= 0.3:
        return (f"moving tensors into and out of the backend ({io:.0%}) dominates: per-request overhead in "
                "the serving path, not the model")
    if share["client+network"] >= 0.4:
        return f"client, network and serialization ({share['client+network']:.0%}) dominate: " + \
            _idle_server_advice(row, helped)
    top = max(share, key=share.get)  # type: ignore[arg-type]
    return f"no single stage dominates; the largest is {top} ({share[top]:.0%})"


def explain(row: PerfRow, max_batch: int = 0, run: PerfRun | None = None) -> str:
    """Samples/s vs requests/s, where the time goes, and the bottleneck, for one configuration."""
    head = (f"concurrency {row.concurrency}, batch {row.batch_size}: {row.infer_per_sec:.0f} samples/s = "
            f"{row.requests_per_sec:.0f} requests/s x {row.batch_size} sample(s)")
    if not row.stable:
        lat = (f"p99 {row.p99_us / 1000:.2f} ms" if not math.isnan(row.p99_us)
               else f"mean latency {row.avg_latency_us / 1000:.2f} ms")
        return f"{head}. UNSTABLE (last window): {lat}. Bottleneck: {bottleneck_sentence(row)}."
    if row.formed_batch:
        head += f"; the server ran batches of {row.formed_batch:.1f} samples on average"
    split = time_split(row)
    total = sum(split.values()) or 1.0
    parts = ", ".join(f"{k} {v / 1000:.2f} ms ({v / total:.0%})" for k, v in split.items())
    return f"{head}. Per request: {parts}. Bottleneck: {bottleneck_sentence(row, max_batch, run)}."


def status(run: PerfRun) -> str:
    """``ok``, ``partial (N of M levels unstable)`` or ``FAILED``: a run is ok only when every level is stable."""
    if not run.ok:
        return "FAILED"
    unstable = sum(1 for r in run.rows if not r.stable)
    if unstable:
        return f"partial ({unstable} of {len(run.rows)} levels unstable)"
    return "ok"
