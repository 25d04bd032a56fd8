"""The native ONNX Runtime backend's rules (Triton 2.51), as plain functions on plain data.

Both the static validator (:func:`toolkit.repository.validate.tensors.check_against`) and tritonkit's
Python-based ``onnxruntime`` backend (``toolkit/serve/backends/onnxruntime/model.py``, at load and in
``auto_complete_config``) call these, so what the validator accepts is what the embedded server loads,
and what NVIDIA's container loads too. The backend's python stub imports this module from tritonkit's
own environment; so it imports nothing but the standard library.

A config is a dict in Triton's JSON form (what a python backend receives, or ``MessageToDict`` of the
``ModelConfig`` protobuf: int64 numbers may be strings, default values may be absent). A graph tensor
is a :class:`GraphTensor`: its config data type (``TYPE_FP32``) and its shape, -1 for a symbolic or
unknown dimension.

What the native backend does, and so what these rules say:

- auto-complete (unless the config lists inputs and outputs already): every input and output with a
  dynamic first dimension means the model batches: ``max_batch_size`` 0 becomes Triton's
  ``default-max-batch-size`` (4) and, above 1, ``dynamic_batching`` is switched on when no scheduler
  is set; a model that cannot batch keeps ``max_batch_size`` 0 and one set above 0 is refused; absent
  inputs or outputs are copied from the graph (batch dimension dropped; a tensor left without dims
  gets ``dims: [1]``, plus ``reshape { shape: [] }`` when batching);
- at load: the sequence batcher's control tensors must be graph inputs of shape [1] (after the batch
  dimension) and of the control's type; the graph's input count must equal the config's non-optional
  inputs plus batch inputs, control tensors and state tensors; ``optional`` inputs are refused when
  ``max_batch_size`` > 0; names, then data types, then dims: an input's dim may be fixed where the
  graph's is symbolic, an output's dims must equal the graph's exactly; with ``max_batch_size`` > 0
  the graph's first dimension must be symbolic; a rank-0 (scalar) graph tensor takes dims that are
  all 1 (``dims: [1]``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# Triton's default `--backend-config=default-max-batch-size` (core backend_model.cc).
DEFAULT_MAX_BATCH = 4
ERROR = "error"
WARNING = "warning"

# The only data types the native backend maps between ONNX and the config; anything else (bfloat16,
# complex, float8) is TYPE_INVALID to it.
_ONNX_ELEM = {
    1: "TYPE_FP32", 2: "TYPE_UINT8", 3: "TYPE_INT8", 4: "TYPE_UINT16", 5: "TYPE_INT16", 6: "TYPE_INT32",
    7: "TYPE_INT64", 8: "TYPE_STRING", 9: "TYPE_BOOL", 10: "TYPE_FP16", 11: "TYPE_FP64", 12: "TYPE_UINT32",
    13: "TYPE_UINT64",
}
NATIVE_TYPES = frozenset(_ONNX_ELEM.values())
_ORT_NAMES = {
    "float": "TYPE_FP32", "uint8": "TYPE_UINT8", "int8": "TYPE_INT8", "uint16": "TYPE_UINT16",
    "int16": "TYPE_INT16", "int32": "TYPE_INT32", "int64": "TYPE_INT64", "string": "TYPE_STRING",
    "bool": "TYPE_BOOL", "float16": "TYPE_FP16", "double": "TYPE_FP64", "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64",
}
_CONTROL_KINDS = ("CONTROL_SEQUENCE_START", "CONTROL_SEQUENCE_END", "CONTROL_SEQUENCE_READY",
                  "CONTROL_SEQUENCE_CORRID")


@dataclass(frozen=True)
class GraphTensor:
    """One graph input or output: config data type (``TYPE_INVALID`` if none) and full shape."""

    name: str
    data_type: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Finding:
    """One rule broken: where (config field), what, how to fix; ``severity`` error or warning."""

    field: str
    message: str
    fix: str
    severity: str = ERROR

    def line(self) -> str:
        return f"{self.field}: {self.message}; {self.fix}"

    def subject(self) -> str:
        """What the finding is about, in words: ``input 'x'`` for ``input[x].dims``, else the field."""
        m = re.match(r"^(?:sequence_batching\.)?(input|output|control_input)\[(.*)\]", self.field)
        if not m:
            return self.field
        return f"{m.group(1).replace('control_input', 'control tensor')} '{m.group(2)}'"


class AutoCompleteRefused(ValueError):
    """The config contradicts the graph in a way auto-complete refuses (carries the :class:`Finding`)."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.line())
        self.finding = finding


