"""Triton 2.51 core rules for how requests are scheduled and batched.

Each rule refuses what Triton's core refuses when it loads the model (model config validation,
batch input/output validation, the sequence and dynamic batchers, the version policy), so a
repository that passes here does not fail to load for these reasons.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from toolkit.repository.validate import fs
from toolkit.repository.validate.config import CONFIG
from toolkit.repository.validate.problem import Context
from toolkit.repository.validate.tensors import dtype_name, shown

BATCH_INPUT_KINDS = ("BATCH_ELEMENT_COUNT", "BATCH_ACCUMULATED_ELEMENT_COUNT",
                     "BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO", "BATCH_MAX_ELEMENT_COUNT_AS_SHAPE",
                     "BATCH_ITEM_SHAPE", "BATCH_ITEM_SHAPE_FLATTEN")
BATCH_INPUT_TYPES = ("TYPE_INT32", "TYPE_FP32")
BOOL_CONTROLS = ("CONTROL_SEQUENCE_START", "CONTROL_SEQUENCE_END", "CONTROL_SEQUENCE_READY")
CORRID = "CONTROL_SEQUENCE_CORRID"
CORRID_TYPES = ("TYPE_UINT64", "TYPE_INT64", "TYPE_UINT32", "TYPE_INT32", "TYPE_STRING")
VALUE_FIELDS = ("int32_false_true", "fp32_false_true", "bool_false_true")
STRATEGY_PARAMETER = "TRITON_BATCH_STRATEGY_PATH"
INITIAL_STATE_FOLDER = "initial_state"
DELAY = 1  # ModelQueuePolicy.TimeoutAction.DELAY
# Bytes per element of each fixed-size type (TYPE_STRING has none: Triton takes the file as it is).
_TYPE_BYTES = {"TYPE_BOOL": 1, "TYPE_UINT8": 1, "TYPE_INT8": 1, "TYPE_UINT16": 2, "TYPE_INT16": 2, "TYPE_FP16": 2,
               "TYPE_BF16": 2, "TYPE_UINT32": 4, "TYPE_INT32": 4, "TYPE_FP32": 4, "TYPE_UINT64": 8, "TYPE_INT64": 8,
               "TYPE_FP64": 8}


def _mc() -> Any:
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2


def check_scheduling(ctx: Context, cfg: Any, kind: str | None, model_dir: Path | None = None) -> None:
    """batch_input/batch_output, sequence and dynamic batching, transaction policy, response cache,
    version policy. ``model_dir`` (the model folder) lets initial-state data files be checked."""
    check_max_batch(ctx, cfg)
    check_batch_io(ctx, cfg)
    check_dynamic_batching(ctx, cfg)
    if cfg.HasField("sequence_batching"):
        check_sequence_controls(ctx, cfg.sequence_batching)
        check_sequence_strategy(ctx, cfg)
        check_states(ctx, cfg, model_dir)
    check_strategy_library(ctx, cfg, kind)
    check_cache_and_transaction(ctx, cfg)
    check_version_policy(ctx, cfg)


def check_max_batch(ctx: Context, cfg: Any) -> None:
    if cfg.max_batch_size < 0:
        ctx.error(CONFIG, "max_batch_size", f"max_batch_size is {cfg.max_batch_size}; it must be 0 (no batching) or "
                  "positive", "set max_batch_size: 0, or the largest batch the model takes")


def _preferred(ctx: Context, field: str, sizes: Any, mbs: int) -> None:
    """Preferred batch sizes must lie in [1, max_batch_size] (checked by Triton for both batchers)."""
    if mbs < 0:
        return  # reported by check_max_batch
    for p in sizes:
        if 1 <= p <= mbs:
            continue
        fix = (f"use sizes from 1 to {mbs}, or raise max_batch_size" if mbs > 0 else
               "remove preferred_batch_size, or set max_batch_size > 0 so the model batches")
        ctx.error(CONFIG, field + ".preferred_batch_size", f"{field} preferred_batch_size {p} is outside "
                  f"[1, max_batch_size={mbs}]", fix)


def check_batch_io(ctx: Context, cfg: Any) -> None:
    """batch_input: a known kind, one source input that the model lists, INT32 or FP32; batch_output:
    one source input, targets that are outputs of the model, each once."""
    mc = _mc()
    inputs = [t.name for t in cfg.input]
    outputs = [t.name for t in cfg.output]
    known = f"the model's inputs: {', '.join(inputs)}" if inputs else "an input the config lists"
    groups = (("batch_input", cfg.batch_input, mc.BatchInput.Kind, BATCH_INPUT_KINDS),
              ("batch_output", cfg.batch_output, mc.BatchOutput.Kind, ("BATCH_SCATTER_WITH_INPUT_SHAPE",)))
    for group, entries, enum, kinds in groups:
        for i, b in enumerate(entries):
            label = ",".join(b.target_name) or str(i)
            field = f"{group}[{label}]"
            kind = enum.Name(b.kind) if b.kind in enum.values() else f"<{b.kind}>"
            if kind not in kinds:
                ctx.error(CONFIG, field + ".kind", f"{group} kind {kind} is unknown to Triton",
                          f"use one of {', '.join(kinds)}")
                continue
            n = len(b.source_input)
            if n != 1:
                ctx.error(CONFIG, field + ".source_input", f"{group} kind {kind} expects 1 source input, got {n}",
                          f"list exactly one of {known}")
            for src in b.source_input:
                if src not in inputs:
                    ctx.error(CONFIG, field + ".source_input", f"{group} source input {src!r} is not an input "
                              "of the model", f"use one of {known}")
            if group == "batch_input":
                dt = dtype_name(b.data_type)
                if dt not in BATCH_INPUT_TYPES:
                    ctx.error(CONFIG, field + ".data_type", f"batch_input data_type {dt} is not allowed (Triton "
                              "fills batch inputs as TYPE_INT32 or TYPE_FP32)", "set data_type: TYPE_INT32 or "
                              "TYPE_FP32, as the model's tensor expects")
                continue
            if not b.target_name:
                ctx.error(CONFIG, field + ".target_name", "batch_output lists no target_name (Triton 2.51's server "
                          "crashes loading such a model)", "name the output(s) it fills in target_name")
            seen: set[str] = set()
            for target in b.target_name:
                if target not in outputs:
                    ctx.error(CONFIG, field + ".target_name", f"batch_output target {target!r} is not an output "
                              "of the model", f"use one of the model's outputs: {', '.join(outputs) or 'none listed'}")
                elif target in seen:
                    ctx.error(CONFIG, field + ".target_name", f"batch_output target {target!r} is listed twice",
                              "list each target output once")
                seen.add(target)


def check_dynamic_batching(ctx: Context, cfg: Any) -> None:
    """Preferred sizes, priority levels and their queue policies, and what preserve_ordering forbids."""
    if not cfg.HasField("dynamic_batching"):
        return
    db = cfg.dynamic_batching
    mbs = cfg.max_batch_size
    _preferred(ctx, "dynamic_batching", db.preferred_batch_size, mbs)
    if mbs == 0 and not db.preferred_batch_size:
        ctx.warn(CONFIG, "dynamic_batching", "dynamic_batching has no effect when max_batch_size is 0",
                 "remove dynamic_batching or set max_batch_size > 0")
    levels = db.priority_levels
    if levels:
        if not 1 <= db.default_priority_level <= levels:
            ctx.error(CONFIG, "dynamic_batching.default_priority_level", f"default_priority_level "
                      f"{db.default_priority_level} is outside [1, priority_levels={levels}]",
                      f"set default_priority_level to a level from 1 to {levels}")
        for key in sorted(db.priority_queue_policy):
            if not 1 <= key <= levels:
                ctx.error(CONFIG, "dynamic_batching.priority_queue_policy", f"priority_queue_policy level {key} is "
                          f"outside [1, priority_levels={levels}]", f"key the policies by levels 1 to {levels}")
    if not db.preserve_ordering:
        return
    if levels > 1:
        ctx.error(CONFIG, "dynamic_batching.priority_levels", f"preserve_ordering allows one priority level, not "
                  f"{levels}", "set priority_levels: 1 (or leave it out), or drop preserve_ordering")
    fix = "use timeout_action: REJECT (or no timeout), or drop preserve_ordering"
    policy = db.default_queue_policy
    if policy.default_timeout_microseconds and policy.timeout_action == DELAY:
        ctx.error(CONFIG, "dynamic_batching.default_queue_policy", "default_queue_policy has timeout_action DELAY "
                  "with a timeout, which preserve_ordering forbids", fix)
    for key in sorted(db.priority_queue_policy):
        policy = db.priority_queue_policy[key]
        if policy.default_timeout_microseconds and policy.timeout_action == DELAY:
            ctx.error(CONFIG, "dynamic_batching.priority_queue_policy", f"priority_queue_policy[{key}] has "
                      "timeout_action DELAY with a timeout, which preserve_ordering forbids", fix)


def check_sequence_controls(ctx: Context, sb: Any) -> None:
    """Named control tensors, each in one entry; one tensor per control kind; START/END/READY give
    exactly one false/true pair, CORRID gives none and an integer or string data_type."""
    kind_name = _mc().ModelSequenceBatching.Control.Kind.Name
    field = "sequence_batching.control_input"
    seen: set[str] = set()
    by_kind: dict[str, list[tuple[str, Any]]] = {}
    for i, entry in enumerate(sb.control_input):
        if not entry.name:
            ctx.error(CONFIG, field, f"sequence_batching control_input {i} has no name",
                      "give it the name of the model input that receives the control")
        elif entry.name in seen:
            ctx.error(CONFIG, field, f"control tensor {entry.name!r} is listed in more than one control_input",
                      "list each control tensor once (one entry may hold several controls)")
        seen.add(entry.name)
        for c in entry.control:
            try:
                kind = kind_name(c.kind)
            except ValueError:
                kind = f"<{c.kind}>"
            by_kind.setdefault(kind, []).append((entry.name, c))
    for kind, controls in by_kind.items():
        if len(controls) > 1:
            names = ", ".join(repr(n) for n, _ in controls)
            ctx.error(CONFIG, field, f"more than one {kind} tensor ({names})", f"keep one {kind} control")
        for name, c in controls:
            _check_control_values(ctx, field, kind, name, c)


def _check_control_values(ctx: Context, field: str, kind: str, name: str, c: Any) -> None:
    given = [f for f in VALUE_FIELDS if len(getattr(c, f))]
    fields = ", ".join(VALUE_FIELDS)
    if kind == CORRID:
        if given:
            ctx.error(CONFIG, field, f"{kind} control of {name!r} must not set {fields}",
                      "remove them; a correlation ID control takes only data_type")
        dt = dtype_name(c.data_type)
        if dt not in CORRID_TYPES:
            ctx.error(CONFIG, field, f"{kind} tensor {name!r} has data_type {dt}, which Triton does not take for a "
                      "correlation ID", f"set data_type to one of {', '.join(CORRID_TYPES)}")
        return
    if kind not in BOOL_CONTROLS:
        return
    if not given:
        ctx.error(CONFIG, field, f"{kind} control of {name!r} sets none of {fields}",
                  "give the false and true values, e.g. int32_false_true: [0, 1]")
    elif len(given) > 1:
        ctx.error(CONFIG, field, f"{kind} control of {name!r} sets more than one of {fields}",
                  f"keep one of {', '.join(given)}")
    else:
        n = len(getattr(c, given[0]))
        if n != 2:
            ctx.error(CONFIG, field, f"{kind} control of {name!r}: {given[0]} has {n} value{'s' * (n != 1)}",
                      f"give exactly 2 values, false then true, e.g. {given[0]}: "
                      f"{'[false, true]' if given[0] == 'bool_false_true' else '[0, 1]'}")


def check_sequence_strategy(ctx: Context, cfg: Any) -> None:
    sb = cfg.sequence_batching
    if sb.HasField("oldest"):
        _preferred(ctx, "sequence_batching.oldest", sb.oldest.preferred_batch_size, cfg.max_batch_size)
    if sb.HasField("direct"):
        u = sb.direct.minimum_slot_utilization
        if not 0.0 <= u <= 1.0:
            ctx.error(CONFIG, "sequence_batching.direct.minimum_slot_utilization", f"sequence_batching.direct "
                      f"minimum_slot_utilization {u:g} is outside [0, 1]", "use a fraction from 0 to 1 (or leave "
                      "it out)")


def check_states(ctx: Context, cfg: Any, model_dir: Path | None) -> None:
    """Implicit states: at most one initial state each, matching the state's type and dims, with data."""
    with_initial: set[str] = set()
    gpu_only = bool(cfg.instance_group) and all(g.kind == 1 for g in cfg.instance_group)  # KIND_GPU
    for st in cfg.sequence_batching.state:
        field = f"sequence_batching.state[{st.input_name}]"
        if st.use_growable_memory and not (gpu_only and st.use_same_buffer_for_input_output):
            ctx.warn(CONFIG, field + ".use_growable_memory", "use_growable_memory works only on KIND_GPU instances "
                     "with use_same_buffer_for_input_output: true; otherwise every sequence fails at its first "
                     "request", "run the model on KIND_GPU instances with use_same_buffer_for_input_output: true, "
                     "or set use_growable_memory: false")
        n = len(st.initial_state)
        if n > 1:
            ctx.error(CONFIG, field + ".initial_state", f"state {st.input_name!r} has {n} initial_state entries; "
                      "Triton takes at most one", "keep one initial_state")
        if n != 1:
            continue
        _check_initial_state(ctx, field + ".initial_state", st, st.initial_state[0], model_dir)
        if st.input_name in with_initial:
            ctx.error(CONFIG, field + ".initial_state", f"state input {st.input_name!r} has an initial_state more "
                      "than once (in two states)", "give each state its own input_name")
        with_initial.add(st.input_name)


