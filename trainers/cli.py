"""``tritonkit train``: a thin click command over trainers.recipes (``evaluate`` lives in toolkit's CLI,
since it runs ONNX and served models). Heavy imports happen inside the command so ``--help`` stays fast."""

from __future__ import annotations

import sys
import warnings

import click

from contract.errors import UsageError
from trainers.run_folder import check_learning_rate, check_run_folder


@click.command()
@click.option("--model", default="smallcnn", show_default=True, help="Registry name (smallcnn, resnet_small, ...).")
@click.option("--data", default="digits", show_default=True, help="Data set: digits or imagefolder.")
@click.option("--data-dir", type=click.Path(), default=None, help="Folder with one sub-folder per class (imagefolder).")
@click.option("--epochs", default=15, show_default=True, type=int)
@click.option("--out", required=True, type=click.Path(), help="Run folder, e.g. runs/NAME.")
@click.option("--resume", default=None, help="'last' or a checkpoint path to continue from.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run in OUT whole (its model, metrics and "
              "checkpoints are removed first).")
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
def train(model: str, data: str, data_dir: str | None, epochs: int, out: str, resume: str | None, overwrite: bool,
          batch_size: int, lr: float, seed: int, image_size: int, val_every: int, precision: str,
          accumulate: int, patience: int, threads: int, quiet: bool) -> None:
    """Train a classifier; the best weights go to OUT/model.pt, ready for 'tritonkit export'.

    SIGINT/SIGTERM finish the current step and save OUT/checkpoints/last.pt; continue with
    --resume last (exit code 130 after an interruption).
    """
    for name, value in (("--epochs", epochs), ("--batch-size", batch_size), ("--val-every", val_every),
                        ("--accumulate", accumulate), ("--threads", threads)):
        if value < 1:
            raise UsageError(f"{name} {value} must be 1 or more")
    if data == "imagefolder" and not data_dir:
        raise UsageError("--data imagefolder needs --data-dir DIR (a folder with one sub-folder per class)")
    check_learning_rate(lr)
    replace = check_run_folder(out, resume=resume, overwrite=overwrite)  # before torch: nothing written yet
    from trainers.recipes import train_classifier  # heavy (torch): only when the command runs

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            outcome = train_classifier(
                out, model=model, data=data, epochs=epochs, data_dir=data_dir, resume=resume,
                batch_size=batch_size, lr=lr, seed=seed, image_size=image_size,
                val_every_n_epochs=val_every, precision=precision, accumulate_grad_batches=accumulate,
                patience=patience, num_threads=threads, quiet=quiet, overwrite=replace,
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
