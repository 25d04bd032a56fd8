"""Tensor-level rules: dims and dtypes (against the model file), batching, labels, warm-up, plans."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from contract.fileio import sha256_of_regular
from toolkit.gpus import gpu_visible
from toolkit.repository.validate import fs
from toolkit.repository.validate.artifacts import MAX_HASH_BYTES, Artifact, Tensor, find_plan_record, plan_artifact
from toolkit.repository.validate.config import CONFIG
from toolkit.repository.validate.layout import ModelFile
from toolkit.repository.validate.problem import Context

MAX_LABEL_BYTES = 64 * 1024 * 1024
MAX_ELEMENTS = 2**31 - 1


def dtype_name(value: int) -> str:
    from tritonclient.grpc import model_config_pb2 as mc

    try:
        return mc.DataType.Name(value)
    except ValueError:
        return f"<{value}>"


def shown(dims: Any) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


def model_shape(t: Any) -> list[int]:
    """What the model sees (without batch): the reshape when one is given, else dims."""
    return list(t.reshape.shape) if t.HasField("reshape") else list(t.dims)


def check_io_config(ctx: Context, cfg: Any, kind: str | None) -> None:
    """Rules the config must meet whatever the model file says."""
    # An ONNX model's auto-complete is predicted from its graph (check_against says what it fills in).
    if not cfg.input and not cfg.output and kind not in ("ensemble", "onnxruntime_onnx"):
        ctx.warn(CONFIG, "input", "no inputs or outputs are listed; the model relies on Triton's auto-complete, "
                 "which `tritonkit serve --strict-config` turns off", "list them (tritonkit repo add reads them "
                 "from the model) so the model does not depend on auto-complete")
    for group, tensors in (("input", cfg.input), ("output", cfg.output)):
        seen: set[str] = set()
        for i, t in enumerate(tensors):
            field = f"{group}[{t.name or i}]"
            if not t.name:
                ctx.error(CONFIG, field, f"{group} {i} has no name", "give it the model tensor's name")
            elif t.name in seen:
                ctx.error(CONFIG, field, f"{group} name {t.name!r} is listed twice", "keep one entry per tensor")
            seen.add(t.name)
            if t.data_type == 0:
                ctx.error(CONFIG, field + ".data_type", "data_type is not set (TYPE_INVALID)",
                          "set the model tensor's type, e.g. TYPE_FP32")
            dims = list(t.dims)
            if not dims:
                ctx.error(CONFIG, field + ".dims", "dims is empty",
                          "list the shape without the batch dimension; for a scalar use dims: [1] (with "
                          "max_batch_size > 0, reshape { shape: [] } makes it a scalar)")
            bad = [d for d in dims if d == 0 or d < -1]
            if bad:
                ctx.error(CONFIG, field + ".dims", f"dims {shown(dims)} contain {shown(bad)}; a dimension is a "
                          "positive size or -1 (variable)", "use positive sizes, or -1 for a variable size")
            fixed = [d for d in dims if d > 0]
            if fixed and math.prod(fixed) > MAX_ELEMENTS:
                ctx.error(CONFIG, field + ".dims", f"dims {shown(dims)} hold {math.prod(fixed)} elements per "
                          f"sample, over {MAX_ELEMENTS} (2^31 - 1), which Triton cannot allocate or index",
                          "export the model with realistic sizes (or -1 for a variable size)")
            if t.HasField("reshape"):
                _check_reshape(ctx, field, dims, list(t.reshape.shape), cfg.max_batch_size)
            if group == "input" and t.format in (1, 2) and len(dims) != 3:  # FORMAT_NHWC, FORMAT_NCHW
                ctx.error(CONFIG, field + ".format", f"format needs 3 dims but dims is {shown(dims)}",
                          "remove format or give 3 dims (without batch)")


def _check_reshape(ctx: Context, field: str, dims: list[int], shape: list[int], mbs: int) -> None:
    """Triton's reshape rules: the same element count, and with -1 sizes the same count between each pair."""
    if not shape:  # a scalar the model sees: batching only, and dims must hold one element
        if mbs == 0:
            ctx.error(CONFIG, field + ".reshape", "an empty reshape (a scalar) needs max_batch_size > 0; Triton has "
                      "no scalar tensors without batching", "remove reshape, or set max_batch_size > 0")
        elif -1 in dims or math.prod(dims) != 1:
            held = "a variable number" if -1 in dims else str(math.prod(dims))
            ctx.error(CONFIG, field + ".reshape", f"an empty reshape (a scalar) needs dims of 1 element, but dims "
                      f"{shown(dims)} hold {held}", "set dims: [1], or remove reshape")
        return
    if any(d == 0 or d < -1 for d in shape):
        ctx.error(CONFIG, field + ".reshape", f"reshape {shown(shape)} has a zero or negative size",
                  "use positive sizes or -1")
        return
    var_d, var_s = dims.count(-1), shape.count(-1)
    if var_d == 0 and var_s == 0:
        if math.prod(dims) != math.prod(shape):
            ctx.error(CONFIG, field + ".reshape", f"reshape {shown(shape)} holds {math.prod(shape)} elements but "
                      f"dims {shown(dims)} hold {math.prod(dims)}",
                      "make both shapes hold the same number of elements")
    elif (var_d == 0) != (var_s == 0):
        ctx.error(CONFIG, field + ".reshape", f"only one of dims {shown(dims)} and reshape {shown(shape)} has a "
                  "variable (-1) size, so the element counts cannot match", "use -1 on both sides or neither")
    elif var_d != var_s:
        ctx.error(CONFIG, field + ".reshape", f"dims {shown(dims)} have {var_d} variable (-1) sizes but reshape "
                  f"{shown(shape)} has {var_s}", "give both the same number of -1 sizes")
    elif _parts(dims) != _parts(shape):
        ctx.error(CONFIG, field + ".reshape", f"between their -1 sizes dims {shown(dims)} hold "
                  f"{shown(_parts(dims))} elements but reshape {shown(shape)} holds {shown(_parts(shape))}",
                  "make the fixed sizes between -1s multiply to the same counts on both sides")


