"""``tritonkit profile``: perf_analyzer sweeps against a running server, kept as reports."""

from __future__ import annotations

import json

import click


def _int_list(value: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r}: give integers separated by commas, e.g. 1,2,4,8") from None


@click.command()
@click.argument("model", default="digits")
@click.option("--url", default="127.0.0.1:8001", show_default=True, help="Server host:port for --protocol.")
@click.option("--protocol", type=click.Choice(["grpc", "http"]), default="grpc", show_default=True)
@click.option("--concurrency", default="1,2,4,8", show_default=True)
@click.option("--batch", default="1", show_default=True, help="Comma-separated batch sizes.")
@click.option("--measurement-ms", default=1000, show_default=True, help="perf_analyzer measurement window.")
@click.option("--stability-pct", default=25, show_default=True,
              help="Windows must agree within this %; raise it on a busy machine.")
@click.option("--max-trials", default=10, show_default=True, help="Windows tried before a level is unstable.")
@click.option("--out", default="benchmarks/reports", show_default=True, type=click.Path())
@click.option("--report/--no-report", default=True, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def profile(model: str, url: str, protocol: str, concurrency: str, batch: str, measurement_ms: int,
            stability_pct: int, max_trials: int, out: str, report: bool, as_json: bool) -> None:
    """Run perf_analyzer against MODEL on a running server; keep its CSV and write a report."""
    from toolkit.client import Predictor
    from toolkit.perf import run_perf_analyzer
    from toolkit.report import report_dir, write_perf_report

    Predictor(model, url=url, protocol=protocol).close()  # one clear line if no server or model
    folder = report_dir(out, model)
    runs = [
        run_perf_analyzer(model, url, folder / "perf", protocol=protocol, concurrency=_int_list(concurrency),
                          batch_size=b, measurement_ms=measurement_ms,
                          stability_pct=stability_pct, max_trials=max_trials)
        for b in _int_list(batch)
    ]
    path = write_perf_report(runs, folder, f"perf_analyzer report: {model}") if report else None
    if as_json:
        click.echo(json.dumps({"report": str(path) if path else None, "runs": [r.to_dict() for r in runs]}))
    else:
        for run in runs:
            status = "ok" if run.ok else f"FAILED: {run.error}"
            click.echo(f"{run.model}: {status}")
            for r in run.rows:
                click.echo(f"  c={r.concurrency:<3} b={r.batch_size:<3} {r.infer_per_sec:9.1f} samples/s  "
                           f"p50 {r.p50_us / 1000:6.2f} ms  p99 {r.p99_us / 1000:6.2f} ms")
        if path:
            click.echo(f"report: {path}")
    if not all(r.ok for r in runs):
        raise SystemExit(1)
