"""``tritonkit export | parity | quantize | build``: checkpoint -> ONNX -> reduced precision -> plan.

Each command calls one library function; heavy modules are imported inside the command.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

from toolkit.cli.options import json_option
from toolkit.export.defaults import (
    CALIBRATION_SAMPLES,
    DEFAULT_OPSET,
    HARDWARE_COMPAT,
    MAX_BATCH,
    MAX_OPSET,
    MIN_BATCH,
    MIN_OPSET,
    OPT_BATCH,
    PARITY_PRECISIONS,
    PLAN_PRECISIONS,
    QUANTIZE_PRECISIONS,
    check_calibration_samples,
    check_static_batch,
)


def _argv() -> list[str]:
    """The command line as typed; rebuilt from the parsed parameters when not run as a program."""
    if Path(sys.argv[0]).name == "tritonkit":
        return ["tritonkit", *sys.argv[1:]]
    ctx = click.get_current_context()
    args, opts = [], []
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            args.append(str(value))
        elif value is not None and param.opts:
            flag = param.opts[0] if value is not False else (param.secondary_opts or param.opts)[0]
            if param.is_flag:
                opts.append(flag)
            else:
                opts += [max(param.opts, key=len), str(value)]
    return ["tritonkit", ctx.info_name or "", *args, *opts]


def _print_parity_failure(exc: Exception) -> None:
    report = getattr(exc, "report", None)
    if report is not None:
        click.echo(report.table(), err=True)


@click.command()
@click.argument("checkpoint", type=click.Path())
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="ONNX file to write.")
@click.option("--opset", default=DEFAULT_OPSET, show_default=True, type=int,
              help=f"ONNX opset ({MIN_OPSET}..{MAX_OPSET}).")
@click.option("--dynamic-batch/--static", default=True, show_default=True,
              help="Dynamic batch dimension, or a fixed one (--static; its size is --batch).")
@click.option("--batch", "batch", type=int, default=None,
              help="With --static: the fixed batch size every stage then runs at (default 1).")
@click.option("--dynamic-hw", is_flag=True, help="Also make height and width dynamic.")
@click.option("--optimize/--no-optimize", default=True, show_default=True, help="Fold Conv+BatchNorm first.")
@click.option("--parity/--no-parity", "check_parity", default=True, show_default=True,
              help="Fail when torch and ONNX Runtime disagree beyond fp32 tolerance.")
@click.option("--external-data/--no-external-data", default=None,
              help="Weights in <out>.data (default: only for models over ~2 GB).")
def export(checkpoint: str, out: str, opset: int, dynamic_batch: bool, batch: int | None, dynamic_hw: bool,
           optimize: bool, check_parity: bool, external_data: bool | None) -> None:
    """Export a tritonkit CHECKPOINT to a verified ONNX model (record in <out>.export.json)."""
    check_static_batch(dynamic_batch, batch)  # before the heavy imports
    from toolkit.export.onnx import onnx_from_checkpoint
    from toolkit.export.parity import ParityError
    from toolkit.export.records import record_path

    try:
        path = onnx_from_checkpoint(checkpoint, out, opset=opset, dynamic_batch=dynamic_batch, batch=batch,
                                    dynamic_hw=dynamic_hw, optimize=optimize, check_parity=check_parity,
                                    external_data=external_data, command=_argv())
    except ParityError as exc:
        _print_parity_failure(exc)
        raise
    rec = json.loads(record_path(path).read_text())
    worst = max((s["max_abs"] for s in (rec.get("parity") or {}).values()), default=None)
    parity = f", parity max abs {worst:.2g}" if worst is not None else ", parity not checked"
    click.echo(f"wrote {path} (opset {opset}{parity}, {rec.get('seconds')} s); call in {record_path(path)}")
    _print_summary(path, rec.get("batch"))


def _print_summary(path: Path, batch: int | None) -> None:
    """What the file takes and gives, its size, and the command that publishes it."""
    from toolkit.export.onnx import io_shapes

    inputs, outputs = io_shapes(path)
    data = path.with_name(f"{path.name}.data")
    size = path.stat().st_size + (data.stat().st_size if data.exists() else 0)
    for kind, items in (("input", inputs), ("output", outputs)):
        for name, shown in items.items():
            click.echo(f"  {kind:<6} {name}: {shown}")
    click.echo(f"  batch  {f'fixed at {batch} (every stage runs at this size)' if batch else 'dynamic'}")
    click.echo(f"  size   {size / 2**20:.2f} MiB" + (f" (with {data.name})" if data.exists() else ""))
    # Triton cannot batch a fixed batch dimension: such a model is served with full dims.
    command = ["tritonkit", "repo", "add", path.stem, "--onnx", str(path), *(["--max-batch", "0"] if batch else [])]
    click.echo(f"next: {shlex.join(command)}")


@click.command()
@click.argument("a", type=click.Path())
@click.argument("b", type=click.Path())
@click.option("--precision", type=click.Choice(PARITY_PRECISIONS), default=PARITY_PRECISIONS[0],
              show_default=True, help="Tolerance preset.")
@click.option("--atol", type=float, default=None, help="Override the preset's absolute tolerance.")
@click.option("--rtol", type=float, default=None, help="Override the preset's relative tolerance.")
@click.option("--min-top1", type=float, default=None, help="Override the minimum top-1 agreement (0..1).")
@click.option("--max-accuracy-drop", type=float, default=None, help="Override the maximum accuracy drop (0..1).")
@click.option("--opt-batch", default=OPT_BATCH, show_default=True, type=int)
@click.option("--max-batch", default=MAX_BATCH, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@json_option("Print the report as JSON.")
def parity(a: str, b: str, precision: str, atol: float | None, rtol: float | None, min_top1: float | None,
           max_accuracy_drop: float | None, opt_batch: int, max_batch: int, seed: int, as_json: bool) -> None:
    """Compare two stages (checkpoint .pt, .onnx, .plan) on the same real and random inputs."""
    from toolkit.export.parity import compare, raise_if_failed, tolerance_for

    tol = tolerance_for(precision, atol=atol, rtol=rtol, min_top1_agreement=min_top1,
                        max_accuracy_drop=max_accuracy_drop)
    report = compare(a, b, precision=precision, tolerance=tol, opt_batch=opt_batch, max_batch=max_batch, seed=seed)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.table())
    raise_if_failed(report)


@click.command()
@click.argument("model", type=click.Path())
@click.option("--precision", type=click.Choice(QUANTIZE_PRECISIONS), required=True)
@click.option("--calibration-data", default="digits", show_default=True,
              help="int8: 'digits', a folder of .npy/.npz/images, or an .npz/.npy file of model inputs.")
@click.option("--calibration-samples", default=CALIBRATION_SAMPLES, show_default=True, type=int)
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="ONNX file to write.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Fail (nothing written) when the precision's parity preset fails on the held-out set.")
def quantize(model: str, precision: str, calibration_data: str, calibration_samples: int, out: str,
             check: bool) -> None:
    """Write an FP16 or INT8 (Q/DQ) ONNX of MODEL; accuracy per precision in <out>.quantize.json."""
    check_calibration_samples(calibration_samples)  # before the heavy imports
    from toolkit.export.parity import ParityError
    from toolkit.export.precision import quantize_onnx

    try:
        path, record = quantize_onnx(model, out, precision=precision, calibration=calibration_data,
                                     calibration_samples=calibration_samples, check=check, command=_argv())
    except ParityError as exc:
        _print_parity_failure(exc)
        raise
    for warning in record.get("warnings") or []:
        click.echo(f"warning: {warning}", err=True)
    acc = record.get("accuracy") or {}
    if acc:
        parts = ", ".join(f"{k} {v:.4f}" for k, v in acc.items() if v is not None)
        click.echo(f"accuracy on held-out set: {parts}")
    click.echo(f"wrote {path}; record in {path}.quantize.json")


@click.command()
@click.argument("model", type=click.Path())
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="Plan file to write.")
@click.option("--min-batch", default=MIN_BATCH, show_default=True, type=int)
@click.option("--opt-batch", default=OPT_BATCH, show_default=True, type=int)
@click.option("--max-batch", default=MAX_BATCH, show_default=True, type=int)
@click.option("--precision", type=click.Choice(PLAN_PRECISIONS), default=PLAN_PRECISIONS[0],
              show_default=True, help="auto: what the ONNX carries (TensorRT 11 always does this).")
@click.option("--workspace", "workspace_mb", type=int, default=None, help="Workspace limit in MB.")
@click.option("--timing-cache", type=click.Path(), default=None, help="Timing cache file (read and updated).")
@click.option("--hardware-compat", type=click.Choice(HARDWARE_COMPAT), default=HARDWARE_COMPAT[0], show_default=True)
def build(model: str, out: str, min_batch: int, opt_batch: int, max_batch: int, precision: str,
          workspace_mb: int | None, timing_cache: str | None, hardware_compat: str) -> None:
    """Build a TensorRT plan from MODEL (.onnx) with Polygraphy; record in <plan>.json."""
    from toolkit.export.tensorrt import plan_from_onnx, read_record

    path = plan_from_onnx(model, out, min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch,
                          precision=precision, workspace_mb=workspace_mb, timing_cache=timing_cache,
                          hardware_compat=hardware_compat, command=_argv())
    click.echo(f"wrote {path}; record in {path}.json")
    fixed = read_record(path).get("fixed_batch")
    if fixed:
        click.echo(f"note: the ONNX's batch is fixed at {fixed}: built for batch {fixed} only; publish with "
                   "--max-batch 0")
