"""Ensemble wiring: steps name real models and tensors, types and shapes agree, no cycles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolkit.repository.validate.config import CONFIG, Entry, Index, safe_model_name
from toolkit.repository.validate.problem import Context
from toolkit.repository.validate.tensors import dtype_name, shown


@dataclass(frozen=True)
class _Info:
    """An ensemble tensor as one model declares it: type, dims (no batch), whether that model batches."""

    dtype: int
    dims: tuple[int, ...]
    batching: bool
    src: str

    @property
    def full(self) -> list[int]:
        return ([-1] if self.batching else []) + list(self.dims)

    def agrees(self, other: _Info) -> bool:
        """Triton's rule: the dims agree (-1 matches anything), or the shapes with the batch dimension do."""
        return _compatible(list(self.dims), list(other.dims)) or _compatible(self.full, other.full)


def _info(t: Any, batching: bool, src: str, *, declared: bool = False) -> _Info:
    """``declared``: the ensemble's own tensor, which Triton takes with its reshape when it has one."""
    dims = t.reshape.shape if declared and t.HasField("reshape") else t.dims
    return _Info(t.data_type, tuple(dims), batching, src)


def _compatible(a: list[int], b: list[int]) -> bool:
    return len(a) == len(b) and all(x == y or x == -1 or y == -1 for x, y in zip(a, b))


@dataclass
class _Wiring:
    """What the rules learn about an ensemble's tensors while walking its steps."""

    mbs: int
    known: dict[str, _Info]  # typed tensors: ensemble inputs, then composing models' outputs
    produced: dict[str, str] = field(default_factory=dict)  # tensor -> "step i"
    consumed: set[str] = field(default_factory=set)
    edges: dict[str, set[str]] = field(default_factory=dict)  # tensor -> tensors a step makes from it
    steps: list[tuple[int, Any, Any]] = field(default_factory=list)  # (i, step, composing config or None)
    outputs: set[str] = field(default_factory=set)  # the ensemble's output names


def check_ensemble(ctx: Context, entry: Entry, cfg: Any, index: Index) -> None:
    """Every rule an ensemble's wiring must pass, in the order its problems are reported.

    Runs for ensembles and for any model that sets ``ensemble_scheduling``.
    """
    if cfg.platform != "ensemble":
        ctx.error(CONFIG, "ensemble_scheduling", "ensemble_scheduling is set but platform is not \"ensemble\", so "
                  "Triton refuses the model", "remove ensemble_scheduling, or make the model an ensemble "
                  "(platform: \"ensemble\", no backend)")
        return
    if cfg.HasField("optimization"):
        ctx.error(CONFIG, "optimization", "optimization is not allowed on an ensemble",
                  "remove it; set optimization on the composing models")
    sched = cfg.ensemble_scheduling if cfg.HasField("ensemble_scheduling") else None
    if sched is None or not sched.step:
        ctx.error(CONFIG, "ensemble_scheduling", "an ensemble needs ensemble_scheduling with at least one step",
                  "add ensemble_scheduling { step [{ model_name, model_version: -1, input_map, output_map }] }")
        return
    if not cfg.input or not cfg.output:
        ctx.error(CONFIG, "input", "an ensemble must list its inputs and outputs",
                  "declare the ensemble's inputs and outputs with names, data_type and dims")
    batching = cfg.max_batch_size > 0
    w = _Wiring(cfg.max_batch_size, {t.name: _info(t, batching, "ensemble input", declared=True) for t in cfg.input},
                outputs={t.name for t in cfg.output})
    for i, step in enumerate(sched.step):
        _record_step_tensors(ctx, w, i, step)
        w.steps.append((i, step, _composing_config(ctx, entry, index, i, step)))
    _type_step_outputs(ctx, w)
    for i, step, comp in w.steps:
        _check_step_inputs(ctx, w, i, step, comp)
    _check_outputs(ctx, w, cfg)
    _check_unused(ctx, w, cfg)
    _check_decoupled(ctx, w)
    _check_cycles(ctx, w, entry, index)


