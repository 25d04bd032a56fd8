"""The PNG plots of a benchmark report: throughput and latency, time breakdown, variants, in-process.

matplotlib is imported only when plots are drawn (it is slow to import and not needed for --help).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from toolkit.perf.analyzer import PerfRun
from toolkit.perf.explain import time_split

PERCENTILES = (("p50_us", "p50", "o"), ("p90_us", "p90", "s"), ("p99_us", "p99", "^"))


def _levels_axis(ax: Any, levels: list[int]) -> None:
    """A log2 axis labelled with the measured levels themselves (1, 2, 4 ... not 2^0, 2^1 ...)."""
    from matplotlib.ticker import NullFormatter, NullLocator

    ax.set_xscale("log", base=2)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(levels)
    ax.set_xticklabels([str(c) for c in levels])


def throughput_figure(plt: Any, runs: list[PerfRun]) -> Any:
    """Throughput vs concurrency (unstable points marked, not joined) and latency vs throughput; None: no rows."""
    from matplotlib.lines import Line2D

    drawn = [run for run in runs if run.rows]
    if not drawn:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    levels: set[int] = set()
    unstable_shown = False
    for run in drawn:
        xs = [r.concurrency for r in run.rows]
        levels |= set(xs)
        # NaN breaks the line: an unstable level is never joined to its neighbours.
        ys = [r.infer_per_sec if r.stable else math.nan for r in run.rows]
        line = ax1.plot(xs, ys, marker="o", label=run.label)[0]
        bad = [r for r in run.rows if not r.stable]
        if bad:
            ax1.scatter([r.concurrency for r in bad], [r.infer_per_sec for r in bad], marker="x", s=80,
                        color=line.get_color(), zorder=3, label=None if unstable_shown else "unstable (last window)")
            unstable_shown = True
        stable = [r for r in run.rows if r.stable]  # already in concurrency order
        for attr, _, marker in PERCENTILES:
            ax2.scatter([r.infer_per_sec for r in stable], [getattr(r, attr) / 1000 for r in stable], marker=marker,
                        color=line.get_color(), alpha=0.85)
        for r in stable:
            ax2.annotate(f"c{r.concurrency}", (r.infer_per_sec, r.p99_us / 1000), textcoords="offset points",
                         xytext=(4, 4), fontsize=7, color=line.get_color())
    _levels_axis(ax1, sorted(levels))
    ax1.set(xlabel="concurrency (requests in flight)", ylabel="samples/s", title="Throughput vs concurrency")
    ax2.set(xlabel="samples/s", ylabel="latency (ms)",
            title="Latency percentiles vs throughput (cN: concurrency N)")
    # One legend entry per run (colour) and per percentile (marker), not one per combination.
    handles = [Line2D([], [], color=ln.get_color(), marker="o", label=ln.get_label()) for ln in ax1.lines]
    handles += [Line2D([], [], color="black", marker=m, linestyle="none", label=n) for _, n, m in PERCENTILES]
    ax2.legend(handles=handles, fontsize=7)
    ax1.legend(fontsize=7)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def write_plots(results: dict[str, Any], out: Path) -> list[tuple[str, str]]:
    """Write the PNG plots of a report's results (with its ``headline``); returns (file name, caption) pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [PerfRun.from_dict(d) for d in results.get("runs", [])]
    made: list[tuple[str, str]] = []
    fig = throughput_figure(plt, runs)
    if fig is not None:
        fig.savefig(out / "throughput_latency.png", dpi=100)
        plt.close(fig)
        made.append(("throughput_latency.png", "Throughput vs concurrency (x: unstable level, not joined); "
                                               "latency percentiles vs throughput, each point labelled with its "
                                               "concurrency"))

    with_rows = [r for r in runs if r.rows]  # a run with only unstable levels shows them hatched
    if with_rows:
        n = len(with_rows)
        cols = min(n, 3)
        nrows = math.ceil(n / cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(max(4.5 * cols, 6.5), 3.6 * nrows + 0.4), squeeze=False)
        colors = ["#d62728", "#9467bd", "#1f77b4", "#8c564b", "#7f7f7f"]
        for ax, run in zip(axes.flat, with_rows):
            rows = run.rows
            labels = [str(r.concurrency) + ("\nunstable" if not r.stable else "") for r in rows]
            bottom = [0.0] * len(rows)
            for stage, color in zip(time_split(rows[0]), colors):
                vals = [time_split(r)[stage] / 1000 if r.stable else 0.0 for r in rows]
                ax.bar(labels, vals, bottom=bottom, color=color, label=stage)
                bottom = [b + v for b, v in zip(bottom, vals)]
            top = max(bottom) or 1.0
            for i, r in enumerate(rows):
                if not r.stable:  # no breakdown is known for it: an empty hatched bar says so
                    ax.bar(labels[i], top, color="none", edgecolor="grey", hatch="//", label=None)
                    ax.text(i, top / 2, "unstable:\nno breakdown", ha="center", va="center", fontsize=7,
                            rotation=90)
            ax.set(title=run.label, xlabel="concurrency", ylabel="ms per request")
        for ax in list(axes.flat)[n:]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7)
        fig.suptitle("Where a request's time goes, per concurrency level", fontsize=11)
        fig.tight_layout()
        fig.savefig(out / "breakdown.png", dpi=100)
        plt.close(fig)
        made.append(("breakdown.png", "Server time breakdown per concurrency (stacked; hatched: unstable level, "
                                      "breakdown unknown)"))

    heads = [h for h in results.get("headline", []) if "samples_per_sec" in h]
    if len(heads) >= 2:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 0.5 * len(heads) + 2.5))
        names = [h["label"] for h in heads]
        ax1.barh(names, [h["samples_per_sec"] for h in heads], color="#1f77b4")
        ax1.set(xlabel="peak samples/s", title="Variants: peak throughput")
        ax2.barh(names, [h["p99_ms"] if not math.isnan(h["p99_ms"]) else 0 for h in heads], color="#ff7f0e")
        for i, h in enumerate(heads):
            if math.isnan(h["p99_ms"]):  # an unstable peak has no p99: say so instead of drawing 0
                ax2.text(0, i, " unknown (unstable)", va="center", fontsize=8)
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
        sizes = sorted({r["batch_size"] for prof in local.values() for r in prof["rows"]})
        ax.set_xticks(sizes)  # whole batch sizes, not 2.5 or 7.5
        ax.set(xlabel="batch size", ylabel="samples/s", title="In-process throughput (no server)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "in_process.png", dpi=100)
        plt.close(fig)
        made.append(("in_process.png", "In-process throughput per batch size"))
    return made
