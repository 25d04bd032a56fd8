"""A python-backend stand-in for a heavy model: each execution sleeps ``sleep_ms`` (config parameter).

On a 2-core machine a CPU-bound model makes the load generator, not the server, the bottleneck;
a model whose cost is a fixed wait lets a Python client offer several times the server's capacity
and makes "saturation" a stable number. Input FP32 [N, 1, 8, 8] like digits, output logits [N, 10].
"""

import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.sleep_s = float(params.get("sleep_ms", {}).get("string_value", "20")) / 1000

    def execute(self, requests):
        time.sleep(self.sleep_s)
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "input").as_numpy()
            logits = np.tile(x.reshape(x.shape[0], -1)[:, :10].astype(np.float32), (1, 1))
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("logits", logits)]))
        return responses
