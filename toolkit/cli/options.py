"""Options and parameter types shared by the ``tritonkit`` commands.

One definition each, so every command spells ``--repository`` the same way, takes its default
from the library (never a copied literal) and reports a bad comma-separated list in one line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from toolkit.repository.options import DEFAULT_REPOSITORY

F = TypeVar("F", bound=Callable[..., Any])


class IntList(click.ParamType):
    """Comma-separated integers (``1,2,4,8``), each at least ``minimum``; one error line otherwise.

    ``allow_empty`` accepts an empty string as ``[]`` (an option whose empty value means "none").
    """

    name = "INTS"

    def __init__(self, minimum: int | None = None, *, allow_empty: bool = False) -> None:
        self.minimum = minimum
        self.allow_empty = allow_empty

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[int]:
        if isinstance(value, (list, tuple)):
            return [int(v) for v in value]
        return parse_int_list(str(value), minimum=self.minimum, allow_empty=self.allow_empty,
                              fail=lambda msg: self.fail(msg, param, ctx))


def parse_int_list(text: str, *, minimum: int | None = None, allow_empty: bool = False,
                   fail: Callable[[str], Any] | None = None) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]``; ``fail(message)`` (default: click.BadParameter) on a bad list."""

    def bad(message: str) -> Any:
        if fail is not None:
            fail(message)
        raise click.BadParameter(message)

    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        return bad(f"{text!r}: give integers separated by commas, e.g. 1,2,4,8")
    if not out and not allow_empty:
        return bad(f"{text!r}: give at least one integer, e.g. 1,2,4,8")
    low = [v for v in out if minimum is not None and v < minimum]
    if low:
        return bad(f"{text!r}: {low[0]} is below {minimum}; give integers >= {minimum}")
    return out


def int_list_text(values: Iterable[int]) -> str:
    """A library default tuple as the comma-separated text the option shows (``(1, 8)`` -> ``1,8``)."""
    return ",".join(str(v) for v in values)


def repository_option(*flags: str, help: str = "Model repository folder.") -> Callable[[F], F]:  # noqa: A002
    """``--repository`` (plus any extra ``flags`` such as ``-r``), defaulting to the library's folder."""
    return click.option("--repository", *flags, default=DEFAULT_REPOSITORY, show_default=True,
                        type=click.Path(), help=help)


def shape_option(help: str = "Shape (without batch) NAME:D1,D2 of an input with variable dims.") -> Callable[[F], F]:  # noqa: A002
    """``--shape NAME:D1,D2`` (repeatable)."""
    return click.option("--shape", "shape", multiple=True, metavar="NAME:D1,D2", help=help)


def json_option(help: str = "Print the result as JSON.") -> Callable[[F], F]:  # noqa: A002
    """``--json`` (stored as ``as_json``)."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def force_option(help: str = "Publish a new version even when the newest one already holds the same files "  # noqa: A002
                 "and config.") -> Callable[[F], F]:
    """``--force``: ``repo add`` and ``rollback`` otherwise add nothing when nothing changed."""
    return click.option("--force", is_flag=True, help=help)
