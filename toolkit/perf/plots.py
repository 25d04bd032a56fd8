"""The PNG plots of a benchmark report: throughput and latency, time breakdown, variants, in-process.

matplotlib is imported only when plots are drawn (it is slow to import and not needed for --help).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from toolkit.perf.analyzer import PerfRun, time_split


def write_plots(results: dict[str, Any], out: Path) -> list[tuple[str, str]]:
    """Write the PNG plots of a report's results (with its ``headline``); returns (file name, caption) pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [PerfRun.from_dict(d) for d in results.get("runs", [])]
    made: list[tuple[str, str]] = []
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for run in runs:
        if not run.rows:
            continue
        line = ax1.plot([r.concurrency for r in run.rows], [r.infer_per_sec for r in run.rows], marker="o",
                        label=run.label)[0]
        bad = [r for r in run.rows if not r.stable]
        if bad:
            ax1.scatter([r.concurrency for r in bad], [r.infer_per_sec for r in bad], marker="x", s=80,
                        color="red", zorder=3)
        stable = [r for r in run.rows if r.stable]
        x = [r.infer_per_sec for r in stable]
        for attr, style in (("p50_us", ":"), ("p90_us", "--"), ("p99_us", "-")):
            ax2.plot(x, [getattr(r, attr) / 1000 for r in stable], style, marker=".", color=line.get_color(),
                     label=f"{run.label} {attr[:3]}")
    ax1.set(xlabel="concurrency (requests in flight)", ylabel="samples/s", title="Throughput vs concurrency "
            "(x = unstable)")
    ax1.set_xscale("log", base=2)
    ax2.set(xlabel="samples/s", ylabel="latency (ms)", title="Latency p50 (:) p90 (--) p99 (-) vs throughput")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "throughput_latency.png", dpi=100)
    plt.close(fig)
    made.append(("throughput_latency.png", "Throughput vs concurrency; latency percentiles vs throughput"))

    with_rows = [r for r in runs if any(row.stable for row in r.rows)]
    if with_rows:
        n = len(with_rows)
        cols = min(n, 3)
        nrows = math.ceil(n / cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(4.5 * cols, 3.6 * nrows), squeeze=False)
        colors = ["#d62728", "#9467bd", "#1f77b4", "#8c564b", "#7f7f7f"]
        for ax, run in zip(axes.flat, with_rows):
            rows = [r for r in run.rows if r.stable]
            labels = [str(r.concurrency) for r in rows]
            bottom = [0.0] * len(rows)
            for (stage, _), color in zip(time_split(rows[0]).items(), colors):
                vals = [time_split(r)[stage] / 1000 for r in rows]
                ax.bar(labels, vals, bottom=bottom, color=color, label=stage)
                bottom = [b + v for b, v in zip(bottom, vals)]
            ax.set(title=run.label, xlabel="concurrency", ylabel="ms per request")
        for ax in list(axes.flat)[n:]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7)
        fig.suptitle("Where a request's time goes (server queue / compute input / infer / output; client+network)")
        fig.tight_layout()
        fig.savefig(out / "breakdown.png", dpi=100)
        plt.close(fig)
        made.append(("breakdown.png", "Server time breakdown per concurrency (stacked)"))

    heads = [h for h in results.get("headline", []) if "samples_per_sec" in h]
    if len(heads) >= 2:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 0.5 * len(heads) + 2.5))
        names = [h["label"] for h in heads]
        ax1.barh(names, [h["samples_per_sec"] for h in heads], color="#1f77b4")
        ax1.set(xlabel="peak samples/s", title="Variants: peak throughput")
        ax2.barh(names, [h["p99_ms"] if not math.isnan(h["p99_ms"]) else 0 for h in heads], color="#ff7f0e")
        ax2.set(xlabel="p99 ms at peak", title="Variants: p99 at peak")
        for ax in (ax1, ax2):
            ax.invert_yaxis()
            ax.grid(alpha=0.3, axis="x")
        fig.tight_layout()
        fig.savefig(out / "variants.png", dpi=100)
        plt.close(fig)
        made.append(("variants.png", "Comparison of variants"))

    local = results.get("local") or {}
    if local:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, prof in local.items():
            ax.plot([r["batch_size"] for r in prof["rows"]], [r["samples_per_sec"] for r in prof["rows"]],
                    marker="o", label=f"{name} ({prof['runtime']})")
        ax.set(xlabel="batch size", ylabel="samples/s", title="In-process throughput (no server)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "in_process.png", dpi=100)
        plt.close(fig)
        made.append(("in_process.png", "In-process throughput per batch size"))
    return made
