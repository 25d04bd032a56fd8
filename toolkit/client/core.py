"""What the sync and asyncio predictors share: options, metadata, validation, preprocessing, errors.

A predictor is this core plus a transport: :class:`~toolkit.client.sync.Predictor` runs calls on
threads, :class:`~toolkit.client.aio.AsyncPredictor` awaits them. Anything that decides (which
calls connect, what a batch must look like, what an answer must hold, which error a failure
becomes) lives here once, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contract.errors import ClientError, ServerError, UsageError
from contract.spec import ModelSpec
from toolkit.client.cache import ResultCache
from toolkit.client.endpoint import DEFAULT_URLS, check_protocol, check_url, protocol_headers
from toolkit.client.failures import CALLS, START_HINT, first_line, loaded_models, protocol_detail
from toolkit.client.images import preprocess_images
from toolkit.client.latency import LatencyTracker
from toolkit.client.metadata import as_dict, max_batch_size, parse_tensors, spec_from_config
from toolkit.client.predictions import TopK, parse_classification
from toolkit.client.retry import RetryPolicy
from toolkit.dtypes import numpy_from_wire, wire_from_numpy


@dataclass
class Call:
    """One tritonclient call a step wants made: method name and arguments."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


# The connect steps: each yields a Call, receives its result (or has the ClientError thrown in).
Steps = Generator[Call, Any, None]


def next_call(steps: Steps, result: Any, failed: ClientError | None) -> Call | None:
    """The call ``steps`` asks for after ``result`` (or after ``failed`` is thrown in); None when done."""
    try:
        return steps.throw(failed) if failed is not None else steps.send(result)
    except StopIteration:
        return None