def _parts(dims: list[int]) -> list[int]:
    """Element counts of the runs of fixed sizes around each -1 (``[2, 4, -1, 6]`` -> ``[8, 6]``)."""
    out, run = [], 1
    for d in dims:
        if d == -1:
            out.append(run)
            run = 1
        else:
            run *= d
    return out + [run]


def check_against(ctx: Context, cfg: Any, art: Artifact) -> None:
    """Names, dtypes and dims of the config against what the model file declares.

    An ONNX graph is judged by the native ONNX Runtime backend's own rules (:mod:`onnx_rules`, which
    tritonkit's Python-based backend runs at load too), after Triton's auto-complete; a plan record by
    name, dtype and dims.
    """
    if art.record is None:
        _check_onnx(ctx, cfg, art)
        return
    mbs = cfg.max_batch_size
    src = art.source
    by_name = {t.name: t for t in art.inputs}
    for kind, declared, model_side in (("input", cfg.input, by_name), ("output", cfg.output,
                                                                      {t.name: t for t in art.outputs})):
        for t in declared:
            m = model_side.get(t.name)
            if m is None:
                ctx.error(CONFIG, f"{kind}[{t.name}]", f"{src} has no {kind} named {t.name!r} (it has "
                          f"{', '.join(sorted(model_side)) or 'none'})", f"use the model's {kind} names")
                continue
            _compare(ctx, kind, t, m, mbs, src)
        if kind == "input":
            names = {t.name for t in cfg.input}
            for name in by_name:
                if name not in names and cfg.input:
                    ctx.error(CONFIG, f"input[{name}]", f"{src} needs input {name!r}, which the config does not "
                              "list", "add it to the config's inputs (name, data_type, dims)")


def _check_onnx(ctx: Context, cfg: Any, art: Artifact) -> None:
    """Auto-complete as Triton does it (a note says what it fills in), then the native load rules."""
    from google.protobuf.json_format import MessageToDict

    from toolkit.repository.validate import onnx_rules as rules

    config = MessageToDict(cfg, preserving_proto_field_name=True)
    inputs = [rules.graph_tensor(t.name, t.dtype, t.shape) for t in art.inputs]
    outputs = [rules.graph_tensor(t.name, t.dtype, t.shape) for t in art.outputs]
    try:
        completed, filled = rules.auto_complete(config, inputs, outputs, art.source)
    except rules.AutoCompleteRefused as exc:
        ctx.error(CONFIG, exc.finding.field, exc.finding.message, exc.finding.fix)
        return
    if filled:
        ctx.note(CONFIG, "input", f"Triton's auto-complete fills in {'; '.join(filled)} from {art.source}, so "
                 "`tritonkit serve --strict-config` (Triton's --disable-auto-complete-config) refuses this model",
                 "list them in config.pbtxt (tritonkit repo add does) to serve it with --strict-config too")
    overridable = [rules.graph_tensor(t.name, t.dtype, t.shape) for t in art.overridable]
    for f in rules.load_findings(completed, inputs, outputs, overridable, src=art.source):
        (ctx.error if f.severity == rules.ERROR else ctx.warn)(CONFIG, f.field, f.message, f.fix)