def _record_step_tensors(ctx: Context, w: _Wiring, i: int, step: Any) -> None:
    """Rule: each tensor is produced once, never by a step and as an ensemble input; note the data flow."""
    f = f"ensemble_scheduling.step[{i}]"
    for what in ("input_map", "output_map"):
        if not getattr(step, what):
            ctx.error(CONFIG, f"{f}.{what}", f"step {i} has no {what}, so Triton refuses the ensemble",
                      f"map the step's {what[:-4]}s: {what} {{ key: \"<model tensor>\" value: \"<ensemble "
                      "tensor>\" }")
    ins, outs = set(step.input_map.values()), set(step.output_map.values())
    for a in ins:
        w.edges.setdefault(a, set()).update(outs)
    w.consumed |= ins
    for tensor in step.output_map.values():
        if tensor in w.produced:
            ctx.error(CONFIG, f + ".output_map", f"tensor {tensor!r} is produced by two steps "
                      f"({w.produced[tensor]} and step {i})", "give each step output its own tensor name, then read "
                      "it in a later step or declare it as an ensemble output")
        elif tensor in w.known:
            ctx.error(CONFIG, f + ".output_map", f"tensor {tensor!r} is an ensemble input and also a step "
                      "output", "rename the step output tensor")
        w.produced.setdefault(tensor, f"step {i}")


def _composing_config(ctx: Context, entry: Entry, index: Index, i: int, step: Any) -> Any:
    """Rule: a step names a plain model of the repository (not the ensemble) and a version it has.

    Returns the composing model's config, or None when it cannot be checked further.
    """
    f = f"ensemble_scheduling.step[{i}]"
    name = step.model_name
    if not name:
        ctx.error(CONFIG, f + ".model_name", f"step {i} names no model", "set model_name")
    elif name == entry.name:
        ctx.error(CONFIG, f + ".model_name", f"step {i} calls the ensemble itself (a cycle)",
                  "name a composing model, not the ensemble")
    elif not safe_model_name(name):
        ctx.error(CONFIG, f + ".model_name", f"step {i} names {name!r}, which is not a plain model name",
                  "use the composing model's folder name")
    else:
        e = index.get(name)
        if e is None:
            ctx.error(CONFIG, f + ".model_name", f"step {i} names model {name!r}, which is not in the "
                      "repository", f"add model {name!r} to the repository or fix the name")
        elif e.config is not None:
            if step.model_version != -1 and step.model_version not in e.version_numbers():
                ctx.error(CONFIG, f + ".model_version", f"step {i} asks for version {step.model_version} of "
                          f"{name!r}, which has versions {e.version_numbers()}", "use model_version: -1")
            return e.config
    return None


def _type_step_outputs(ctx: Context, w: _Wiring) -> None:
    """Rule: a step maps real outputs of its model; those tensors take the model's type and shape."""
    for i, step, comp in w.steps:
        if comp is None or comp.max_batch_size < 0:
            continue
        couts = {t.name: t for t in comp.output}
        for key, tensor in step.output_map.items():
            t = couts.get(key)
            if t is None:
                ctx.error(CONFIG, f"ensemble_scheduling.step[{i}].output_map", f"{key!r} is not an output of "
                          f"{step.model_name!r} (it has {', '.join(couts) or 'none'})", "map a real output")
            elif tensor not in w.known:
                w.known[tensor] = _info(t, comp.max_batch_size > 0, f"{step.model_name}.{key}")