class PredictorCore:
    """Options, metadata, validation, cache and preprocessing shared by the sync and async clients."""

    def __init__(
        self,
        model: str,
        url: str | None = None,
        protocol: str = "grpc",
        timeout: float = 30.0,
        version: str = "",
        *,
        spec: ModelSpec | None = None,
        cache_size: int = 0,
        retry: RetryPolicy | None = None,
        batch_size: int | None = None,
        concurrency: int = 4,
        deadline: float | None = None,
        admin_headers: dict[str, str] | None = None,
    ) -> None:
        """Check and keep the options (the arguments are documented on :class:`~toolkit.client.sync.Predictor`).

        Raises:
            UsageError: an option is out of range (the message says which and what is allowed).
        """
        check_protocol(protocol)
        if not timeout or not timeout > 0 or timeout == float("inf"):
            raise UsageError(f"timeout {timeout!r} must be a positive, finite number of seconds")
        if deadline is not None and not (0 < deadline < float("inf")):
            raise UsageError(f"deadline {deadline!r} must be a positive, finite number of seconds")
        if concurrency < 1 or (batch_size is not None and batch_size < 1):
            raise UsageError("--concurrency and --batch-size must be at least 1")
        if admin_headers is not None and not (isinstance(admin_headers, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in admin_headers.items())):
            raise UsageError("admin_headers must map header names to values (str -> str), as a tritonkit "
                             "server's admin_headers does")
        self.model = model
        self.protocol = protocol
        self.url = check_url((url or DEFAULT_URLS[protocol]).removeprefix("http://").removeprefix("grpc://"))
        self.timeout = float(timeout)
        self.deadline = None if deadline is None else float(deadline)
        self.admin_headers = dict(admin_headers or {})
        self.version = str(version or "")
        self.retry = retry or RetryPolicy()
        self.latency = LatencyTracker()
        self.cache = ResultCache(cache_size) if cache_size else None
        self.concurrency = int(concurrency)
        self.inputs: list[dict[str, Any]] = []
        self.outputs: list[dict[str, Any]] = []
        self.max_batch_size = 0
        self.config: dict[str, Any] = {}
        self._batch_size = batch_size
        self._spec = spec
        self._labels: tuple[str, ...] | None = None

    @property
    def where(self) -> str:
        return f"{self.protocol}://{self.url}"

    # -- errors --------------------------------------------------------------------------------
    def listening(self) -> bool:
        """Whether something accepts TCP connections at the URL (then a failed call is not 'nobody there')."""
        import socket

        host, _, port = self.url.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=min(1.0, self.timeout)):
                return True
        except (OSError, ValueError):
            return False

    def protocol_error(self, detail: str) -> ClientError:
        """The peer answered, but not as Triton does."""
        name = "gRPC" if self.protocol == "grpc" else "HTTP"
        other = "http" if self.protocol == "grpc" else "grpc"
        return ClientError(
            f"the server at {self.where} did not answer as Triton's {name} endpoint does ({detail}); check the "
            f"address and protocol (Triton answers HTTP on port 8000 and gRPC on 8001 by default; is it {other}?)"
        )

    def admin_request_headers(self) -> dict[str, str] | None:
        """The admin header for the APIs a tritonkit server restricts, in this protocol's form."""
        return protocol_headers(self.protocol, self.admin_headers)

    def error(self, exc: BaseException, kind: str, attempts: int, method: str = "") -> Exception:
        """The one-line error a failed call (of ``failure_kind`` ``kind``) becomes."""
        call = CALLS.get(method, "a request")
        if kind == "protocol":
            return self.protocol_error(f"{call}: {protocol_detail(exc)}")
        if kind == "connect":
            if self.listening():
                return self.protocol_error(f"{call}: it accepted the connection, then {first_line(exc)}")
            return ServerError(f"no Triton server answers at {self.where} ({first_line(exc)}); {START_HINT}")
        if kind == "timeout":
            seconds = self.timeout if self.deadline is None else min(self.timeout, self.deadline)
            return ClientError(
                f"{call} to {self.where} (model {self.model!r}) timed out after {seconds:g} s "
                f"({attempts} attempt(s)); raise --timeout or lighten the server's load"
            )
        if method in ("register_system_shared_memory", "unregister_system_shared_memory"):
            return self._shm_error(exc, call)
        if kind == "unavailable":
            return ClientError(
                f"model {self.model!r} at {self.where} is unavailable after {attempts} attempt(s): "
                f"{first_line(exc)}; retry later or check the server log"
            )
        return ClientError(f"{self.where} model {self.model!r}: {first_line(exc)}")

    def _shm_error(self, exc: BaseException, call: str) -> ClientError:
        why = first_line(exc)
        if "restrict" in why.lower() or "permission" in why.lower() or "403" in why:
            sent = "the admin header it was given was refused" if self.admin_headers else "no admin header was sent"
            return ClientError(
                f"{self.where} refused {call} ({why}; {sent}): the server restricts its shared-memory API "
                "to clients that send its admin header (tritonkit sends it to servers `tritonkit serve` "
                "started on this machine); otherwise turn shared memory off"
            )
        return ClientError(f"{self.where} refused {call} for model {self.model!r}: {why}; turn shared memory "
                           "off where the server does not run on this host")

    def ready_error(self, index: list[dict[str, Any]] | None) -> ClientError:
        """The model is not ready: the message lists the ready ones (when the server tells)."""
        if index is None:
            listed = "not listed (the server restricts its model-repository and statistics APIs)"
        else:
            listed = ", ".join(sorted({m["name"] for m in index if m.get("state") == "READY"})) or "none"
        return ClientError(
            f"model {self.model!r}{' version ' + self.version if self.version else ''} is not ready at "
            f"{self.where}; ready models: {listed}"
        )

    # -- connecting ----------------------------------------------------------------------------
    def connect_steps(self) -> Steps:
        """The calls that connect (live? ready? metadata, config), for either transport to run."""
        as_json = {"as_json": True} if self.protocol == "grpc" else {}
        if not (yield Call("is_server_live")):
            raise ServerError(f"Triton at {self.where} is not live; {START_HINT}")
        if not (yield Call("is_model_ready", (self.model, self.version))):
            try:
                index = yield Call("get_model_repository_index",
                                   kwargs={"headers": self.admin_request_headers(), **as_json})
                models = index.get("models", []) if isinstance(index, dict) else index
            except ClientError:  # the model-repository API is restricted: the statistics API lists loaded models
                try:
                    models = loaded_models((yield Call("get_inference_statistics", kwargs=as_json)))
                except ClientError:
                    models = None
            raise self.ready_error(models)
        meta = yield Call("get_model_metadata", (self.model, self.version), as_json)
        config = yield Call("get_model_config", (self.model, self.version), as_json)
        self.read_metadata(as_dict(meta), as_dict(config))

    def read_metadata(self, meta: dict[str, Any], config: dict[str, Any]) -> None:
        """Take inputs, outputs, max_batch_size and the carried spec from the server's answers."""
        config = config.get("config", config)
        self.inputs = parse_tensors(meta, "inputs", self.model, self.protocol_error)
        self.outputs = parse_tensors(meta, "outputs", self.model, self.protocol_error)
        self.max_batch_size = max_batch_size(config, self.model, self.protocol_error)
        self.config = config
        if self._spec is None:
            self._spec = spec_from_config(config, self.model, self.where)

    @property
    def spec(self) -> ModelSpec | None:
        """The model's spec (preprocessing), when given or carried by the served config."""
        return self._spec

    @property
    def batch_size(self) -> int:
        """Rows per request: the asked size, capped at the model's max_batch_size."""
        want = self._batch_size or 32
        return min(want, self.max_batch_size) if self.max_batch_size > 0 else want

    # -- requests ------------------------------------------------------------------------------
    def select_input(self, name: str) -> None:
        """Send input ``name``: a model whose inputs are optional alternatives (the image ensemble takes
        encoded bytes or raw pixels, exactly one per request) is fed through the one chosen."""
        if name not in {t["name"] for t in self.inputs}:
            raise UsageError(f"model {self.model!r} has no input {name!r}; its inputs: "
                             f"{', '.join(t['name'] for t in self.inputs)}")
        self.inputs.sort(key=lambda t: t["name"] != name)

    def expected_input(self) -> str:
        t = self.inputs[0]
        dims = t["shape"][1:] if self.max_batch_size > 0 else t["shape"]
        shown = ", ".join(map(str, dims))
        return f"{t['datatype']} [N, {shown}]" if self.max_batch_size > 0 else f"{t['datatype']} [{shown}]"

    def validate(self, batch: np.ndarray) -> np.ndarray:
        """Check a batch against the model's metadata; the message gives the expected dtype and shape."""
        t = self.inputs[0]
        batch = np.asarray(batch)
        expected = numpy_from_wire(t["datatype"])
        dims = t["shape"][1:] if self.max_batch_size > 0 else t["shape"]
        where = f"input {t['name']!r} of model {self.model!r}"
        if batch.dtype != expected:
            raise ClientError(f"{where} expects {self.expected_input()}, got {batch.dtype.name} "
                              f"{list(batch.shape)}; convert the values to {expected.name} first")
        ndim = len(dims) + (1 if self.max_batch_size > 0 else 0)
        shape = batch.shape[1:] if self.max_batch_size > 0 else batch.shape
        if batch.ndim != ndim or any(d != -1 and d != s for d, s in zip(dims, shape)):
            raise ClientError(f"{where} expects {self.expected_input()}, got {batch.dtype.name} {list(batch.shape)}")
        return np.ascontiguousarray(batch)

    def preprocess(self, sources: Sequence[Any]) -> np.ndarray:
        """Image files (paths, bytes or PIL images) -> one normalized batch, as in training."""
        if self._spec is None:
            raise UsageError(
                f"model {self.model!r} at {self.where} carries no tritonkit spec, so the training transform "
                "is unknown; pass --spec FILE (spec .json, manifest.json or .onnx) or --repository DIR"
            )
        return preprocess_images(sources, self._spec)

    def chunks(self, n: int, batch_size: int | None) -> list[tuple[int, int]]:
        """Row spans of ``predict_many``: ``batch_size`` (or the default) rows, capped at max_batch_size."""
        size = min(batch_size, self.max_batch_size) if batch_size and self.max_batch_size > 0 else (
            batch_size or self.batch_size)
        return [(s, min(n, s + size)) for s in range(0, n, size)]

    def empty_output(self) -> np.ndarray:
        """The answer to zero rows: shape ``(0, *output dims)``, as a non-empty answer would have."""
        return np.zeros((0, *[max(0, d) for d in self.outputs[0]["shape"][1:]]), dtype=np.float32)

    def request(self, mod: Any, batch: np.ndarray, class_count: int = 0) -> tuple[Any, list[Any]]:
        """The input (data not yet set) and the requested output of one inference."""
        t = self.inputs[0]
        inp = mod.InferInput(t["name"], list(batch.shape), wire_from_numpy(batch.dtype))
        return inp, [mod.InferRequestedOutput(self.outputs[0]["name"], class_count=class_count)]

    def infer_call(self, inp: Any, outputs: list[Any]) -> Call:
        return Call("infer", (self.model, [inp]), {"model_version": self.version, "outputs": outputs})

    def read_output(self, res: Any, rows: int) -> np.ndarray:
        """The first output of an inference result for ``rows`` inputs; an answer that does not decode,
        lacks the output, or whose rank or row count is not what the metadata promised is refused."""
        name = self.outputs[0]["name"]
        try:
            out = res.as_numpy(name)
        except Exception as exc:  # noqa: BLE001 - whatever a garbled answer raises inside the SDK
            raise self.protocol_error(f"output {name!r} of model {self.model!r} does not decode: "
                                      f"{first_line(exc)}") from None
        if out is None:
            raise ClientError(f"{self.where} model {self.model!r} returned no {name!r} output")
        want_ndim = len(self.outputs[0]["shape"])
        if out.ndim != want_ndim or (self.max_batch_size > 0 and out.shape[0] != rows):
            raise self.protocol_error(
                f"output {name!r} of model {self.model!r} has shape {list(out.shape)} for {rows} input row(s); "
                f"its metadata promised {self.outputs[0]['shape']}")
        return out

    def classes(self, values: np.ndarray) -> list[list[TopK]]:
        """Classification-extension strings -> TopK rows; strings Triton would not send are the peer's fault."""
        try:
            return parse_classification(values)
        except (ValueError, UnicodeDecodeError, TypeError) as exc:
            raise self.protocol_error(f"classification output of model {self.model!r} is not "
                                      f"'score:index:label' strings ({first_line(exc)})") from None

    def num_classes(self) -> int:
        dims = self.outputs[0]["shape"]
        return int(dims[-1]) if dims and int(dims[-1]) > 0 else 0

    def zero_row(self) -> np.ndarray:
        """One all-zero input row (to ask the classification extension for every label)."""
        t = self.inputs[0]
        dims = [max(1, d) for d in (t["shape"][1:] if self.max_batch_size > 0 else t["shape"])]
        shape = [1, *dims] if self.max_batch_size > 0 else dims
        return np.zeros(shape, dtype=numpy_from_wire(t["datatype"]))

    def labels_from(self, values: np.ndarray | None) -> tuple[str, ...]:
        """Labels from a classification answer over all classes (None: the model has no class count)."""
        labels: tuple[str, ...] = ()
        if values is not None:
            by_index = {t.index: t.label for t in self.classes(values)[0]}
            labels = tuple(by_index.get(i, str(i)) for i in range(self.num_classes()))
        return labels or (self._spec.labels if self._spec else ())