def type_from_onnx(elem_type: int) -> str:
    """Config data type of an ONNX element type, as the native backend maps it."""
    return _ONNX_ELEM.get(int(elem_type), "TYPE_INVALID")


def type_from_ort(ort_type: str) -> str:
    """Config data type of an ONNX Runtime type string (``tensor(float)``)."""
    return _ORT_NAMES.get(str(ort_type).removeprefix("tensor(").removesuffix(")"), "TYPE_INVALID")


def native_type(config_type: str | None) -> str:
    """``config_type`` when the native backend supports it, else ``TYPE_INVALID``."""
    return config_type if config_type in NATIVE_TYPES else "TYPE_INVALID"


def graph_tensor(name: str, data_type: str | None, shape: Iterable[Any] | None) -> GraphTensor:
    """A :class:`GraphTensor` from loose parts: symbolic dims (strings, None, <= 0) become -1, an
    unknown shape rank 0 (what ONNX Runtime reports for it)."""
    dims = tuple(int(d) if isinstance(d, int) and d > 0 else -1 for d in (shape or ()))
    return GraphTensor(name, native_type(data_type), dims)


def shown(dims: Iterable[Any]) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


# -- reading the config dict ------------------------------------------------------------------------------
def max_batch(config: dict) -> int:
    try:
        return int(config.get("max_batch_size", 0) or 0)
    except (TypeError, ValueError):
        return 0


def ios(config: dict, key: str) -> list[dict]:
    value = config.get(key) or []
    return [io for io in value if isinstance(io, dict)]


def _ints(values: Any) -> list[int]:
    return [int(v) for v in values or []]


def model_dims(io: dict) -> list[int]:
    """The shape the graph sees (without batch): the reshape when one is given, else dims."""
    reshape = io.get("reshape")
    return _ints(reshape.get("shape")) if isinstance(reshape, dict) else _ints(io.get("dims"))


def _flag(io: dict, key: str) -> bool:
    value = io.get(key, False)
    return value is True or str(value).lower() == "true"


def sequence_controls(config: dict) -> list[tuple[str, str, str]]:
    """(kind, tensor name, data type) of each control tensor the sequence batcher feeds, in the
    order the native backend checks them."""
    seq = config.get("sequence_batching")
    if not isinstance(seq, dict):
        return []
    found: dict[str, tuple[str, str]] = {}
    for ci in seq.get("control_input") or []:
        for c in ci.get("control") or []:
            kind = str(c.get("kind", "CONTROL_SEQUENCE_START"))
            if kind in found:
                continue
            if kind == "CONTROL_SEQUENCE_CORRID":
                dtype = str(c.get("data_type", "TYPE_INVALID"))
            elif c.get("int32_false_true"):
                dtype = "TYPE_INT32"
            elif c.get("fp32_false_true"):
                dtype = "TYPE_FP32"
            else:
                dtype = "TYPE_BOOL"
            found[kind] = (str(ci.get("name", "")), dtype)
    return [(k, *found[k]) for k in _CONTROL_KINDS if k in found]


def _states(config: dict) -> list[dict]:
    seq = config.get("sequence_batching")
    return [s for s in (seq.get("state") or []) if isinstance(s, dict)] if isinstance(seq, dict) else []


# -- auto-complete ----------------------------------------------------------------------------------------
def _batch_blocker(tensors: Sequence[GraphTensor]) -> GraphTensor | None:
    """The first tensor whose first dimension is not symbolic (so the model cannot batch)."""
    return next((t for t in tensors if not t.shape or t.shape[0] != -1), None)


