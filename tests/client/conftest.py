"""Client fixtures: a second embedded Triton serving a model that sleeps, for deadlines and retries."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def sleepy_config(name: str = "sleepy", max_queue_size: int = 1) -> str:
    """Config of the sleeping python model: FP32 [-1, 1] in, FP32 [-1, 10] out, a queue of one."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    cfg = mc.ModelConfig(name=name, backend="python", max_batch_size=4)
    cfg.input.add(name="input", data_type=mc.TYPE_FP32, dims=[1])
    cfg.output.add(name="logits", data_type=mc.TYPE_FP32, dims=[10])
    cfg.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=1)
    cfg.dynamic_batching.default_queue_policy.max_queue_size = max_queue_size
    return text_format.MessageToString(cfg)


@pytest.fixture(scope="session")
def sleepy_server(tmp_path_factory: pytest.TempPathFactory):
    """An embedded Triton on free ports serving ``sleepy`` (queue of 16) and ``sleepy_q1`` (queue of 1)."""
    from toolkit.serve.embedded import EmbeddedServer
    from toolkit.serve.ports import free_port

    repo = tmp_path_factory.mktemp("sleepy") / "model_repository"
    for name, queue in (("sleepy", 16), ("sleepy_q1", 1)):
        (repo / name / "1").mkdir(parents=True)
        shutil.copy(HERE / "sleepy_model.py", repo / name / "1" / "model.py")
        (repo / name / "config.pbtxt").write_text(sleepy_config(name, queue))
    server = EmbeddedServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                            log_path=repo.parent / "triton.log")
    server.start(timeout=180)
    yield server
    server.stop()
