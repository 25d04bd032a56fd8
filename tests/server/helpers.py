"""Running the installed ``tritonkit`` command in the serve tests, and reading its one-line refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TRITONKIT = str(Path(sys.executable).parent / "tritonkit")


def run_tritonkit(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``tritonkit ARGS`` in ``cwd``, output captured (the timeout only guards the test)."""
    return subprocess.run([TRITONKIT, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line of a refused command; anything else (a traceback, two lines) fails."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]
