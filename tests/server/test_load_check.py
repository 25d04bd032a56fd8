"""Triton itself as the judge: ``load_verdicts`` and ``tritonkit repo validate --load`` on hand-built models.

One throw-away embedded Triton per repository; stand-ins serve runtimes this machine lacks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.repository.config_cases import PY_MODEL, write_model
from tests.server.helpers import TRITONKIT, one_error_line, run_tritonkit
from toolkit.serve.load_check import Verdict, load_groups, load_verdicts
from toolkit.serve.procs import identity_of, session_members
from toolkit.serve.standin import warmup_executions

pytestmark = pytest.mark.server

IO = ('input { name: "x" data_type: TYPE_FP32 dims: [ 4 ] }\n'
      'output { name: "y" data_type: TYPE_FP32 dims: [ 4 ] }\n')
WARMUP = ('model_warmup { name: "w" batch_size: 2 count: 2 inputs { key: "x" value { data_type: TYPE_FP32 '
          'dims: [ 4 ] zero_data: true } } }\n')
ENSEMBLE = ('platform: "ensemble"\nmax_batch_size: 8\n' + IO + 'ensemble_scheduling { step { model_name: "STEP" '
            'model_version: -1 input_map { key: "x" value: "x" } output_map { key: "y" value: "y" } } }\n')
PLAN = {"1/model.plan": b"not a plan: the stand-in never reads it"}


def _pids_running(program: bytes, wanted: bytes, *, exact: bool = False) -> list[int]:
    """Pids of live ``program`` processes with an argument equal to (``exact``) or containing ``wanted``."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if argv and argv[0].endswith(program) and any(a == wanted if exact else wanted in a for a in argv[1:]):
            pids.append(int(entry.name))
    return pids


def _stubs(repo: Path) -> list[int]:
    """Pids of python stubs running a model of ``repo``."""
    return _pids_running(b"triton_python_backend_stub", str(repo.resolve()).encode())


def _tritonservers(repo: Path) -> list[int]:
    """Pids of tritonservers serving ``repo`` (a path unique to the test)."""
    return _pids_running(b"tritonserver", f"--model-repository={repo.resolve()}".encode(), exact=True)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("judged") / "repo"
    write_model(root, "py_ok", 'backend: "python"\nmax_batch_size: 8\n' + IO, {})
    write_model(root, "py_no_backend_line", "max_batch_size: 8\n" + IO, {})
    write_model(root, "py_zero_dim", 'backend: "python"\nmax_batch_size: 8\n'
                'input { name: "x" data_type: TYPE_FP32 dims: [ 0 ] }\n', {})
    write_model(root, "py_other_name", 'name: "someone_else"\nbackend: "python"\n' + IO, {})
    write_model(root, "trt_plan", 'platform: "tensorrt_plan"\nmax_batch_size: 8\n' + IO, PLAN)
    write_model(root, "trt_warmup", 'platform: "tensorrt_plan"\nmax_batch_size: 8\n' + IO + WARMUP, PLAN)
    write_model(root, "trt_no_plan", 'platform: "tensorrt_plan"\nmax_batch_size: 8\n' + IO, {"1/notes.txt": "x"})
    write_model(root, "torch_shape_tensor", 'platform: "pytorch_libtorch"\nmax_batch_size: 8\n'
                'input { name: "x" data_type: TYPE_INT32 dims: [ 1 ] is_shape_tensor: true }\n'
                'output { name: "y" data_type: TYPE_FP32 dims: [ 4 ] }\n', {"1/model.pt": b"x"})
    write_model(root, "tf_graphdef", 'platform: "tensorflow_graphdef"\nmax_batch_size: 8\n' + IO,
                {"1/model.graphdef": b"x"})
    write_model(root, "ens_ok", ENSEMBLE.replace("STEP", "py_ok"), {})
    write_model(root, "ens_broken_step", ENSEMBLE.replace("STEP", "py_zero_dim"), {})
    (root / "notes.txt").write_text("files at the top level are not models")
    return root


@pytest.fixture(scope="module")
def verdicts(repo: Path) -> dict[str, Verdict]:
    t0 = time.monotonic()
    result = load_verdicts(repo, timeout_s=120)
    print(f"\nload_verdicts: {len(result)} models in {time.monotonic() - t0:.1f} s")
    return result


