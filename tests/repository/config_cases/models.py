"""Model-level cases: instance groups, reshape, ensembles, and names with platform/backend inference.

Each model is a python model unless the case says otherwise (python models here run on CPU). An
ensemble's step models are python models named with the case's name as prefix.
"""

from __future__ import annotations

import io
import zipfile

from tests.repository.config_cases import PY_MODEL, Case, Edit, with_fixes

IO = ('input [{ name: "IN" data_type: TYPE_FP32 dims: [4] }]\n'
      'output [{ name: "OUT" data_type: TYPE_FP32 dims: [4] }]\n')
GPU = "needs a GPU"


def py(name: str, extra: str = "", *, mbs: int = 0, io: str = IO, backend: bool = True) -> str:
    """A python model's config: ``name``, backend, max_batch_size, the IN/OUT pair, then ``extra``."""
    head = f'name: "{name}"\n' + ('backend: "python"\n' if backend else "")
    return f"{head}max_batch_size: {mbs}\n{io}{extra}\n"


def tensor(kind: str, name: str, dims: str = "[4]", extra: str = "", dtype: str = "TYPE_FP32") -> str:
    return f'{kind} {{ name: "{name}" data_type: {dtype} dims: {dims} {extra}}}\n'


def step(model: str, inputs: dict[str, str], outputs: dict[str, str], version: int = -1) -> str:
    ins = "".join(f'input_map {{ key: "{k}" value: "{v}" }} ' for k, v in inputs.items())
    outs = "".join(f'output_map {{ key: "{k}" value: "{v}" }} ' for k, v in outputs.items())
    return f'step {{ model_name: "{model}" model_version: {version} {ins}{outs}}}\n'


def ensemble(name: str, steps: str, *, mbs: int = 0, io: str = "", extra: str = "") -> str:
    """An ensemble config; ``io`` defaults to input IN and output OUT of dims [4]."""
    io = io or tensor("input", "IN") + tensor("output", "OUT")
    return (f'name: "{name}"\nplatform: "ensemble"\nmax_batch_size: {mbs}\n{io}'
            f"ensemble_scheduling {{\n{steps}}}\n{extra}")


def stepper(name: str, extra: str = "", *, mbs: int = 0, io: str = IO) -> tuple[str, dict[str, str | bytes]]:
    """An extra python model for an ensemble step."""
    return py(name, extra, mbs=mbs, io=io), {}


def one_step(case: str, *, mbs: int = 0, step_mbs: int = 0, ens_io: str = "", ens_extra: str = "",
             step_io: str = IO, step_extra: str = "") -> tuple[str, dict[str, tuple[str, dict[str, str | bytes]]]]:
    """An ensemble IN -> <case>_a -> OUT; returns its config and its extra models."""
    cfg = ensemble(case, step(f"{case}_a", {"IN": "IN"}, {"OUT": "OUT"}), mbs=mbs, io=ens_io, extra=ens_extra)
    return cfg, {f"{case}_a": stepper(f"{case}_a", step_extra, mbs=step_mbs, io=step_io)}


def ens_case(name: str, family: str, verdict: str, message: str = "", **kw: object) -> Case:
    """A case whose model is the one-step ensemble of :func:`one_step`."""
    cfg, extra = one_step(name, **kw)  # type: ignore[arg-type]
    return Case(name, family, cfg, verdict, message, extra=extra)


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/version", "3\n")
    return buf.getvalue()