def _filled_io(t: GraphTensor, mbs: int) -> dict:
    dims = list(t.shape[1:] if mbs > 0 else t.shape)
    io: dict[str, Any] = {"name": t.name, "data_type": t.data_type, "dims": dims or [1]}
    if not dims and mbs > 0:
        io["reshape"] = {"shape": []}
    return io


def auto_complete(config: dict, inputs: Sequence[GraphTensor], outputs: Sequence[GraphTensor],
                  src: str = "the ONNX graph", default_max_batch: int = DEFAULT_MAX_BATCH) -> tuple[dict, list[str]]:
    """(the config as Triton's auto-complete leaves it, what it filled in, one phrase each).

    Raises:
        AutoCompleteRefused: ``max_batch_size`` > 0 on a graph that cannot batch.
    """
    cfg = copy.deepcopy(config)
    n_in = len(ios(cfg, "input")) + len(ios(cfg, "batch_input"))
    n_out = len(ios(cfg, "output"))
    if n_in and n_out:
        return cfg, []
    filled: list[str] = []
    mbs = max_batch(cfg)
    blocker = _batch_blocker([*inputs, *outputs])
    if blocker is None:
        if mbs == 0:
            mbs = max(default_max_batch, 0)
            cfg["max_batch_size"] = mbs
            filled.append(f"max_batch_size {mbs}")
        if mbs > 1 and "sequence_batching" not in cfg and "dynamic_batching" not in cfg:
            cfg["dynamic_batching"] = {}
            filled.append("dynamic_batching")
    elif mbs != 0:
        raise AutoCompleteRefused(Finding(
            "max_batch_size", f"max_batch_size {mbs} but {src} cannot batch: {blocker.name!r} has shape "
            f"{shown(blocker.shape)}, not a dynamic (-1) first dimension, so Triton's auto-complete refuses "
            "the model", "set max_batch_size: 0, or export with a dynamic first dimension on every input and output"))
    if n_in == 0:
        cfg["input"] = [_filled_io(t, mbs) for t in inputs]
        if inputs:
            filled.append("inputs " + ", ".join(t.name for t in inputs))
    if n_out == 0:
        cfg["output"] = [_filled_io(t, mbs) for t in outputs]
        filled.append("outputs " + ", ".join(t.name for t in outputs))
    return cfg, filled


# -- load ---------------------------------------------------------------------------------------------
def load_findings(config: dict, inputs: Sequence[GraphTensor], outputs: Sequence[GraphTensor],
                  overridable: Sequence[GraphTensor] = (), src: str = "the ONNX graph") -> list[Finding]:
    """Every rule the native backend checks when it loads ``config`` on this graph, in its order.

    ``inputs`` are the graph inputs ONNX Runtime reports (initializers excluded); ``overridable`` the
    initializers it lets a request override. The first error is the one the native backend reports.
    """
    found: list[Finding] = []
    mbs = max_batch(config)
    graph_in = {t.name: t for t in inputs}
    found.extend(_control_findings(config, graph_in, mbs, src))
    if not found:  # a control tensor the graph lacks also breaks the count: said once
        found.extend(_count_findings(config, inputs, src))
    named = {f.field for f in found}
    any_in = {**graph_in, **{t.name: t for t in overridable}}
    batch_outputs = {n for b in ios(config, "batch_output") for n in b.get("target_name") or []}
    for group, declared, graph in (("input", ios(config, "input"), any_in),
                                   ("output", ios(config, "output"), {t.name: t for t in outputs})):
        for io in declared:
            name = str(io.get("name", ""))
            field = f"{group}[{name}]"
            if field in named:
                continue
            found.extend(_tensor_findings(group, io, graph, mbs, src, name in batch_outputs))
    return found


