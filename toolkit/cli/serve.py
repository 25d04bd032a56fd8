"""``tritonkit serve``: run Triton on a model repository (container or embedded), stop it, ask its status."""

from __future__ import annotations

import json
import sys

import click

from toolkit.cli.options import repository_option
from toolkit.serve.interrupts import StartInterrupted
from toolkit.serve.runner import RUNTIMES, ServeOptions, serve_detached, serve_foreground, server_status, stop_recorded
from toolkit.serve.state import find_run_dir, live_servers, load_state


@click.group(invoke_without_command=True)
@repository_option("-r", help="Model repository to serve: a folder, or object storage (s3://[host:port/]bucket/path, "
                   "gs://bucket/path, as://account/container/path; credentials from the environment only).")
@click.option("--runtime", type=click.Choice(RUNTIMES), default="auto", show_default=True,
              help="auto = NVIDIA container when Docker and a GPU are here, else the embedded server.")
@click.option("--image", default=None, help="Container image (docker runtime); default matches the plans.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address every endpoint binds to.")
@click.option("--http-port", default=8000, show_default=True, type=int)
@click.option("--grpc-port", default=8001, show_default=True, type=int)
@click.option("--metrics-port", default=8002, show_default=True, type=int)
@click.option("--model-control", type=click.Choice(["none", "explicit", "poll"]), default="none",
              show_default=True, help="poll reloads versions published into the repository.")
@click.option("--poll-secs", default=2, show_default=True, type=int, help="Repository poll interval (poll mode).")
@click.option("--detach", is_flag=True, help="Start, wait until ready, and return; stop with `serve stop`.")
@click.option("--timeout", default=None, type=float,
              help="Seconds to wait for readiness [default: 120; 300 for object storage].")
@click.option("--strict-config", is_flag=True,
              help="Turn Triton's config auto-complete off: a model whose config leaves inputs, outputs or "
                   "max_batch_size to Triton is refused.")
@click.pass_context
def serve(ctx: click.Context, repository: str, runtime: str, image: str | None, host: str, http_port: int,
          grpc_port: int, metrics_port: int, model_control: str, poll_secs: int, detach: bool,
          timeout: float | None, strict_config: bool) -> None:
    """Serve a model repository with Triton until Ctrl-C (or in the background with --detach)."""
    if ctx.invoked_subcommand is not None:
        return
    opts = ServeOptions(repository=repository, runtime=runtime, image=image, host=host, http_port=http_port,
                        grpc_port=grpc_port, metrics_port=metrics_port, model_control=model_control,
                        poll_secs=poll_secs, timeout=timeout, strict_config=strict_config)
    try:
        if detach:
            serve_detached(opts, echo=click.echo, warn=_warn)
        else:
            serve_foreground(opts, echo=click.echo, warn=_warn)
    except StartInterrupted as exc:
        click.echo(f"interrupted by {exc.name} during start-up; the server was stopped and nothing was recorded",
                   err=True)
        sys.exit(128 + exc.signum)


def _warn(line: str) -> None:
    click.echo(line, err=True)


RECORDED_HELP = ("Repository whose server to use (default: model_repository's, else the only server "
                 "recorded for you).")


@serve.command("stop")
@click.option("--repository", "-r", default=None, type=click.Path(), help=RECORDED_HELP)
@click.option("--timeout", default=30.0, show_default=True, type=float, help="Seconds before the server is killed.")
def stop(repository: str | None, timeout: float) -> None:
    """Stop the server `tritonkit serve` started on a repository (detached or in the foreground), from any folder."""
    run_dir = find_run_dir(repository)
    state = load_state(run_dir)
    outcome = stop_recorded(run_dir, timeout=timeout)
    if outcome == "stopped" and state:
        click.echo(f"stopped the server (pid {state['pid']}, http {state['http_url']})")
    elif outcome == "exited" and state:
        click.echo(f"the server recorded in {run_dir} (pid {state['pid']}) had already exited; "
                   "its state was removed")
    else:
        click.echo(f"no server is recorded for {_which(repository)} (in {run_dir}); nothing to stop")


def _which(repository: str | None) -> str:
    return f"repository {repository}" if repository else "model_repository, nor a single one for you"


@serve.command("status")
@click.option("--repository", "-r", default=None, type=click.Path(), help=RECORDED_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(repository: str | None, as_json: bool) -> None:
    """Say whether the server runs and is ready, with its repository, URLs and models (from any folder)."""
    run_dir = find_run_dir(repository)
    st = server_status(run_dir)
    if as_json:
        click.echo(json.dumps(st, indent=2, sort_keys=True))
        return
    if not st["running"]:
        click.echo(f"not running (no live server is recorded for {_which(repository)}; looked in {run_dir})")
        for _, other in live_servers() if repository is None else []:
            click.echo(f"  recorded: {other.get('repository')} (grpc {other['grpc_url']}); see it with "
                       f"`tritonkit serve status --repository {other.get('repository')}`")
        return
    click.echo(f"running (pid {st['pid']}, {st['runtime']}), {'ready' if st['ready'] else 'not ready'}")
    click.echo(f"  repository: {st.get('repository')}")
    click.echo(f"  http:    {st['http_url']}")
    click.echo(f"  grpc:    {st['grpc_url']}")
    click.echo(f"  metrics: {st['metrics_url']}")
    for m in st.get("models", []):
        reason = f" ({m['reason']})" if m.get("reason") else ""
        click.echo(f"  model {m['name']} v{m.get('version') or '-'}: {m.get('state') or '?'}{reason}")
