"""The repository linter: a clean repository passes; each way of breaking it is found, with its message."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from tritonclient.grpc import model_config_pb2 as mc

import toolkit.repository.validate.tensors as tensors
from tests.toolkit.validate_fixtures import (
    add_onnx_model,
    build_clean_repository,
    export_tiny_onnx,
    plan_record,
    read_config,
    write_config,
)
from toolkit.repository.validate import NOTE, Problem, validate_model, validate_repository

CRASH = "the validator failed"


@pytest.fixture(autouse=True)
def machine_with_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verdicts here must not depend on the machine: the fixture repository's KIND_GPU model gets a
    note only where no GPU is visible (tested on its own below)."""
    monkeypatch.setattr(tensors, "gpu_visible", lambda: True)


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_onnx(tmp_path_factory.mktemp("validate_onnx") / "tiny.onnx")


@pytest.fixture(scope="session")
def template_repo(tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_clean_repository(tmp_path_factory.mktemp("validate_template") / "repo", tiny_onnx)


@pytest.fixture
def repo(template_repo: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "repo"
    shutil.copytree(template_repo, dst, symlinks=True)
    return dst


def edit(repo: Path, model: str, fn: Callable[[mc.ModelConfig], object]) -> None:
    cfg = read_config(repo / model)
    fn(cfg)
    write_config(repo / model, cfg)


def replace_text(repo: Path, model: str, old: str, new: str) -> None:
    p = repo / model / "config.pbtxt"
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new, 1))


def set_input_dims(dims: list[int]) -> Callable[[mc.ModelConfig], None]:
    def fn(cfg: mc.ModelConfig) -> None:
        del cfg.input[0].dims[:]
        cfg.input[0].dims.extend(dims)
        del cfg.model_warmup[:]  # keep the finding about the dims alone

    return fn


def outside(repo: Path) -> Path:
    """A folder next to the repository, i.e. outside every model folder."""
    d = repo.parent / "outside"
    d.mkdir(exist_ok=True)
    return d


# --- one builder per broken repository: (id, builder, expected substring, severity) -----------------

def b_missing_config(r: Path) -> None:
    (r / "digits" / "config.pbtxt").unlink()


def b_unparsable_config(r: Path) -> None:
    (r / "digits" / "config.pbtxt").write_text('name: "digits"\ninput {\n  name: "input"\n')


def b_unknown_field(r: Path) -> None:
    p = r / "digits" / "config.pbtxt"
    p.write_text(p.read_text() + "max_batch: 4\n")


def b_unknown_platform(r: Path) -> None:
    edit(r, "digits", lambda c: setattr(c, "platform", "onnxruntime_onx"))


def b_unknown_backend(r: Path) -> None:
    edit(r, "preprocess", lambda c: setattr(c, "backend", "pythn"))


def b_platform_backend_conflict(r: Path) -> None:
    edit(r, "digits", lambda c: setattr(c, "backend", "tensorrt"))


def b_no_version_folder(r: Path) -> None:
    shutil.rmtree(r / "digits" / "1")


def b_non_numeric_version(r: Path) -> None:
    (r / "digits" / "1").rename(r / "digits" / "v1")


def b_zero_prefixed_version(r: Path) -> None:
    (r / "digits" / "1").rename(r / "digits" / "01")


def b_empty_version_folder(r: Path) -> None:
    (r / "digits" / "1" / "model.onnx").unlink()


def b_wrong_model_file_name(r: Path) -> None:
    (r / "digits" / "1" / "model.onnx").rename(r / "digits" / "1" / "net.onnx")


def b_wrong_dtype_name(r: Path) -> None:
    replace_text(r, "digits", "TYPE_FP32", "TYPE_FLOAT32")


def b_dtype_differs_from_model(r: Path) -> None:
    def fn(c: mc.ModelConfig) -> None:
        c.output[0].data_type = mc.TYPE_FP16

    edit(r, "digits", fn)


def b_dims_differ_from_model(r: Path) -> None:
    edit(r, "digits", set_input_dims([1, 8, 9]))


def b_batch_dim_in_dims(r: Path) -> None:
    edit(r, "digits", set_input_dims([-1, 1, 8, 8]))


