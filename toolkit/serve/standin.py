"""A stand-in Triton backend for a runtime this machine lacks (TensorRT, PyTorch, TensorFlow, OpenVINO).

:mod:`toolkit.serve.load_check` copies this file to ``<private backend folder>/<backend>/model.py``
of its throw-away server only (``tritonkit serve`` never sees it). Triton then resolves
``platform: "tensorrt_plan"`` (and ``backend: "tensorrt"``, ``pytorch_libtorch``, the TensorFlow
platforms) to a Python-based backend of that name, so everything Triton's core judges before, around
and after the backend (names, dims, data types, batching, scheduling, instance groups, warm-up,
ensembles) still judges the config. The stand-in itself only checks what every real backend checks
first, that the version's model file exists, and never reads the file; once loaded, each request gets
an error saying it is a stand-in (warm-up samples before that get empty answers). It imports nothing
of Triton's at module level, so it can be imported anywhere.
"""

from __future__ import annotations

import json
import os

# Backends the embedded server lacks, and the file each looks for in a version folder when the
# config names none (Triton's core fills ``default_model_filename`` for the first three itself).
STANDIN_BACKENDS: dict[str, str] = {
    "tensorrt": "model.plan",
    "pytorch": "model.pt",
    "tensorflow": "model.savedmodel",
    "openvino": "model.xml",
}


def _model_file(args: dict, config: dict, backend: str) -> str:
    filename = config.get("default_model_filename") or STANDIN_BACKENDS.get(backend, "model")
    return os.path.join(args["model_repository"], str(args["model_version"]), filename)


def warmup_executions(config: dict) -> int:
    """How many ``execute`` calls Triton's warm-up makes on each instance: every sample with a batch size,
    ``count`` times (at least once), before any client request can arrive."""
    samples = [w for w in config.get("model_warmup", []) if int(w.get("batch_size", 0) or 0) > 0]
    return sum(max(1, int(w.get("count", 0) or 0)) for w in samples)


class TritonPythonModel:
    """Accepts a model whose file exists, without loading it; refuses every request."""

    def initialize(self, args: dict) -> None:
        import triton_python_backend_utils as pb_utils

        config = json.loads(args["model_config"])
        self.model = config.get("name", args.get("model_name", "?"))
        self.backend = config.get("backend") or "?"
        path = _model_file(args, config, self.backend)
        if not os.path.exists(path):
            raise pb_utils.TritonModelException(
                f"model '{self.model}': unable to find '{path}' (the {self.backend} stand-in checks only that "
                "the model file exists)"
            )
        self.decoupled = pb_utils.using_decoupled_model_transaction_policy(config)
        self.warmup_left = warmup_executions(config)

    def execute(self, requests: list) -> list | None:
        """Refuse each request, except Triton's warm-up samples: those get an empty answer (warm-up checks
        only for errors), as a real backend passes warm-up. The error stays short: this Triton's python
        backend fails on long warm-up error texts."""
        import triton_python_backend_utils as pb_utils

        warmup = self.warmup_left > 0
        self.warmup_left -= warmup

        def answer():  # noqa: ANN202 - one fresh response per request: the backend frees each one
            if warmup:
                return pb_utils.InferenceResponse(output_tensors=[])
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(f"{self.backend} stand-in: runs nothing"))

        if not self.decoupled:
            return [answer() for _ in requests]
        for request in requests:
            request.get_response_sender().send(answer(), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
