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


# -- item 15: a header row, each row's own request, a corrupt image in a folder skipped ---------------

@pytest.fixture(scope="module")
def png_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six held-out digits as PNG files, and a truncated PNG among them."""
    from tests.client.test_images import save_digit_png
    from trainers.data import load_digits_splits

    folder = tmp_path_factory.mktemp("newcomer_pngs")
    test = load_digits_splits()["test"]
    for i in range(6):
        save_digit_png(test.images[i], folder / f"d{i}.png")
    (folder / "broken.png").write_bytes((folder / "d0.png").read_bytes()[:40])
    return folder


@pytest.mark.server
def test_predict_prints_header_and_each_rows_own_request_latency_when_printing_a_table(triton_server) -> None:
    proc = run_cli("digits", "--digits", "6", "--batch-size", "4", "--concurrency", "1", "--url",
                   triton_server.grpc_url)
    assert proc.returncode == 0, proc.stderr
    header, *rows, summary = proc.stdout.splitlines()
    assert header.split()[:2] == ["input", "top"] and "request" in header and "its latency" in header
    assert header.rstrip().endswith("truth")
    assert [r.split(" ms")[0].rsplit(maxsplit=4)[1:4] for r in rows] == [["#1", "(4", "in)"]] * 4 + [
        ["#2", "(2", "in)"]] * 2
    assert "6 inputs in 2 request(s)" in summary and "--batch-size 1" in summary
    as_json = run_cli("digits", "--digits", "6", "--batch-size", "4", "--concurrency", "1", "--url",
                      triton_server.grpc_url, "--json")
    *records, _ = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["request"] for r in records] == [1, 1, 1, 1, 2, 2]
    assert len({r["latency_ms"] for r in records[:4]}) == 1 and len({r["latency_ms"] for r in records[4:]}) == 1


@pytest.mark.server
def test_predict_skips_corrupt_image_in_folder_with_warning_and_count_when_others_are_readable(
        triton_server, png_folder: Path) -> None:
    proc = run_cli("digits", str(png_folder), "--url", triton_server.grpc_url)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"warning: skipped {png_folder / 'broken.png'}: not an image in a format accepted here; give PNG, JPEG, "
        "BMP, GIF, TIFF, WebP or PGM/PPM files"]
    assert proc.stdout.splitlines()[-1].endswith("skipped 1 unreadable image(s)")
    summary = json.loads(run_cli("digits", str(png_folder), "--url", triton_server.grpc_url,
                                 "--json").stdout.splitlines()[-1])
    assert summary["n"] == 6 and [s["file"] for s in summary["skipped"]] == [str(png_folder / "broken.png")]


def test_predict_refuses_in_one_line_when_corrupt_image_is_named_on_command_line(png_folder: Path) -> None:
    line = one_error_line(run_cli("digits", str(png_folder / "broken.png"), "--url", _nobody_url()))
    assert str(png_folder / "broken.png") in line


# -- item 2: the image ensemble (digits_image) through predict ----------------------------------------

@pytest.mark.server
@pytest.mark.parametrize("given", ["image files", "held-out digits", "held-out digits, spec from --repository"])
def test_predict_on_image_ensemble_gives_tensor_models_answers_when_sent_bytes_or_raw_uint8(
        triton_server, png_folder: Path, given: str) -> None:
    """Files go as encoded bytes (IMAGE_BYTES), held-out digits as raw UINT8 pixels (IMAGE), also when the
    spec is read from the local repository; either way the ensemble's answer is the tensor model's on the
    same inputs, preprocessed here."""
    what = [str(png_folder)] if given == "image files" else ["--digits", "20"]
    if given.endswith("--repository"):
        what += ["--repository", str(triton_server.repository)]
    answers = {}
    for model in ("digits", "digits_image"):
        proc = run_cli(model, *what, "--url", triton_server.grpc_url, "--json")
        assert proc.returncode == 0, proc.stderr
        answers[model] = [(r["label"], r["topk"][1]["label"], round(r["score"], 3))
                          for r in map(json.loads, proc.stdout.splitlines()[:-1])]
    assert answers["digits_image"] == answers["digits"] and len(answers["digits"]) == (6 if what[0] != "--digits"
                                                                                      else 20)
