"""Triton ``config.pbtxt`` built as Triton's own ``ModelConfig`` protobuf, never as hand-written text."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from toolkit.errors import RepositoryError
from toolkit.spec import ModelSpec, triton_config_dtype

ONNX_PLATFORM = "onnxruntime_onnx"
PLAN_PLATFORM = "tensorrt_plan"


@dataclass
class ServingOptions:
    """What the user chooses about serving; shapes and dtypes come from the model, not from here."""

    max_batch_size: int = 32
    dynamic_batching: bool = True
    max_queue_delay_us: int = 100
    preferred_batch_sizes: list[int] = field(default_factory=list)
    max_queue_size: int = 0  # 0 = unbounded
    instances: int = 1
    kind: str = "cpu"  # cpu | gpu | auto
    keep_versions: int = 1
    warmup: bool = True
    label_filename: str | None = "labels.txt"
    response_cache: bool = False


_KINDS = {"cpu": mc.ModelInstanceGroup.KIND_CPU, "gpu": mc.ModelInstanceGroup.KIND_GPU,
          "auto": mc.ModelInstanceGroup.KIND_AUTO}


def build_config(name: str, spec: ModelSpec, platform: str, options: ServingOptions) -> mc.ModelConfig:
    """A complete ModelConfig for an ONNX or TensorRT model described by ``spec``."""
    cfg = mc.ModelConfig(name=name, platform=platform, max_batch_size=options.max_batch_size)
    for t in spec.inputs:
        cfg.input.add(name=t.name, data_type=getattr(mc, triton_config_dtype(t.dtype)), dims=list(t.shape))
    for i, t in enumerate(spec.outputs):
        out = cfg.output.add(name=t.name, data_type=getattr(mc, triton_config_dtype(t.dtype)), dims=list(t.shape))
        if i == 0 and spec.labels and options.label_filename:
            out.label_filename = options.label_filename
    if options.dynamic_batching and options.max_batch_size > 0:
        db = cfg.dynamic_batching
        db.max_queue_delay_microseconds = options.max_queue_delay_us
        db.preferred_batch_size.extend(options.preferred_batch_sizes)
        if options.max_queue_size:
            db.default_queue_policy.max_queue_size = options.max_queue_size
    cfg.instance_group.add(kind=_KINDS[options.kind], count=options.instances)
    cfg.version_policy.latest.num_versions = max(1, options.keep_versions)
    if options.warmup:
        wu = cfg.model_warmup.add(name="random_max_batch", batch_size=max(1, options.max_batch_size), count=1)
        for t in spec.inputs:
            wu.inputs[t.name].data_type = getattr(mc, triton_config_dtype(t.dtype))
            wu.inputs[t.name].dims.extend([d if d > 0 else 1 for d in t.shape])
            wu.inputs[t.name].random_data = True
    if options.response_cache:
        cfg.response_cache.enable = True
    return cfg


def config_to_text(cfg: mc.ModelConfig) -> str:
    return text_format.MessageToString(cfg)


def parse_config(text: str, where: str = "config.pbtxt") -> mc.ModelConfig:
    """Parse config.pbtxt text as Triton does (protobuf text format)."""
    try:
        return text_format.Parse(text, mc.ModelConfig())
    except text_format.ParseError as exc:
        raise RepositoryError(f"{where}: does not parse as a Triton ModelConfig ({exc}); fix the field named") from None


def read_config(path: str | Path) -> mc.ModelConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise RepositoryError(f"{path}: cannot read config ({exc})") from None
    return parse_config(text, str(path))
