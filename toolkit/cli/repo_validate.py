"""``tritonkit repo validate DIR``: lint a Triton model repository offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from contract.errors import UsageError


def _check_release(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from toolkit.repository.releases import get_release

    try:
        return get_release(value).release
    except Exception as exc:  # noqa: BLE001 - UsageError: shown as click's one-line usage error
        raise click.BadParameter(str(exc)) from None


@click.command("validate")
@click.argument("directory", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the problems as a JSON list.")
@click.option("--target-triton", metavar="YY.MM", callback=_check_release,
              help="Triton container release the repository will run on (checks TensorRT plan versions).")
@click.option("--checksums/--no-checksums", default=True, show_default=True,
              help="Check each version's files against its manifest.json (where one exists).")
def validate(directory: str, as_json: bool, target_triton: str | None, checksums: bool) -> None:
    """Check a Triton model repository before a server loads it.

    Prints one line per problem (model/file: field: what is wrong; how to fix) and a summary.
    Versions published by tritonkit are checked against their manifest: changed or extra files,
    a recorded config other than the one the live config serves them with, unpublished versions.
    Exits 1 when any error is found, 0 when clean (warnings allowed).
    """
    from toolkit.repository.validate import summary, validate_repository

    folder = Path(directory)
    if (folder / "config.pbtxt").is_file() and not folder.is_symlink():
        raise UsageError(f"{folder}: is a model folder (it holds config.pbtxt); pass the repository (its parent): "
                         f"tritonkit repo validate {folder.parent}")
    problems = validate_repository(directory, target_triton=target_triton, checksums=checksums)
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in problems], indent=2))
        click.echo(summary(problems), err=True)
    else:
        for p in problems:
            click.echo(f"{p.severity}: {p.line()}")
        click.echo(summary(problems))
    sys.exit(1 if any(p.is_error for p in problems) else 0)
