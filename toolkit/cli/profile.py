"""``tritonkit profile`` / ``profile-local`` / ``report`` / ``tune``: measure, explain, compare, search.

Heavy modules are imported inside the commands so ``tritonkit --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from toolkit.cli.options import IntList, int_list_text, json_option, parse_int_list, repository_option, shape_option
from toolkit.perf.analyzer import (
    DEFAULT_BATCHES,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_TRIALS,
    DEFAULT_MEASUREMENT_MS,
    DEFAULT_STABILITY_PCT,
)
from toolkit.perf.server import parse_shape
from toolkit.perf.tune import (
    DEFAULT_DELAYS_US,
    DEFAULT_LATENCY_BUDGET_MS,
    DEFAULT_MAX_INSTANCES,
    DEFAULT_TUNE_CONCURRENCY,
    DEFAULT_TUNE_MEASUREMENT_MS,
    DEFAULT_TUNE_STABILITY_PCT,
)


def _shapes(values: tuple[str, ...]) -> dict[str, list[int]]:
    return dict(parse_shape(v) for v in values)


def check_measurement(measurement_ms: int, stability_pct: int, max_trials: int | None = None) -> None:
    """Refuse settings perf_analyzer would choke on, in one line, before any server is dialled."""
    from contract.errors import UsageError

    if measurement_ms <= 0:
        raise UsageError(f"--measurement-ms {measurement_ms} must be above 0 (e.g. {DEFAULT_MEASUREMENT_MS})")
    if stability_pct <= 0:
        raise UsageError(f"--stability-pct {stability_pct} must be above 0 (e.g. {DEFAULT_STABILITY_PCT})")
    if max_trials is not None and max_trials < 1:
        raise UsageError(f"--max-trials {max_trials} must be 1 or more (e.g. {DEFAULT_MAX_TRIALS})")


def _progress(total: int) -> tuple[Any, Any]:
    """(step, close): a tqdm bar on a terminal; elsewhere (CI logs, pipes) one plain line per level."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, desc="perf_analyzer", unit="level", file=sys.stderr, leave=False)

        def step(name: str, b: int, c: int) -> None:
            if bar.n or bar.postfix:
                bar.update(1)  # the previous level is done
            bar.set_postfix_str(f"{name} batch {b} concurrency {c}")

        return step, bar.close
    done = [0]

    def line(name: str, b: int, c: int) -> None:
        done[0] += 1
        click.echo(f"perf_analyzer {done[0]}/{total}: {name} batch {b} concurrency {c}", err=True)

    return line, lambda: None


@click.command()
@click.argument("models", nargs=-1)
@click.option("--url", default=None, help="Server host:port for --protocol (default: the server 'tritonkit serve' "
              "recorded for --repository, else 127.0.0.1:8001).")
@click.option("--protocol", type=click.Choice(["grpc", "http"]), default="grpc", show_default=True)
@click.option("--concurrency", type=IntList(1), default=int_list_text(DEFAULT_CONCURRENCY), show_default=True,
              help="Requests in flight, per level.")
@click.option("--batch", type=IntList(1), default=int_list_text(DEFAULT_BATCHES), show_default=True,
              help="Comma-separated batch sizes per request, e.g. 1,8 (each must fit the model's max batch).")
@shape_option("Shape (without batch) for an input with variable dims; default: the config's warm-up shape.")
@click.option("--measurement-ms", default=DEFAULT_MEASUREMENT_MS, show_default=True,
              help="perf_analyzer measurement window.")
@click.option("--stability-pct", default=DEFAULT_STABILITY_PCT, show_default=True,
              help="Last 3 windows must agree within this %; raise it on a busy machine.")
@click.option("--max-trials", default=DEFAULT_MAX_TRIALS, show_default=True,
              help="Windows tried before a level counts as unstable.")
@click.option("--local", "local", multiple=True, metavar="[MODEL=]FILE",
              help="Model file for the in-process baseline (serving efficiency), run at the formed batch size; "
                   "default: the served version's file in --repository.")
@repository_option(help="Local repository: where the served model's file is found (serving efficiency) and "
                        "whose recorded server is dialled when no --url is given.")
@click.option("--efficiency/--no-efficiency", default=True, show_default=True,
              help="Compute the serving efficiency (an in-process run of the served model file).")
@click.option("--out", default="benchmarks/reports", show_default=True, type=click.Path(),
              help="Reports go to a new folder OUT/<date>-<time>-<model>/ per run.")