def test_every_model_folder_gets_a_verdict_and_the_server_is_gone(repo: Path, verdicts: dict[str, Verdict]) -> None:
    assert sorted(verdicts) == sorted(p.name for p in repo.iterdir() if p.is_dir())
    assert _tritonservers(repo) == []


def test_python_models_load_with_or_without_a_backend_line(verdicts: dict[str, Verdict]) -> None:
    for name in ("py_ok", "py_no_backend_line"):
        assert verdicts[name].loaded and verdicts[name].error == "" and not verdicts[name].standin, verdicts[name]


def test_a_refused_model_carries_tritons_own_reason(verdicts: dict[str, Verdict]) -> None:
    v = verdicts["py_zero_dim"]
    assert not v.loaded and "dimension must be integer >= 1" in v.error and "\n" not in v.error


def test_a_poll_failure_names_the_reason_from_tritons_log(verdicts: dict[str, Verdict]) -> None:
    v = verdicts["py_other_name"]
    assert not v.loaded and "directory name must equal model name" in v.error, v


def test_tensorrt_platform_resolves_to_the_stand_in_and_passes_warmup(verdicts: dict[str, Verdict]) -> None:
    for name in ("trt_plan", "trt_warmup", "tf_graphdef"):
        assert verdicts[name].loaded and verdicts[name].standin, verdicts[name]
    v = verdicts["trt_no_plan"]
    assert not v.loaded and "model.plan" in v.error and "stand-in" in v.error, v


def test_core_checks_still_judge_a_stand_in_model(verdicts: dict[str, Verdict]) -> None:
    v = verdicts["torch_shape_tensor"]  # only TensorRT models may have shape tensors: Triton's core says so
    assert not v.loaded and "shape tensor" in v.error, v


def test_an_ensemble_loads_after_its_step_and_fails_with_a_failed_step(verdicts: dict[str, Verdict]) -> None:
    assert verdicts["ens_ok"].loaded, verdicts["ens_ok"]
    v = verdicts["ens_broken_step"]
    assert not v.loaded and "py_zero_dim" in v.error, v


def test_an_ensemble_and_its_steps_load_in_one_group_steps_first(repo: Path) -> None:
    groups = load_groups(repo, sorted(p.name for p in repo.iterdir() if p.is_dir()))
    assert ["py_ok", "ens_ok"] in groups and ["py_zero_dim", "ens_broken_step"] in groups
    assert sum(len(g) for g in groups) == 11


def test_warmup_executions_counts_each_sample_at_least_once() -> None:
    config = {"model_warmup": [{"batch_size": 2, "count": 3}, {"batch_size": 1}, {"batch_size": 0, "count": 5}]}
    assert warmup_executions(config) == 4 and warmup_executions({}) == 0


def test_load_verdicts_refuses_a_file_in_one_line(tmp_path: Path) -> None:
    from contract.errors import ServerError

    (tmp_path / "file").write_text("x")
    with pytest.raises(ServerError, match="is a file, not a folder"):
        load_verdicts(tmp_path / "file")


# -- the command ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "repo"
    write_model(root, "good", 'backend: "python"\nmax_batch_size: 8\n' + IO, {"1/model.py": PY_MODEL})
    write_model(root, "zero_dim", 'backend: "python"\nmax_batch_size: 8\n'
                'input { name: "x" data_type: TYPE_FP32 dims: [ 0 ] }\n', {})
    # The static validator reads the TorchScript file and refuses it; the stand-in never reads it.
    write_model(root, "junk_torch", 'platform: "pytorch_libtorch"\nmax_batch_size: 8\n'
                'input { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] }\n'
                'output { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 4 ] }\n', {"1/model.pt": b"junk"})
    return root


def test_validate_load_prints_both_verdicts_and_calls_out_a_disagreement(small_repo: Path) -> None:
    r = run_tritonkit(["repo", "validate", "--load", str(small_repo)], small_repo.parent, timeout=300)
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines() if "  static: " in ln}
    assert "static: accepted" in lines["good"] and "triton: accepted" in lines["good"]
    assert "DISAGREE" not in lines["good"]
    assert "static: refused" in lines["zero_dim"] and "triton: refused" in lines["zero_dim"]
    assert "dimension must be integer >= 1" in lines["zero_dim"]
    assert "static: refused" in lines["junk_torch"] and "triton: accepted" in lines["junk_torch"]
    assert "DISAGREE" in lines["junk_torch"] and "stand-in" in lines["junk_torch"]
    assert "1 disagreement" in r.stdout.splitlines()[-1]
    assert _tritonservers(small_repo) == []