def _check_step_inputs(ctx: Context, w: _Wiring, i: int, step: Any, comp: Any) -> None:
    """Rules: every mapped tensor exists; the batch fits; inputs are real, typed and shaped alike; all fed."""
    f = f"ensemble_scheduling.step[{i}]"
    for tensor in step.input_map.values():
        if tensor not in w.known and tensor not in w.produced:
            ctx.error(CONFIG, f + ".input_map", f"tensor {tensor!r} is neither an ensemble input nor "
                      "produced by any step", "map it from an ensemble input or an earlier step's output")
    if comp is None or comp.max_batch_size < 0 or w.mbs < 0:
        return  # a negative max_batch_size is reported on its own model
    if 0 < comp.max_batch_size < w.mbs:  # a step that does not batch takes whole batches as its dims
        ctx.error(CONFIG, "max_batch_size", f"ensemble max_batch_size {w.mbs} exceeds the max_batch_size "
                  f"{comp.max_batch_size} of step model {step.model_name!r}",
                  f"set the ensemble's max_batch_size <= {comp.max_batch_size}")
    cins = {t.name: t for t in comp.input}
    for key, tensor in step.input_map.items():
        t = cins.get(key)
        if t is None:
            ctx.error(CONFIG, f + ".input_map", f"{key!r} is not an input of {step.model_name!r} (it has "
                      f"{', '.join(cins) or 'none'})", _bad_key_fix(step.model_name, cins, step.input_map))
        elif tensor in w.known:
            _check_input_agrees(ctx, f, w.known[tensor], tensor, _info(t, comp.max_batch_size > 0,
                                                                     f"{step.model_name}.{key}"))
    for key in cins:
        if key not in step.input_map and not cins[key].optional:
            ctx.error(CONFIG, f + ".input_map", f"step {i} does not feed input {key!r} of "
                      f"{step.model_name!r}", f"add input_map {{ key: \"{key}\" value: \"<tensor>\" }}")


def _bad_key_fix(model: str, inputs: dict[str, Any], mapped: Any) -> str:
    unfed = [n for n in inputs if n not in mapped]
    if unfed:
        return f"key the entry by an input of {model!r} that no entry feeds ({', '.join(unfed)}), or drop it"
    return f"drop the entry: every input of {model!r} is fed already"


def _check_input_agrees(ctx: Context, f: str, have: _Info, tensor: str, want: _Info) -> None:
    """Rule: a tensor fed to a step input has the type and shape that input declares."""
    if have.dtype and want.dtype and have.dtype != want.dtype:
        ctx.error(CONFIG, f + ".input_map", f"type mismatch: {tensor!r} is {dtype_name(have.dtype)} ({have.src}) "
                  f"but {want.src} wants {dtype_name(want.dtype)}",
                  f"declare ensemble input {tensor!r} with data_type: {dtype_name(want.dtype)}"
                  if have.src == "ensemble input" else
                  f"feed {want.src} a {dtype_name(want.dtype)} tensor (convert it in a step before), or change the "
                  f"data_type of {have.src} or {want.src}")
    if not have.agrees(want):
        ctx.error(CONFIG, f + ".input_map", f"shape mismatch: {tensor!r} is {shown(have.full)} ({have.src}) but "
                  f"{want.src} wants {shown(want.full)}",
                  f"declare ensemble input {tensor!r} with dims: {shown(list(want.dims))} and no reshape"
                  if have.src == "ensemble input" else
                  f"change the dims of {have.src} or {want.src} so that they agree")


def _check_outputs(ctx: Context, w: _Wiring, cfg: Any) -> None:
    """Rule: each ensemble output is produced by a step, with the type and shape the ensemble declares."""
    for t in cfg.output:
        info = w.known.get(t.name)
        if t.name not in w.produced:
            ctx.error(CONFIG, f"output[{t.name}]", f"ensemble output {t.name!r} is produced by no step",
                      "map a step output to it in output_map")
        elif info is not None and info.src != "ensemble input":
            mine = _info(t, w.mbs > 0, "ensemble output", declared=True)
            if mine.dtype and info.dtype and mine.dtype != info.dtype:
                ctx.error(CONFIG, f"output[{t.name}].data_type", f"type mismatch: ensemble output is "
                          f"{dtype_name(mine.dtype)} but {info.src} is {dtype_name(info.dtype)}",
                          f"set data_type: {dtype_name(info.dtype)}")
            if not mine.agrees(info):
                ctx.error(CONFIG, f"output[{t.name}].dims", f"shape mismatch: ensemble output is "
                          f"{shown(mine.full)} but {info.src} is {shown(info.full)}",
                          f"set the ensemble output's dims: {shown(list(info.dims))} (and no reshape)")