def _check_initial_state(ctx: Context, field: str, st: Any, init: Any, model_dir: Path | None) -> None:
    name = st.input_name
    want, have = dtype_name(st.data_type), dtype_name(init.data_type)
    if have != want:
        ctx.error(CONFIG, field + ".data_type", f"initial_state data_type {have} differs from the state's {want}",
                  f"set data_type: {want}")
    if not init.name:
        ctx.error(CONFIG, field + ".name", f"initial_state of state {name!r} has no name",
                  'give it a name, e.g. name: "initial"')
    dims, sdims = list(init.dims), list(st.dims)
    sized = True
    if len(dims) != len(sdims):
        sized = False
        ctx.error(CONFIG, field + ".dims", f"initial_state dims {shown(dims)} have rank {len(dims)} but state "
                  f"{name!r} dims {shown(sdims)} have rank {len(sdims)}", "give initial_state the state's dims, "
                  "with a concrete size for each -1")
    elif any(d == -1 for d in dims):
        sized = False
        ctx.error(CONFIG, field + ".dims", f"initial_state dims {shown(dims)} of state {name!r} have a variable "
                  "(-1) size", "give a concrete size for each dimension")
    elif any(s != -1 and d != s for d, s in zip(dims, sdims)):
        ctx.error(CONFIG, field + ".dims", f"initial_state dims {shown(dims)} differ from state {name!r} dims "
                  f"{shown(sdims)}", "use the state's sizes (any size where the state has -1)")
    which = init.WhichOneof("state_data")
    if which is None:
        ctx.error(CONFIG, field, f"initial_state of state {name!r} sets neither zero_data nor data_file",
                  "set zero_data: true, or data_file naming a file in <model>/initial_state/")
    elif which == "data_file" and model_dir is not None:
        _check_state_file(ctx, field + ".data_file", init, name, model_dir, sized and all(d >= 0 for d in dims))


