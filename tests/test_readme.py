"""The README as a newcomer runs it: every code block and every command it shows, taken from README.md
at test time (never a copy kept here), so the README cannot drift from what the tools accept.

* ``python`` blocks run as written, in a fresh folder, in a subprocess (only the project on the path).
* ``bash`` blocks and the ``make`` targets: ``make help`` runs, and ``make -n TARGET`` checks that each
  target exists and its recipe expands. The targets themselves run elsewhere: ``make serve``,
  ``make predict PORT=N`` and ``make bench`` in ``test_make_targets.py``; ``make repo``'s steps in
  ``repository/test_pipeline_steps.py``; ``make test`` is this suite.
* ``tritonkit`` synopses in the tables: each is a command line with placeholders, so the command path
  must exist (``tritonkit ... --help`` exits 0) and every option it names must be one that command
  accepts; ``tritonkit --help`` runs as written.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TRITONKIT = str(Path(sys.executable).parent / "tritonkit")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(language: str) -> list[str]:
    """The README's fenced blocks of ``language``, as written."""
    return [body for lang, body in FENCE.findall(README.read_text()) if lang == language]


def inline_commands(program: str) -> list[str]:
    """Every inline ``program ...`` command in the README (tables and prose), as written."""
    text = FENCE.sub("", README.read_text())
    return sorted({c.replace("\\|", "|") for c in re.findall(rf"`({program}(?: [^`]*)?)`", text)})


def synopsis_parts(command: str) -> tuple[list[str], list[str]]:
    """``tritonkit repo add NAME --onnx F [--max-batch 32]`` -> (["repo", "add"], ["--onnx", "--max-batch"]):
    the leading lower-case words (the command path) and every long option named."""
    words = command.split()[1:]
    path = []
    for w in words:
        if not re.fullmatch(r"[a-z][a-z0-9-]*", w):
            break
        path.append(w)
    return path, sorted(set(re.findall(r"--[a-z][a-z0-9-]*", command)))


def command_help(path: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TRITONKIT, *path, "--help"], capture_output=True, text=True, timeout=120)


def test_readme_python_blocks_run_when_copied_into_an_empty_folder(tmp_path: Path) -> None:
    found = blocks("python")
    assert found, "README.md has no python block"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    for i, code in enumerate(found):
        folder = tmp_path / f"block{i}"
        folder.mkdir()
        r = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, env=env,
                           timeout=900)
        assert r.returncode == 0, f"README python block {i} failed:\n{code}\n{r.stderr[-3000:]}"


def test_readme_make_targets_exist_when_dry_run() -> None:
    commands = inline_commands("make") + [line.split("#")[0].strip() for b in blocks("bash")
                                          for line in b.splitlines() if line.startswith("make ")]
    targets = sorted({c.split()[1] for c in commands})
    assert {"repo", "test", "serve", "bench", "help"} <= set(targets)
    ran = subprocess.run(["make", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    for target in targets:  # costly or long-running: the recipe must expand, nothing runs
        dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0, f"make {target}: {dry.stderr}"
        assert target in ran.stdout, f"`make help` does not list {target}"


def test_readme_tritonkit_commands_name_only_options_the_commands_accept_when_parsed() -> None:
    commands = inline_commands("tritonkit")
    assert any(c.startswith("tritonkit repo add") for c in commands)
    top = subprocess.run([TRITONKIT, "--help"], capture_output=True, text=True, timeout=120)
    assert top.returncode == 0 and "Usage:" in top.stdout
    for command in commands:
        path, options = synopsis_parts(command)
        shown = command_help(path)
        assert shown.returncode == 0, f"{command!r}: `tritonkit {' '.join(path)} --help` failed: {shown.stderr}"
        unknown = [o for o in options if not re.search(rf"{re.escape(o)}\b", shown.stdout)]
        assert not unknown, f"README: {command!r} names {unknown}, which `tritonkit {' '.join(path)}` does not accept"


@pytest.mark.parametrize("cell", ["repo list [--json]", "repo rollback NAME --to N", "repo prune NAME --keep N",
                                  "repo validate DIR [--json] [--target-triton 24.09] [--load]",
                                  "serve status [--repository DIR]", "serve stop [--repository DIR]",
                                  "profile-local FILE", "report DIR [--compare OLD]", "tune NAME [--apply]"])
def test_readme_table_cells_parse_when_given_after_tritonkit(cell: str) -> None:
    text = README.read_text()
    assert f"`{cell}`" in text, f"README no longer shows `{cell}`; update this list to what it shows"
    path, options = synopsis_parts(f"tritonkit {cell}")
    shown = command_help(path)
    assert shown.returncode == 0, shown.stderr
    assert all(o in shown.stdout for o in options), (cell, options)