def b_zero_dim(r: Path) -> None:
    edit(r, "digits", set_input_dims([1, 0, 8]))


def b_negative_dim(r: Path) -> None:
    edit(r, "digits", set_input_dims([1, -4, 8]))


def b_negative_max_batch(r: Path) -> None:
    edit(r, "digits", lambda c: setattr(c, "max_batch_size", -1))


def b_preferred_above_max(r: Path) -> None:
    edit(r, "digits", lambda c: c.dynamic_batching.preferred_batch_size.extend([8, 64]))


def b_reshape_count_mismatch(r: Path) -> None:
    edit(r, "digits", lambda c: c.input[0].reshape.shape.extend([1, 8, 9]))


def b_labels_missing(r: Path) -> None:
    (r / "digits" / "labels.txt").unlink()


def b_labels_wrong_count(r: Path) -> None:
    (r / "digits" / "labels.txt").write_text("\n".join(str(i) for i in range(9)) + "\n")


def b_ensemble_missing_model(r: Path) -> None:
    edit(r, "pipeline", lambda c: setattr(c.ensemble_scheduling.step[0], "model_name", "preprocessing"))


def b_ensemble_cycle(r: Path) -> None:
    def fn(c: mc.ModelConfig) -> None:
        s0, s1 = c.ensemble_scheduling.step
        s0.input_map["image"] = "logits_again"  # step 0 now waits for what step 1 makes from step 0
        s1.output_map["logits"] = "logits_again"
        s2 = c.ensemble_scheduling.step.add(model_name="digits", model_version=-1)
        s2.input_map["input"] = "pixels"
        s2.output_map["logits"] = "logits"

    edit(r, "pipeline", fn)


def b_ensemble_calls_itself(r: Path) -> None:
    edit(r, "pipeline", lambda c: setattr(c.ensemble_scheduling.step[1], "model_name", "pipeline"))


def b_ensemble_type_mismatch(r: Path) -> None:
    def fn(c: mc.ModelConfig) -> None:
        c.output[0].data_type = mc.TYPE_FP16

    edit(r, "preprocess", fn)


def b_ensemble_unknown_tensor_key(r: Path) -> None:
    def fn(c: mc.ModelConfig) -> None:
        del c.ensemble_scheduling.step[1].input_map["input"]
        c.ensemble_scheduling.step[1].input_map["pixels_in"] = "pixels"

    edit(r, "pipeline", fn)


def b_ensemble_batch_too_large(r: Path) -> None:
    edit(r, "pipeline", lambda c: setattr(c, "max_batch_size", 64))


def b_ensemble_instance_group(r: Path) -> None:
    edit(r, "pipeline", lambda c: c.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=2))


def b_ensemble_warmup(r: Path) -> None:
    def fn(c: mc.ModelConfig) -> None:
        w = c.model_warmup.add(name="w", batch_size=1)
        w.inputs["image"].data_type = mc.TYPE_UINT8
        w.inputs["image"].dims.extend([8, 8])
        w.inputs["image"].zero_data = True

    edit(r, "pipeline", fn)


def b_name_with_dotdot(r: Path) -> None:
    edit(r, "digits", lambda c: setattr(c, "name", "../digits"))


def b_name_with_slash(r: Path) -> None:
    edit(r, "digits", lambda c: setattr(c, "name", "a/b"))


def b_name_with_control_chars(r: Path) -> None:
    shutil.copytree(r / "digits", r / "dig\x07its")
    edit(r, "dig\x07its", lambda c: setattr(c, "name", "dig\x07its"))


def b_name_differs_from_folder(r: Path) -> None:
    edit(r, "digits", lambda c: setattr(c, "name", "digits_v2"))


def b_label_filename_escapes(r: Path) -> None:
    (r / "labels.txt").write_text("\n".join(str(i) for i in range(10)) + "\n")
    edit(r, "digits", lambda c: setattr(c.output[0], "label_filename", "../labels.txt"))


def b_label_filename_absolute(r: Path) -> None:
    edit(r, "digits", lambda c: setattr(c.output[0], "label_filename", "/etc/hostname"))


def b_labels_symlink_outside(r: Path) -> None:
    target = outside(r) / "labels.txt"
    target.write_text("\n".join(str(i) for i in range(10)) + "\n")
    (r / "digits" / "labels.txt").unlink()
    (r / "digits" / "labels.txt").symlink_to(target)