def _compare(ctx: Context, group: str, t: Any, m: Tensor, mbs: int, src: str) -> None:
    field = f"{group}[{t.name}]"
    cfg_type = dtype_name(t.data_type)
    if m.dtype and t.data_type and m.dtype != cfg_type:
        ctx.error(CONFIG, field + ".data_type", f"data_type {cfg_type} but {src} has {m.dtype}",
                  f"set data_type: {m.dtype}")
    if m.shape is None:
        return
    want = model_shape(t)
    if any(d == 0 or d < -1 for d in want):
        return  # already reported by check_io_config
    shape = list(m.shape)
    if mbs > 0:
        has_batch = m.shape_has_batch
        if has_batch is None:
            has_batch = len(shape) == len(want) + 1
        if has_batch:
            if not shape:
                ctx.error(CONFIG, "max_batch_size", f"{src} tensor {t.name!r} is a scalar, so it cannot batch",
                          "set max_batch_size: 0")
                return
            if len(want) == len(shape) and len(want) > 1:
                ctx.error(CONFIG, field + ".dims", f"dims {shown(want)} include the batch dimension; with "
                          f"max_batch_size > 0 Triton adds it (model shape {shown(shape)})",
                          f"drop the first dim: dims: {shown(shape[1:])}")
                return
            if shape[0] > 0:
                ctx.error(CONFIG, "max_batch_size", f"{src} fixes the batch dimension of {t.name!r} at {shape[0]}, "
                          f"so Triton cannot batch it (max_batch_size {mbs})",
                          "export with a dynamic batch axis, or set max_batch_size: 0 and give full dims")
                return
            shape = shape[1:]
    if len(want) != len(shape):
        ctx.error(CONFIG, field + ".dims", f"dims {shown(want)} have rank {len(want)} but {src} has "
                  f"{shown(shape)} (rank {len(shape)}{', without batch' if mbs > 0 else ''})",
                  f"set dims: {shown(shape)}")
        return
    for c, d in zip(want, shape):
        if d > 0 and c != d:
            ctx.error(CONFIG, field + ".dims", f"dims {shown(want)} differ from {src}'s {shown(shape)}",
                      f"set dims: {shown(shape)}")
            return


def check_plan(ctx: Context, cfg: Any, mf: ModelFile, model_dir: Path, target: str | None) -> None:
    """Facts from the plan record: dims/dtypes, max batch vs profile, profiles, TensorRT version."""
    from toolkit.repository import releases as tr

    record, where, why = find_plan_record(mf.path, mf.path.parent, model_dir)
    if why:
        ctx.error(where, "plan_record", f"plan record {why}", "rewrite it as a JSON object (tritonkit build does)")
        return
    if record is None:
        ctx.warn(mf.rel, "plan_record", "no plan record (model.plan.json or manifest plan_record), so dims, "
                 "max batch and TensorRT version are unchecked", f"write {Path(mf.rel).name}.json beside the "
                 "plan (tritonkit build does) with tensorrt_version, profiles, inputs, outputs")
        return
    art, notes = plan_artifact(record, where)
    for note in notes:
        ctx.warn(where, "plan_record", note, "rebuild the plan with tritonkit build to rewrite the record")
    mf.artifact = art
    digest = record.get("sha256")
    if isinstance(digest, str):
        actual = sha256_of_regular(mf.path, limit=MAX_HASH_BYTES)
        if actual is not None and actual != digest.lower():
            ctx.error(where, "sha256", f"record is for another plan (sha256 {digest[:12]}..., file has "
                      f"{actual[:12]}...)", "rebuild the plan, or copy the record that came with it")
    mbs = cfg.max_batch_size
    if art.plan_max_batch is not None and mbs > art.plan_max_batch:
        ctx.error(CONFIG, "max_batch_size", f"max_batch_size {mbs} exceeds the plan's profile max batch "
                  f"{art.plan_max_batch} ({where}), so Triton refuses to load it",
                  f"set max_batch_size: {art.plan_max_batch} or rebuild the plan with a profile max >= {mbs}")
    for g in cfg.instance_group:
        for prof in g.profile:
            if not prof.isdigit() or (art.profile_count and int(prof) >= art.profile_count):
                ctx.error(CONFIG, "instance_group.profile", f"profile {prof!r} is not one of the plan's "
                          f"{art.profile_count} profiles", f"use profile numbers 0..{max(art.profile_count - 1, 0)}")
    cc_rec = record.get("compute_capability")
    if mf.cc and cc_rec is not None and str(cc_rec) != mf.cc:
        ctx.error(where, "compute_capability", f"plan was built for compute capability {cc_rec} but "
                  f"cc_model_filenames lists it under {mf.cc}", f"list it under \"{cc_rec}\"")
    if target is None:
        return
    try:
        want = tr.tensorrt_for_release(target)
    except Exception:  # noqa: BLE001 - reported once at the repository level
        return
    have = record.get("tensorrt_version")
    if not isinstance(have, str) or tr.tensorrt_key(have) is None:
        ctx.warn(where, "tensorrt_version", "record does not say which TensorRT built the plan",
                 f"rebuild with TensorRT {want} (the Triton {target} container's) so it is recorded")
        return
    if not tr.same_tensorrt(have, want):
        others = tr.releases_with_tensorrt(have)
        alt = f", or target Triton {', '.join(others)}" if others else ""
        msg = (f"plan built with TensorRT {have} but Triton {target} ships TensorRT {want}; the engine "
               "will not deserialize")
        fix = f"rebuild the plan with TensorRT {want}{alt}"
        if record.get("version_compatible") is True:
            ctx.warn(where, "tensorrt_version", msg.replace("the engine will not deserialize",
                                                            "it loads only with version-compatible=true"), fix)
        else:
            ctx.error(where, "tensorrt_version", msg, fix)