def _onnx_identity() -> bytes:
    """A one-node ONNX graph OUT = Identity(IN), FP32 [4], opset 17."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["IN"], ["OUT"])], "identity",
                              [helper.make_tensor_value_info("IN", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("OUT", TensorProto.FLOAT, [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


DECOUPLED = "model_transaction_policy { decoupled: true }"
IN22 = tensor("input", "IN", "[2, 2]") + tensor("output", "OUT")
TWO_IN = (tensor("input", "X") + tensor("input", "Y") + tensor("output", "OUT"))

INSTANCE_GROUP: list[Case] = [
    Case("m_ig_cpu_gpus", "instance_group", py("m_ig_cpu_gpus", "instance_group [{ kind: KIND_CPU gpus: [0] }]"),
         "refused", "kind KIND_CPU but lists gpus"),
    Case("m_ig_cpu_gpus_second", "instance_group",
         py("m_ig_cpu_gpus_second", "instance_group [{ kind: KIND_CPU }, { kind: KIND_CPU count: 2 gpus: [0, 1] }]"),
         "refused", "kind KIND_CPU but lists gpus [0, 1]"),
    Case("m_ig_model_gpus", "instance_group", py("m_ig_model_gpus", "instance_group [{ kind: KIND_MODEL gpus: [0] }]"),
         "refused", "kind KIND_MODEL but lists gpus"),
    Case("m_ig_gpu_negative", "instance_group",
         py("m_ig_gpu_negative", "instance_group [{ kind: KIND_GPU gpus: [-1] }]"), "refused", "negative GPU id"),
    Case("m_ig_auto_negative", "instance_group", py("m_ig_auto_negative", "instance_group [{ gpus: [-2] }]"),
         "refused", "negative GPU id"),
    Case("m_ig_profile_python", "instance_group",
         py("m_ig_profile_python", 'instance_group [{ kind: KIND_CPU profile: ["0"] }]'),
         "refused", "profile is only for TensorRT plans"),
    Case("m_ig_profile_onnx", "instance_group",
         'name: "m_ig_profile_onnx"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 0\n'
         f'{IO}instance_group [{{ kind: KIND_CPU profile: ["0"] }}]\n', "refused",
         "profile is only for TensorRT plans", files={"1/model.onnx": _onnx_identity()}),
    ens_case("m_ig_on_ensemble", "instance_group", "refused", "instance_group is not allowed on an ensemble",
             ens_extra="instance_group [{ kind: KIND_CPU }]\n"),
    # accepted
    Case("m_ig_cpu_two", "instance_group", py("m_ig_cpu_two", "instance_group [{ kind: KIND_CPU count: 2 }]"),
         "accepted"),
    Case("m_ig_count_zero", "instance_group", py("m_ig_count_zero", "instance_group [{ kind: KIND_CPU count: 0 }]"),
         "accepted"),
    Case("m_ig_count_negative", "instance_group",
         py("m_ig_count_negative", "instance_group [{ kind: KIND_CPU count: -3 }]"), "accepted",
         "count -3 is negative"),
    Case("m_ig_kind_model", "instance_group", py("m_ig_kind_model", "instance_group [{ kind: KIND_MODEL }]"),
         "accepted"),
    Case("m_ig_two_groups", "instance_group",
         py("m_ig_two_groups", 'instance_group [{ name: "a" kind: KIND_CPU }, { name: "b" kind: KIND_CPU }]'),
         "accepted"),
    Case("m_ig_secondary", "instance_group",
         py("m_ig_secondary",
            "instance_group [{ kind: KIND_CPU secondary_devices [{ kind: KIND_NVDLA device_id: 0 }] }]"),
         "accepted", "secondary_devices"),
    Case("m_ig_rate_limiter", "instance_group",
         py("m_ig_rate_limiter",
            'instance_group [{ kind: KIND_CPU rate_limiter { resources [{ name: "R" count: 2 }] priority: 1 } }]'),
         "accepted"),
    Case("m_ig_rate_limiter_mixed", "instance_group",
         py("m_ig_rate_limiter_mixed",
            'instance_group [{ kind: KIND_CPU rate_limiter { resources [{ name: "R" global: true count: 2 }] } },'
            ' { kind: KIND_MODEL rate_limiter { resources [{ name: "R" count: 1 }] } }]'),
         "accepted", "--rate-limit=execution_count"),
    Case("m_ig_passive", "instance_group",
         py("m_ig_passive", "instance_group [{ kind: KIND_CPU }, { kind: KIND_CPU passive: true }]"), "accepted"),
    Case("m_ig_host_policy", "instance_group",
         py("m_ig_host_policy", 'instance_group [{ kind: KIND_CPU host_policy: "numa0" }]'), "accepted"),
    Case("m_ig_gpu", "instance_group", py("m_ig_gpu", "instance_group [{ kind: KIND_GPU }]"), "accepted",
         triton=False, why=GPU),
    Case("m_ig_gpu_ids", "instance_group", py("m_ig_gpu_ids", "instance_group [{ kind: KIND_GPU count: 2 gpus: [0] }]"),
         "accepted", triton=False, why=GPU),
    Case("m_ig_auto_gpus", "instance_group", py("m_ig_auto_gpus", "instance_group [{ gpus: [0] }]"), "accepted",
         triton=False, why=GPU),
]

RS_IN = 'input [{{ name: "IN" data_type: TYPE_FP32 dims: {dims} reshape {{ shape: {shape} }} }}]\n'
RS_OUT = 'output [{ name: "OUT" data_type: TYPE_FP32 dims: [4] }]\n'


def rs(name: str, dims: str, shape: str, *, mbs: int = 0) -> str:
    return py(name, mbs=mbs, io=RS_IN.format(dims=dims, shape=shape) + RS_OUT)


RESHAPE: list[Case] = [
    Case("m_rs_count", "reshape", rs("m_rs_count", "[4]", "[5]"), "refused",
         "reshape [5] holds 5 elements but dims [4] hold 4"),
    Case("m_rs_var_one_side", "reshape", rs("m_rs_var_one_side", "[-1]", "[4]"), "refused",
         "only one of dims [-1] and reshape [4] has a variable (-1) size"),
    Case("m_rs_var_reshape_side", "reshape", rs("m_rs_var_reshape_side", "[2, 2]", "[-1]"), "refused",
         "only one of dims [2, 2] and reshape [-1] has a variable (-1) size"),
    Case("m_rs_segments", "reshape", rs("m_rs_segments", "[2, -1, 3]", "[3, -1, 2]"), "refused",
         "between their -1 sizes dims [2, -1, 3] hold [2, 3] elements but reshape [3, -1, 2] holds [3, 2]"),
    Case("m_rs_var_moved", "reshape", rs("m_rs_var_moved", "[4, -1]", "[-1, 4]"), "refused",
         "hold [4, 1] elements but reshape [-1, 4] holds [1, 4]"),
    Case("m_rs_var_count", "reshape", rs("m_rs_var_count", "[-1, -1]", "[-1]", mbs=4), "refused",
         "dims [-1, -1] have 2 variable (-1) sizes but reshape [-1] has 1"),
    Case("m_rs_empty_nobatch", "reshape", rs("m_rs_empty_nobatch", "[1]", "[]"), "refused",
         "an empty reshape (a scalar) needs max_batch_size > 0"),
    Case("m_rs_empty_dims2", "reshape", rs("m_rs_empty_dims2", "[2]", "[]", mbs=4), "refused",
         "an empty reshape (a scalar) needs dims of 1 element, but dims [2] hold 2"),
    Case("m_rs_empty_var", "reshape", rs("m_rs_empty_var", "[-1]", "[]", mbs=4), "refused",
         "an empty reshape (a scalar) needs dims of 1 element, but dims [-1] hold a variable number"),
    Case("m_rs_zero", "reshape", rs("m_rs_zero", "[4]", "[0, 4]"), "refused", "reshape [0, 4] has a zero or negative"),
    Case("m_rs_negative", "reshape", rs("m_rs_negative", "[4]", "[-2, -2]"), "refused",
         "reshape [-2, -2] has a zero or negative"),
    Case("m_rs_output", "reshape",
         py("m_rs_output", io=tensor("input", "IN") + tensor("output", "OUT", "[2, 3]", "reshape { shape: [5] } ")),
         "refused", "reshape [5] holds 5 elements but dims [2, 3] hold 6"),
    ens_case("m_rs_ensemble_count", "reshape", "refused", "reshape [5] holds 5 elements but dims [4] hold 4",
             ens_io=tensor("input", "IN", "[4]", "reshape { shape: [5] } ") + tensor("output", "OUT"),
             step_io=tensor("input", "IN", "[5]") + tensor("output", "OUT")),
    ens_case("m_rs_ensemble_shape", "reshape", "refused", "shape mismatch: 'IN' is [4]",
             ens_io=tensor("input", "IN", "[2, 2]", "reshape { shape: [4] } ") + tensor("output", "OUT"),
             step_io=IN22),
    # accepted
    Case("m_rs_ok_fixed", "reshape", rs("m_rs_ok_fixed", "[2, 3]", "[6]"), "accepted"),
    Case("m_rs_ok_segments", "reshape", rs("m_rs_ok_segments", "[2, 4, -1, 6]", "[8, -1, 1, 6]"), "accepted"),
    Case("m_rs_ok_trailing", "reshape", rs("m_rs_ok_trailing", "[-1, 4]", "[-1, 2, 2]", mbs=2), "accepted"),
    Case("m_rs_ok_empty_batch", "reshape", rs("m_rs_ok_empty_batch", "[1]", "[]", mbs=4), "accepted"),
    Case("m_rs_ok_empty_batch_11", "reshape", rs("m_rs_ok_empty_batch_11", "[1, 1]", "[]", mbs=4), "accepted"),
    ens_case("m_rs_ok_ensemble", "reshape", "accepted",
             ens_io=tensor("input", "IN", "[4]", "reshape { shape: [2, 2] } ") + tensor("output", "OUT"),
             step_io=IN22),
]


def _ens(name: str, family: str, verdict: str, message: str, steps: str, models: dict[str, tuple[str, str]], *,
         mbs: int = 0, io: str = "", extra: str = "") -> Case:
    """An ensemble case; ``models`` maps a suffix to (config extra, io) of a python step model ``<name>_<suffix>``."""
    extras = {f"{name}_{k}": stepper(f"{name}_{k}", x, io=i or IO) for k, (x, i) in models.items()}
    return Case(name, family, ensemble(name, steps, mbs=mbs, io=io, extra=extra), verdict, message, extra=extras)


def _fan(name: str, a: str, b: str, c_io: str = TWO_IN) -> Case:
    """IN -> a -> ta, IN -> b -> tb, (ta, tb) -> c -> OUT; ``a``/``b`` are the steps' config extras."""
    steps = (step(f"{name}_a", {"IN": "IN"}, {"OUT": "ta"}) + step(f"{name}_b", {"IN": "IN"}, {"OUT": "tb"})
             + step(f"{name}_c", {"X": "ta", "Y": "tb"}, {"OUT": "OUT"}))
    verdict = "refused" if DECOUPLED in a and DECOUPLED in b else "accepted"
    message = "receives tensors from different decoupled models" if verdict == "refused" else ""
    return _ens(name, "ensemble", verdict, message, steps, {"a": (a, ""), "b": (b, ""), "c": ("", c_io)})