def b_model_symlink_outside(r: Path) -> None:
    target = outside(r) / "model.onnx"
    shutil.copyfile(r / "digits" / "1" / "model.onnx", target)
    (r / "digits" / "1" / "model.onnx").unlink()
    (r / "digits" / "1" / "model.onnx").symlink_to(target)


def b_version_symlink_outside(r: Path) -> None:
    target = outside(r) / "v1"
    shutil.move(str(r / "digits" / "1"), target)
    (r / "digits" / "1").symlink_to(target, target_is_directory=True)


def b_default_model_filename_outside(r: Path) -> None:
    edit(r, "digits", lambda c: setattr(c, "default_model_filename", "../../outside/model.onnx"))


def b_default_model_filename_absolute(r: Path) -> None:
    edit(r, "digits", lambda c: setattr(c, "default_model_filename", "/etc/passwd"))


def b_plan_max_batch_8_config_32(r: Path) -> None:
    (r / "digits_trt" / "1" / "model.plan.json").write_text(json.dumps(plan_record(max_batch=8)))


def b_plan_record_other_plan(r: Path) -> None:
    (r / "digits_trt" / "1" / "model.plan").write_bytes(b"another engine")


def b_plan_profile_missing(r: Path) -> None:
    edit(r, "digits_trt", lambda c: c.instance_group[0].profile.append("3"))


def b_empty_model_onnx(r: Path) -> None:
    (r / "digits" / "1" / "model.onnx").write_bytes(b"")


def b_garbage_model_onnx(r: Path) -> None:
    (r / "digits" / "1" / "model.onnx").write_bytes(bytes(range(256)) * 8)


def b_model_onnx_is_folder(r: Path) -> None:
    (r / "digits" / "1" / "model.onnx").unlink()
    (r / "digits" / "1" / "model.onnx").mkdir()


def b_model_onnx_is_fifo(r: Path) -> None:
    (r / "digits" / "1" / "model.onnx").unlink()
    os.mkfifo(r / "digits" / "1" / "model.onnx")


def b_config_is_folder(r: Path) -> None:
    (r / "digits" / "config.pbtxt").unlink()
    (r / "digits" / "config.pbtxt").mkdir()


def b_config_is_binary(r: Path) -> None:
    (r / "digits" / "config.pbtxt").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00")


def b_version_is_file(r: Path) -> None:
    (r / "digits" / "2").write_text("not a folder")


def b_stray_top_level_folder(r: Path) -> None:
    (r / "notes").mkdir()
    (r / "notes" / "todo.txt").write_text("x")


def b_hidden_top_level_folder(r: Path) -> None:
    (r / ".cache").mkdir()


def b_warmup_shape(r: Path) -> None:
    edit(r, "digits", lambda c: c.model_warmup[0].inputs["input"].dims.__setitem__(2, 9))


def b_warmup_dtype(r: Path) -> None:
    def fn(c: mc.ModelConfig) -> None:
        c.model_warmup[0].inputs["input"].data_type = mc.TYPE_INT32

    edit(r, "digits", fn)


def b_specific_version_missing(r: Path) -> None:
    edit(r, "digits", lambda c: c.version_policy.specific.versions.append(5))


def b_python_syntax_error(r: Path) -> None:
    (r / "preprocess" / "1" / "model.py").write_text("def execute(:\n")


def b_onnx_external_data_escapes(r: Path) -> None:
    import onnx

    p = r / "digits" / "1" / "model.onnx"
    m = onnx.load(str(p))
    init = m.graph.initializer[0]
    init.ClearField("raw_data")
    del init.float_data[:]
    init.data_location = onnx.TensorProto.EXTERNAL
    e = init.external_data.add()
    e.key, e.value = "location", "../../../etc/shadow"
    p.write_bytes(m.SerializeToString())


def b_ensemble_step_name_escapes(r: Path) -> None:
    edit(r, "pipeline", lambda c: setattr(c.ensemble_scheduling.step[1], "model_name", "../repo/digits"))


def b_cc_plan_file_missing(r: Path) -> None:
    edit(r, "digits_trt", lambda c: c.cc_model_filenames.__setitem__("8.6", "model_a10.plan"))


