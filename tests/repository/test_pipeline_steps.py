"""The shared export+publish path (toolkit.pipeline), the storage interface and the CLI's shared options."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from toolkit.cli.options import IntList, repository_option
from toolkit.perf.analyzer import DEFAULT_CONCURRENCY, run_perf_analyzer
from toolkit.pipeline import Context, PublishStep, Step, run_steps
from toolkit.repository.options import DEFAULT_REPOSITORY, ServingOptions
from toolkit.repository.storage import LocalStorage, RepositoryStorage

TRITONKIT = str(Path(sys.executable).parent / "tritonkit")


class Recorder(Step):
    def __init__(self, name: str, skip: str | None, calls: list[str]) -> None:
        self.name, self.skip, self.calls = name, skip, calls

    def pre_run(self, ctx: Context) -> str | None:
        return self.skip

    def run(self, ctx: Context) -> None:
        self.calls.append(f"run {self.name}")

    def post_run(self, ctx: Context) -> None:
        self.calls.append(f"post {self.name}")


def test_run_steps_skips_a_step_when_pre_run_gives_a_reason_and_still_runs_post_run(tmp_path: Path) -> None:
    calls: list[str] = []
    logged: list[str] = []
    ctx = Context(repository=tmp_path, name="m", log=logged.append)
    run_steps([Recorder("a", None, calls), Recorder("b", "b is current", calls)], ctx)
    assert calls == ["run a", "post a", "post b"]
    assert ctx.skipped == ["b"] and list(ctx.steps) == ["a"] and logged == ["b is current"]


def test_publish_step_adds_nothing_when_rerun_unchanged(tmp_path: Path, digits_onnx: Path) -> None:
    def publish() -> list[tuple[int, bool]]:
        ctx = Context(repository=tmp_path / "repo", name="m", onnx=digits_onnx, options=ServingOptions(warmup=False),
                      log=lambda _m: None)
        run_steps([PublishStep(skip_if_unchanged=True)], ctx)
        return [(p.version, p.created) for p in ctx.published]

    assert publish() == [(1, True)]
    assert publish() == [(1, False)]


def test_local_storage_lists_published_models_and_versions(tmp_path: Path, digits_onnx: Path) -> None:
    repo = tmp_path / "repo"
    ctx = Context(repository=repo, name="m", onnx=digits_onnx, options=ServingOptions(warmup=False))
    run_steps([PublishStep(label="")], ctx)
    storage: RepositoryStorage = LocalStorage(repo)
    assert storage.model_names() == ["m"] and storage.version_numbers("m") == [1]
    assert "version_policy" in storage.read_text("m/config.pbtxt", "config", 1 << 20)


def test_int_list_reports_a_malformed_list_in_one_line() -> None:
    with pytest.raises(click.BadParameter, match="integers separated by commas"):
        IntList(1).convert("1,x", None, None)
    with pytest.raises(click.BadParameter, match="below 1"):
        IntList(1).convert("0,2", None, None)
    assert IntList(1).convert("1, 2,4", None, None) == [1, 2, 4]


def test_repo_add_refuses_a_malformed_preferred_batch_with_one_usage_line(tmp_path: Path, digits_onnx: Path) -> None:
    proc = subprocess.run([TRITONKIT, "repo", "add", "m", "--repository", str(tmp_path / "r"), "--onnx",
                           str(digits_onnx), "--preferred-batch", "8,x"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "integers separated by commas" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r").exists()


def test_cli_defaults_are_the_library_constants() -> None:
    assert inspect.signature(run_perf_analyzer).parameters["concurrency"].default == DEFAULT_CONCURRENCY

    @click.command()
    @repository_option()
    def cmd(repository: str) -> None:
        click.echo(repository)

    assert CliRunner().invoke(cmd, []).output.strip() == DEFAULT_REPOSITORY
    help_text = subprocess.run([TRITONKIT, "profile", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert ",".join(map(str, DEFAULT_CONCURRENCY)) in help_text


def test_pipeline_prints_test_accuracy_when_it_trains(tmp_path: Path) -> None:
    """``make repo`` runs ``tritonkit pipeline``: after training it says what the model achieved."""
    r = subprocess.run([TRITONKIT, "pipeline", "--repository", str(tmp_path / "repo"), "--checkpoint",
                        str(tmp_path / "c.pt"), "--onnx", str(tmp_path / "m.onnx"), "--epochs", "1", "--no-validate"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if "test accuracy" in x)
    assert re.fullmatch(r"\[1/3\] test accuracy 0\.\d{4}, val accuracy [01]\.\d{4}, trained in \d+\.\d s", line), line
