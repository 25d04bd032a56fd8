"""The ``tritonkit`` command: a thin click group over the library.

Subcommands live in ``toolkit/cli/*.py`` and ``trainers/cli.py`` and are imported only when
used, so ``tritonkit --help`` is fast and works where TensorRT or a server is absent. A
:class:`~contract.errors.TritonkitError` becomes one line on stderr and its exit code.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from contract.errors import TritonkitError

# command name -> "module:attribute"
COMMANDS: dict[str, str] = {
    "train": "trainers.cli:train",
    "evaluate": "toolkit.cli.evaluate:evaluate",
    "export": "toolkit.cli.export:export",
    "parity": "toolkit.cli.export:parity",
    "quantize": "toolkit.cli.export:quantize",
    "build": "toolkit.cli.export:build",
    "repo": "toolkit.cli.repo:repo",
    "serve": "toolkit.cli.serve:serve",
    "predict": "toolkit.cli.predict:predict",
    "profile": "toolkit.cli.profile:profile",
    "profile-local": "toolkit.cli.profile:profile_local",
    "report": "toolkit.cli.profile:report",
    "tune": "toolkit.cli.profile:tune",
    "pipeline": "toolkit.cli.pipeline:pipeline",
    "monitor": "toolkit.cli.monitor:monitor",
    "image": "toolkit.cli.image:image",
    "deploy": "toolkit.cli.deploy:deploy",
}


def run_guarded(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``func``; a TritonkitError becomes one ``error:`` line and its exit code."""
    try:
        return func(*args, **kwargs)
    except TritonkitError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


class LazyGroup(click.Group):
    """Imports a subcommand's module on first use; turns TritonkitError into one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            reason = str(exc)

            @click.command(name=name, help=f"(unavailable: {reason})")
            def unavailable() -> None:
                raise TritonkitError(f"command {name!r} is not available in this install ({reason})")

            return unavailable

    def invoke(self, ctx: click.Context) -> Any:
        return run_guarded(super().invoke, ctx)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tritonkit")
def main() -> None:
    """tritonkit: train -> ONNX -> TensorRT -> Triton repository -> serve -> predict -> profile."""


if __name__ == "__main__":
    main()