def _check_unused(ctx: Context, w: _Wiring, cfg: Any) -> None:
    """Rule: Triton refuses an ensemble input no step reads and a step output nothing reads."""
    for t in cfg.input:
        if t.name not in w.consumed and t.name not in w.produced:
            ctx.error(CONFIG, f"input[{t.name}]", f"ensemble input {t.name!r} is used by no step, so Triton "
                      "refuses the ensemble", "map it into a step's input_map or remove it")
    for tensor, who in w.produced.items():
        if tensor not in w.consumed and tensor not in w.outputs:
            ctx.error(CONFIG, "ensemble_scheduling", f"tensor {tensor!r} from {who} is used by no step and is not an "
                      "ensemble output, so Triton refuses the ensemble",
                      f"map {tensor!r} into a later step or declare it as an ensemble output, else drop it from "
                      "output_map")


def _check_decoupled(ctx: Context, w: _Wiring) -> None:
    """Rule: a step's inputs all come from the same decoupled model (or from none).

    Each tensor carries the decoupled step it descends from (0: the ensemble's inputs); a decoupled
    step starts a new one for its outputs, as Triton labels them.
    """
    origin = {t: (0, "") for t, info in w.known.items() if info.src == "ensemble input"}
    pending = {i: (step, comp) for i, step, comp in w.steps if step.input_map}
    fresh = 0
    while pending:
        ready = [i for i, (step, _) in pending.items() if all(t in origin for t in step.input_map.values())]
        if not ready:
            return  # the rest wait on tensors nothing produces (reported above)
        for i in ready:
            step, comp = pending.pop(i)
            sources = {origin[t] for t in step.input_map.values()}
            if len(sources) > 1:
                names = ", ".join(sorted(f"{who or 'the ensemble inputs'}" for _, who in sources))
                ctx.error(CONFIG, f"ensemble_scheduling.step[{i}]", f"step {i} ({step.model_name!r}) receives "
                          f"tensors from different decoupled models ({names}), so Triton refuses the ensemble",
                          "feed the step from one decoupled model only, or make the models before it not decoupled")
            label = min(sources)
            if comp is not None and comp.model_transaction_policy.decoupled:
                fresh += 1
                label = (fresh, f"decoupled step {i} ({step.model_name!r})")
            for tensor in step.output_map.values():
                origin.setdefault(tensor, label)


def _check_cycles(ctx: Context, w: _Wiring, entry: Entry, index: Index) -> None:
    """Rule: data flows one way between steps, and ensembles never contain themselves."""
    cycle = _find_cycle(w.edges)
    if cycle:
        ctx.error(CONFIG, "ensemble_scheduling", f"steps form a cycle through tensors {' -> '.join(cycle)}",
                  "make the data flow one way (no step may consume what it or a later step produces)")
    nested = _nested_cycle(entry.name, index)
    if nested:
        ctx.error(CONFIG, "ensemble_scheduling", f"ensembles call each other in a cycle: {' -> '.join(nested)}",
                  "break the cycle; an ensemble may not contain itself")


def _find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        path.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def _nested_cycle(start: str, index: Index) -> list[str] | None:
    """A path start -> ... -> start through ensembles naming ensembles (depth-first, bounded)."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        name, path = stack.pop()
        e = index.get(name)
        if e is None or e.config is None or e.config.platform != "ensemble":
            continue
        for step in e.config.ensemble_scheduling.step:
            nxt = step.model_name
            if nxt == start and len(path) > 1:
                return path + [nxt]
            if nxt and nxt != name and nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None
