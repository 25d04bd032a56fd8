"""Issue 15 (a newcomer's day) on `tritonkit predict`: MODEL is required and comes first, --digits and
--url are checked before anything connects, `make demo` asks for what exists, each row shows its own
request, a corrupt image in a folder is skipped with a warning, and the image ensemble works."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.client.test_predict_cli import TRITONKIT, one_error_line, run_cli
from toolkit.serve.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
HELD_OUT = 269  # the digits test split (trainers.data, seed 0)


def _nobody_url() -> str:
    """A URL where nothing listens: a check that passes it would fail on connecting instead."""
    return f"127.0.0.1:{free_port()}"


# -- item 6: MODEL required, --digits within what exists ----------------------------------------------

def test_predict_says_give_model_name_first_when_model_is_an_image_path(tmp_path: Path) -> None:
    line = one_error_line(run_cli("img.png", "--url", _nobody_url()))
    assert "'img.png' looks like a file" in line and "give the model name first" in line
    assert "tritonkit predict digits img.png" in line


def test_predict_asks_for_model_when_none_is_given() -> None:
    line = one_error_line(run_cli("--url", _nobody_url()))
    assert "give MODEL" in line


@pytest.mark.parametrize("asked", ["0", "-3", str(HELD_OUT + 1), "many"])
def test_predict_refuses_before_connecting_when_digits_is_not_between_one_and_what_exists(asked: str) -> None:
    line = one_error_line(run_cli("digits", "--digits", asked, "--url", _nobody_url()))
    assert f"from 1 to {HELD_OUT}" in line and "all" in line
    assert "no Triton server" not in line  # refused before any connection


@pytest.mark.parametrize("url", ["127.0.0.1", "localhost", "127.0.0.1:0", "127.0.0.1:70000"])
def test_predict_refuses_in_one_line_when_url_has_no_valid_port(url: str) -> None:
    line = one_error_line(run_cli("digits", "--url", url))
    assert f"{url!r}" in line and "host:port" in line


@pytest.mark.server
def test_make_demo_predict_step_classifies_every_held_out_digit_when_server_runs(triton_server) -> None:
    """The demo asks for the digits that exist (`--digits all`): its own predict line, run as make writes it."""
    dry = subprocess.run(["make", "-n", "-o", ".venv/.installed", "-o", "repo", "demo",
                          "URL=" + triton_server.grpc_url], cwd=ROOT, capture_output=True, text=True, timeout=60)
    line = next(s for s in dry.stdout.splitlines() if " predict " in s)
    argv = shlex.split(line.split("||")[0])
    assert argv[1] == "predict"
    proc = subprocess.run([TRITONKIT, *argv[1:], "--json"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["n"] == HELD_OUT and summary["accuracy"] > 0.9