def _check_state_file(ctx: Context, field: str, init: Any, name: str, model_dir: Path, sized: bool) -> None:
    rel = f"{INITIAL_STATE_FOLDER}/{init.data_file}"
    bad = fs.unsafe_relative(init.data_file)
    path = model_dir / INITIAL_STATE_FOLDER / init.data_file
    if bad or (os.path.lexists(path) and not fs.inside(os.path.realpath(model_dir), path)):
        ctx.error(CONFIG, field, f"initial_state data file {init.data_file!r} "
                  f"{bad or 'resolves outside the model folder'}", "keep it in <model>/initial_state/")
        return
    k = fs.kind(path)
    if k == "missing":
        ctx.error(rel, field, f"initial_state data file {rel!r} is missing",
                  "put the file in <model>/initial_state/, or use zero_data: true")
        return
    if k != "file":
        ctx.error(rel, field, f"initial_state data file {rel!r} is not a file ({k})", "make it a regular file")
        return
    dt = dtype_name(init.data_type)
    size = _TYPE_BYTES.get(dt)
    if not sized or size is None:
        return
    need = math.prod(init.dims) * size
    have = path.stat().st_size
    if have < need:
        ctx.error(rel, field, f"initial_state data file {rel!r} holds {have} bytes but state {name!r} needs {need} "
                  f"({shown(init.dims)} of {dt})", f"write {need} bytes of raw {dt} values")