AUX_IO = IO + tensor("output", "AUX")
OPT_IO = tensor("input", "X") + tensor("input", "Y", extra="optional: true ") + tensor("output", "OUT")

ENSEMBLE: list[Case] = [
    _fan("m_en_decoupled", DECOUPLED, DECOUPLED),
    _ens("m_en_decoupled_mixed", "ensemble", "refused", "receives tensors from different decoupled models",
         step("m_en_decoupled_mixed_a", {"IN": "IN"}, {"OUT": "ta"})
         + step("m_en_decoupled_mixed_c", {"X": "ta", "Y": "IN"}, {"OUT": "OUT"}),
         {"a": (DECOUPLED, ""), "c": ("", TWO_IN)}),
    _ens("m_en_unused_input", "ensemble", "refused", "ensemble input 'EXTRA' is used by no step",
         step("m_en_unused_input_a", {"IN": "IN"}, {"OUT": "OUT"}), {"a": ("", "")},
         io=tensor("input", "IN") + tensor("input", "EXTRA") + tensor("output", "OUT")),
    _ens("m_en_unused_tensor", "ensemble", "refused",
         "tensor 'aux' from step 0 is used by no step and is not an ensemble output",
         step("m_en_unused_tensor_a", {"IN": "IN"}, {"OUT": "OUT", "AUX": "aux"}), {"a": ("", AUX_IO)}),
    _ens("m_en_no_input_map", "ensemble", "refused", "step 0 has no input_map",
         step("m_en_no_input_map_a", {}, {"OUT": "OUT"}), {"a": ("", "")},
         io=tensor("output", "OUT")),
    _ens("m_en_no_output_map", "ensemble", "refused", "step 1 has no output_map",
         step("m_en_no_output_map_a", {"IN": "IN"}, {"OUT": "OUT"}) + step("m_en_no_output_map_b", {"IN": "OUT"}, {}),
         {"a": ("", ""), "b": ("", "")}),
    _ens("m_en_output_unproduced", "ensemble", "refused", "ensemble output 'OUT2' is produced by no step",
         step("m_en_output_unproduced_a", {"IN": "IN"}, {"OUT": "OUT"}), {"a": ("", "")},
         io=tensor("input", "IN") + tensor("output", "OUT") + tensor("output", "OUT2")),
    _ens("m_en_input_unreachable", "ensemble", "refused",
         "tensor 'ghost' is neither an ensemble input nor produced by any step",
         step("m_en_input_unreachable_a", {"IN": "IN"}, {"OUT": "ta"})
         + step("m_en_input_unreachable_c", {"X": "ta", "Y": "ghost"}, {"OUT": "OUT"}),
         {"a": ("", ""), "c": ("", TWO_IN)}),
    ens_case("m_en_optimization", "ensemble", "refused", "optimization is not allowed on an ensemble",
             ens_extra="optimization { input_pinned_memory { enable: true } }\n"),
    Case("m_en_sched_on_python", "ensemble",
         py("m_en_sched_on_python", "ensemble_scheduling { " + step("m_en_sched_on_python_a", {"IN": "IN"},
                                                                    {"OUT": "OUT"}) + "}"),
         "refused", "ensemble_scheduling is set but platform is not \"ensemble\"",
         extra={"m_en_sched_on_python_a": stepper("m_en_sched_on_python_a")}),
    ens_case("m_en_backend", "ensemble", "refused", "an ensemble takes no backend", ens_extra='backend: "python"\n'),
    ens_case("m_en_batch_smaller", "ensemble", "refused",
             "ensemble max_batch_size 8 exceeds the max_batch_size 4 of step model", mbs=8, step_mbs=4),
    _ens("m_en_unknown_model", "ensemble", "refused", "names model 'm_en_unknown_model_x', which is not in",
         step("m_en_unknown_model_x", {"IN": "IN"}, {"OUT": "OUT"}), {}),
    Case("m_en_no_scheduling", "ensemble",
         f'name: "m_en_no_scheduling"\nplatform: "ensemble"\nmax_batch_size: 0\n{IO}', "refused",
         "an ensemble needs ensemble_scheduling with at least one step", files={"1/.keep": ""}),
    Case("m_en_empty_scheduling", "ensemble",
         f'name: "m_en_empty_scheduling"\nplatform: "ensemble"\nmax_batch_size: 0\n{IO}ensemble_scheduling {{ }}\n',
         "refused", "an ensemble needs ensemble_scheduling with at least one step", files={"1/.keep": ""}),
    _ens("m_en_output_twice", "ensemble", "refused", "tensor 'OUT' is produced by two steps",
         step("m_en_output_twice_a", {"IN": "IN"}, {"OUT": "OUT"}) + step("m_en_output_twice_b", {"IN": "IN"},
                                                                          {"OUT": "OUT"}),
         {"a": ("", ""), "b": ("", "")}),
    ens_case("m_en_shape_mismatch", "ensemble", "refused", "shape mismatch: 'IN' is [4]",
             step_io=tensor("input", "IN", "[3]") + tensor("output", "OUT")),
    ens_case("m_en_type_mismatch", "ensemble", "refused", "type mismatch: 'IN' is TYPE_FP32",
             step_io=tensor("input", "IN", dtype="TYPE_INT32") + tensor("output", "OUT")),
    ens_case("m_en_step_input_unfed", "ensemble", "refused", "step 0 does not feed input 'Y'",
             step_io=tensor("input", "IN") + tensor("input", "Y") + tensor("output", "OUT")),
    ens_case("m_en_warmup", "ensemble", "refused", "model_warmup is not allowed on an ensemble",
             ens_extra='model_warmup [{ name: "w" batch_size: 1 inputs { key: "IN" value: { data_type: TYPE_FP32 '
                       "dims: [4] zero_data: true } } }]\n"),
    _ens("m_en_bad_output_key", "ensemble", "refused", "'NOPE' is not an output of 'm_en_bad_output_key_a'",
         step("m_en_bad_output_key_a", {"IN": "IN"}, {"NOPE": "OUT"}), {"a": ("", "")}),
    _ens("m_en_bad_input_key", "ensemble", "refused", "'NOPE' is not an input of 'm_en_bad_input_key_a'",
         step("m_en_bad_input_key_a", {"IN": "IN", "NOPE": "IN"}, {"OUT": "OUT"}), {"a": ("", "")}),
    _ens("m_en_version_missing", "ensemble", "refused", "asks for version 3 of 'm_en_version_missing_a'",
         step("m_en_version_missing_a", {"IN": "IN"}, {"OUT": "OUT"}, version=3), {"a": ("", "")}),
    ens_case("m_en_nonbatch_step_shape", "ensemble", "refused", "shape mismatch: 'IN' is [-1, 4]", mbs=4,
             step_io=tensor("input", "IN", "[3]") + tensor("output", "OUT", "[3]")),
    _ens("m_en_self", "ensemble", "refused", "calls the ensemble itself",
         step("m_en_self", {"IN": "IN"}, {"OUT": "OUT"}), {}),
    # accepted
    ens_case("m_en_ok", "ensemble", "accepted"),
    ens_case("m_en_ok_batching", "ensemble", "accepted", mbs=4, step_mbs=8),
    ens_case("m_en_ok_nonbatch_step", "ensemble", "accepted", mbs=4,
             step_io=tensor("input", "IN", "[-1, 4]") + tensor("output", "OUT", "[-1, 4]")),
    ens_case("m_en_ok_nonbatch_step_same_dims", "ensemble", "accepted", mbs=4),
    ens_case("m_en_ok_batch_step_in_nonbatch", "ensemble", "accepted", step_mbs=4),
    _ens("m_en_ok_decoupled_chain", "ensemble", "accepted", "",
         step("m_en_ok_decoupled_chain_a", {"IN": "IN"}, {"OUT": "ta"})
         + step("m_en_ok_decoupled_chain_b", {"IN": "ta"}, {"OUT": "OUT"}),
         {"a": (DECOUPLED, ""), "b": ("", "")}),
    _ens("m_en_ok_decoupled_siblings", "ensemble", "accepted", "",
         step("m_en_ok_decoupled_siblings_a", {"IN": "IN"}, {"OUT": "ta", "AUX": "tb"})
         + step("m_en_ok_decoupled_siblings_c", {"X": "ta", "Y": "tb"}, {"OUT": "OUT"}),
         {"a": (DECOUPLED, AUX_IO), "c": ("", TWO_IN)}),
    _ens("m_en_ok_decoupled_out", "ensemble", "accepted", "",
         step("m_en_ok_decoupled_out_a", {"IN": "IN"}, {"OUT": "OUT"}), {"a": (DECOUPLED, "")}),
    _fan("m_en_ok_fan", "", ""),
    _ens("m_en_ok_optional", "ensemble", "accepted", "",
         step("m_en_ok_optional_a", {"X": "IN"}, {"OUT": "OUT"}), {"a": ("", OPT_IO)}),
    Case("m_en_ok_no_name", "ensemble",
         ensemble("m_en_ok_no_name", step("m_en_ok_no_name_a", {"IN": "IN"}, {"OUT": "OUT"})).split("\n", 1)[1],
         "accepted", extra={"m_en_ok_no_name_a": stepper("m_en_ok_no_name_a")}),
]