def _control_findings(config: dict, graph_in: dict[str, GraphTensor], mbs: int, src: str) -> list[Finding]:
    out = []
    for kind, name, dtype in sequence_controls(config):
        field = f"sequence_batching.control_input[{name}]"
        t = graph_in.get(name)
        if t is None:
            out.append(Finding(field, f"control tensor {name!r} ({kind}) is not an input of {src} (it has "
                               f"{', '.join(graph_in) or 'none'})", "name a graph input, or add that input to "
                               "the model"))
            continue
        dims = list(t.shape[1:] if mbs > 0 else t.shape)
        if dims != [1]:
            out.append(Finding(field, f"control tensor {name!r} has shape {shown(dims)} in {src}"
                               f"{' (after the batch dimension)' if mbs > 0 else ''}, but a control tensor "
                               "must be [1]", "export the control input with shape [1] (plus the batch dimension)"))
        elif t.data_type != dtype:
            out.append(Finding(field, f"control tensor {name!r} is {t.data_type} in {src} but the {kind} control "
                               f"gives {dtype}", f"make the control give {t.data_type} (e.g. "
                               f"{'int32_false_true' if t.data_type == 'TYPE_INT32' else 'data_type'}), or "
                               f"export the input as {dtype}"))
    return out


def _count_findings(config: dict, inputs: Sequence[GraphTensor], src: str) -> list[Finding]:
    """The native backend's first input check: how many inputs the config accounts for."""
    declared = ios(config, "input")
    optional = {str(io.get("name")) for io in declared if _flag(io, "optional")}
    plain = [str(io.get("name")) for io in declared if not _flag(io, "optional")]
    controls = [name for _, name, _ in sequence_controls(config)]
    batch_in = [n for b in ios(config, "batch_input") for n in b.get("target_name") or []]
    states = [str(s.get("input_name", "")) for s in _states(config)]
    expected = len(plain) + len(ios(config, "batch_input")) + len(controls) + len(states)
    if expected == len(inputs):
        return []
    covered = set(plain) | set(controls) | set(batch_in) | set(states)
    missing = [t.name for t in inputs if t.name not in covered]
    if not declared and missing:
        return [Finding("input", f"config.pbtxt lists no inputs and {src} has {len(inputs)} "
                        f"({', '.join(missing)}); without auto-complete (tritonkit serve --strict-config, "
                        "Triton's --disable-auto-complete-config) nothing fills them in",
                        "list the inputs and outputs (tritonkit repo add does), or serve with auto-complete")]
    for name in missing:
        if name in optional:
            return [Finding(f"input[{name}]", f"input {name!r} is optional, but {src} requires it (only an "
                            "initializer of the graph may be left out)", "remove optional: true")]
    if missing:
        t = next(t for t in inputs if t.name == missing[0])
        dims = list(t.shape[1:] if max_batch(config) > 0 else t.shape)
        return [Finding(f"input[{t.name}]", f"{src} needs input {t.name!r}, which the config does not list",
                        f'add input [{{ name: "{t.name}" data_type: {t.data_type} dims: {shown(dims)} }}]')]
    twice = sorted(set(plain) & set(controls))
    if twice:
        return [Finding(f"input[{twice[0]}]", f"input {twice[0]!r} is also a sequence_batching control tensor, "
                        "which Triton feeds itself, so it is counted twice", "remove it from the inputs")]
    extra = [n for n in plain if n not in {t.name for t in inputs}]
    if extra:
        return [Finding(f"input[{extra[0]}]", f"{src} has no input named {extra[0]!r} (it has "
                        f"{', '.join(t.name for t in inputs) or 'none'})", "use the model's input names")]
    return [Finding("input", f"the config accounts for {expected} inputs (inputs, batch inputs, control and state "
                    f"tensors) but {src} has {len(inputs)}", "make the config's inputs match the graph's")]


