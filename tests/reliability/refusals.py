"""The one check every hostile-input test ends with: a refusal is one ``error:`` line, no traceback."""

from __future__ import annotations

import pytest


def one_line_refusal(output: str, exit_code: int, exception: BaseException | None = None,
                     seen: dict[str, int] | None = None) -> str:
    """The single ``error:`` line of a refused command; counts attacks and tracebacks in ``seen``."""
    if seen is not None:
        seen["tried"] += 1
    if "Traceback" in output or (exception is not None and not isinstance(exception, SystemExit)):
        if seen is not None:
            seen["tracebacks"] += 1
        pytest.fail(f"traceback or raw exception: {exception!r}\n{output}")
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert exit_code != 0, output
    assert lines and lines[-1].startswith("error: "), output
    assert len([line for line in lines if line.startswith("error: ")]) == 1, output
    return lines[-1]