@click.option("--report/--no-report", default=True, show_default=True)
@json_option("Print {report, runs, headline} as JSON.")
def profile(models: tuple[str, ...], url: str | None, protocol: str, concurrency: list[int], batch: list[int],
            shape: tuple[str, ...], measurement_ms: int, stability_pct: int, max_trials: int, local: tuple[str, ...],
            repository: str, efficiency: bool, out: str, report: bool, as_json: bool) -> None:
    """Sweep MODEL[:VERSION]... with perf_analyzer on a running server; keep CSVs and logs; write a report.

    Every concurrency x batch configuration is measured; failed and unstable ones are reported as
    such, each configuration gets a one-sentence bottleneck.
    """
    from contract.errors import UsageError

    if not models:
        raise UsageError("give MODEL, the served model's name: tritonkit profile MODEL[:VERSION]... "
                         "(e.g. tritonkit profile digits)")
    if url is not None:
        from toolkit.client.endpoint import check_url

        check_url(url)
    check_measurement(measurement_ms, stability_pct, max_trials)
    from toolkit.model_files import model_kind

    for item in local:  # every --local file is checked before the sweep, not found missing after it
        model_kind(item.rpartition("=")[2])
    from contract.errors import ProfileError
    from toolkit.perf.analyzer import check_perf_analyzer
    from toolkit.perf.explain import explain, status
    from toolkit.perf.report import environment, load_results, report_dir, write_perf_report
    from toolkit.perf.sweep import local_baselines, preflight, served_file, sweep
    from toolkit.serve.state import recorded_url

    check_perf_analyzer()  # before anything else: one line saying how to install it
    url = url or recorded_url(protocol, repository) or ("127.0.0.1:8001" if protocol == "grpc" else "127.0.0.1:8000")
    targets = preflight(models, url, protocol=protocol, shapes=_shapes(shape))  # fails before any folder exists
    folder = report_dir(out, targets[0].name)
    step, close = _progress(len(targets) * len(batch) * len(concurrency))
    try:
        runs = sweep(targets, url, folder / "perf", protocol=protocol, concurrency=concurrency, batches=batch,
                     measurement_ms=measurement_ms, stability_pct=stability_pct, max_trials=max_trials,
                     progress=step)
    finally:
        close()
    given = {item.rpartition("=")[0] or targets[0].name for item in local}
    found = [(t.name, served_file(repository, t)) for t in targets if efficiency and t.name not in given]
    local = local + tuple(f"{name}={path}" for name, path in found if path is not None)
    measured = [r for r in runs if r.rows]
    profiles = local_baselines(local, runs, targets[0].name) if measured else {}
    path = None
    if report and measured:
        path = write_perf_report(runs, folder, f"perf_analyzer report: {', '.join(models)}", local=profiles,
                                 env=environment(url, protocol))
    if as_json:
        heads = load_results(folder)["headline"] if path else []
        click.echo(json.dumps({"report": str(path) if path else None, "runs": [r.to_dict() for r in runs],
                               "headline": heads}))
    else:
        for run in runs:
            click.echo(f"{run.label}: {status(run)}" + (f" ({run.error})" if run.error else ""))
            for r in run.rows:
                click.echo(f"  {explain(r, next(t.max_batch for t in targets if t.name == run.model), run)}")
        if path:
            click.echo(f"report: {path} (and {path.with_suffix('.html')})")
    if not measured:
        first = next((r for r in runs if r.error), runs[0])
        raise ProfileError(f"nothing was measured ({first.label}: {first.error}); no report written; "
                           f"perf_analyzer logs are in {folder / 'perf'}")
    if not all(r.ok for r in runs):
        raise SystemExit(1)


@click.command("profile-local")
@click.argument("model_file", type=click.Path())
@click.option("--batch", type=IntList(1), default="1,8,16,32", show_default=True, help="Comma-separated batch sizes.")
@click.option("--iterations", default=100, show_default=True, help="Timed calls per batch size.")
@click.option("--warmup", default=10, show_default=True, help="Untimed calls first (arenas, caches).")
@click.option("--threads", default=None, type=int, help="Intra-op threads (default: all cores).")
@shape_option("Dims (without batch) of a variable input.")
@click.option("--max-batch-mib", default=2048, show_default=True, type=int,
              help="Budget of one generated input batch; a larger declared shape is refused before allocating.")
@json_option()
def profile_local(model_file: str, batch: list[int], iterations: int, warmup: int, threads: int | None,
                  shape: tuple[str, ...], max_batch_mib: int, as_json: bool) -> None:
    """Time MODEL_FILE (.onnx, .plan, checkpoint .pt) in-process: p50/p90/p99, samples/s, peak memory."""
    from contract.errors import UsageError
    from toolkit.perf.local import PerformanceProfiler

    if max_batch_mib < 1:
        raise UsageError(f"--max-batch-mib {max_batch_mib} must be 1 or more")
    prof = PerformanceProfiler(model_file, shapes=_shapes(shape), threads=threads,
                               max_batch_bytes=max_batch_mib << 20).profile(
        batch, num_iterations=iterations, warmup=warmup)
    click.echo(json.dumps(prof.to_dict()) if as_json else prof.table())


@click.command()
@click.argument("folder", required=False, type=click.Path())
@click.option("--compare", "old", type=click.Path(), help="Older report folder: show changes of headline figures.")
@click.option("--threshold", default=10.0, show_default=True,
              help="Percent drop of throughput/efficiency or rise of p99 that fails --compare.")