def _tensor_findings(group: str, io: dict, graph: dict[str, GraphTensor], mbs: int, src: str,
                     batch_output: bool) -> list[Finding]:
    name = str(io.get("name", ""))
    field = f"{group}[{name}]"
    optional = group == "input" and _flag(io, "optional")
    if optional and mbs != 0:
        return [Finding(field + ".optional", f"input {name!r} is optional, which the ONNX Runtime backend "
                        f"refuses on a model that batches (max_batch_size {mbs})",
                        f"remove input {name!r} from the config (the graph's initializer gives its value), or set "
                        "max_batch_size: 0 and write every tensor's dims in full")]
    t = graph.get(name)
    if t is None:
        return [Finding(field, f"{src} has no {group} named {name!r} (it has {', '.join(sorted(graph)) or 'none'})",
                        f"use the model's {group} names")]
    cfg_type = str(io.get("data_type", "TYPE_INVALID"))
    if cfg_type not in NATIVE_TYPES:
        return [Finding(field + ".data_type", f"data_type {cfg_type} is not one the ONNX Runtime backend supports",
                        f"use one of {', '.join(sorted(NATIVE_TYPES))}")]
    if cfg_type != t.data_type:
        return [Finding(field + ".data_type", f"data_type {cfg_type} but {src} has {t.data_type}",
                        f"set data_type: {t.data_type}")]
    want = model_dims(io)
    if group == "input" and _flag(io, "allow_ragged_batch"):
        if optional:
            return [Finding(field, f"input {name!r} is both optional and ragged, which the ONNX Runtime backend "
                            "refuses", "drop optional: true or allow_ragged_batch")]
        if list(t.shape) != [-1]:
            return [Finding(field + ".allow_ragged_batch", f"ragged input {name!r} needs shape [-1] in {src}, "
                            f"which has {shown(t.shape)}",
                            "export it as a flat [-1] tensor, or drop allow_ragged_batch")]
        return []
    if batch_output:
        return []
    if not t.shape:
        if any(d != 1 for d in want):
            return [Finding(field + ".dims", f"{src} tensor {name!r} is a scalar, so its dims must be all 1, not "
                            f"{shown(want)}", "set dims: [1]")]
        if mbs > 0:
            return [Finding("max_batch_size", f"{src} tensor {name!r} is a scalar: Triton loads the model, but a "
                            "batch of requests cannot be fed to (or read from) a scalar", "set max_batch_size: 0",
                            WARNING)]
        return []
    return _compare_dims(field, name, list(t.shape), want, mbs, group == "output", src)


def _compare_dims(field: str, name: str, shape: list[int], want: list[int], mbs: int, exact: bool,
                  src: str) -> list[Finding]:
    """The native dims rule: batching needs a symbolic first dimension; ranks equal; each graph dim
    equal to the config's (a symbolic graph dim matches anything for an input, only -1 for an output)."""
    full = want
    if mbs > 0:
        if shape[0] != -1:
            return [Finding("max_batch_size", f"{src} fixes the batch dimension of {name!r} at {shape[0]}, so "
                            f"Triton cannot batch it (max_batch_size {mbs}); the ONNX Runtime backend needs a "
                            "dynamic (-1) first dimension", "export with a dynamic batch axis, or set "
                            f"max_batch_size: 0 and dims: {shown(shape)}")]
        full = [-1, *want]
    inner = shape[1:] if mbs > 0 else shape
    if len(full) != len(shape):
        if mbs > 0 and len(want) == len(shape) and len(want) > 1:
            return [Finding(field + ".dims", f"dims {shown(want)} include the batch dimension; with max_batch_size "
                            f"> 0 Triton adds it (model shape {shown(shape)})", f"drop the first dim: dims: "
                            f"{shown(inner)}")]
        return [Finding(field + ".dims", f"dims {shown(want)} have rank {len(want)} but {src} has {shown(inner)} "
                        f"(rank {len(inner)}{', without batch' if mbs > 0 else ''})", f"set dims: {shown(inner)}")]
    for g, c in zip(shape, full):
        if (exact or g != -1) and g != c:
            if g == -1:
                return [Finding(field + ".dims", f"dims {shown(want)} fix a dimension {src} leaves symbolic "
                                f"({shown(inner)}); an output's dims must equal the graph's exactly",
                                f"set dims: {shown(inner)}")]
            return [Finding(field + ".dims", f"dims {shown(want)} differ from {src}'s {shown(inner)}",
                            f"set dims: {shown(inner)}")]
    return []