def check_strategy_library(ctx: Context, cfg: Any, kind: str | None) -> None:
    """A custom batching library: not with the sequence batcher, and present where it is named."""
    if kind == "ensemble" or STRATEGY_PARAMETER not in cfg.parameters:
        return
    path = cfg.parameters[STRATEGY_PARAMETER].string_value
    field = f"parameters[{STRATEGY_PARAMETER}]"
    if cfg.HasField("sequence_batching"):
        ctx.error(CONFIG, field, f"{STRATEGY_PARAMETER} cannot be used with sequence_batching",
                  "remove the parameter; the sequence batcher has its own strategy")
    elif os.path.isabs(path) and fs.kind(Path(path)) == "missing":
        ctx.error(CONFIG, field, f"{STRATEGY_PARAMETER} {path!r} does not exist (on this machine)",
                  "point it at the custom batching library's .so on the server, or remove the parameter")


def check_cache_and_transaction(ctx: Context, cfg: Any) -> None:
    if not cfg.response_cache.enable:
        return
    fix = "set response_cache { enable: false } or remove it"
    if cfg.HasField("sequence_batching"):
        ctx.error(CONFIG, "response_cache", "response_cache cannot be enabled with sequence_batching", fix)
    if cfg.model_transaction_policy.decoupled:
        ctx.error(CONFIG, "response_cache", "response_cache cannot be enabled on a decoupled model", fix)


def check_version_policy(ctx: Context, cfg: Any) -> None:
    """Policies that select no version at all (Triton then refuses the model)."""
    choice = cfg.version_policy.WhichOneof("policy_choice")
    if choice == "specific" and not cfg.version_policy.specific.versions:
        ctx.error(CONFIG, "version_policy", "version_policy specific lists no versions, so Triton loads none",
                  "list the versions to serve, e.g. specific { versions: [1] }")
    elif choice == "latest" and cfg.version_policy.latest.num_versions == 0:
        ctx.error(CONFIG, "version_policy", "version_policy latest num_versions is 0, so Triton loads no version",
                  "set num_versions: 1 (or more)")
