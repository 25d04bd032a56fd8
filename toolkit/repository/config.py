"""Triton ``config.pbtxt`` built as Triton's own ``ModelConfig`` protobuf, never as hand-written text."""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from contract.errors import RepositoryError
from contract.spec import METADATA_SPEC_KEY, ModelSpec
from toolkit.dtypes import config_from_numpy
from toolkit.repository.options import (
    ENSEMBLE_INPUT_ENCODED,
    ENSEMBLE_INPUT_RAW,
    IMAGE_INPUTS_PARAMETER,
    ONNX_PLATFORM,
    PLAN_PLATFORM,
    ServingOptions,
    image_inputs_description,
)

SPEC_PARAMETER = METADATA_SPEC_KEY


_KINDS: dict[str, int] = {"cpu": mc.ModelInstanceGroup.KIND_CPU, "gpu": mc.ModelInstanceGroup.KIND_GPU,
          "auto": mc.ModelInstanceGroup.KIND_AUTO}


def build_config(
    name: str, spec: ModelSpec, platform: str, options: ServingOptions,
    cc_model_filenames: dict[str, str] | None = None,
) -> mc.ModelConfig:
    """A complete ModelConfig for an ONNX or TensorRT model described by ``spec``."""
    options.validate()
    cfg = mc.ModelConfig(name=name, platform=platform, max_batch_size=options.max_batch_size)
    for t in spec.inputs:
        cfg.input.add(name=t.name, data_type=getattr(mc, config_from_numpy(t.dtype)), dims=list(t.shape))
    for i, t in enumerate(spec.outputs):
        out = cfg.output.add(name=t.name, data_type=getattr(mc, config_from_numpy(t.dtype)), dims=list(t.shape))
        if i == 0 and spec.labels and options.label_filename:
            out.label_filename = options.label_filename
    if options.dynamic_batching and options.max_batch_size > 0:
        db = cfg.dynamic_batching
        db.max_queue_delay_microseconds = options.max_queue_delay_us
        db.preferred_batch_size.extend(options.preferred_batch_sizes)
        if options.max_queue_size:
            db.default_queue_policy.max_queue_size = options.max_queue_size
    group = cfg.instance_group.add(kind=_KINDS[options.kind], count=options.instances)
    if platform == PLAN_PLATFORM and options.profiles:
        group.profile.extend(options.profiles)
    if platform == ONNX_PLATFORM and options.tensorrt_accelerator and options.kind != "cpu":
        acc = cfg.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
        acc.parameters["precision_mode"] = options.accelerator_precision
        acc.parameters["trt_engine_cache_enable"] = "1"
    cfg.version_policy.latest.num_versions = max(1, options.keep_versions)
    if options.warmup:
        wu = cfg.model_warmup.add(name="random_max_batch", batch_size=max(1, options.max_batch_size), count=1)
        for t in spec.inputs:
            wu.inputs[t.name].data_type = getattr(mc, config_from_numpy(t.dtype))
            wu.inputs[t.name].dims.extend([d if d > 0 else 1 for d in t.shape])
            wu.inputs[t.name].random_data = True
    if options.response_cache:
        cfg.response_cache.enable = True
    for cc, filename in (cc_model_filenames or {}).items():
        cfg.cc_model_filenames[cc] = filename
    # The served model carries its own preprocessing contract, so clients need no side files.
    cfg.parameters[SPEC_PARAMETER].string_value = spec.to_json()
    return cfg


def config_to_text(cfg: mc.ModelConfig) -> str:
    return text_format.MessageToString(cfg)


def parse_config(text: str, where: str = "config.pbtxt") -> mc.ModelConfig:
    """Parse config.pbtxt text as Triton does (protobuf text format)."""
    try:
        return text_format.Parse(text, mc.ModelConfig())
    except (text_format.ParseError, RecursionError, ValueError) as exc:
        detail = str(exc).replace("\n", " ")[:300]
        raise RepositoryError(f"{where}: does not parse as a Triton ModelConfig ({detail}); "
                              "fix the field named") from None


def read_config(path: str | Path) -> mc.ModelConfig:
    """Read a config.pbtxt that may be hostile: regular files only (a FIFO never blocks), 4 MiB at most."""
    from contract.fileio import read_regular_text

    path = Path(path)
    try:
        text = read_regular_text(path, limit=4 * 1024 * 1024)
    except (OSError, UnicodeDecodeError) as exc:
        raise RepositoryError(f"{path}: cannot read config ({exc}); give a UTF-8 config.pbtxt file") from None
    return parse_config(text, str(path))




def build_preprocess_config(name: str, spec: ModelSpec, max_batch_size: int) -> mc.ModelConfig:
    """python-backend model turning raw/encoded images into the classifier's input tensor."""
    cfg = mc.ModelConfig(name=name, backend="python", max_batch_size=max_batch_size)
    cfg.input.add(name=ENSEMBLE_INPUT_RAW, data_type=mc.TYPE_UINT8, dims=[-1, -1, -1], optional=True)
    cfg.input.add(name=ENSEMBLE_INPUT_ENCODED, data_type=mc.TYPE_STRING, dims=[1], optional=True)
    t = spec.input
    cfg.output.add(name=t.name, data_type=getattr(mc, config_from_numpy(t.dtype)), dims=list(t.shape))
    cfg.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=1)
    cfg.parameters["spec"].string_value = spec.to_json()
    return cfg


def build_ensemble_config(
    name: str, preprocess: str, classifier: str, spec: ModelSpec, max_batch_size: int,
    label_filename: str | None = "labels.txt",
) -> mc.ModelConfig:
    """Ensemble: images -> ``preprocess`` -> ``classifier`` -> logits (labels attached)."""
    cfg = mc.ModelConfig(name=name, platform="ensemble", max_batch_size=max_batch_size)
    cfg.input.add(name=ENSEMBLE_INPUT_RAW, data_type=mc.TYPE_UINT8, dims=[-1, -1, -1], optional=True)
    cfg.input.add(name=ENSEMBLE_INPUT_ENCODED, data_type=mc.TYPE_STRING, dims=[1], optional=True)
    for i, t in enumerate(spec.outputs):
        out = cfg.output.add(name=t.name, data_type=getattr(mc, config_from_numpy(t.dtype)), dims=list(t.shape))
        if i == 0 and spec.labels and label_filename:
            out.label_filename = label_filename
    pre = cfg.ensemble_scheduling.step.add(model_name=preprocess, model_version=-1)
    pre.input_map[ENSEMBLE_INPUT_RAW] = ENSEMBLE_INPUT_RAW
    pre.input_map[ENSEMBLE_INPUT_ENCODED] = ENSEMBLE_INPUT_ENCODED
    pre.output_map[spec.input.name] = "preprocessed"
    cls = cfg.ensemble_scheduling.step.add(model_name=classifier, model_version=-1)
    cls.input_map[spec.input.name] = "preprocessed"
    for t in spec.outputs:
        cls.output_map[t.name] = t.name
    # what tools need to use it: the classifier's spec (labels, normalization the python step applies)
    # and which inputs it takes instead of the spec's float tensor
    cfg.parameters[SPEC_PARAMETER].string_value = spec.to_json()
    cfg.parameters[IMAGE_INPUTS_PARAMETER].string_value = json.dumps(image_inputs_description(classifier),
                                                                     sort_keys=True)
    return cfg