def b_plan_tensorrt_version_compatible(r: Path) -> None:
    rec = {**plan_record(trt="10.3.0.26"), "version_compatible": True}
    (r / "digits_trt" / "1" / "model.plan.json").write_text(json.dumps(rec))


CASES: list[tuple[Callable[[Path], None], str, str]] = [
    (b_ensemble_step_name_escapes, "step 1 names '../repo/digits', which is not a plain model name", "error"),
    (b_cc_plan_file_missing, "digits_trt/1/model_a10.plan: cc_model_filenames[8.6]: is missing", "error"),
    (b_missing_config, "digits/config.pbtxt: file: is missing: Triton's auto-complete builds the config", "note"),
    (b_unparsable_config, "does not parse as a Triton ModelConfig", "error"),
    (b_unknown_field, "unknown field 'max_batch'", "error"),
    (b_unknown_platform, "unknown platform 'onnxruntime_onx'", "error"),
    (b_unknown_backend, "backend 'pythn' is not one Triton ships", "warning"),
    (b_platform_backend_conflict, "backend 'tensorrt' does not serve platform 'onnxruntime_onnx'", "error"),
    (b_no_version_folder, "digits: versions: no version folder", "error"),
    (b_non_numeric_version, "folder 'v1' is not a version number", "warning"),
    (b_zero_prefixed_version, "version folder '01' starts with 0, so Triton ignores it; rename it to 1", "warning"),
    (b_empty_version_folder, "version folder 1 is empty", "error"),
    (b_wrong_model_file_name, "rename net.onnx to model.onnx", "error"),
    (b_wrong_dtype_name, "unknown DataType value 'TYPE_FLOAT32'; use one of", "error"),
    (b_dtype_differs_from_model, "data_type TYPE_FP16 but 1/model.onnx has TYPE_FP32", "error"),
    (b_dims_differ_from_model, "dims [1, 8, 9] differ from 1/model.onnx's [1, 8, 8]", "error"),
    (b_batch_dim_in_dims, "dims [-1, 1, 8, 8] include the batch dimension", "error"),
    (b_zero_dim, "dims [1, 0, 8] contain [0]", "error"),
    (b_negative_dim, "dims [1, -4, 8] contain [-4]", "error"),
    (b_negative_max_batch, "max_batch_size is -1", "error"),
    (b_preferred_above_max, "preferred_batch_size 64 is outside [1, max_batch_size=32]", "error"),
    (b_reshape_count_mismatch, "reshape [1, 8, 9] holds 72 elements but dims [1, 8, 8] hold 64", "error"),
    (b_labels_missing, "label file is missing", "error"),
    (b_labels_wrong_count, "label file has 9 lines but output 'logits' has 10 classes", "error"),
    (b_ensemble_missing_model, "names model 'preprocessing', which is not in the repository", "error"),
    (b_ensemble_cycle, "steps form a cycle through tensors", "error"),
    (b_ensemble_calls_itself, "calls the ensemble itself", "error"),
    (b_ensemble_type_mismatch, "type mismatch: 'pixels' is TYPE_FP16", "error"),
    (b_ensemble_unknown_tensor_key, "'pixels_in' is not an input of 'digits'", "error"),
    (b_ensemble_batch_too_large, "max_batch_size 64 exceeds the max_batch_size 32 of step model 'preprocess'",
     "error"),
    (b_ensemble_instance_group, "instance_group is not allowed on an ensemble", "error"),
    (b_ensemble_warmup, "model_warmup is not allowed on an ensemble", "error"),
    (b_name_with_dotdot, "model name '../digits' is not a plain folder name", "error"),
    (b_name_with_slash, "model name 'a/b' is not a plain folder name", "error"),
    (b_name_with_control_chars, "model folder name contains control", "error"),
    (b_name_differs_from_folder, "name 'digits_v2' differs from the folder name 'digits'", "error"),
    (b_label_filename_escapes, "label file '../labels.txt' contains '..'", "error"),
    (b_label_filename_absolute, "label file '/etc/hostname' is an absolute path", "error"),
    (b_labels_symlink_outside, "label file 'labels.txt' resolves outside the model folder", "error"),
    (b_model_symlink_outside, "digits/1/model.onnx: platform: resolves outside the model folder", "error"),
    (b_version_symlink_outside, "version folder resolves outside the model folder", "error"),
    (b_default_model_filename_outside, "'../../outside/model.onnx' contains '..'", "error"),
    (b_default_model_filename_absolute, "'/etc/passwd' is an absolute path", "error"),
    (b_plan_max_batch_8_config_32, "max_batch_size 32 exceeds the plan's profile max batch 8", "error"),
    (b_plan_record_other_plan, "record is for another plan", "error"),
    (b_plan_profile_missing, "profile '3' is not one of the plan's 1 profiles", "error"),
    (b_empty_model_onnx, "digits/1/model.onnx: platform: is empty (0 bytes)", "error"),
    (b_garbage_model_onnx, "1/model.onnx: file:", "error"),
    (b_model_onnx_is_folder, "is a folder where a model file is expected", "error"),
    (b_model_onnx_is_fifo, "cannot be used as a model file (other)", "error"),
    (b_config_is_folder, "config.pbtxt: file: is a folder, not a file", "error"),
    (b_config_is_binary, "config.pbtxt: file: is not UTF-8 text", "error"),
    (b_version_is_file, "version '2' is not a folder", "error"),
    (b_stray_top_level_folder, "notes: folder: stray folder", "error"),
    (b_hidden_top_level_folder, ".cache: folder: hidden folder at the top level", "error"),
    (b_warmup_shape, "warm-up dims [1, 8, 9] do not fit input dims [1, 8, 8]", "error"),
    (b_warmup_dtype, "warm-up data_type TYPE_INT32 but the input is TYPE_FP32", "error"),
    (b_specific_version_missing, "specific version 5 has no folder", "error"),
    (b_python_syntax_error, "preprocess/1/model.py: file: is not valid Python", "error"),
    (b_onnx_external_data_escapes, "external data location '../../../etc/shadow' points outside", "error"),
]


