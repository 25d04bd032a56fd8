"""Benchmark reports: results.json -> report.md + self-contained report.html with PNG plots.

A report folder (``benchmarks/reports/<date>-<HHMMSS>-<model>/``, a new one per run) holds
``results.json`` (environment, perf_analyzer runs, in-process profiles, extra figures), the plots, ``report.md`` and
``report.html`` (plots embedded as base64, so the one file can be mailed or attached to CI).
Headline figures per variant: peak samples/s, p99 at that point, and the serving efficiency
(served samples/s at saturation / in-process samples/s at the batch size the server formed).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from contract.errors import ProfileError
from contract.fileio import atomic_write_text
from toolkit.perf.analyzer import PerfRow, PerfRun, parse_csv
from toolkit.perf.document import Block, markdown, page
from toolkit.perf.explain import explain, status, time_split
from toolkit.perf.local import LocalProfile
from toolkit.perf.plots import write_plots
from toolkit.perf.server import server_client

RESULTS = "results.json"



# -- environment -----------------------------------------------------------------------------
def environment(server_url: str | None = None, protocol: str = "grpc") -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, GPU, library and Triton versions."""
    import importlib.metadata as md

    env: dict[str, Any] = {
        "cpu": _cpu_model(), "cores": os.cpu_count(), "gpu": _gpu(), "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for pkg in ("onnxruntime", "torch", "tritonclient", "nvidia-pytriton", "tensorrt"):
        try:
            env[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            env[pkg] = None
    env["triton_server"] = _server_version(server_url, protocol) if server_url else None
    return env


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _gpu() -> str:
    if not shutil.which("nvidia-smi"):
        return "none"
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return ", ".join(out.splitlines()) or "none"


def _server_version(url: str, protocol: str) -> str | None:
    try:
        client = server_client(url, protocol)
        meta = client.get_server_metadata()
        client.close()
        return meta.version if protocol == "grpc" else meta.get("version")
    except Exception:  # noqa: BLE001 - the environment block must not fail a report
        return None


def report_dir(root: str | os.PathLike[str], model: str) -> Path:
    """Create and return a new, empty folder ``<root>/<date>-<HHMMSS>-<model>`` for one run.

    A counter (``-2``, ``-3``...) is added when two runs start in the same second, so one run's
    files never mix with, replace or empty another's.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d-%H%M%S")
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            path = Path(root) / (f"{stamp}-{model}" + (f"-{n}" if n > 1 else ""))
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as exc:
        raise ProfileError(f"cannot create a report folder under {root} ({exc.strerror}); pass --out DIR "
                           "with a writable folder") from None
    raise ProfileError(f"{root}: 999 reports named {stamp}-{model} already; remove some or pass --out DIR")


def csv_environment() -> dict[str, Any]:
    """The environment of a report built from CSV files: unknown (perf_analyzer's CSV does not record it)."""
    return {"source": "csv", "cpu": "unknown", "cores": None}


# -- headline figures --------------------------------------------------------------------------
def headline(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per run: peak samples/s, its concurrency, p99, formed batch and serving efficiency."""
    local = {name: LocalProfile.from_dict(d) for name, d in (results.get("local") or {}).items()}
    out = []
    for d in results.get("runs", []):
        run = PerfRun.from_dict(d)
        peak = run.saturation()
        item: dict[str, Any] = {"label": run.label, "model": run.model, "ok": run.ok, "error": run.error,
                                "status": status(run), "levels": [r.concurrency for r in run.rows if r.stable]}
        if peak is not None:
            item.update(samples_per_sec=peak.infer_per_sec, concurrency=peak.concurrency,
                        p99_ms=peak.p99_us / 1000, stable=peak.stable,
                        formed_batch=peak.formed_batch if peak.stable else None)
            prof = local.get(run.model)
            if prof and prof.rows and peak.formed_batch:
                base = prof.at_batch(peak.formed_batch)
                item.update(local_samples_per_sec=base, efficiency=peak.infer_per_sec / base if base else None)
        out.append(item)
    return out


# -- document ---------------------------------------------------------------------------------
def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def _blocks(results: dict[str, Any], plots: list[tuple[str, str]]) -> list[Block]:
    env = results["environment"]
    b: list[Block] = [("h1", results.get("title", "Benchmark report"))]
    if env.get("source") == "csv":
        b.append(("p", f"Built from perf_analyzer CSV files last written {results.get('created', '')}. The "
                       "environment is unknown: a CSV does not record the machine, GPU, Triton or library "
                       "versions it was measured with."))
    else:
        b.append(("p", f"Measured {results.get('created', '')} on {env['cpu']} ({env['cores']} cores), GPU: "
                       f"{env.get('gpu', 'none')}. Triton server {env.get('triton_server') or 'unknown'} "
                       f"(nvidia-pytriton {env.get('nvidia-pytriton')}), ONNX Runtime {env.get('onnxruntime')}, "
                       f"torch {env.get('torch')}, tritonclient/perf_analyzer {env.get('tritonclient')}, "
                       f"TensorRT {env.get('tensorrt') or 'not installed'}, Python {env.get('python')}."))
    b.append(("p", "samples/s (perf_analyzer's Inferences/Second) counts batch x requests; requests/s = "
                   "samples/s / batch. 'formed batch' = Triton's inference count / execution count: the batch "
                   "size the server actually ran."))
    heads = headline(results)
    if heads:
        b.append(("h2", "Headline"))
        rows = [[h["label"], h.get("status") or ("ok" if h["ok"] else "FAILED"),
                 _fmt(h.get("samples_per_sec")), _fmt(h.get("concurrency")),
                 _fmt(h.get("p99_ms"), 2), _fmt(h.get("formed_batch")), _fmt(h.get("local_samples_per_sec")),
                 _fmt(h.get("efficiency"), 2)] for h in heads]
        b.append(("table", (["variant", "status", "peak samples/s", "at concurrency", "p99 ms", "formed batch",
                             "in-process samples/s at formed batch", "serving efficiency"], rows)))
    for fig in results.get("figures", []):
        b.append(("h2", fig["title"]))
        if fig.get("text"):
            b.append(("p", fig["text"]))
        if fig.get("table"):
            b.append(("table", (fig["table"]["header"], fig["table"]["rows"])))
    for name, caption in plots:
        b.append(("img", (name, caption)))
    for d in results.get("runs", []):
        run = PerfRun.from_dict(d)
        state = status(run)
        b.append(("h2", f"{run.label}" + ("" if state == "ok" else f": {state}")))
        b.append(("code", "\n".join(" ".join(c) for c in (run.commands or [run.command]) if c)
                  or "(not run)"))
        b.append(("p", f"CSV: {run.csv_path or 'none'}; log: {run.log_path}"))
        if run.error:
            b.append(("p", f"{'Failed' if not run.ok else 'Warning'}: {run.error}"))
        if run.rows:
            rows = []
            for r in run.rows:
                split = time_split(r)
                rows.append([str(r.concurrency), str(r.batch_size), "yes" if r.stable else "UNSTABLE",
                             _fmt(r.infer_per_sec), _fmt(r.requests_per_sec), _fmt(r.p50_us / 1000, 2),
                             _fmt(r.p90_us / 1000, 2), _fmt(r.p99_us / 1000, 2), _fmt(split["queue"], 0),
                             _fmt(split["compute input"], 0), _fmt(split["compute infer"], 0),
                             _fmt(split["compute output"], 0), _fmt(split["client+network"], 0),
                             _fmt(r.formed_batch) if r.stable and r.formed_batch else "-"])
            b.append(("table", (["conc", "batch", "stable", "samples/s", "requests/s", "p50 ms", "p90 ms", "p99 ms",
                                 "queue us", "input us", "infer us", "output us", "client+net us", "formed batch"],
                                rows)))
            b.append(("list", [explain(r, 0, run) for r in run.rows]))
        for f in run.failures:
            b.append(("p", f"concurrency {f['concurrency']}: FAILED: {f['error']}"))
    local = results.get("local") or {}
    if local:
        b.append(("h2", "In-process profiles"))
        for name, prof in local.items():
            b.append(("p", f"{name}: {prof['model']} with {prof['runtime']}, threads {prof['threads'] or 'default'}, "
                           f"{prof['warmup']} warm-up calls; memory = {prof['memory_method']}."))
            b.append(("table", (["batch", "p50 ms", "p90 ms", "p99 ms", "samples/s", "peak MiB"],
                                [[str(r["batch_size"]), _fmt(r["p50_ms"], 3), _fmt(r["p90_ms"], 3),
                                  _fmt(r["p99_ms"], 3), _fmt(r["samples_per_sec"]),
                                  _fmt(r["peak_memory_bytes"] / 2**20)] for r in prof["rows"]])))
    if results.get("comparison"):
        comp = results["comparison"]
        b.append(("h2", f"Change against {comp['old']}"))
        b.append(("table", (["variant", "figure", "old", "new", "change", "verdict"], comp["rows"])))
    return b


def write_report(folder: str | os.PathLike[str], results: dict[str, Any]) -> Path:
    """Write results.json, plots, report.md and report.html into ``folder``; returns report.md."""
    if not any(d.get("rows") for d in results.get("runs", [])) and not results.get("local") \
            and not results.get("figures"):
        failed = "; ".join(f"{d.get('label') or d.get('model')}: {d.get('error') or 'no rows'}"
                           for d in results.get("runs", [])) or "no runs"
        raise ProfileError(f"nothing was measured, so no report was written ({failed[:400]}); "
                           "see the logs and fix the failure first")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    results.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    results.setdefault("environment", environment())
    results["headline"] = headline(results)
    atomic_write_text(folder / RESULTS, json.dumps(results, indent=2, default=_json_default))
    plots = write_plots(results, folder)
    blocks = _blocks(results, plots)
    atomic_write_text(folder / "report.md", markdown(blocks))
    atomic_write_text(folder / "report.html", page(blocks, folder))
    return folder / "report.md"


def _json_default(o: Any) -> Any:
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def write_perf_report(runs: list[PerfRun], out: str | os.PathLike[str], title: str, *,
                      local: dict[str, Any] | None = None, env: dict[str, Any] | None = None,
                      figures: list[dict[str, Any]] | None = None, created: str | None = None) -> Path:
    """Report for perf_analyzer runs (plus optional in-process profiles by model name); returns report.md."""
    results: dict[str, Any] = {"title": title, "runs": [r.to_dict() for r in runs],
                               "local": {k: (v.to_dict() if hasattr(v, "to_dict") else v)
                                         for k, v in (local or {}).items()},
                               "figures": figures or []}
    if env:
        results["environment"] = env
    if created:
        results["created"] = created
    return write_report(out, results)


def load_results(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """results.json of a report folder; one line when it is missing or broken."""
    path = Path(folder) / RESULTS
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ProfileError(f"{folder}: no {RESULTS}; make a report there with 'tritonkit profile --out' "
                           "or pass a report folder") from None
    except (OSError, ValueError) as exc:
        raise ProfileError(f"{path}: unreadable ({type(exc).__name__}); re-run 'tritonkit profile'") from None
    if not isinstance(data, dict) or "runs" not in data:
        raise ProfileError(f"{path}: not a tritonkit results file (no 'runs'); re-run 'tritonkit profile'")
    return data


# -- regression check ---------------------------------------------------------------------------
def _peak_at(run: PerfRun, levels: set[int]) -> PerfRow | None:
    """The highest-throughput stable row among ``levels`` of ``run``."""
    rows = [r for r in run.rows if r.stable and r.concurrency in levels]
    return max(rows, key=lambda r: r.infer_per_sec) if rows else None


def compare(new: dict[str, Any], old: dict[str, Any], threshold_pct: float = 10.0) -> tuple[list[list[str]], bool]:
    """Rows (variant, figure, old, new, change, verdict) and whether anything regressed.

    Like is compared with like: each variant's figures are taken at the concurrency levels both
    reports measured stably; when the level sets differ a warning row says which were left out.
    Throughput and efficiency regress when they drop, p99 when it rises, by more than the threshold.
    """
    old_runs = {PerfRun.from_dict(d).label: PerfRun.from_dict(d) for d in old.get("runs", [])}
    old_heads = {h["label"]: h for h in headline(old)}
    rows: list[list[str]] = []
    regressed = False
    new_heads = {h["label"]: h for h in headline(new)}
    for d in new.get("runs", []):
        run = PerfRun.from_dict(d)
        was = old_runs.get(run.label)
        if was is None:
            rows.append([run.label, "all", "-", "-", "-", "new variant"])
            continue
        mine, theirs = {r.concurrency for r in run.rows if r.stable}, {r.concurrency for r in was.rows if r.stable}
        common = mine & theirs
        if mine != theirs:
            rows.append([run.label, "levels", _levels(theirs), _levels(mine), "-",
                         f"warning: different levels; compared at {_levels(common) or 'none'} only"])
        a_row, b_row = _peak_at(was, common), _peak_at(run, common)
        if a_row is None or b_row is None:
            continue
        figures = [("peak samples/s", a_row.infer_per_sec, b_row.infer_per_sec, True),
                   ("p99 ms", a_row.p99_us / 1000, b_row.p99_us / 1000, False)]
        if mine == theirs:
            figures.append(("serving efficiency", old_heads[run.label].get("efficiency"),
                            new_heads[run.label].get("efficiency"), True))
        for name, a, b_, higher_better in figures:
            if a is None or b_ is None or math.isnan(a) or math.isnan(b_):
                continue
            change = (b_ - a) / a * 100 if a else 0.0
            worse = (-change if higher_better else change) > threshold_pct
            regressed |= worse
            rows.append([run.label, name, _fmt(float(a), 2), _fmt(float(b_), 2), f"{change:+.1f}%",
                         "REGRESSION" if worse else "ok"])
    for label in old_runs.keys() - new_heads.keys():
        rows.append([label, "all", "-", "-", "-", "missing in new report"])
    return rows, regressed


def _levels(levels: set[int]) -> str:
    return ",".join(str(c) for c in sorted(levels))


def runs_from_csvs(paths: list[str], batch_size: int = 1) -> tuple[list[PerfRun], str]:
    """PerfRuns from raw perf_analyzer CSV files (one run per file), and when the newest was written (UTC)."""
    runs = []
    for p in paths:
        rows = parse_csv(p, batch_size)
        runs.append(PerfRun(model=Path(p).stem, command=[], rows=rows, csv_path=str(p), batch_size=batch_size))
    newest = max(os.stat(p).st_mtime for p in paths)
    return runs, datetime.fromtimestamp(newest, timezone.utc).isoformat(timespec="seconds")


__all__ = ["environment", "csv_environment", "report_dir", "headline", "write_report", "write_perf_report",
           "load_results", "compare", "runs_from_csvs", "PerfRow"]
