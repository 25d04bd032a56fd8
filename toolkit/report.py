"""Benchmark reports: perf_analyzer rows -> markdown table, JSON and PNG plots."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from toolkit.perf import PerfRun


def environment() -> dict[str, Any]:
    """What the numbers were measured on."""
    import importlib.metadata as md

    env: dict[str, Any] = {
        "cpu": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for pkg in ("onnxruntime", "torch", "tritonclient", "nvidia-pytriton", "tensorrt"):
        try:
            env[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            env[pkg] = None
    return env


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def report_dir(root: str | os.PathLike[str], model: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    return Path(root) / f"{stamp}-{model}"


def bottleneck(row: Any) -> str:
    """One sentence on where the time of one configuration goes."""
    parts = {
        "queueing in the server (requests wait for a free model instance)": row.server_queue_us,
        "model compute (inference itself)": row.server_compute_infer_us,
        "input/output handling on the server": row.server_compute_input_us + row.server_compute_output_us,
        "the client and network (send, receive, serialization)": row.client_send_us + row.network_us
        + row.client_recv_us,
    }
    name, us = max(parts.items(), key=lambda kv: kv[1])
    total = sum(parts.values()) or 1.0
    return f"most time ({100 * us / total:.0f}%) goes to {name}"


def write_perf_report(runs: list[PerfRun], out: str | os.PathLike[str], title: str) -> Path:
    """Write report.md, results.json and throughput/latency plots into ``out``; returns report.md."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env = environment()
    lines = [f"# {title}", "", f"Measured {datetime.now(timezone.utc).isoformat(timespec='seconds')} on "
             f"{env['cpu']} ({env['cores']} cores); onnxruntime {env['onnxruntime']}, torch {env['torch']}, "
             f"tritonclient {env['tritonclient']}, Triton from nvidia-pytriton {env['nvidia-pytriton']}, "
             f"TensorRT {env['tensorrt'] or 'not installed'}.", "",
             "Inferences/s counts samples (batch x requests); requests/s = samples/s / batch.", ""]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        lines.append(f"## {run.model}" + (" (FAILED)" if not run.ok else ""))
        lines.append("")
        lines.append(f"Command: `{' '.join(run.command)}`  ")
        lines.append(f"CSV: `{run.csv_path}`, log: `{run.log_path}`")
        if run.error:
            lines.append(f"\n**{'Failed' if not run.ok else 'Warning'}:** {run.error}")
        lines.append("")
        if run.rows:
            lines.append("| concurrency | batch | samples/s | requests/s | p50 ms | p99 ms | queue us | infer us | "
                         "client+net us | bottleneck |")
            lines.append("|---|---|---|---|---|---|---|---|---|---|")
            for r in run.rows:
                lines.append(
                    f"| {r.concurrency} | {r.batch_size} | {r.infer_per_sec:.1f} | {r.requests_per_sec:.1f} | "
                    f"{r.p50_us / 1000:.2f} | {r.p99_us / 1000:.2f} | {r.server_queue_us:.0f} | "
                    f"{r.server_compute_infer_us:.0f} | {r.client_send_us + r.network_us + r.client_recv_us:.0f} | "
                    f"{bottleneck(r)} |"
                )
            conc = [r.concurrency for r in run.rows]
            label = f"{run.model} b{run.rows[0].batch_size}"
            ax1.plot(conc, [r.infer_per_sec for r in run.rows], marker="o", label=label)
            ax2.plot([r.infer_per_sec for r in run.rows], [r.p99_us / 1000 for r in run.rows], marker="o",
                     label=label)
        lines.append("")
    ax1.set(xlabel="concurrency", ylabel="samples/s", title="Throughput vs concurrency")
    ax2.set(xlabel="samples/s", ylabel="p99 latency (ms)", title="p99 latency vs throughput")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    fig.savefig(out / "throughput_latency.png", dpi=110)
    plt.close(fig)
    lines.append("![throughput and latency](throughput_latency.png)")
    (out / "results.json").write_text(json.dumps({"environment": env, "runs": [r.to_dict() for r in runs]},
                                                 indent=2))
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report