@click.option("--csv", "csvs", multiple=True, type=click.Path(), help="Build a report from raw perf_analyzer CSVs.")
@click.option("--batch", default=1, show_default=True, help="Batch size the --csv runs used.")
@click.option("--out", default="benchmarks/reports", show_default=True, type=click.Path(),
              help="Where a --csv report goes (a new <date>-<time>-<name>/ each time).")
def report(folder: str | None, old: str | None, threshold: float, csvs: tuple[str, ...], batch: int,
           out: str) -> None:
    """(Re)write report.md and report.html of FOLDER; with --compare, exit 1 on a regression."""
    from contract.errors import UsageError
    from toolkit.perf.report import (
        compare,
        csv_environment,
        load_results,
        report_dir,
        runs_from_csvs,
        write_perf_report,
        write_report,
    )

    if csvs:
        runs, created = runs_from_csvs(list(csvs), batch)
        target = folder or str(report_dir(out, runs[0].model))
        path = write_perf_report(runs, target, f"perf_analyzer report: {', '.join(r.model for r in runs)}",
                                 env=csv_environment(), created=created)
        folder = target
    elif folder is None:
        raise UsageError("give a report FOLDER (e.g. benchmarks/reports/2026-01-01-digits) or --csv FILE")
    results = load_results(folder)
    regressed = False
    if old:
        rows, regressed = compare(results, load_results(old), threshold)
        results["comparison"] = {"old": str(old), "threshold_pct": threshold, "rows": rows}
        for r in rows:
            click.echo(f"{r[0]:<24} {r[1]:<20} {r[2]:>10} -> {r[3]:>10} {r[4]:>8}  {r[5]}")
    path = write_report(folder, results)
    click.echo(f"report: {path} (and {path.with_suffix('.html')})")
    if regressed:
        click.echo(f"regression: a headline figure moved more than {threshold:g}% the wrong way", err=True)
        sys.exit(1)


@click.command()
@click.argument("name")
@repository_option()
@click.option("--latency-budget-ms", default=DEFAULT_LATENCY_BUDGET_MS, show_default=True,
              help="p99 a winner must stay within.")
@click.option("--max-instances", default=DEFAULT_MAX_INSTANCES, show_default=True,
              help="Instance counts tried: 1,2,4.. up to this.")
@click.option("--delays-us", type=IntList(0, allow_empty=True), default=int_list_text(DEFAULT_DELAYS_US),
              show_default=True, help="max_queue_delay_microseconds values.")
@click.option("--preferred", default="auto", show_default=True,
              help="Preferred batch size sets: 'auto' (none, and half the max batch), 'none', or e.g. 'none;8;4,8'.")
@click.option("--concurrency", type=IntList(1), default=int_list_text(DEFAULT_TUNE_CONCURRENCY), show_default=True,
              help="Load levels measured per variant.")
@click.option("--measurement-ms", default=DEFAULT_TUNE_MEASUREMENT_MS, show_default=True)
@click.option("--stability-pct", default=DEFAULT_TUNE_STABILITY_PCT, show_default=True)
@shape_option("Dims of a variable input.")
@click.option("--apply", "do_apply", is_flag=True, help="Publish the winner as a new version of NAME.")
@json_option()
def tune(name: str, repository: str, latency_budget_ms: float, max_instances: int, delays_us: list[int],
         preferred: str, concurrency: list[int], measurement_ms: int, stability_pct: int, shape: tuple[str, ...],
         do_apply: bool, as_json: bool) -> None:
    """Search instance count x queue delay x preferred batch sizes for NAME; print the table.

    Each variant is served by a temporary embedded Triton and measured with perf_analyzer; the
    winner is the highest samples/s whose p99 stays within the budget.
    """
    check_measurement(measurement_ms, stability_pct)
    from toolkit.perf.tune import apply_winner
    from toolkit.perf.tune import tune as run_tune

    pref = None
    if preferred != "auto":
        pref = [[] if part.strip() in ("none", "") else parse_int_list(part) for part in preferred.split(";")]
    result = run_tune(name, repository, latency_budget_ms=latency_budget_ms, max_instances=max_instances,
                      delays_us=delays_us or [0], preferred=pref, concurrency=concurrency,
                      measurement_ms=measurement_ms,
                      stability_pct=stability_pct, shapes=_shapes(shape),
                      log=(lambda m: None) if as_json else (lambda m: click.echo(m, err=True)))
    published = None
    if do_apply:
        published = apply_winner(result, repository)
    if as_json:
        d = result.to_dict()
        d["applied"] = ({"version": published.version, "path": str(published.path)} if published else None)
        click.echo(json.dumps(d))
    else:
        click.echo(result.table())
        if result.winner is None:
            click.echo(f"no variant kept p99 within {latency_budget_ms:g} ms")
        elif do_apply:
            click.echo(f"published {name} version {published.version}: {published.path}" if published
                       else "the current config won; nothing published")
    if result.winner is None:
        raise SystemExit(1)