def test_validate_finds_no_problem_when_repository_is_clean(repo: Path) -> None:
    assert validate_repository(repo) == []
    assert validate_repository(repo, target_triton="24.09") == []


def test_kind_gpu_note_appears_only_without_a_gpu(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """KIND_GPU is valid for a GPU server; on a machine without one a note (never an error) says so."""
    assert validate_repository(repo) == []  # the module's fixture stands in a GPU
    monkeypatch.setattr(tensors, "gpu_visible", lambda: False)
    notes = validate_repository(repo)
    assert [(p.severity, p.model, p.field) for p in notes] == [(NOTE, "digits_trt", "instance_group[0].kind")]
    assert "tritonkit repo add --kind cpu" in notes[0].fix


@pytest.mark.parametrize(("build", "expected", "severity"), CASES, ids=[c[0].__name__[2:] for c in CASES])
def test_validate_reports_problem_when_repository_is_broken(repo: Path, build: Callable[[Path], None],
                                                            expected: str, severity: str) -> None:
    build(repo)
    problems = validate_repository(repo)
    lines = [f"{p.severity}: {p.line()}" for p in problems]
    assert any(expected in p.line() and p.severity == severity for p in problems), "\n".join(lines)
    assert not any(CRASH in line for line in lines), "\n".join(lines)
    for p in problems:  # one line each, with a fix
        assert "\n" not in p.line() and p.fix and p.message


def test_validate_reports_plan_tensorrt_mismatch_when_target_ships_another_version(repo: Path) -> None:
    problems = validate_repository(repo, target_triton="24.10")
    lines = [p.line() for p in problems if p.is_error]
    assert lines == ["digits_trt/1/model.plan.json: tensorrt_version: plan built with TensorRT 10.4.0.26 but "
                     "Triton 24.10 ships TensorRT 10.5.0; the engine will not deserialize; rebuild the plan "
                     "with TensorRT 10.5.0, or target Triton 24.09"]


def test_validate_warns_only_when_plan_is_version_compatible(repo: Path) -> None:
    b_plan_tensorrt_version_compatible(repo)
    problems = validate_repository(repo, target_triton="24.09")
    assert [(p.severity, p.field) for p in problems] == [("warning", "tensorrt_version")]
    assert "loads only with version-compatible=true" in problems[0].line()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their permissions")
def test_validate_reports_unreadable_folder_when_permission_denied(repo: Path) -> None:
    os.chmod(repo / "digits" / "1", 0)
    try:
        lines = [p.line() for p in validate_repository(repo)]
    finally:
        os.chmod(repo / "digits" / "1", 0o755)
    assert any("digits/1: version: version folder cannot be listed (PermissionError" in x for x in lines), lines


def test_validate_reports_unknown_release_when_target_is_not_in_table(repo: Path) -> None:
    problems = validate_repository(repo, target_triton="19.01")
    assert [p.field for p in problems] == ["target_triton"]


def test_validate_model_checks_staged_folder_under_its_final_name(repo: Path, tmp_path: Path) -> None:
    staged = tmp_path / "staging-123"
    shutil.copytree(repo / "digits", staged)
    assert validate_model(staged, name="digits") == []
    assert any("differs from the folder name" in p.line() for p in validate_model(staged))


def test_validate_model_finds_ensemble_steps_in_repository_when_given(repo: Path) -> None:
    assert validate_model(repo / "pipeline") == []
    assert validate_model(repo / "pipeline", repository=repo / "digits") != []


def test_validate_reports_fixed_batch_when_onnx_has_no_dynamic_axis(repo: Path, tmp_path: Path) -> None:
    import torch

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    fixed = tmp_path / "fixed.onnx"
    torch.onnx.export(net, (torch.zeros(1, 1, 8, 8),), str(fixed), input_names=["input"],
                      output_names=["logits"], opset_version=17, dynamo=False)
    shutil.rmtree(repo / "digits")
    add_onnx_model(repo, "digits", fixed)
    lines = [p.line() for p in validate_repository(repo)]
    assert any("fixes the batch dimension of 'input' at 1" in line for line in lines), lines


def test_validate_reports_one_problem_when_repository_is_missing(tmp_path: Path) -> None:
    problems = validate_repository(tmp_path / "nope")
    assert len(problems) == 1 and "repository is missing" in problems[0].line()


def test_problem_line_escapes_control_characters_when_names_are_hostile() -> None:
    p = Problem("error", "a\nb\x1b[31m", "f\udcff", "name", "bad\rthing", "fix it")
    assert p.line() == "a\\nb\\x1b[31m/f\\udcff: name: bad\\rthing; fix it"
    json.dumps(p.to_dict())


def test_validate_runs_fast_when_repository_has_50_models(tiny_onnx: Path, tmp_path: Path) -> None:
    repo = tmp_path / "big"
    repo.mkdir()
    for i in range(50):
        add_onnx_model(repo, f"m{i:02d}", tiny_onnx)
    start = time.perf_counter()
    problems = validate_repository(repo)
    elapsed = time.perf_counter() - start
    assert problems == []
    assert elapsed < 5.0, f"50 models took {elapsed:.2f} s"


# --- the command ----------------------------------------------------------------------------------

def run_cli(*args: str) -> tuple[int, str, str]:
    from toolkit.cli.repo_validate import validate

    result = CliRunner(mix_stderr=False).invoke(validate, list(args)) if _mix_stderr_supported() else \
        CliRunner().invoke(validate, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result.exit_code, result.stdout, getattr(result, "stderr", "")


def _mix_stderr_supported() -> bool:
    import inspect

    return "mix_stderr" in inspect.signature(CliRunner.__init__).parameters


def test_cli_exits_0_with_summary_when_repository_is_clean(repo: Path) -> None:
    code, out, _ = run_cli(str(repo), "--target-triton", "24.09")
    assert code == 0
    assert out.strip().splitlines() == ["repository is clean: 0 errors, 0 warnings"]


def test_cli_exits_1_with_one_line_per_problem_when_repository_is_broken(repo: Path) -> None:
    b_labels_wrong_count(repo)
    (repo / "digits_trt" / "1").rename(repo / "digits_trt" / "01")
    code, out, _ = run_cli(str(repo))
    lines = out.strip().splitlines()
    assert code == 1
    assert lines == [
        "error: digits/labels.txt: output[logits].label_filename: label file has 9 lines but output 'logits' "
        "has 10 classes (its last dim); write exactly 10 lines, one label per class",
        "warning: digits_trt/01: version: version folder '01' starts with 0, so Triton ignores it; rename it to 1",
        "error: digits_trt: versions: no version folder (Triton ignores '01'), so Triton has nothing to load; "
        "add a version folder named 1 holding the model file",
        "2 errors, 1 warning in 2 models",
    ]


def test_cli_exits_0_when_repository_has_only_warnings(repo: Path) -> None:
    b_unknown_backend(repo)
    code, out, _ = run_cli(str(repo))
    assert code == 0 and out.strip().splitlines()[-1] == "0 errors, 1 warning in 1 model"


def test_cli_prints_json_list_when_asked(repo: Path) -> None:
    b_labels_missing(repo)
    code, out, _ = run_cli(str(repo), "--json")
    data = json.loads(out)
    assert code == 1
    assert data == [{"severity": "error", "model": "digits", "file": "labels.txt",
                     "field": "output[logits].label_filename", "message": "label file is missing",
                     "fix": "write one label per line, line i = class i"}]


def test_cli_refuses_unknown_release_in_one_line_when_target_is_bad(repo: Path) -> None:
    code, out, err = run_cli(str(repo), "--target-triton", "99.99")
    assert code == 2
    assert "unknown Triton release '99.99'" in (out + err)
    assert "Traceback" not in out + err


def test_cli_exits_1_without_traceback_when_directory_is_garbage(tmp_path: Path) -> None:
    f = tmp_path / "file.bin"
    f.write_bytes(os.urandom(64))
    code, out, err = run_cli(str(f))
    assert code == 1 and "repository is not a folder (file)" in out and "Traceback" not in out + err


# --- hostile input never raises --------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_config_texts = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=400),
    st.lists(st.sampled_from([
        'name: "digits"', "platform: \"onnxruntime_onnx\"", "backend: \"python\"", "max_batch_size: -7",
        "max_batch_size: 0", "input { name: \"input\" data_type: TYPE_FP32 dims: [1, 8, 8] }",
        "input { name: \"input\" data_type: TYPE_FP32 dims: [0] reshape { shape: [] } }",
        "output { name: \"logits\" data_type: TYPE_FP32 dims: [-1] label_filename: \"../../x\" }",
        "output { name: \"logits\" data_type: TYPE_INT8 dims: [10] label_filename: \"labels.txt\" }",
        "dynamic_batching { preferred_batch_size: [0, 999] }", "instance_group { count: -2 gpus: [-1] }",
        "default_model_filename: \"/dev/zero\"", "default_model_filename: \"\"", "platform: \"ensemble\"",
        "ensemble_scheduling { step { model_name: \"digits\" input_map { key: \"a\" value: \"b\" } } }",
        "model_warmup { batch_size: 0 inputs { key: \"zz\" value { dims: [-5] input_data_file: \"../..\" } } }",
        "version_policy { specific { versions: [0, 7] } }", "{", "}", "\x00", "#",
    ]), max_size=8).map("\n".join),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_config_texts)
def test_validate_returns_only_problems_when_config_is_random(repo: Path, text: str | bytes) -> None:
    p = repo / "digits" / "config.pbtxt"
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape"))
    problems = validate_model(repo / "digits")
    assert all(isinstance(x, Problem) for x in problems)
    assert not any(CRASH in x.line() for x in problems), [x.line() for x in problems]


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=4), max_leaves=20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=st.one_of(_json, st.builds(lambda d: {**plan_record(), **d}, st.dictionaries(
    st.sampled_from(["profiles", "inputs", "outputs", "tensorrt_version", "max_batch_size", "sha256",
                     "compute_capability"]), _json, max_size=3))), onnx_bytes=st.binary(max_size=200))
def test_validate_returns_only_problems_when_artifacts_are_random(repo: Path, record: object,
                                                                  onnx_bytes: bytes) -> None:
    (repo / "digits_trt" / "1" / "model.plan.json").write_text(json.dumps(record))
    (repo / "digits" / "1" / "model.onnx").write_bytes(onnx_bytes)
    problems = validate_repository(repo, target_triton="24.09")
    assert all(isinstance(x, Problem) for x in problems)
    assert not any(CRASH in x.line() for x in problems), [x.line() for x in problems]