def typed(name: str, platform: str, backend: str, files: dict[str, str | bytes], verdict: str, message: str = "",
          **kw: object) -> Case:
    """A case for a platform/backend pair (empty strings leave the line out)."""
    lines = [f'name: "{name}"'] + ([f'platform: "{platform}"'] if platform else []) \
        + ([f'backend: "{backend}"'] if backend else []) + ["max_batch_size: 0", IO]
    return Case(name, "naming", "\n".join(lines), verdict, message, files=files, **kw)  # type: ignore[arg-type]


PLAN = {"1/model.plan": b"stand-in for a serialized engine\n"}
TORCH = {"1/model.pt": _zip()}
SAVED = {"1/model.savedmodel/saved_model.pb": b"\x08\x01"}
GRAPHDEF = {"1/model.graphdef": b"\x0a\x00"}
PYFILE = {"1/model.py": PY_MODEL}

NAMING: list[Case] = [
    Case("m_nm_differs", "naming", py("m_nm_other"), "refused", "name 'm_nm_other' differs from the folder name"),
    typed("m_nm_pair_trt_onnxrt", "tensorrt_plan", "onnxruntime", PLAN, "refused",
          "backend 'onnxruntime' does not serve platform 'tensorrt_plan'"),
    typed("m_nm_pair_onnx_pytorch", "onnxruntime_onnx", "pytorch", {"1/model.onnx": _onnx_identity()}, "refused",
          "backend 'pytorch' does not serve platform 'onnxruntime_onnx'"),
    typed("m_nm_pair_savedmodel_trt", "tensorflow_savedmodel", "tensorrt", SAVED, "refused",
          "backend 'tensorrt' does not serve platform 'tensorflow_savedmodel'"),
    typed("m_nm_pair_libtorch_tf", "pytorch_libtorch", "tensorflow", TORCH, "refused",
          "backend 'tensorflow' does not serve platform 'pytorch_libtorch'"),
    typed("m_nm_pair_graphdef_onnxrt", "tensorflow_graphdef", "onnxruntime", GRAPHDEF, "refused",
          "backend 'onnxruntime' does not serve platform 'tensorflow_graphdef'"),
    typed("m_nm_pair_onnx_trt", "onnxruntime_onnx", "tensorrt", {"1/model.onnx": _onnx_identity()}, "refused",
          "backend 'tensorrt' does not serve platform 'onnxruntime_onnx'"),
    typed("m_nm_unknown_platform", "pytorch", "", TORCH, "refused", "unknown platform 'pytorch'"),
    typed("m_nm_platform_python", "python", "", PYFILE, "refused", "unknown platform 'python'"),
    typed("m_nm_nothing", "", "", {"1/weights.bin": b"\x00"}, "refused",
          "neither platform nor backend is set and Triton cannot infer one"),
    Case("m_nm_custom_filename", "naming", py("m_nm_custom_filename", 'default_model_filename: "net.py"',
                                              backend=False),
         "refused", "neither platform nor backend is set and Triton cannot infer one", files={"1/net.py": PY_MODEL}),
    Case("m_nm_hidden_first", "naming", py("m_nm_hidden_first", backend=False), "refused",
         "cannot infer one from folder '.ipynb_checkpoints', the first in name order",
         files={"1/model.py": PY_MODEL, ".ipynb_checkpoints/model-checkpoint.py": PY_MODEL}),
    typed("m_nm_onnx_without_file", "onnxruntime_onnx", "", PYFILE, "refused",
          "1/model.onnx: platform: is missing"),
    # accepted
    Case("m_nm_no_backend_python", "naming", py("m_nm_no_backend_python", backend=False), "accepted"),
    Case("m_nm_no_name", "naming", py("m_nm_no_name").split("\n", 1)[1], "accepted"),
    Case("m_nm_no_name_no_backend", "naming", py("m_nm_no_name_no_backend", backend=False).split("\n", 1)[1],
         "accepted"),
    Case("m_nm_empty_name", "naming", 'name: ""\n' + py("m_nm_empty_name").split("\n", 1)[1], "accepted"),
    Case("m_nm_hidden_first_with_backend", "naming", py("m_nm_hidden_first_with_backend"), "accepted",
         files={"1/model.py": PY_MODEL, ".ipynb_checkpoints/model-checkpoint.py": PY_MODEL}),
    Case("m_nm_python_filename", "naming", py("m_nm_python_filename", 'default_model_filename: "net.py"'),
         "accepted", files={"1/net.py": PY_MODEL}),
    Case("m_nm_model_py_filename", "naming",
         py("m_nm_model_py_filename", 'default_model_filename: "model.py"', backend=False), "accepted"),
    typed("m_nm_python_any_platform", "onnxruntime_onnx", "python", PYFILE, "accepted",
          "platform 'onnxruntime_onnx' is ignored"),
    typed("m_nm_onnx_pair", "onnxruntime_onnx", "onnxruntime", {"1/model.onnx": _onnx_identity()}, "accepted"),
    typed("m_nm_onnx_inferred", "", "", {"1/model.onnx": _onnx_identity()}, "accepted"),
    typed("m_nm_trt_pair", "tensorrt_plan", "tensorrt", PLAN, "accepted"),
    typed("m_nm_trt_inferred", "", "", PLAN, "accepted"),
    typed("m_nm_torch_pair", "pytorch_libtorch", "pytorch", TORCH, "accepted"),
    typed("m_nm_savedmodel_pair", "tensorflow_savedmodel", "tensorflow", SAVED, "accepted"),
    typed("m_nm_graphdef_pair", "tensorflow_graphdef", "tensorflow", GRAPHDEF, "accepted"),
]

