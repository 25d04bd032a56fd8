"""``tritonkit monitor``: a live table of a running Triton's per-model rates, states and processes."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from toolkit.cli.options import json_option

CLEAR = "\x1b[H\x1b[2J"


def _recorded(url: str | None, repository: str | None) -> dict[str, Any] | None:
    """The live state ``tritonkit serve`` recorded for ``url`` (for ``repository``'s server when ``url`` is None)."""
    from toolkit.serve.state import find_run_dir, is_live, live_servers, read_state, same_endpoint

    state = read_state(find_run_dir(repository))
    candidates = [state] if state is not None and is_live(state) else []
    if url is None:
        return candidates[0] if candidates else None
    candidates += [s for _, s in live_servers()]
    return next((s for s in candidates if same_endpoint(url, s["http_url"])), None)


def default_metrics_url(http_url: str) -> str:
    """Triton's layout: HTTP on port N, gRPC on N+1, metrics on N+2."""
    host, _, port = http_url.rpartition(":")
    return f"{host}:{int(port) + 2 if int(port) + 2 < 65536 else port}"


@click.command()
@click.argument("url", required=False)
@click.option("--repository", default=None, type=click.Path(),
              help="Find the server `tritonkit serve` recorded for this repository (default: model_repository's, "
                   "or the only one recorded).")
@click.option("--metrics-url", default=None,
              help="host:port of Triton's metrics; default: the recorded server's, else the HTTP port + 2 "
                   "(Triton's 8000/8001/8002 layout).")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(0.05, 3600),
              help="Seconds between the two scrapes a rate is taken from (and between refreshes).")
@click.option("--once", is_flag=True, help="Print one table and exit (the default off a terminal).")
@json_option("Print one JSON object and exit.")
def monitor(url: str | None, repository: str | None, metrics_url: str | None, interval: float, once: bool,
            as_json: bool) -> None:
    """Watch a running Triton at URL (HTTP host:port; default: the server `tritonkit serve` recorded).

    Per model and version: requests/s, failures/s, average queue and compute ms per request, p99 ms (when
    Triton exposes latency summaries), pending requests and state; for a local server, its and its Python
    stubs' CPU % and RSS. On a terminal the table refreshes in place until Ctrl-C.
    """
    from contract.errors import UsageError
    from toolkit.client.endpoint import check_url
    from toolkit.perf.monitor import Monitor, public, render
    from toolkit.serve.state import recorded_identity

    for given, what in ((url, "URL"), (metrics_url, "--metrics-url")):
        try:
            if given is not None:
                check_url(given)
        except UsageError:
            raise UsageError(f"{what} {given!r} is not host:port (e.g. 127.0.0.1:8000) with a port in "
                             "1..65535") from None
    state = _recorded(url, repository)
    url = url or (state["http_url"] if state else "127.0.0.1:8000")
    recorded_metrics = state.get("metrics_url") if state else None
    metrics_url = metrics_url or (recorded_metrics if isinstance(recorded_metrics, str) else default_metrics_url(url))
    mon = Monitor(url, metrics_url, headers=state["admin_headers"] if state else {},
                  server=recorded_identity(state) if state else None)
    mon.check()
    live = not (once or as_json) and sys.stdout.isatty()
    try:
        report = mon.sample(interval)
        if not live:
            click.echo(json.dumps(public(report)) if as_json else render(report))
            return
        while True:
            click.echo(CLEAR + render(report) + "\n\n(Ctrl-C to stop)", nl=False)
            time.sleep(interval)
            cur, procs = report["_next"]
            report = mon.sample(interval, prev=cur, prev_procs=procs)
    except KeyboardInterrupt:
        if live:
            click.echo("")
        sys.exit(0)
