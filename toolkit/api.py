"""The seed-style Python API: thin classes over the same stage functions the CLI calls.

``ModelExporter`` (checkpoint or module -> ONNX) and ``FormatConverter`` (ONNX -> TensorRT plan
or reduced-precision ONNX) come first; profiling and deployment helpers follow below.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from contract.errors import UsageError
from toolkit.perf.local import PerformanceProfiler
from toolkit.pipeline import Context, ExportStep, PublishStep, Step, run_steps
from toolkit.repository.options import DEFAULT_REPOSITORY, ServingOptions

__all__ = ["Deployment", "FormatConverter", "ModelExporter", "PerformanceProfiler", "PlanStep", "create_deployment"]

# --------------------------------------------------------------------------- export and conversion


class ModelExporter:
    """Export a model to ONNX.

    ``model`` is a checkpoint path (everything comes from the file) or an ``nn.Module`` with an
    explicit ``spec`` (a :class:`contract.spec.ModelSpec`), or ``input_shape`` for a single fp32
    image input (``(C, H, W)``, output named ``output`` with ``num_outputs`` values)::

        ModelExporter("digits.pt").export("model.onnx")
        ModelExporter(net, input_shape=(3, 64, 64), num_outputs=10).export("net.onnx", format="onnx")
    """

    FORMATS = ("onnx",)

    def __init__(self, model: Any, *, spec: Any = None, input_shape: tuple[int, ...] | None = None,
                 num_outputs: int | None = None, input_name: str = "input", output_name: str = "output"):
        self.model = model
        self.spec = spec
        if spec is None and input_shape is not None:
            from contract.spec import ModelSpec, TensorSpec

            if num_outputs is None:
                raise UsageError("ModelExporter: give num_outputs with input_shape (or a full spec=ModelSpec(...))")
            self.spec = ModelSpec(inputs=(TensorSpec(input_name, tuple(input_shape)),),
                                  outputs=(TensorSpec(output_name, (int(num_outputs),)),))

    def export(self, path: str | os.PathLike[str], format: str = "onnx", optimize: bool = True,  # noqa: A002
               **options: Any) -> Path:
        """Write the model to ``path`` and return it; ``options`` go to the export function
        (``opset``, ``dynamic_batch``, ``dynamic_hw``, ``check_parity``, ``external_data``)."""
        if format not in self.FORMATS:
            raise UsageError(f"unknown export format {format!r}; choose one of: {', '.join(self.FORMATS)} "
                             "(then FormatConverter for tensorrt)")
        from toolkit.export.onnx import onnx_from_checkpoint, onnx_from_module

        if isinstance(self.model, (str, os.PathLike)):
            return onnx_from_checkpoint(self.model, path, optimize=optimize, **options)
        if self.spec is None:
            raise UsageError("ModelExporter: an nn.Module needs spec=ModelSpec(...) or input_shape=(C, H, W)")
        record = {"call": f"ModelExporter({type(self.model).__name__}, spec=...).export({str(path)!r}, "
                          f"format={format!r}, optimize={optimize}, **{options!r})"}
        return onnx_from_module(self.model, self.spec, path, optimize=optimize, record=record, **options)


class FormatConverter:
    """Convert an exported ONNX model: to a TensorRT plan, or to an FP16/INT8 ONNX::

        FormatConverter("model.onnx").convert(target_format="tensorrt", precision="fp16")  # -> model.plan
        FormatConverter("model.onnx").convert(target_format="onnx", precision="int8")      # -> model.int8.onnx
    """

    TARGETS = ("tensorrt", "onnx")

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def convert(self, target_format: str = "tensorrt", precision: str = "fp32",
                output: str | os.PathLike[str] | None = None, **options: Any) -> Path:
        """Return the path of the converted artifact.

        ``tensorrt``: ``options`` go to :func:`toolkit.export.tensorrt.plan_from_onnx` (batch
        options, workspace, timing cache, hardware compatibility). On TensorRT 11 a reduced
        precision is produced in the ONNX first (:func:`toolkit.export.precision.quantize_onnx`), since the
        builder takes precision from the network. ``onnx``: fp16/int8 via ``quantize_onnx``.
        """
        if target_format not in self.TARGETS:
            raise UsageError(f"unknown target format {target_format!r}; choose one of: {', '.join(self.TARGETS)}")
        stem = self.path.with_suffix("")
        if target_format == "onnx":
            from toolkit.export.precision import quantize_onnx

            if precision == "fp32":
                raise UsageError("the model is already fp32 ONNX; choose precision='fp16' or 'int8'")
            out = Path(output) if output else Path(f"{stem}.{precision}.onnx")
            return quantize_onnx(self.path, out, precision=precision, **options)[0]
        from toolkit.export.tensorrt import plan_from_onnx
        from toolkit.runners.trt import require_tensorrt

        out = Path(output) if output else Path(f"{stem}.plan")
        source = self.path
        if precision in ("fp16", "int8"):
            trt = require_tensorrt()  # before writing a reduced ONNX nobody will use
            if int(trt.__version__.split(".")[0]) >= 11 or precision == "int8":
                from toolkit.export.precision import quantize_onnx

                source = quantize_onnx(self.path, Path(f"{stem}.{precision}.onnx"), precision=precision)[0]
                precision = "auto"
        return plan_from_onnx(source, out, precision=precision if precision != "fp32" else "auto", **options)


# --------------------------------------------------------------------------- deployment (PerformanceProfiler
# is re-exported from toolkit.perf.local as a seed name)


class Deployment:
    """Export a model and publish it as a new version in a Triton model repository.

    ``config`` keys: ``repository`` (default ``model_repository``), ``name`` (default ``model``),
    ``labels`` (list), ``spec`` / ``input_shape`` + ``num_outputs`` (for a plain ``nn.Module``) and
    any :class:`toolkit.repository.config.ServingOptions` field (``max_batch_size``, ``instances``...).
    """

    FORMATS = ("onnx", "tensorrt")

    def __init__(self, model: Any, config: dict[str, Any] | None = None):
        from toolkit.repository.publish import check_model_name  # loads Triton's protobuf

        config = dict(config or {})
        self.model = model
        self.repository = Path(config.pop("repository", DEFAULT_REPOSITORY))
        self.name = check_model_name(str(config.pop("name", "model")))
        self.labels = config.pop("labels", None)
        exporter_keys = ("spec", "input_shape", "num_outputs", "input_name", "output_name")
        self.exporter_options = {k: config.pop(k) for k in exporter_keys if k in config}
        known = {f.name for f in fields(ServingOptions)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise UsageError(f"create_deployment: unknown config keys {unknown}; use repository, name, labels, "
                             f"spec, input_shape, num_outputs or serving options: {', '.join(sorted(known))}")
        self.options = ServingOptions(**config)
        self.options.validate()

    def deploy(self, model_path: str | os.PathLike[str], format: str = "onnx",  # noqa: A002
               optimize: bool = True, precision: str = "fp16") -> Any:
        """Export to ``model_path`` (``.onnx``, or ``.plan`` for tensorrt) and publish; returns the
        published version (``.model``, ``.version``, ``.path``)."""
        if format not in self.FORMATS:
            raise UsageError(f"unknown deployment format {format!r}; choose one of: {', '.join(self.FORMATS)}")
        model_path = Path(model_path)
        ctx = Context(repository=self.repository, name=self.name, options=self.options, labels=self.labels,
                      onnx=model_path if format == "onnx" else model_path.with_suffix(".onnx"))
        exporter = ModelExporter(self.model, **self.exporter_options)
        steps: list[Step] = [ExportStep(lambda path: exporter.export(path, optimize=optimize), label="")]
        if format == "tensorrt":
            steps.append(PlanStep(precision, model_path))
        return run_steps([*steps, PublishStep(label="")], ctx).published[-1]


class PlanStep(Step):
    """Build a TensorRT plan from ``ctx.onnx`` with :class:`FormatConverter`; the plan goes to ``ctx.plans``."""

    name = "tensorrt"

    def __init__(self, precision: str, output: Path) -> None:
        self.precision, self.output = precision, output

    def run(self, ctx: Context) -> None:
        from toolkit.export.tensorrt import read_record

        plan = FormatConverter(ctx.onnx).convert("tensorrt", self.precision, output=self.output)
        record = read_record(plan)
        cc = str(record.get("compute_capability", "0.0"))
        ctx.plans, ctx.records = {cc: plan}, {cc: record}


def create_deployment(model: Any, config: dict[str, Any] | None = None) -> Deployment:
    """The seed API: ``create_deployment(model, config).deploy(model_path, format="onnx")``."""
    return Deployment(model, config)