CASES: list[Case] = INSTANCE_GROUP + RESHAPE + ENSEMBLE + NAMING

# Each refused case's config after doing what the validator's fix says (``Case.fixed``).
FIXES: dict[str, Edit | list[Edit]] = {
    # instance_group: remove gpus (or profile, or the group on an ensemble)
    "m_ig_cpu_gpus": (" gpus: [0]", ""),
    "m_ig_cpu_gpus_second": (" gpus: [0, 1]", ""),
    "m_ig_model_gpus": (" gpus: [0]", ""),
    "m_ig_profile_python": (' profile: ["0"]', ""),
    "m_ig_profile_onnx": (' profile: ["0"]', ""),
    "m_ig_on_ensemble": ("instance_group [{ kind: KIND_CPU }]", ""),
    # reshape: the same element count, -1 alike on both sides, positive sizes
    "m_rs_count": ("shape: [5]", "shape: [2, 2]"),
    "m_rs_var_one_side": ("shape: [4]", "shape: [-1]"),
    "m_rs_var_reshape_side": ("shape: [-1]", "shape: [4]"),
    "m_rs_segments": ("shape: [3, -1, 2]", "shape: [2, -1, 3]"),
    "m_rs_var_moved": ("shape: [-1, 4]", "shape: [4, -1]"),
    "m_rs_var_count": ("shape: [-1]", "shape: [-1, -1]"),
    "m_rs_empty_nobatch": ("max_batch_size: 0", "max_batch_size: 4"),
    "m_rs_empty_dims2": ("dims: [2]", "dims: [1]"),
    "m_rs_empty_var": ("dims: [-1]", "dims: [1]"),
    "m_rs_zero": ("[0, 4]", "[1, 4]"),
    "m_rs_negative": ("[-2, -2]", "[2, 2]"),
    "m_rs_output": ("shape: [5]", "shape: [6]"),
    "m_rs_ensemble_count": ("dims: [4] reshape { shape: [5] }", "dims: [5] reshape { shape: [5] }"),
    # ensemble
    "m_en_unused_input": ('input { name: "EXTRA" data_type: TYPE_FP32 dims: [4] }\n', ""),
    "m_en_unused_tensor": ('output_map { key: "AUX" value: "aux" } ', ""),
    "m_en_optimization": ("optimization { input_pinned_memory { enable: true } }", ""),
    "m_en_sched_on_python": ('ensemble_scheduling { step { model_name: "m_en_sched_on_python_a" model_version: -1 '
                             'input_map { key: "IN" value: "IN" } output_map { key: "OUT" value: "OUT" } }\n}', ""),
    "m_en_backend": ('backend: "python"\n', ""),
    "m_en_batch_smaller": ("max_batch_size: 8", "max_batch_size: 4"),
    "m_en_output_twice": [('output_map { key: "OUT" value: "OUT" } }\n}',
                           'output_map { key: "OUT" value: "OUT_B" } }\n}'),
                          ("ensemble_scheduling {", 'output { name: "OUT_B" data_type: TYPE_FP32 dims: [4] }\n'
                                                    "ensemble_scheduling {")],
    "m_en_step_input_unfed": ('input_map { key: "IN" value: "IN" }',
                              'input_map { key: "IN" value: "IN" } input_map { key: "Y" value: "IN" }'),
    "m_en_warmup": ('model_warmup [{ name: "w" batch_size: 1 inputs { key: "IN" value: { data_type: TYPE_FP32 '
                    "dims: [4] zero_data: true } } }]", ""),
    "m_en_bad_output_key": ('key: "NOPE"', 'key: "OUT"'),
    "m_en_version_missing": ("model_version: 3", "model_version: -1"),
    "m_en_bad_input_key": ('input_map { key: "NOPE" value: "IN" } ', ""),
    "m_en_shape_mismatch": ('input { name: "IN" data_type: TYPE_FP32 dims: [4] }',
                            'input { name: "IN" data_type: TYPE_FP32 dims: [3] }'),
    "m_en_type_mismatch": ('input { name: "IN" data_type: TYPE_FP32', 'input { name: "IN" data_type: TYPE_INT32'),
    "m_en_nonbatch_step_shape": [('input { name: "IN" data_type: TYPE_FP32 dims: [4] }',
                                  'input { name: "IN" data_type: TYPE_FP32 dims: [3] }'),
                                 ('output { name: "OUT" data_type: TYPE_FP32 dims: [4] }',
                                  'output { name: "OUT" data_type: TYPE_FP32 dims: [3] }')],
    "m_rs_ensemble_shape": (" reshape { shape: [4] }", ""),
    # naming: the folder's name; a backend that serves the platform; a backend where none can be inferred
    "m_nm_differs": ('name: "m_nm_other"', 'name: "m_nm_differs"'),
    "m_nm_pair_trt_onnxrt": ('backend: "onnxruntime"', 'backend: "tensorrt"'),
    "m_nm_pair_onnx_pytorch": ('backend: "pytorch"', 'backend: "onnxruntime"'),
    "m_nm_pair_savedmodel_trt": ('backend: "tensorrt"', 'backend: "tensorflow"'),
    "m_nm_pair_libtorch_tf": ('backend: "tensorflow"', 'backend: "pytorch"'),
    "m_nm_pair_graphdef_onnxrt": ('backend: "onnxruntime"', 'backend: "tensorflow"'),
    "m_nm_pair_onnx_trt": ('backend: "tensorrt"', 'backend: "onnxruntime"'),
    "m_nm_unknown_platform": ('platform: "pytorch"', 'backend: "pytorch"'),
    "m_nm_platform_python": ('platform: "python"', 'backend: "python"'),
    "m_nm_custom_filename": ("max_batch_size: 0", 'backend: "python"\nmax_batch_size: 0'),
    "m_nm_hidden_first": ("max_batch_size: 0", 'backend: "python"\nmax_batch_size: 0'),
    "m_nm_onnx_without_file": ("max_batch_size: 0", 'backend: "python"\nmax_batch_size: 0'),
}
CASES = with_fixes(CASES, FIXES)
