"""``tritonkit train`` and ``tritonkit evaluate``: thin click commands over trainers.recipes and
trainers.evaluation. Heavy imports happen inside the commands so ``tritonkit --help`` stays fast."""

from __future__ import annotations

import json
import sys
import warnings

import click

from contract.errors import UsageError


@click.command()
@click.option("--model", default="smallcnn", show_default=True, help="Registry name (smallcnn, resnet_small, ...).")
@click.option("--data", default="digits", show_default=True, help="Data set: digits or imagefolder.")
@click.option("--data-dir", type=click.Path(), default=None, help="Folder with one sub-folder per class (imagefolder).")
@click.option("--epochs", default=15, show_default=True, type=int)
@click.option("--out", required=True, type=click.Path(), help="Run folder, e.g. runs/NAME.")
@click.option("--resume", default=None, help="'last' or a checkpoint path to continue from.")
@click.option("--batch-size", default=32, show_default=True, type=int)
@click.option("--lr", default=3e-3, show_default=True, type=float, help="Peak learning rate (one-cycle).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--image-size", default=32, show_default=True, type=int, help="imagefolder crop size.")
@click.option("--val-every", default=1, show_default=True, type=int, help="Validate every N epochs.")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True)
@click.option("--accumulate", default=1, show_default=True, type=int, help="Batches per optimizer step.")
@click.option("--patience", default=10, show_default=True, type=int, help="Early-stopping patience.")
@click.option("--threads", default=1, show_default=True, type=int, help="torch threads (1 suits small models).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(model: str, data: str, data_dir: str | None, epochs: int, out: str, resume: str | None,
          batch_size: int, lr: float, seed: int, image_size: int, val_every: int, precision: str,
          accumulate: int, patience: int, threads: int, quiet: bool) -> None:
    """Train a classifier; the best weights go to OUT/model.pt, ready for 'tritonkit export'.

    SIGINT/SIGTERM finish the current step and save OUT/checkpoints/last.pt; continue with
    --resume last (exit code 130 after an interruption).
    """
    from trainers.recipes import train_classifier  # heavy (torch): only when the command runs

    for name, value in (("--epochs", epochs), ("--batch-size", batch_size), ("--val-every", val_every),
                        ("--accumulate", accumulate), ("--threads", threads)):
        if value < 1:
            raise UsageError(f"{name} {value} must be 1 or more")
    if data == "imagefolder" and not data_dir:
        raise UsageError("--data imagefolder needs --data-dir DIR (a folder with one sub-folder per class)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            outcome = train_classifier(
                out, model=model, data=data, epochs=epochs, data_dir=data_dir, resume=resume,
                batch_size=batch_size, lr=lr, seed=seed, image_size=image_size,
                val_every_n_epochs=val_every, precision=precision, accumulate_grad_batches=accumulate,
                patience=patience, num_threads=threads, quiet=quiet,
            )
        finally:
            for w in caught:  # one line each, e.g. how many corrupt images were skipped
                if "corrupt" in str(w.message):
                    click.echo(f"warning: {w.message}", err=True)
    if outcome.result.interrupted:
        click.echo(f"interrupted: {outcome.result.stop_reason}; run the same command with "
                   f"--resume last to continue", err=True)
        sys.exit(130)
    shown = ", ".join(f"{k} {v:.4f}" for k, v in outcome.metrics.items()
                      if k in ("val_accuracy", "test_accuracy"))
    click.echo(f"saved {outcome.model_path} ({shown}; {outcome.result.stop_reason}); "
               f"run folder {outcome.run_dir}")


@click.command()
@click.argument("checkpoint", type=click.Path(), required=False)
@click.option("--triton", "triton_url", default=None, metavar="URL",
              help="Evaluate the model served at this Triton host:port instead of a checkpoint.")
@click.option("--model", "served_model", default=None, help="Served model name (with --triton).")
@click.option("--protocol", type=click.Choice(["grpc", "http"]), default="grpc", show_default=True,
              help="Protocol for --triton.")
@click.option("--data", default=None, help="digits or a folder (default: the checkpoint's data set).")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
@click.option("--baseline", type=click.Path(), default=None, help="Checkpoint to compare with (McNemar).")
@click.option("--plots", "plots_dir", type=click.Path(), default=None,
              help="Write confusion matrix, reliability diagram and per-class F1 PNGs here.")
@click.option("--bootstrap", "n_resamples", default=1000, show_default=True, type=int,
              help="Bootstrap resamples for the confidence intervals.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def evaluate(checkpoint: str | None, triton_url: str | None, served_model: str | None, protocol: str,
             data: str | None, split: str, baseline: str | None, plots_dir: str | None,
             n_resamples: int, as_json: bool) -> None:
    """Evaluate CHECKPOINT (or a model served by Triton with --triton URL --model NAME):
    top-1/top-5, per-class P/R/F1, macro-F1, confusion matrix, ECE, latency, bootstrap CIs,
    and McNemar against --baseline."""
    from contract.errors import UsageError
    from trainers.evaluation.checkpoints import evaluate_callable, evaluate_checkpoint, format_report

    if n_resamples < 10:
        raise UsageError(f"--bootstrap {n_resamples} is too few; use 10 or more (1000 is typical)")
    if triton_url:
        if checkpoint or baseline or not served_model:
            raise UsageError("with --triton give --model NAME and no CHECKPOINT or --baseline")
        from toolkit.client.predictor import triton_logits_fn

        fn = triton_logits_fn(triton_url, served_model, protocol)
        try:
            spec = fn.predictor.spec  # type: ignore[attr-defined]
            if spec is None:
                raise UsageError(f"{served_model} at {triton_url} does not carry a tritonkit model spec; "
                                 "evaluate its checkpoint instead, or republish it with 'tritonkit repo add'")
            report = evaluate_callable(fn, spec, data or "digits", split, where=f"{served_model}@{triton_url}",
                                       n_resamples=n_resamples)
        finally:
            fn.close()  # type: ignore[attr-defined]
        click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
        return
    if not checkpoint:
        raise UsageError("give a CHECKPOINT, or --triton URL --model NAME")
    report = evaluate_checkpoint(checkpoint, data=data, split=split, baseline=baseline,
                                 plots_dir=plots_dir, n_resamples=n_resamples)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