def check_labels(ctx: Context, cfg: Any, model_dir: Path, base_real: str) -> None:
    """``label_filename``: inside the model folder, present, one line per class."""
    for t in cfg.output:
        if not t.label_filename:
            continue
        field = f"output[{t.name}].label_filename"
        name = t.label_filename
        bad = fs.unsafe_relative(name)
        path = model_dir / name
        if bad or (os.path.lexists(path) and not fs.inside(base_real, path)):
            ctx.error(CONFIG, field, f"label file {name!r} {bad or 'resolves outside the model folder (symlink)'}",
                      "put the labels file inside the model folder and name it relatively (labels.txt)")
            continue
        text, why = fs.read_text(path, MAX_LABEL_BYTES)
        if text is None:
            ctx.error(name, field, f"label file {why}", "write one label per line, line i = class i")
            continue
        lines = text.splitlines()
        dims = list(t.dims)
        classes = dims[-1] if dims and dims[-1] > 0 else None
        if not lines:
            ctx.error(name, field, "label file is empty", "write one label per line, line i = class i")
        elif classes is not None and len(lines) != classes:
            ctx.error(name, field, f"label file has {len(lines)} lines but output {t.name!r} has {classes} "
                      "classes (its last dim)", f"write exactly {classes} lines, one label per class")


def check_warmup(ctx: Context, cfg: Any, model_dir: Path, base_real: str, kind: str | None) -> None:
    if not cfg.model_warmup:
        return
    if kind == "ensemble":
        ctx.error(CONFIG, "model_warmup", "model_warmup is not allowed on an ensemble",
                  "remove it; warm up the composing models instead")
        return
    inputs = {t.name: t for t in cfg.input}
    mbs = cfg.max_batch_size
    for i, w in enumerate(cfg.model_warmup):
        label = w.name or str(i)
        field = f"model_warmup[{label}]"
        if mbs > 0 and not 1 <= w.batch_size <= mbs:
            ctx.error(CONFIG, field + ".batch_size", f"warm-up batch_size {w.batch_size} is outside "
                      f"[1, max_batch_size={mbs}]", f"use a batch_size from 1 to {mbs}")
        elif mbs == 0 and w.batch_size != 1:
            ctx.error(CONFIG, field + ".batch_size", f"warm-up batch_size {w.batch_size} but a model that does "
                      "not batch (max_batch_size 0) needs 1", "set batch_size: 1")
        for name, wi in w.inputs.items():
            t = inputs.get(name)
            f = f"{field}.inputs[{name}]"
            if t is None:
                ctx.error(CONFIG, f, f"warm-up input {name!r} is not an input of the model",
                          f"use the model's inputs: {', '.join(inputs) or 'none'}")
                continue
            if wi.data_type != t.data_type:
                ctx.error(CONFIG, f + ".data_type", f"warm-up data_type {dtype_name(wi.data_type)} but the "
                          f"input is {dtype_name(t.data_type)}", f"set data_type: {dtype_name(t.data_type)}")
            wd, cd = list(wi.dims), list(t.dims)
            if len(wd) != len(cd) or any(w_ <= 0 for w_ in wd) or any(c > 0 and c != w_ for c, w_ in zip(cd, wd)):
                concrete = [c if c > 0 else 1 for c in cd]
                ctx.error(CONFIG, f + ".dims", f"warm-up dims {shown(wd)} do not fit input dims {shown(cd)}",
                          f"use positive dims matching the input, e.g. {shown(concrete)}")
            if wi.WhichOneof("input_data_type") == "input_data_file":
                fname = wi.input_data_file
                bad = fs.unsafe_relative(fname)
                p = model_dir / "warmup" / fname
                if bad or (os.path.lexists(p) and not fs.inside(base_real, p)):
                    ctx.error(CONFIG, f + ".input_data_file", f"warm-up file {fname!r} "
                              f"{bad or 'resolves outside the model folder'}", "keep warm-up files in <model>/warmup/")
                elif fs.kind(p) != "file":
                    ctx.error(f"warmup/{fname}", f + ".input_data_file", "warm-up data file is missing",
                              "put the file in <model>/warmup/ or use random_data: true")
        for name in inputs:
            if name not in w.inputs and not inputs[name].optional:
                ctx.error(CONFIG, f"{field}.inputs", f"warm-up sample does not set input {name!r}",
                          "give every input a warm-up entry (random_data: true works)")


