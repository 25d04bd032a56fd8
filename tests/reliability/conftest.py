"""Fixtures for the reliability tests: a repository with a queue-bounded model, servers on free ports."""

from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent


def slow_config(name: str = "slow", max_queue_size: int = 16, max_batch_size: int = 4, sleep_ms: int = 20) -> str:
    """Config of :mod:`slow_model`: FP32 [-1,1,8,8] in, FP32 [-1,10] out, bounded queue, one instance."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    cfg = mc.ModelConfig(name=name, backend="python", max_batch_size=max_batch_size)
    cfg.input.add(name="input", data_type=mc.TYPE_FP32, dims=[1, 8, 8])
    cfg.output.add(name="logits", data_type=mc.TYPE_FP32, dims=[10])
    cfg.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=1)
    cfg.dynamic_batching.default_queue_policy.max_queue_size = max_queue_size
    cfg.parameters["sleep_ms"].string_value = str(sleep_ms)
    return text_format.MessageToString(cfg)


def write_slow_model(repo: Path, name: str = "slow", **kw: int) -> Path:
    """Put the slow python model into ``repo`` as version 1 (a test fixture, not a publish)."""
    (repo / name / "1").mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "slow_model.py", repo / name / "1" / "model.py")
    (repo / name / "config.pbtxt").write_text(slow_config(name, **kw))
    return repo / name
