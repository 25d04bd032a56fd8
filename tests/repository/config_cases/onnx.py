"""ONNX configuration cases: the native ONNX Runtime backend's auto-complete and load rules (Triton 2.51).

Each model is a tiny graph built with ``onnx.helper`` (Identity or Add nodes), so the declared shapes
are exactly what the case says: a string is a symbolic dimension, an int a fixed one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.repository.config_cases import Case, Edit, with_fixes

FP32, INT32, BOOL = TensorProto.FLOAT, TensorProto.INT32, TensorProto.BOOL
Shape = list[Any]


def graph(inputs: list[tuple[str, int, Shape]], outputs: list[tuple[str, int, Shape]],
          initializers: dict[str, np.ndarray] | None = None, add: bool = False) -> bytes:
    """Serialized ONNX model: output i is Identity of input i (of input 0 when there are fewer), or
    ``x + <first initializer>`` when ``add``; unused inputs stay graph inputs."""
    initializers = initializers or {}
    vi_in = [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs]
    vi_out = [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs]
    if add:
        nodes = [helper.make_node("Add", [inputs[0][0], next(iter(initializers))], [outputs[0][0]])]
    else:
        nodes = [helper.make_node("Identity", [inputs[min(i, len(inputs) - 1)][0]], [o[0]])
                 for i, o in enumerate(outputs)]
    inits = [numpy_helper.from_array(v, name=k) for k, v in initializers.items()]
    g = helper.make_graph(nodes, "case", vi_in, vi_out, initializer=inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def files(data: bytes) -> dict[str, str | bytes]:
    return {"1/model.onnx": data}


BATCHED = files(graph([("x", FP32, ["N", 4])], [("y", FP32, ["N", 4])]))
FIXED_2x3 = files(graph([("x", FP32, [2, 3])], [("y", FP32, [2, 3])]))
SYMBOLIC = files(graph([("x", FP32, ["N", "M"])], [("y", FP32, ["N", "M"])]))
SCALAR = files(graph([("x", FP32, [])], [("y", FP32, [])]))
VECTOR = files(graph([("x", FP32, ["N"])], [("y", FP32, ["N"])]))
FIXED_BATCH = {n: files(graph([("x", FP32, [n, 4])], [("y", FP32, [n, 4])])) for n in (2, 8)}
TWO_OUTPUTS = files(graph([("x", FP32, ["N", 4])], [("y", FP32, ["N", 4]), ("z", FP32, ["N", 4])]))
TWO_INPUTS = files(graph([("x", FP32, ["N", 4]), ("w", FP32, ["N", 4])], [("y", FP32, ["N", 4])]))
RANK3 = files(graph([("x", FP32, ["N", 3, 4])], [("y", FP32, ["N", 3, 4])]))
WITH_BIAS = files(graph([("x", FP32, ["N", 4]), ("b", FP32, [4])], [("y", FP32, ["N", 4])],
                        initializers={"b": np.zeros(4, np.float32)}, add=True))


def with_start(start_type: int = INT32, start_shape: Shape | None = None) -> dict[str, str | bytes]:
    return files(graph([("x", FP32, ["N", 4]), ("START", start_type, start_shape or ["N", 1])],
                       [("y", FP32, ["N", 4])]))


ORT = 'backend: "onnxruntime"\n'
PLAT = 'platform: "onnxruntime_onnx"\n'
IO_B4 = ('input [{ name: "x" data_type: TYPE_FP32 dims: [4] }]\n'
         'output [{ name: "y" data_type: TYPE_FP32 dims: [4] }]\n')
START_INT32 = ('sequence_batching { control_input [{ name: "START" control [{ kind: CONTROL_SEQUENCE_START '
               'int32_false_true: [0, 1] }] }] }\n')
START_BOOL = ('sequence_batching { control_input [{ name: "START" control [{ kind: CONTROL_SEQUENCE_START '
              'bool_false_true: [false, true] }] }] }\n')


def io(group: str, name: str, dims: str, extra: str = "", dtype: str = "TYPE_FP32") -> str:
    return f'{group} [{{ name: "{name}" data_type: {dtype} dims: {dims} {extra}}}]\n'


ACCEPTED = [
    Case("o_autocomplete_backend_only", "onnx", ORT, "accepted",
         "auto-complete fills in max_batch_size 4; dynamic_batching; inputs x; outputs y", BATCHED),
    Case("o_autocomplete_platform_only", "onnx", PLAT, "accepted", "auto-complete fills in inputs x; outputs y",
         FIXED_2x3),
    Case("o_autocomplete_rank1_reshape", "onnx", ORT, "accepted", "fills in max_batch_size 4", VECTOR),
    Case("o_autocomplete_keeps_max_batch", "onnx", ORT + "max_batch_size: 16\n", "accepted",
         "fills in dynamic_batching; inputs x; outputs y", BATCHED),
    Case("o_partial_outputs_filled", "onnx", ORT + "max_batch_size: 8\n" + io("input", "x", "[4]"), "accepted",
         "fills in dynamic_batching; outputs y", BATCHED),
    Case("o_full_batching", "onnx", ORT + "max_batch_size: 4\n" + IO_B4, "accepted", "", BATCHED),
    Case("o_input_fixed_where_graph_symbolic", "onnx",
         ORT + "max_batch_size: 4\n" + io("input", "x", "[3]") + io("output", "y", "[-1]"), "accepted", "", SYMBOLIC),
    Case("o_scalar_dims_one", "onnx", ORT + io("input", "x", "[1]") + io("output", "y", "[1]"), "accepted", "",
         SCALAR),
    Case("o_scalar_batching_loads", "onnx",
         ORT + "max_batch_size: 4\n" + io("input", "x", "[1]") + io("output", "y", "[1]"), "accepted",
         "is a scalar: Triton loads the model", SCALAR),
    Case("o_vector_batched_empty_reshape", "onnx",
         ORT + "max_batch_size: 4\n" + io("input", "x", "[1]", "reshape { shape: [] } ")
         + io("output", "y", "[1]", "reshape { shape: [] } "), "accepted", "", VECTOR),
    Case("o_fixed_batch_not_batching", "onnx", ORT + io("input", "x", "[8, 4]") + io("output", "y", "[8, 4]"),
         "accepted", "", FIXED_BATCH[8]),
    Case("o_output_subset", "onnx", ORT + "max_batch_size: 4\n" + IO_B4, "accepted", "", TWO_OUTPUTS),
    Case("o_sequence_control_is_model_input", "onnx", ORT + "max_batch_size: 4\n" + START_INT32 + IO_B4,
         "accepted", "", with_start()),
    Case("o_sequence_bool_control", "onnx", ORT + "max_batch_size: 4\n" + START_BOOL + IO_B4, "accepted", "",
         with_start(BOOL)),
    Case("o_autocomplete_fixed_batch_not_batching", "onnx", ORT, "accepted",
         "fills in inputs x; outputs y", FIXED_BATCH[8]),
    Case("o_optional_initializer_not_batching", "onnx",
         ORT + io("input", "x", "[2, 4]") + io("input", "b", "[4]", "optional: true ")
         + io("output", "y", "[2, 4]"), "accepted", "",
         files(graph([("x", FP32, [2, 4]), ("b", FP32, [4])], [("y", FP32, [2, 4])],
                     initializers={"b": np.zeros(4, np.float32)}, add=True))),
]

REFUSED = [
    Case("o_output_symbolic_vs_fixed", "onnx",
         ORT + "max_batch_size: 4\n" + io("input", "x", "[3]") + io("output", "y", "[3]"), "refused",
         "fix a dimension 1/model.onnx leaves symbolic", SYMBOLIC),
    Case("o_output_fixed_vs_variable", "onnx",
         ORT + "max_batch_size: 4\n" + io("input", "x", "[4]") + io("output", "y", "[-1]"), "refused",
         "dims [-1] differ from 1/model.onnx's [4]", BATCHED),
    Case("o_input_variable_vs_fixed", "onnx",
         ORT + "max_batch_size: 4\n" + io("input", "x", "[-1]") + io("output", "y", "[4]"), "refused",
         "dims [-1] differ from 1/model.onnx's [4]", BATCHED),
    Case("o_optional_input_batching", "onnx",
         ORT + "max_batch_size: 4\n" + io("input", "x", "[4]") + io("input", "b", "[4]", "optional: true ")
         + io("output", "y", "[4]"), "refused", "refuses on a model that batches", WITH_BIAS),
    Case("o_optional_but_required", "onnx",
         ORT + io("input", "x", "[2, 3]", "optional: true ") + io("output", "y", "[2, 3]"), "refused",
         "is optional, but 1/model.onnx requires it", FIXED_2x3),
    Case("o_fixed_batch_above_max", "onnx", ORT + "max_batch_size: 4\n" + IO_B4, "refused",
         "fixes the batch dimension of 'x' at 8", FIXED_BATCH[8]),
    Case("o_fixed_batch_below_max", "onnx", ORT + "max_batch_size: 4\n" + IO_B4, "refused",
         "fixes the batch dimension of 'x' at 2", FIXED_BATCH[2]),
    Case("o_autocomplete_max_batch_unbatchable", "onnx", ORT + "max_batch_size: 4\n", "refused",
         "cannot batch", FIXED_2x3),
    Case("o_partial_contradicting", "onnx", ORT + "max_batch_size: 4\n" + io("input", "x", "[5]"), "refused",
         "dims [5] differ from 1/model.onnx's [4]", BATCHED),
    Case("o_scalar_dims_two", "onnx", ORT + io("input", "x", "[2]") + io("output", "y", "[1]"), "refused",
         "is a scalar, so its dims must be all 1", SCALAR),
    Case("o_dtype_mismatch", "onnx",
         ORT + "max_batch_size: 4\n" + io("input", "x", "[4]", dtype="TYPE_FP16") + io("output", "y", "[4]"),
         "refused", "data_type TYPE_FP16 but 1/model.onnx has TYPE_FP32", BATCHED),
    Case("o_missing_input", "onnx", ORT + "max_batch_size: 4\n" + IO_B4, "refused",
         "1/model.onnx needs input 'w', which the config does not list", TWO_INPUTS),
    Case("o_unknown_output", "onnx",
         ORT + "max_batch_size: 4\n" + io("input", "x", "[4]") + io("output", "logits", "[4]"), "refused",
         "has no output named 'logits'", BATCHED),
    Case("o_rank_mismatch", "onnx",
         ORT + "max_batch_size: 4\n" + io("input", "x", "[12]") + io("output", "y", "[3, 4]"), "refused",
         "dims [12] have rank 1 but 1/model.onnx has [3, 4]", RANK3),
    Case("o_batch_dim_in_dims", "onnx",
         ORT + "max_batch_size: 4\n" + io("input", "x", "[-1, 4]") + io("output", "y", "[4]"), "refused",
         "include the batch dimension", BATCHED),
    Case("o_control_not_model_input", "onnx", ORT + "max_batch_size: 4\n" + START_INT32 + IO_B4, "refused",
         "control tensor 'START' (CONTROL_SEQUENCE_START) is not an input", BATCHED),
    Case("o_control_also_listed_as_input", "onnx",
         ORT + "max_batch_size: 4\n" + START_INT32 + IO_B4.replace("}]\noutput", '}, { name: "START" data_type: '
                                                                 'TYPE_INT32 dims: [1] }]\noutput'),
         "refused", "is also a sequence_batching control tensor", with_start()),
    Case("o_control_wrong_shape", "onnx", ORT + "max_batch_size: 4\n" + START_INT32 + IO_B4, "refused",
         "control tensor 'START' has shape [2]", with_start(start_shape=["N", 2])),
    Case("o_control_wrong_type", "onnx", ORT + "max_batch_size: 4\n" + START_BOOL + IO_B4, "refused",
         "control tensor 'START' is TYPE_INT32 in 1/model.onnx but the CONTROL_SEQUENCE_START control gives "
         "TYPE_BOOL", with_start()),
]

CASES: list[Case] = ACCEPTED + REFUSED

# Each refused case's config after doing what the validator's fix says (``Case.fixed``).
FIXES: dict[str, Edit | list[Edit]] = {
    "o_output_symbolic_vs_fixed": ('"y" data_type: TYPE_FP32 dims: [3]', '"y" data_type: TYPE_FP32 dims: [-1]'),
    "o_output_fixed_vs_variable": ("dims: [-1]", "dims: [4]"),
    "o_input_variable_vs_fixed": ("dims: [-1]", "dims: [4]"),
    "o_optional_input_batching": ('input [{ name: "b" data_type: TYPE_FP32 dims: [4] optional: true }]\n', ""),
    "o_optional_but_required": ("optional: true ", ""),
    "o_fixed_batch_above_max": [("max_batch_size: 4", "max_batch_size: 0"), ("dims: [4]", "dims: [8, 4]"),
                                ("dims: [4]", "dims: [8, 4]")],
    "o_fixed_batch_below_max": [("max_batch_size: 4", "max_batch_size: 0"), ("dims: [4]", "dims: [2, 4]"),
                                ("dims: [4]", "dims: [2, 4]")],
    "o_autocomplete_max_batch_unbatchable": ("max_batch_size: 4", "max_batch_size: 0"),
    "o_partial_contradicting": ("dims: [5]", "dims: [4]"),
    "o_scalar_dims_two": ("dims: [2]", "dims: [1]"),
    "o_dtype_mismatch": ("TYPE_FP16", "TYPE_FP32"),
    "o_unknown_output": ('"logits"', '"y"'),
    "o_missing_input": ("}]\noutput", '}]\ninput [{ name: "w" data_type: TYPE_FP32 dims: [4] }]\noutput'),
    "o_rank_mismatch": ("dims: [12]", "dims: [3, 4]"),
    "o_batch_dim_in_dims": ("dims: [-1, 4]", "dims: [4]"),
    "o_control_also_listed_as_input": (', { name: "START" data_type: TYPE_INT32 dims: [1] }', ""),
    "o_control_wrong_type": ("bool_false_true: [false, true]", "int32_false_true: [0, 1]"),
}
CASES = with_fixes(CASES, FIXES)
