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


def report_counts(request: pytest.FixtureRequest, what: str, counts: dict[str, int]) -> None:
    """Print a suite's attack counts in pytest's own output (a report, not a test: it asserts nothing)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    line = f"{what}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
    if reporter is not None:
        reporter.write_line(line)
