"""``tritonkit pipeline``: the default build that ``make repo`` runs."""

from __future__ import annotations

import sys

import click

from toolkit.cli.options import repository_option
from toolkit.pipeline import DEFAULT_CHECKPOINT, DEFAULT_EPOCHS, DEFAULT_MODEL, DEFAULT_ONNX


@click.command()
@repository_option()
@click.option("--name", default=DEFAULT_MODEL, show_default=True)
@click.option("--checkpoint", default=str(DEFAULT_CHECKPOINT), show_default=True, type=click.Path())
@click.option("--onnx", "onnx_path", default=str(DEFAULT_ONNX), show_default=True, type=click.Path())
@click.option("--epochs", default=DEFAULT_EPOCHS, show_default=True)
@click.option("--validate/--no-validate", default=True, show_default=True, help="Lint the repository last.")
def pipeline(repository: str, name: str, checkpoint: str, onnx_path: str, epochs: int, validate: bool) -> None:
    """Train (if no checkpoint), export ONNX (if stale) and publish a new version (if changed)."""
    from toolkit.pipeline import build_repository

    result = build_repository(repository, name=name, checkpoint=checkpoint, onnx_path=onnx_path, epochs=epochs,
                              validate=validate, log=click.echo)
    if validate:
        sys.exit(1 if any(p.is_error for p in result.problems) else 0)
