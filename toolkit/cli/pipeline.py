"""``tritonkit pipeline``: the default build that ``make repo`` runs."""

from __future__ import annotations

import click


@click.command()
@click.option("--repository", default="model_repository", show_default=True, type=click.Path())
@click.option("--name", default="digits", show_default=True)
@click.option("--checkpoint", default="checkpoints/digits_smallcnn.pt", show_default=True, type=click.Path())
@click.option("--onnx", "onnx_path", default="build/digits_smallcnn.onnx", show_default=True, type=click.Path())
@click.option("--epochs", default=15, show_default=True)
@click.option("--validate/--no-validate", default=True, show_default=True, help="Lint the repository last.")
@click.pass_context
def pipeline(
    ctx: click.Context, repository: str, name: str, checkpoint: str, onnx_path: str, epochs: int, validate: bool
) -> None:
    """Train (if no checkpoint), export ONNX (if stale) and publish a new version (if changed)."""
    from toolkit.pipeline import build_repository

    build_repository(repository, name=name, checkpoint=checkpoint, onnx_path=onnx_path, epochs=epochs)
    if validate:
        from toolkit.cli.repo_validate import validate as validate_cmd

        click.echo(f"linting {repository}")
        ctx.invoke(validate_cmd, directory=repository, as_json=False, target_triton=None)