def check_instance_groups(ctx: Context, cfg: Any, kind: str | None) -> None:
    """Triton's instance-group rules: kinds and the GPUs they list, profiles, counts, rate-limiter resources.

    A KIND_GPU group (or a KIND_AUTO group listing GPUs) is valid for a GPU server: which GPUs the serving
    machine has is not a property of the repository, so it is never an error; on a machine without a GPU a
    note says that serving it here is refused.
    """
    if kind == "ensemble":
        if cfg.instance_group:
            ctx.error(CONFIG, "instance_group", "instance_group is not allowed on an ensemble",
                      "remove it; set instance groups on the composing models")
        return
    for i, g in enumerate(cfg.instance_group):
        field = f"instance_group[{g.name or i}]"
        gpus = list(g.gpus)
        if g.count < 0:  # 0 is the same as no count
            ctx.warn(CONFIG, field + ".count", f"count {g.count} is negative, so Triton starts its default "
                     "number of instances (1; 2 on CPU for onnxruntime and tensorflow)", "set count: 1 or more")
        if any(gpu < 0 for gpu in gpus):
            ctx.error(CONFIG, field + ".gpus", f"gpus {shown(gpus)} lists a negative GPU id, which no machine has",
                      "list GPU ids from 0 (as nvidia-smi numbers them)")
        elif gpus and _kind_name(g.kind) in ("KIND_CPU", "KIND_MODEL"):
            other = "" if _kind_name(g.kind) == "KIND_CPU" else " (the model places itself)"
            ctx.error(CONFIG, field + ".gpus", f"kind {_kind_name(g.kind)} but lists gpus {shown(gpus)}, which "
                      f"Triton refuses", f"remove gpus{other}, or set kind: KIND_GPU to run on those GPUs")
        if g.profile and "tensorrt_plan" not in (kind, cfg.platform):
            ctx.error(CONFIG, field + ".profile", "profile is only for TensorRT plans (platform tensorrt_plan), so "
                      "Triton refuses it here", "remove profile")
        if _kind_name(g.kind) == "KIND_GPU" and not gpu_visible():
            ctx.note(CONFIG, field + ".kind", "KIND_GPU is valid for a server with an NVIDIA GPU; this machine has "
                     "none, so serving the model here is refused", "serve it on a GPU machine, or publish it with "
                     "tritonkit repo add --kind cpu to serve it here")
        if g.secondary_devices and "tensorrt_plan" not in (kind, cfg.platform):
            ctx.warn(CONFIG, field + ".secondary_devices", "secondary_devices are used only by TensorRT plans; "
                     "this model ignores them", "remove secondary_devices")
    _check_rate_limiter(ctx, cfg)


def _kind_name(value: int) -> str:
    from tritonclient.grpc import model_config_pb2 as mc

    try:
        return mc.ModelInstanceGroup.Kind.Name(value)
    except ValueError:
        return f"<{value}>"


def _check_rate_limiter(ctx: Context, cfg: Any) -> None:
    """A resource both global and per-device: Triton refuses it once rate limiting is on."""
    scopes: dict[str, set[bool]] = {}
    for g in cfg.instance_group:
        for r in g.rate_limiter.resources:
            scopes.setdefault(r.name, set()).add(bool(getattr(r, "global")))
    for name, seen in scopes.items():
        if len(seen) > 1:
            ctx.warn(CONFIG, "instance_group.rate_limiter", f"resource {name!r} is global in one place and "
                     "per-device in another; a server started with --rate-limit=execution_count refuses the model",
                     f"make every use of {name!r} global: true, or none of them")
