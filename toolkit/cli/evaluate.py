"""``tritonkit evaluate``: the same metrics for a checkpoint or a model served by Triton.

Lives in ``toolkit`` (not ``trainers``) because ``--triton`` runs the served model through
:class:`toolkit.runners.triton.TritonRunner`, and ``trainers`` never imports ``toolkit``; the
metrics themselves come from ``trainers.evaluation`` (any numpy -> logits callable). Heavy modules
are imported inside the command so ``tritonkit --help`` stays fast.
"""

from __future__ import annotations

import json

import click

from contract.errors import UsageError
from toolkit.cli.options import json_option


@click.command()
@click.argument("checkpoint", type=click.Path(), required=False)
@click.option("--triton", "triton_url", default=None, metavar="URL",
              help="Evaluate the model served at this Triton host:port instead of a checkpoint "
                   "(default with --model: the server `tritonkit serve` recorded).")
@click.option("--model", "served_model", default=None, help="Served model name (a served model instead of a "
              "checkpoint).")
@click.option("--protocol", type=click.Choice(["grpc", "http"]), default="grpc", show_default=True,
              help="Protocol for --triton.")
@click.option("--data", default=None, help="digits or a folder (default: the checkpoint's data set).")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
@click.option("--baseline", type=click.Path(), default=None, help="Checkpoint to compare with (McNemar).")
@click.option("--plots", "plots_dir", type=click.Path(), default=None,
              help="Write confusion matrix, reliability diagram and per-class F1 PNGs here.")
@click.option("--bootstrap", "n_resamples", default=1000, show_default=True, type=int,
              help="Bootstrap resamples for the confidence intervals.")
@json_option("Print the report as JSON.")
def evaluate(checkpoint: str | None, triton_url: str | None, served_model: str | None, protocol: str,
             data: str | None, split: str, baseline: str | None, plots_dir: str | None,
             n_resamples: int, as_json: bool) -> None:
    """Evaluate CHECKPOINT (or a model served by Triton with --triton URL --model NAME):
    top-1/top-5, per-class P/R/F1, macro-F1, confusion matrix, ECE, latency, bootstrap CIs,
    and McNemar against --baseline."""
    from trainers.evaluation.checkpoints import evaluate_callable, evaluate_checkpoint, format_report

    if n_resamples < 10:
        raise UsageError(f"--bootstrap {n_resamples} is too few; use 10 or more (1000 is typical)")
    if served_model and not triton_url and not checkpoint:  # a served model: the recorded server by default
        from toolkit.serve.state import recorded_url

        triton_url = recorded_url(protocol)
        if triton_url is None:
            raise UsageError(f"no running server is recorded for --model {served_model}; start one with "
                             "`tritonkit serve --detach` or pass --triton HOST:PORT")
    if triton_url:
        if checkpoint or baseline or not served_model:
            raise UsageError("with --triton give --model NAME and no CHECKPOINT or --baseline")
        from toolkit.runners.triton import TritonRunner

        with TritonRunner(triton_url, served_model, protocol) as runner:
            if runner.spec is None:
                raise UsageError(f"{served_model} at {triton_url} does not carry a tritonkit model spec; "
                                 "evaluate its checkpoint instead, or republish it with 'tritonkit repo add'")
            report = evaluate_callable(runner.logits, runner.spec, data or "digits", split,
                                       where=f"{served_model}@{triton_url}", n_resamples=n_resamples,
                                       raw=runner.raw_input is not None)
    elif not checkpoint:
        raise UsageError("give a CHECKPOINT, or --triton URL --model NAME")
    else:
        report = evaluate_checkpoint(checkpoint, data=data, split=split, baseline=baseline,
                                     plots_dir=plots_dir, n_resamples=n_resamples)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
