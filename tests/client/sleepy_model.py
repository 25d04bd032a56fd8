"""A python-backend model for client tests: sleeps ``input[0]`` seconds; a negative value is refused.

Served by the embedded Triton from a temporary repository, it provokes real deadlines, real
queue-full (UNAVAILABLE) rejections and a real bad-request error response.
"""

import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "input").as_numpy()
            if float(x.min()) < 0:
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError("input must not be negative")))
                continue
            time.sleep(min(5.0, float(x.max())))
            logits = np.tile(np.arange(10, dtype=np.float32), (x.shape[0], 1))
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("logits", logits)]))
        return responses