def test_validate_load_json_has_both_verdicts(small_repo: Path) -> None:
    r = run_tritonkit(["repo", "validate", "--load", "--json", str(small_repo)], small_repo.parent, timeout=300)
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    models = {m["model"]: m for m in doc["models"]}
    assert models["good"] == {**models["good"], "static": "accepted", "triton": "accepted", "agree": True}
    assert models["zero_dim"]["triton"] == "refused" and "dimension" in models["zero_dim"]["triton_error"]
    assert models["junk_torch"]["agree"] is False and models["junk_torch"]["standin"] is True
    assert any(p["model"] == "zero_dim" and p["severity"] == "error" for p in doc["problems"])


def test_validate_load_exits_zero_when_triton_and_the_validator_accept_everything(tmp_path: Path) -> None:
    write_model(tmp_path / "repo", "good", 'backend: "python"\nmax_batch_size: 8\n' + IO, {})
    r = run_tritonkit(["repo", "validate", "--load", "--strict-config", str(tmp_path / "repo")], tmp_path,
                      timeout=300)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "auto-complete off" in r.stderr and "1 loaded, 0 refused; 0 disagreements" in r.stdout


@pytest.mark.parametrize("what", ["missing", "file", "strict-without-load"])
def test_validate_load_refuses_bad_input_in_one_line(tmp_path: Path, what: str) -> None:
    target = tmp_path / "repo"
    if what == "file":
        target.write_text("x")
    elif what == "strict-without-load":
        target.mkdir()
    flag = "--strict-config" if what == "strict-without-load" else "--load"
    line = one_error_line(run_tritonkit(["repo", "validate", flag, str(target)], tmp_path))
    expected = {"missing": "no such repository", "file": "is a file", "strict-without-load": "add --load"}
    assert expected[what] in line


def test_ctrl_c_during_validate_load_stops_the_server_and_its_stubs(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_model(repo, "slow", 'backend: "python"\nmax_batch_size: 8\n' + IO,
                {"1/model.py": PY_MODEL.replace("        pass\n", "        import time\n        time.sleep(120)\n")})
    proc = subprocess.Popen([TRITONKIT, "repo", "validate", "--load", str(repo)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ours = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not ours:
            servers = _tritonservers(repo)
            members = [m for s in servers for m in session_members(s) if m.pid != s]
            if servers and members:  # the slow model's stub sleeps in initialize
                ours = [m for m in (identity_of(servers[0]), *members) if m is not None]
            time.sleep(0.1)
        assert ours, "the server or the slow model's stub never started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130 and "interrupted" in err, err
    survivors = [m for m in ours if identity_of(m.pid) == m]
    for m in survivors:  # never leave them behind, even when the test fails
        os.kill(m.pid, signal.SIGKILL)
    assert not survivors, f"left running: {survivors}"


CRASH_ONCE = """import os
import signal
from pathlib import Path


class TritonPythonModel:
    def initialize(self, args):
        marker = Path(args["model_repository"]) / "crashed-once"
        if not marker.exists():
            marker.write_text("")
            os.kill(os.getppid(), signal.SIGSEGV)  # the stub's parent is tritonserver

    def execute(self, requests):
        return []
"""


def test_a_crashed_server_is_replaced_and_the_models_it_left_are_judged_again(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_model(repo, "crash_once", 'backend: "python"\nmax_batch_size: 8\n' + IO, {"1/model.py": CRASH_ONCE})
    for i in range(3):
        write_model(repo, f"fine_{i}", 'backend: "python"\nmax_batch_size: 8\n' + IO, {})
    write_model(repo, "zero_dim", 'backend: "python"\nmax_batch_size: 8\n'
                'input { name: "x" data_type: TYPE_FP32 dims: [ 0 ] }\n', {})
    verdicts = load_verdicts(repo, timeout_s=60, workers=4)
    assert (repo / "crash_once" / "crashed-once").exists()  # the first server did crash
    assert {n: v.loaded for n, v in verdicts.items()} == {
        "crash_once": True, "fine_0": True, "fine_1": True, "fine_2": True, "zero_dim": False}
    assert "dimension must be integer >= 1" in verdicts["zero_dim"].error
    assert _tritonservers(repo) == []
    assert _stubs(repo) == []  # the crashed server's python stubs too
