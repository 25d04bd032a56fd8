"""``tritonkit repo validate DIR``: lint a Triton model repository offline; with ``--load``, ask Triton too."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from contract.errors import UsageError

if TYPE_CHECKING:
    from toolkit.repository.validate.problem import Problem
    from toolkit.serve.load_check import Verdict


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
@click.option("--json", "as_json", is_flag=True,
              help="Print the problems as a JSON list (with --load: an object of problems and models).")
@click.option("--target-triton", metavar="YY.MM", callback=_check_release,
              help="Triton container release the repository will run on (checks TensorRT plan versions).")
@click.option("--checksums/--no-checksums", default=True, show_default=True,
              help="Check each version's files against its manifest.json (where one exists).")
@click.option("--load", "load", is_flag=True,
              help="Then load every model in a throw-away embedded Triton (Python models' code runs) and show "
                   "its verdict beside the static one.")
@click.option("--strict-config", is_flag=True,
              help="With --load: judge with config auto-completion off, as `tritonkit serve --strict-config` "
                   "runs (default: on, Triton's default).")
def validate(directory: str, as_json: bool, target_triton: str | None, checksums: bool, load: bool,
             strict_config: bool) -> None:
    """Check a Triton model repository before a server loads it.

    Prints one line per problem (model/file: field: what is wrong; how to fix) and a summary.
    Versions published by tritonkit are checked against their manifest: changed or extra files,
    a recorded config other than the one the live config serves them with, unpublished versions.
    Exits 1 when any error is found, 0 when clean (warnings allowed).

    With --load, Triton itself judges too: a private server (loopback only, stopped at the end) loads
    each model (running the repository's Python models, as serving would) and its verdict is printed
    beside the static one; the exit is 1 when Triton refuses a model or the two disagree. Runtimes it
    lacks (TensorRT, PyTorch, TensorFlow) are stand-ins that accept any model whose file exists, so
    Triton's config checks still run.
    """
    from toolkit.repository.remote import is_remote

    if is_remote(directory):  # the same rules on a copy of every object (Triton's --load too)
        from toolkit.repository.remote_publish import mirror
        from toolkit.repository.s3 import require_s3

        require_s3(directory)
        if strict_config and not load:
            raise UsageError("--strict-config only changes how --load judges; add --load")
        with mirror(directory) as copy:
            code = _validate(copy, str(copy), as_json, target_triton, checksums, load, strict_config)
        sys.exit(code)
    sys.exit(_validate(Path(directory), directory, as_json, target_triton, checksums, load, strict_config))


def _validate(folder: Path, directory: str, as_json: bool, target_triton: str | None, checksums: bool, load: bool,
              strict_config: bool) -> int:
    """Print the problems (and Triton's verdicts); the exit code. Why it returns: a bucket is validated on a
    temporary copy that must be removed before exiting."""
    from toolkit.repository.validate import summary, validate_repository

    if (folder / "config.pbtxt").is_file() and not folder.is_symlink():
        raise UsageError(f"{folder}: is a model folder (it holds config.pbtxt); pass the repository (its parent): "
                         f"tritonkit repo validate {folder.parent}")
    if strict_config and not load:
        raise UsageError("--strict-config only changes how --load judges; add --load")
    if load:
        _check_folder(folder)
    problems = validate_repository(directory, target_triton=target_triton, checksums=checksums)
    if load:
        return _validate_and_load(folder, problems, as_json, strict_config)
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in problems], indent=2))
        click.echo(summary(problems), err=True)
    else:
        for p in problems:
            click.echo(f"{p.severity}: {p.line()}")
        click.echo(summary(problems))
    return 1 if any(p.is_error for p in problems) else 0


def _check_folder(folder: Path) -> None:
    """One line for a repository Triton could not be started on."""
    import os
    import stat

    try:
        mode = folder.stat().st_mode
        if stat.S_ISDIR(mode):
            os.listdir(folder)
            return
    except FileNotFoundError:
        raise UsageError(f"{folder}: no such repository; pass the folder that holds the model folders") from None
    except OSError as exc:
        raise UsageError(f"{folder}: cannot be read ({exc.strerror}); make the repository readable") from None
    raise UsageError(f"{folder}: is a file, not a repository folder; pass the folder that holds the model folders")


def _validate_and_load(folder: Path, problems: list[Problem], as_json: bool, strict_config: bool) -> int:
    """Static problems, then Triton's verdict per model beside the static one; the exit code."""
    from toolkit.repository.validate import summary
    from toolkit.repository.validate.problem import clean
    from toolkit.serve.load_check import compare, load_verdicts, model_names

    count = len(model_names(folder))
    mode = "off" if strict_config else "on"
    click.echo(f"loading {count} model{'s' * (count != 1)} in a throw-away Triton (config auto-complete {mode})...",
               err=True)
    done: list[str] = []

    def progress(_verdict: Verdict) -> None:  # a counter on a terminal only: logs and pipes get the result alone
        done.append("")
        click.echo(f"\r{len(done)}/{count} judged", err=True, nl=len(done) == count)

    tty = sys.stderr.isatty()
    rows = compare(problems, load_verdicts(folder, strict_config=strict_config, progress=progress if tty else None))
    refused = [r for r in rows if not r.triton.loaded]
    disagree = [r for r in rows if not r.agree]
    verdict = (f"Triton: {len(rows) - len(refused)} loaded, {len(refused)} refused; "
               f"{len(disagree)} disagreement{'s' * (len(disagree) != 1)} with the static verdict")
    if as_json:
        click.echo(json.dumps({"problems": [p.to_dict() for p in problems], "models": [r.to_dict() for r in rows]},
                              indent=2))
        click.echo(f"{summary(problems)}; {verdict}", err=True)
    else:
        for p in problems:
            click.echo(f"{p.severity}: {p.line()}")
        click.echo(summary(problems))
        width = max((len(r.model) for r in rows), default=0)
        for r in rows:
            flag = "" if r.agree else "  DISAGREE"
            why = f"  {clean(r.triton.error)}" if r.triton.error else ""
            if r.triton.standin:
                why = "  (a stand-in backend: the model file is not read)"
            click.echo(f"{clean(r.model):<{width}}  static: {r.static:<8}  triton: {r.triton_verdict:<8}{flag}  "
                       f"({r.triton.seconds:.1f} s){why}")
        click.echo(verdict)
    failed = any(p.is_error for p in problems) or refused or disagree
    return 1 if failed else 0
