"""Predictions through a running Triton server with the ``tritonclient`` SDK (HTTP or gRPC)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toolkit.errors import ClientError, ServerError
from toolkit.spec import numpy_dtype_from_wire, triton_wire_dtype

DEFAULT_URLS = {"http": "127.0.0.1:8000", "grpc": "127.0.0.1:8001"}


def _client_module(protocol: str) -> Any:
    if protocol == "http":
        import tritonclient.http as mod
    elif protocol == "grpc":
        import tritonclient.grpc as mod
    else:
        raise ClientError(f"protocol {protocol!r} is not supported; use http or grpc")
    return mod


@dataclass
class LatencyTracker:
    """Per-call latencies in milliseconds, with percentiles."""

    samples: list[float] = field(default_factory=list)

    def add(self, ms: float) -> None:
        self.samples.append(ms)

    def percentiles(self) -> dict[str, float]:
        if not self.samples:
            return {}
        a = np.asarray(self.samples)
        return {f"p{q}": float(np.percentile(a, q)) for q in (50, 90, 99)} | {"mean": float(a.mean())}


class Predictor:
    """Classify batches with a model served by Triton.

    Args:
        model: model name in the repository.
        url: ``host:port`` of the server (HTTP 8000 / gRPC 8001 by default).
        protocol: ``http`` or ``grpc``.
        timeout: seconds for every call.
    """

    def __init__(
        self,
        model: str,
        url: str | None = None,
        protocol: str = "grpc",
        timeout: float = 30.0,
        version: str = "",
    ) -> None:
        self.model = model
        self.protocol = protocol
        self.url = url or DEFAULT_URLS.get(protocol, "")
        self.timeout = timeout
        self.version = version
        self.latency = LatencyTracker()
        mod = _client_module(protocol)
        self._mod = mod
        try:
            if protocol == "http":
                self._client = mod.InferenceServerClient(
                    self.url, connection_timeout=timeout, network_timeout=timeout
                )
            else:
                self._client = mod.InferenceServerClient(self.url)
        except Exception as exc:  # noqa: BLE001
            raise ClientError(f"cannot create a {protocol} client for {self.url} ({exc})") from None
        self._check_ready()
        meta = self._call(self._client.get_model_metadata, model, version)
        if protocol == "grpc":
            meta = _grpc_to_dict(meta)
        self.inputs = meta["inputs"]
        self.outputs = meta["outputs"]

    def _call(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        from tritonclient.utils import InferenceServerException

        try:
            if self.protocol == "grpc":
                kwargs.setdefault("client_timeout", self.timeout)
            return func(*args, **kwargs)
        except InferenceServerException as exc:
            msg = (exc.message() or str(exc)).strip().splitlines()[0]
            raise ClientError(f"{self.protocol}://{self.url} model {self.model!r}: {msg}") from None
        except Exception as exc:  # noqa: BLE001 - connection errors come in many types
            raise ServerError(
                f"no Triton server answers at {self.protocol}://{self.url} ({type(exc).__name__}); "
                "start one with 'make serve' or 'tritonkit serve'"
            ) from None

    def _check_ready(self) -> None:
        try:
            live = self._client.is_server_live()
        except Exception:  # noqa: BLE001
            live = False
        if not live:
            raise ServerError(
                f"no Triton server answers at {self.protocol}://{self.url}; "
                "start one with 'make serve' or 'tritonkit serve'"
            )
        if not self._call(self._client.is_model_ready, self.model, self.version):
            index = self._call(self._client.get_model_repository_index)
            if self.protocol == "grpc":
                index = [{"name": m.name, "state": m.state} for m in index.models]
            ready = sorted(m["name"] for m in index if m.get("state") == "READY")
            raise ClientError(
                f"model {self.model!r} is not ready at {self.url}; ready models: {', '.join(ready) or 'none'}"
            )

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Logits (first output) for one batch ``(N, ...)`` of preprocessed inputs."""
        spec_in = self.inputs[0]
        expected = numpy_dtype_from_wire(spec_in["datatype"])
        if batch.dtype != np.dtype(expected):
            raise ClientError(f"input {spec_in['name']!r} expects {expected}, got {batch.dtype}")
        dims = [int(d) for d in spec_in["shape"]][1:]
        if batch.ndim != len(dims) + 1 or any(d != -1 and d != s for d, s in zip(dims, batch.shape[1:])):
            raise ClientError(
                f"input {spec_in['name']!r} expects shape [N, {', '.join(map(str, dims))}], got {list(batch.shape)}"
            )
        inp = self._mod.InferInput(spec_in["name"], list(batch.shape), triton_wire_dtype(batch.dtype.name))
        inp.set_data_from_numpy(batch)
        out_name = self.outputs[0]["name"]
        t0 = time.perf_counter()
        res = self._call(
            self._client.infer, self.model, [inp], model_version=self.version,
            outputs=[self._mod.InferRequestedOutput(out_name)],
        )
        self.latency.add((time.perf_counter() - t0) * 1000)
        return res.as_numpy(out_name)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.predict(batch)

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # noqa: BLE001
            pass


def _grpc_to_dict(meta: Any) -> dict[str, Any]:
    return {
        "inputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in meta.inputs],
        "outputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in meta.outputs],
    }
