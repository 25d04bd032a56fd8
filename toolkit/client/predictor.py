"""Predictions through a running Triton server with the ``tritonclient`` SDK (HTTP or gRPC).

:class:`Predictor` (sync, thread pool) and :class:`AsyncPredictor` (asyncio) share one behaviour:

- ``preprocess`` turns image files into the model's input with the training transform, using the
  model's :class:`~contract.spec.ModelSpec` (given, or read from the served config's
  ``tritonkit.model_spec`` parameter when the repository carries one);
- ``predict`` sends one batch; ``predict_many`` splits any number of rows into batches no larger
  than the model's ``max_batch_size`` and sends them concurrently, in order;
- an optional LRU cache keyed by each row's bytes skips rows already answered;
- every call carries a timeout that bounds the whole attempt (connect, send, the complete answer),
  over HTTP as over gRPC, so a server that trickles bytes cannot hold a call open; ``deadline``
  bounds a call with all its retries; only UNAVAILABLE/503 and deadline errors are retried, with
  capped exponential backoff; a bad request fails at once with the server's reason;
- a peer that does not speak Triton's protocol (garbage bytes, metadata without the fields Triton
  always sends) fails in one line naming the server, never with a parser's own exception;
- inputs at or above ``shm_threshold`` bytes can travel through system shared memory (same host),
  registered with the server's admin header where it restricts that API;
- labels and top-k come from Triton's classification extension.

Every failure is a :class:`~contract.errors.TritonkitError` with a one-line message.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from contract.errors import ClientError, ServerError, UsageError
from contract.spec import ModelSpec, numpy_dtype_from_wire, triton_wire_dtype
from toolkit.client.predictions import TopK, parse_classification, topk_from_logits
from toolkit.repository.config import SPEC_PARAMETER

DEFAULT_URLS = {"http": "127.0.0.1:8000", "grpc": "127.0.0.1:8001"}
PROTOCOLS = ("grpc", "http")

SHM_MODES = ("off", "auto", "on")
# Triton expects a restricted gRPC protocol's header key with this prefix (the HTTP form has none).
GRPC_HEADER_PREFIX = "triton-grpc-protocol-"
# What each call is, for messages.
_CALLS = {
    "is_server_live": "the liveness check", "is_model_ready": "the readiness check",
    "get_model_repository_index": "the model index request", "get_model_metadata": "the model metadata request",
    "get_model_config": "the model config request", "infer": "an inference request",
    "register_system_shared_memory": "the shared-memory registration",
    "unregister_system_shared_memory": "the shared-memory unregistration",
}
START_HINT = "start one with 'tritonkit serve --repository model_repository' (or 'make serve')"


def _client_module(protocol: str, aio: bool = False) -> Any:
    if protocol == "http":
        if aio:
            import tritonclient.http.aio as mod
        else:
            import tritonclient.http as mod
    elif protocol == "grpc":
        if aio:
            import tritonclient.grpc.aio as mod
        else:
            import tritonclient.grpc as mod
    else:
        raise UsageError(f"protocol {protocol!r} is not supported; use one of {', '.join(PROTOCOLS)}")
    return mod


# -- latency, retries, cache --------------------------------------------------------------------
class LatencyTracker:
    """Per-request latencies in milliseconds (thread-safe), with percentiles."""

    def __init__(self, keep: int = 100_000) -> None:
        self._samples: deque[float] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def add(self, ms: float) -> None:
        with self._lock:
            self._samples.append(ms)

    @property
    def samples(self) -> list[float]:
        with self._lock:
            return list(self._samples)

    def reset(self) -> None:
        with self._lock:
            self._samples.clear()

    def percentiles(self) -> dict[str, float]:
        """``p50 p90 p95 p99 mean max`` in ms and ``count``; empty when nothing was sent."""
        a = np.asarray(self.samples)
        if not a.size:
            return {}
        out = {f"p{q}": float(np.percentile(a, q)) for q in (50, 90, 95, 99)}
        return out | {"mean": float(a.mean()), "max": float(a.max()), "count": int(a.size)}


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff for UNAVAILABLE/503 and deadline errors only."""

    attempts: int = 3
    initial_s: float = 0.05
    max_s: float = 1.0

    def delays(self) -> Iterator[float]:
        """Sleeps between attempts: ``initial, 2*initial, ...`` capped at ``max_s``."""
        for i in range(max(0, self.attempts - 1)):
            yield min(self.max_s, self.initial_s * (2**i))


# gRPC's words for a peer that answered, but not in HTTP/2 (an HTTP/1 server, garbage bytes).
_NOT_GRPC = ("failed parsing http/2", "http1.x server")


def failure_kind(exc: BaseException) -> str:
    """``unavailable`` / ``timeout`` / ``connect`` (retried), ``protocol`` (the peer is not Triton) or ``bad``."""
    import http.client
    import json

    from tritonclient.utils import InferenceServerException

    if isinstance(exc, InferenceServerException):
        status = str(exc.status() or "")
        msg = (exc.message() or "").lower()
        if status in ("StatusCode.DEADLINE_EXCEEDED", "504") or "deadline exceeded" in msg:
            return "timeout"
        if any(words in msg for words in _NOT_GRPC):
            return "protocol"
        if status == "StatusCode.UNAVAILABLE" and ("connect" in msg or "connection refused" in msg):
            return "connect"
        if status in ("StatusCode.UNAVAILABLE", "503"):
            return "unavailable"
        return "bad"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError) or "Timeout" in type(exc).__name__:
        return "timeout"
    # geventhttpclient's HTTPParseError, a body that is not UTF-8 JSON: the peer speaks something else.
    if isinstance(exc, http.client.HTTPException | json.JSONDecodeError | UnicodeError):
        return "protocol"
    if isinstance(exc, OSError) or "Connect" in type(exc).__name__ or "ServerDisconnected" in type(exc).__name__:
        return "connect"
    return "bad"


RETRIED = ("unavailable", "timeout", "connect")


def _protocol_detail(exc: BaseException) -> str:
    """What was wrong with a peer's answer, in words (never a parser's raw tuple or codec jargon)."""
    import http.client
    import json

    if isinstance(exc, http.client.HTTPException):
        return f"its answer is not HTTP/1.1 ({_first_line(exc)})"
    if isinstance(exc, UnicodeError):
        return "its answer is not UTF-8 text"
    if isinstance(exc, json.JSONDecodeError):
        return f"its answer is not JSON ({exc.msg} at byte {exc.pos})"
    return _first_line(exc)


def loaded_models(stats: Any) -> list[dict[str, Any]]:
    """Index-style entries (name, version, state READY) from a statistics answer (HTTP dict or gRPC JSON).

    The statistics API lists the loaded models and, unlike the model-repository index, is not one of
    the admin APIs that tritonkit's servers restrict.
    """
    entries = stats.get("model_stats", []) if isinstance(stats, dict) else []
    return [{"name": m["name"], "version": str(m.get("version", "")), "state": "READY"}
            for m in entries if isinstance(m, dict) and isinstance(m.get("name"), str)]


def _first_line(exc: BaseException) -> str:
    import http.client

    from tritonclient.utils import InferenceServerException

    if isinstance(exc, http.client.HTTPException) and len(exc.args) == 2 and isinstance(exc.args[1], int):
        return f"{exc.args[0]} at byte {exc.args[1]}"  # geventhttpclient: ('Expected HTTP/', 8)
    text = (exc.message() if isinstance(exc, InferenceServerException) else str(exc)) or type(exc).__name__
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class ResultCache:
    """LRU of output rows keyed by a hash of each input row's dtype, shape and bytes."""

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self._rows: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(row: np.ndarray) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{row.dtype.str}{row.shape}".encode())
        h.update(np.ascontiguousarray(row).tobytes())
        return h.digest()

    def get(self, key: bytes) -> np.ndarray | None:
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                self.misses += 1
                return None
            self._rows.move_to_end(key)
            self.hits += 1
            return row

    def put(self, key: bytes, row: np.ndarray) -> None:
        with self._lock:
            self._rows[key] = row
            self._rows.move_to_end(key)
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)

    def __len__(self) -> int:
        return len(self._rows)


def _check_url(url: str) -> str:
    """``host:port`` (``[v6]:port``) with a port in 1..65535; anything else is refused before any call,
    since gRPC would otherwise wrap an out-of-range port silently onto another one."""
    host, sep, port = url.rpartition(":")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not bare or not port.isdigit() or not 0 < int(port) < 65536 or any(
            c.isspace() or c in "/?#@" for c in url) or (":" in bare and bare == host):
        raise UsageError(f"URL {url!r} is not host:port (e.g. 127.0.0.1:8001, [::1]:8000) with a port in "
                         "1..65535; give --url as host:port")
    return url


# -- what both predictors share ----------------------------------------------------------------
class _Base:
    """Options, metadata, validation, cache and preprocessing shared by the sync and async clients."""

    def _setup(
        self, model: str, url: str | None, protocol: str, timeout: float, version: str,
        spec: ModelSpec | None, cache_size: int, retry: RetryPolicy | None, batch_size: int | None,
        concurrency: int, deadline: float | None = None, admin_headers: dict[str, str] | None = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise UsageError(f"protocol {protocol!r} is not supported; use one of {', '.join(PROTOCOLS)}")
        if not timeout or not timeout > 0 or timeout == float("inf"):
            raise UsageError(f"timeout {timeout!r} must be a positive, finite number of seconds")
        if deadline is not None and not (0 < deadline < float("inf")):
            raise UsageError(f"deadline {deadline!r} must be a positive, finite number of seconds")
        if concurrency < 1 or (batch_size is not None and batch_size < 1):
            raise UsageError("--concurrency and --batch-size must be at least 1")
        self.model = model
        self.protocol = protocol
        self.url = _check_url((url or DEFAULT_URLS[protocol]).removeprefix("http://").removeprefix("grpc://"))
        self.timeout = float(timeout)
        self.deadline = None if deadline is None else float(deadline)
        if admin_headers is not None and not (isinstance(admin_headers, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in admin_headers.items())):
            raise UsageError("admin_headers must map header names to values (str -> str), as a tritonkit "
                             "server's admin_headers does")
        self.admin_headers = dict(admin_headers or {})
        self.version = str(version or "")
        self.retry = retry or RetryPolicy()
        self.latency = LatencyTracker()
        self.cache = ResultCache(cache_size) if cache_size else None
        self.concurrency = int(concurrency)
        self._batch_size = batch_size
        self._spec = spec
        self._labels: tuple[str, ...] | None = None

    @property
    def where(self) -> str:
        return f"{self.protocol}://{self.url}"

    # -- errors --------------------------------------------------------------------------------
    def _attempt_budget(self, start: float) -> float:
        """Seconds the next attempt may take: ``timeout``, cut to what the call's deadline leaves."""
        if self.deadline is None:
            return self.timeout
        return max(0.001, min(self.timeout, start + self.deadline - time.monotonic()))

    def _may_retry(self, start: float, delay: float) -> bool:
        """Whether a retry after ``delay`` seconds still starts within the call's deadline."""
        return self.deadline is None or time.monotonic() + delay < start + self.deadline - 0.01

    def _listening(self) -> bool:
        """Whether something accepts TCP connections at the URL (then a failed call is not 'nobody there')."""
        import socket

        host, _, port = self.url.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=min(1.0, self.timeout)):
                return True
        except (OSError, ValueError):
            return False

    def _protocol_error(self, detail: str) -> ClientError:
        name = "gRPC" if self.protocol == "grpc" else "HTTP"
        other = "http" if self.protocol == "grpc" else "grpc"
        return ClientError(
            f"the server at {self.where} did not answer as Triton's {name} endpoint does ({detail}); check the "
            f"address and protocol (Triton answers HTTP on port 8000 and gRPC on 8001 by default; is it {other}?)"
        )

    def _protocol_admin_headers(self) -> dict[str, str] | None:
        """The admin header for the APIs a tritonkit server restricts, in this protocol's form."""
        if not self.admin_headers:
            return None
        if self.protocol == "grpc":
            return {k if k.startswith(GRPC_HEADER_PREFIX) else GRPC_HEADER_PREFIX + k: v
                    for k, v in self.admin_headers.items()}
        return dict(self.admin_headers)

    def _error(self, exc: BaseException, kind: str, attempts: int, method: str = "") -> Exception:
        call = _CALLS.get(method, "a request")
        if kind == "protocol":
            return self._protocol_error(f"{call}: {_protocol_detail(exc)}")
        if kind == "connect":
            if self._listening():
                return self._protocol_error(f"{call}: it accepted the connection, then {_first_line(exc)}")
            return ServerError(f"no Triton server answers at {self.where} ({_first_line(exc)}); {START_HINT}")
        if kind == "timeout":
            seconds = self.timeout if self.deadline is None else min(self.timeout, self.deadline)
            return ClientError(
                f"{call} to {self.where} (model {self.model!r}) timed out after {seconds:g} s "
                f"({attempts} attempt(s)); raise --timeout or lighten the server's load"
            )
        if method in ("register_system_shared_memory", "unregister_system_shared_memory"):
            why = _first_line(exc)
            if "restrict" in why.lower() or "permission" in why.lower() or "403" in why:
                sent = "the admin header it was given was refused" if self.admin_headers else "no admin header was sent"
                return ClientError(
                    f"{self.where} refused {call} ({why}; {sent}): the server restricts its shared-memory API "
                    "to clients that send its admin header (tritonkit sends it to servers `tritonkit serve` "
                    "started on this machine); otherwise turn shared memory off"
                )
            return ClientError(f"{self.where} refused {call} for model {self.model!r}: {why}; turn shared memory "
                               "off where the server does not run on this host")
        if kind == "unavailable":
            return ClientError(
                f"model {self.model!r} at {self.where} is unavailable after {attempts} attempt(s): "
                f"{_first_line(exc)}; retry later or check the server log"
            )
        return ClientError(f"{self.where} model {self.model!r}: {_first_line(exc)}")

    # -- metadata ------------------------------------------------------------------------------
    def _tensors(self, meta: Any, key: str) -> list[dict[str, Any]]:
        """``inputs`` / ``outputs`` of model metadata, every field Triton always sends checked."""
        where = f"model {self.model!r} metadata"
        items = meta.get(key) if isinstance(meta, dict) else None
        if not isinstance(items, list) or not items:
            raise self._protocol_error(f"{where} has no {key!r} list")
        out = []
        for i, t in enumerate(items):
            if not isinstance(t, dict):
                raise self._protocol_error(f"{where} {key}[{i}] is not an object")
            for field in ("name", "datatype", "shape"):
                if field not in t:
                    raise self._protocol_error(f"{where} {key}[{i}] has no {field!r}")
            shape = t["shape"]
            if not isinstance(t["name"], str) or not isinstance(t["datatype"], str) or not isinstance(shape, list):
                raise self._protocol_error(f"{where} {key}[{i}] has a malformed name, datatype or shape")
            try:
                dims = [int(d) for d in shape]
            except (TypeError, ValueError):
                raise self._protocol_error(f"{where} {key}[{i}] shape {shape!r} is not a list of integers") from None
            if any(d < -1 for d in dims):
                raise self._protocol_error(f"{where} {key}[{i}] shape {dims} has a dimension below -1")
            if key == "inputs":
                try:
                    numpy_dtype_from_wire(t["datatype"])
                except UsageError:
                    raise self._protocol_error(f"{where} {key}[{i}] datatype {t['datatype']!r} is not a "
                                               "Triton type tritonkit can send") from None
            out.append({"name": t["name"], "datatype": t["datatype"], "shape": dims})
        return out

    def _read_metadata(self, meta: dict[str, Any], config: dict[str, Any]) -> None:
        config = config.get("config", config)
        self.inputs = self._tensors(meta, "inputs")
        self.outputs = self._tensors(meta, "outputs")
        try:
            self.max_batch_size = int(config.get("max_batch_size", 0) or 0)
        except (TypeError, ValueError):
            raise self._protocol_error(f"model {self.model!r} config max_batch_size "
                                       f"{config.get('max_batch_size')!r} is not an integer") from None
        self.config = config
        if self._spec is None:
            params = config.get("parameters")
            entry = params.get(SPEC_PARAMETER) if isinstance(params, dict) else None
            raw = entry.get("string_value") if isinstance(entry, dict) else None
            if raw:
                try:
                    self._spec = ModelSpec.from_json(raw, where=f"model {self.model!r} at {self.where}")
                except Exception as exc:  # noqa: BLE001 - anything a hostile config holds becomes one line
                    raise ClientError(
                        f"model {self.model!r} at {self.where} carries a {SPEC_PARAMETER} parameter that is not a "
                        f"tritonkit spec ({_first_line(exc)}); pass --spec FILE or --repository DIR"
                    ) from None

    @property
    def spec(self) -> ModelSpec | None:
        """The model's spec (preprocessing), when given or carried by the served config."""
        return self._spec

    @property
    def batch_size(self) -> int:
        """Rows per request: the asked size, capped at the model's max_batch_size."""
        want = self._batch_size or 32
        return min(want, self.max_batch_size) if self.max_batch_size > 0 else want

    def _ready_error(self, index: list[dict[str, Any]] | None) -> ClientError:
        if index is None:
            listed = "not listed (the server restricts its model-repository and statistics APIs)"
        else:
            listed = ", ".join(sorted({m["name"] for m in index if m.get("state") == "READY"})) or "none"
        return ClientError(
            f"model {self.model!r}{' version ' + self.version if self.version else ''} is not ready at "
            f"{self.where}; ready models: {listed}"
        )

    def expected_input(self) -> str:
        t = self.inputs[0]
        dims = t["shape"][1:] if self.max_batch_size > 0 else t["shape"]
        shown = ", ".join(map(str, dims))
        return f"{t['datatype']} [N, {shown}]" if self.max_batch_size > 0 else f"{t['datatype']} [{shown}]"

    def validate(self, batch: np.ndarray) -> np.ndarray:
        """Check a batch against the model's metadata; the message gives the expected dtype and shape."""
        t = self.inputs[0]
        batch = np.asarray(batch)
        expected = np.dtype(numpy_dtype_from_wire(t["datatype"]))
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
        from toolkit.client.images import preprocess_images

        if self._spec is None:
            raise UsageError(
                f"model {self.model!r} at {self.where} carries no tritonkit spec, so the training transform "
                "is unknown; pass --spec FILE (spec .json, manifest.json or .onnx) or --repository DIR"
            )
        return preprocess_images(sources, self._spec)

    def _chunks(self, n: int, batch_size: int | None) -> list[tuple[int, int]]:
        size = min(batch_size, self.max_batch_size) if batch_size and self.max_batch_size > 0 else (
            batch_size or self.batch_size)
        return [(s, min(n, s + size)) for s in range(0, n, size)]

    def _cache_split(self, batch: np.ndarray) -> tuple[list[bytes], dict[int, np.ndarray], list[int]]:
        assert self.cache is not None
        keys = [ResultCache.key(r) for r in batch]
        hits = {i: row for i, k in enumerate(keys) if (row := self.cache.get(k)) is not None}
        return keys, hits, [i for i in range(len(batch)) if i not in hits]

    def _cache_merge(self, keys: list[bytes], hits: dict[int, np.ndarray], miss: list[int],
                     out: np.ndarray | None) -> np.ndarray:
        assert self.cache is not None
        fresh = dict(zip(miss, out)) if out is not None else {}
        for i, row in fresh.items():
            self.cache.put(keys[i], row.copy())
        if not keys:
            return np.zeros((0, *[max(0, d) for d in self.outputs[0]["shape"][1:]]), dtype=np.float32)
        return np.stack([hits[i] if i in hits else fresh[i] for i in range(len(keys))])

    def _requested(self, mod: Any, class_count: int = 0) -> list[Any]:
        name = self.outputs[0]["name"]
        return [mod.InferRequestedOutput(name, class_count=class_count)]

    def _input(self, mod: Any, batch: np.ndarray) -> Any:
        t = self.inputs[0]
        inp = mod.InferInput(t["name"], list(batch.shape), triton_wire_dtype(batch.dtype.name))
        return inp

    def _output(self, res: Any, rows: int) -> np.ndarray:
        """The first output of an inference result for ``rows`` inputs; an answer that does not decode,
        or whose rank or row count is not what the metadata promised, is the peer's fault."""
        name = self.outputs[0]["name"]
        try:
            out = res.as_numpy(name)
        except Exception as exc:  # noqa: BLE001 - whatever a garbled answer raises inside the SDK
            raise self._protocol_error(f"output {name!r} of model {self.model!r} does not decode: "
                                       f"{_first_line(exc)}") from None
        if out is None:
            raise ClientError(f"{self.where} model {self.model!r} returned no {name!r} output")
        want_ndim = len(self.outputs[0]["shape"])
        if out.ndim != want_ndim or (self.max_batch_size > 0 and out.shape[0] != rows):
            raise self._protocol_error(
                f"output {name!r} of model {self.model!r} has shape {list(out.shape)} for {rows} input row(s); "
                f"its metadata promised {self.outputs[0]['shape']}")
        return out

    def _classes(self, values: np.ndarray) -> list[list[TopK]]:
        """Classification-extension strings -> TopK rows; strings Triton would not send are the peer's fault."""
        try:
            return parse_classification(values)
        except (ValueError, UnicodeDecodeError, TypeError) as exc:
            raise self._protocol_error(f"classification output of model {self.model!r} is not "
                                       f"'score:index:label' strings ({_first_line(exc)})") from None

    def _num_classes(self) -> int:
        dims = self.outputs[0]["shape"]
        return int(dims[-1]) if dims and int(dims[-1]) > 0 else 0

    def _zero_row(self) -> np.ndarray:
        t = self.inputs[0]
        dims = [max(1, d) for d in (t["shape"][1:] if self.max_batch_size > 0 else t["shape"])]
        shape = [1, *dims] if self.max_batch_size > 0 else dims
        return np.zeros(shape, dtype=numpy_dtype_from_wire(t["datatype"]))


def _meta_dict(obj: Any) -> dict[str, Any]:
    return obj if isinstance(obj, dict) else {}


# -- sync --------------------------------------------------------------------------------------
class Predictor(_Base):
    """Classify with a model served by Triton (sync API; concurrency through a thread pool).

    Args:
        model: model name in the repository.
        url: ``host:port`` of the server (HTTP 8000 / gRPC 8001 by default).
        protocol: ``grpc`` or ``http``.
        timeout: seconds one attempt of any call (connect, metadata, each inference) may take in all,
            the complete answer included: a server that trickles bytes cannot stretch it.
        version: model version ("" = the server's choice).
        spec: the model's ModelSpec (preprocessing); default: the served config's parameter if any.
        cache_size: rows kept in an LRU result cache (0 = off).
        retry: backoff for UNAVAILABLE/503 and deadline errors.
        batch_size: rows per request in ``predict_many`` (capped at max_batch_size; default 32).
        concurrency: requests in flight in ``predict_many``.
        shared_memory: ``off``, ``auto`` (inputs >= ``shm_threshold`` bytes) or ``on`` (always);
            system shared memory needs the server on this host.
        admin_headers: the server's admin header, HTTP form (``{"tritonkit-admin-key": ...}``; a
            ``tritonkit`` server's ``admin_headers``), sent only on the calls such a server restricts
            (shared-memory registration, the model index that lists ready models); converted to
            Triton's gRPC metadata form over gRPC.
        deadline: seconds one call may take with all its retries and backoff (default: no bound
            beyond ``retry.attempts`` x ``timeout``); the CLI's ``--timeout`` sets it.

    Raises:
        ServerError: nothing answers at the URL.
        ClientError: the model is missing or not ready (the message lists the ready ones).
    """

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
        shared_memory: str = "off",
        shm_threshold: int = 1 << 20,
        admin_headers: dict[str, str] | None = None,
        deadline: float | None = None,
    ) -> None:
        self._setup(model, url, protocol, timeout, version, spec, cache_size, retry, batch_size, concurrency,
                    deadline, admin_headers)
        if shared_memory not in SHM_MODES:
            raise UsageError(f"shared memory mode {shared_memory!r} is unknown; use one of {', '.join(SHM_MODES)}")
        self.shared_memory = shared_memory
        self.shm_threshold = int(shm_threshold)
        self._mod = _client_module(protocol)
        self._local = threading.local()
        self._clients: list[Any] = []
        self._regions: list[Any] = []
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        try:
            self._connect()
        except BaseException:
            self.close()
            raise

    # -- plumbing ------------------------------------------------------------------------------
    def _client(self) -> Any:
        """gRPC clients are thread-safe (one is shared); HTTP clients are not (one per thread)."""
        if self.protocol == "grpc" and self._clients:
            return self._clients[0]
        client = getattr(self._local, "client", None)
        if client is None:
            try:
                if self.protocol == "http":
                    client = self._mod.InferenceServerClient(
                        self.url, connection_timeout=self.timeout, network_timeout=self.timeout
                    )
                else:
                    client = self._mod.InferenceServerClient(self.url)
            except Exception as exc:  # noqa: BLE001 - a malformed URL surfaces in many types
                raise UsageError(f"cannot make a {self.protocol} client for {self.url!r} ({_first_line(exc)}); "
                                 "give --url as host:port") from None
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def _attempt(self, method: str, budget: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """One attempt, bounded end to end by ``budget`` seconds.

        gRPC's ``client_timeout`` is a deadline for the whole call. The HTTP client's own timeouts
        apply to each socket operation (a server sending one byte a second never trips them), so
        the HTTP attempt runs under a ``gevent.Timeout``: the client's sockets are gevent's, and the
        timer interrupts whichever wait the attempt is in (connect, send, or reading the answer).
        """
        if self.protocol == "grpc":
            return getattr(self._client(), method)(*args, **kwargs, client_timeout=budget)
        import gevent

        with gevent.Timeout(budget, TimeoutError(f"no complete answer within {budget:g} s")):
            return getattr(self._client(), method)(*args, **kwargs)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One call bounded by ``timeout`` per attempt (and ``deadline`` in all), retried only on
        UNAVAILABLE/503, connection and deadline errors."""
        start = time.monotonic()
        delays = self.retry.delays()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(method, self._attempt_budget(start), args, kwargs)
            except Exception as exc:  # noqa: BLE001 - classified just below
                kind = failure_kind(exc)
                delay = next(delays, None) if kind in RETRIED else None
                if delay is not None and not self._may_retry(start, delay):
                    delay = None
                if self.protocol == "http" and kind in ("timeout", "connect", "protocol"):
                    self._drop_thread_client()  # a timed-out or confused HTTP connection is not reusable
                if delay is None:
                    raise self._error(exc, kind, attempt, method) from None
                time.sleep(delay)

    def _drop_thread_client(self) -> None:
        client = getattr(self._local, "client", None)
        if client is not None:
            self._local.client = None
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass

    def _connect(self) -> None:
        if not self._call("is_server_live"):
            raise ServerError(f"Triton at {self.where} is not live; {START_HINT}")
        if not self._call("is_model_ready", self.model, self.version):
            try:
                index = self._call("get_model_repository_index", headers=self._protocol_admin_headers(),
                                   **({"as_json": True} if self.protocol == "grpc" else {}))
                models = index.get("models", []) if isinstance(index, dict) else index
            except ClientError:  # the model-repository API is restricted: the statistics API lists loaded models
                try:
                    models = loaded_models(self._call("get_inference_statistics", **(
                        {"as_json": True} if self.protocol == "grpc" else {})))
                except ClientError:
                    models = None
            raise self._ready_error(models)
        extra = {"as_json": True} if self.protocol == "grpc" else {}
        meta = self._call("get_model_metadata", self.model, self.version, **extra)
        config = self._call("get_model_config", self.model, self.version, **extra)
        self._read_metadata(_meta_dict(meta), _meta_dict(config))

    def _shm_region(self, nbytes: int) -> Any:
        """This thread's registered system shared memory region, grown to hold ``nbytes``.

        Python's own POSIX shared memory is used, not ``tritonclient.utils.shared_memory``: that
        module imports ``pkg_resources``, which current setuptools no longer ships. Triton maps the
        same ``/name`` key either way.
        """
        from multiprocessing import shared_memory

        region = getattr(self._local, "region", None)
        if region is not None and region.size >= nbytes:
            return region
        if region is not None:
            self._local.region = None
            self._free_region(region)
        size = 1 << max(12, (nbytes - 1).bit_length())
        name = f"tritonkit_{os.getpid()}_{uuid.uuid4().hex[:12]}"
        region = shared_memory.SharedMemory(name=name, create=True, size=size)
        with self._lock:
            self._regions.append(region)
        try:
            self._call("register_system_shared_memory", name, "/" + name, size, headers=self._protocol_admin_headers())
        except BaseException:
            self._free_region(region, registered=False)
            raise
        self._local.region = region
        return region

    def _free_region(self, region: Any, registered: bool = True) -> None:
        with self._lock:
            if region in self._regions:
                self._regions.remove(region)
        if registered:
            try:
                self._attempt("unregister_system_shared_memory", self.timeout, (region.name,),
                              {"headers": self._protocol_admin_headers()})
            except Exception:  # noqa: BLE001 - the server may be gone; the local region still goes
                pass
        region.close()
        try:
            region.unlink()
        except FileNotFoundError:
            pass

    def _infer(self, batch: np.ndarray, class_count: int = 0) -> np.ndarray:
        inp = self._input(self._mod, batch)
        use_shm = self.shared_memory == "on" or (self.shared_memory == "auto" and batch.nbytes >= self.shm_threshold)
        if use_shm:
            region = self._shm_region(batch.nbytes)
            np.frombuffer(region.buf, dtype=np.uint8, count=batch.nbytes)[:] = batch.reshape(-1).view(np.uint8)
            inp.set_shared_memory(region.name, batch.nbytes)
        else:
            inp.set_data_from_numpy(batch)
        t0 = time.perf_counter()
        res = self._call("infer", self.model, [inp], model_version=self.version,
                         outputs=self._requested(self._mod, class_count))
        self.latency.add((time.perf_counter() - t0) * 1000)
        return self._output(res, len(batch))

    # -- public --------------------------------------------------------------------------------
    def predict(self, batch: np.ndarray) -> np.ndarray:
        """The first output (logits) for one batch ``(N, ...)`` of preprocessed inputs."""
        batch = self.validate(batch)
        if self.cache is None:
            return self._infer(batch)
        keys, hits, miss = self._cache_split(batch)
        out = self._infer(batch[miss]) if miss else None
        return self._cache_merge(keys, hits, miss, out)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.predict(batch)

    def predict_many(self, batch: np.ndarray, batch_size: int | None = None,
                     concurrency: int | None = None) -> np.ndarray:
        """Logits for any number of rows: batches sent ``concurrency`` at a time, results in order."""
        return self.predict_many_timed(batch, batch_size, concurrency)[0]

    def predict_many_timed(self, batch: np.ndarray, batch_size: int | None = None,
                           concurrency: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`predict_many`, plus each row's request latency in ms (its batch's round trip)."""
        batch = self.validate(batch)
        spans = self._chunks(len(batch), batch_size)
        workers = int(concurrency or self.concurrency)

        def one(span: tuple[int, int]) -> tuple[np.ndarray, float]:
            t0 = time.perf_counter()
            out = self.predict(batch[span[0]:span[1]])
            return out, (time.perf_counter() - t0) * 1000

        if workers <= 1 or len(spans) <= 1:
            parts = [one(se) for se in spans]
        else:
            parts = list(self._executor(workers).map(one, spans))
        if not parts:
            empty = np.zeros((0, *[max(0, d) for d in self.outputs[0]["shape"][1:]]), dtype=np.float32)
            return empty, np.zeros(0)
        ms = np.concatenate([np.full(e - s, t) for (s, e), (_, t) in zip(spans, parts)])
        return np.concatenate([p for p, _ in parts]), ms

    def _executor(self, workers: int) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._pool._max_workers != workers:  # noqa: SLF001
                if self._pool is not None:
                    self._pool.shutdown(wait=True)
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="tritonkit-predict")
            return self._pool

    def classify(self, batch: np.ndarray, top_k: int = 5, batch_size: int | None = None,
                 concurrency: int | None = None) -> list[list[TopK]]:
        """Top-k labels with softmax probabilities per row (logits from the server, labels from it too)."""
        return topk_from_logits(self.predict_many(batch, batch_size, concurrency), self.labels, top_k)

    def topk(self, batch: np.ndarray, k: int = 5) -> list[list[TopK]]:
        """Top-k per row from Triton's classification extension (raw output values, server labels)."""
        batch = self.validate(batch)
        return self._classes(self._infer(batch, class_count=max(1, int(k))))

    @property
    def labels(self) -> tuple[str, ...]:
        """Class labels as served (the output's label file, through the classification extension)."""
        if self._labels is None:
            n = self._num_classes()
            labels: tuple[str, ...] = ()
            if n:
                rows = self._classes(self._infer(self._zero_row(), class_count=n))
                by_index = {t.index: t.label for t in rows[0]}
                labels = tuple(by_index.get(i, str(i)) for i in range(n))
            self._labels = labels or (self._spec.labels if self._spec else ())
        return self._labels

    def close(self) -> None:
        """Free shared memory regions, the thread pool and the connections."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for region in list(getattr(self, "_regions", [])):
            self._free_region(region)
        self._regions = []
        for client in list(getattr(self, "_clients", [])):
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass
        self._clients = []

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# -- asyncio -----------------------------------------------------------------------------------
class AsyncPredictor(_Base):
    """The asyncio twin of :class:`Predictor` over ``tritonclient.grpc.aio`` / ``tritonclient.http.aio``.

    Create with ``await AsyncPredictor.create(model, url, protocol, ...)`` (it checks readiness and
    reads metadata), then ``await predict(...)``, ``await predict_many(...)``; ``await close()``.
    Shared memory is not offered here (use :class:`Predictor`); ``admin_headers`` and ``deadline``
    mean what they mean there.
    """

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
        self._setup(model, url, protocol, timeout, version, spec, cache_size, retry, batch_size, concurrency,
                    deadline, admin_headers)
        self._mod = _client_module(protocol, aio=True)
        self._aclient: Any = None

    @classmethod
    async def create(cls, model: str, url: str | None = None, protocol: str = "grpc", timeout: float = 30.0,
                     version: str = "", **kwargs: Any) -> AsyncPredictor:
        self = cls(model, url, protocol, timeout, version, **kwargs)
        try:
            if protocol == "http":
                self._aclient = self._mod.InferenceServerClient(self.url, conn_timeout=self.timeout)
            else:
                self._aclient = self._mod.InferenceServerClient(self.url)
            await self._connect()
        except BaseException:
            await self.close()
            raise
        return self

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One call; each attempt bounded end to end by ``wait_for`` (and gRPC's own deadline)."""
        start = time.monotonic()
        delays = self.retry.delays()
        attempt = 0
        while True:
            attempt += 1
            budget = self._attempt_budget(start)
            extra = {"client_timeout": budget} if self.protocol == "grpc" else {}
            try:
                return await asyncio.wait_for(getattr(self._aclient, method)(*args, **kwargs, **extra), budget)
            except Exception as exc:  # noqa: BLE001 - classified just below
                kind = failure_kind(exc)
                delay = next(delays, None) if kind in RETRIED else None
                if delay is not None and not self._may_retry(start, delay):
                    delay = None
                if delay is None:
                    raise self._error(exc, kind, attempt, method) from None
                await asyncio.sleep(delay)

    async def _connect(self) -> None:
        if not await self._call("is_server_live"):
            raise ServerError(f"Triton at {self.where} is not live; {START_HINT}")
        if not await self._call("is_model_ready", self.model, self.version):
            try:
                index = await self._call("get_model_repository_index", headers=self._protocol_admin_headers(),
                                         **({"as_json": True} if self.protocol == "grpc" else {}))
                models = index.get("models", []) if isinstance(index, dict) else index
            except ClientError:  # the model-repository API is restricted: the statistics API lists loaded models
                try:
                    models = loaded_models(await self._call("get_inference_statistics", **(
                        {"as_json": True} if self.protocol == "grpc" else {})))
                except ClientError:
                    models = None
            raise self._ready_error(models)
        extra = {"as_json": True} if self.protocol == "grpc" else {}
        meta = await self._call("get_model_metadata", self.model, self.version, **extra)
        config = await self._call("get_model_config", self.model, self.version, **extra)
        self._read_metadata(_meta_dict(meta), _meta_dict(config))

    async def _infer(self, batch: np.ndarray, class_count: int = 0) -> np.ndarray:
        inp = self._input(self._mod, batch)
        inp.set_data_from_numpy(batch)
        t0 = time.perf_counter()
        res = await self._call("infer", self.model, [inp], model_version=self.version,
                               outputs=self._requested(self._mod, class_count))
        self.latency.add((time.perf_counter() - t0) * 1000)
        return self._output(res, len(batch))

    async def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = self.validate(batch)
        if self.cache is None:
            return await self._infer(batch)
        keys, hits, miss = self._cache_split(batch)
        out = await self._infer(batch[miss]) if miss else None
        return self._cache_merge(keys, hits, miss, out)

    async def predict_many(self, batch: np.ndarray, batch_size: int | None = None,
                           concurrency: int | None = None) -> np.ndarray:
        batch = self.validate(batch)
        gate = asyncio.Semaphore(int(concurrency or self.concurrency))

        async def one(s: int, e: int) -> np.ndarray:
            async with gate:
                return await self.predict(batch[s:e])

        parts = await asyncio.gather(*(one(s, e) for s, e in self._chunks(len(batch), batch_size)))
        return np.concatenate(parts) if parts else np.zeros((0,), dtype=np.float32)

    async def topk(self, batch: np.ndarray, k: int = 5) -> list[list[TopK]]:
        return self._classes(await self._infer(self.validate(batch), class_count=max(1, int(k))))

    async def close(self) -> None:
        if self._aclient is not None:
            try:
                await self._aclient.close()
            except Exception:  # noqa: BLE001
                pass
            self._aclient = None

    async def __aenter__(self) -> AsyncPredictor:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


# -- the evaluator's adapter -------------------------------------------------------------------
def triton_logits_fn(url: str, model: str, protocol: str = "grpc", *, timeout: float = 30.0,
                     batch_size: int | None = None, concurrency: int = 4) -> Callable[[np.ndarray], np.ndarray]:
    """A ``numpy batch -> logits`` function over a Triton endpoint, for ``trainers`` evaluation.

    Any number of rows is accepted (split at the model's max_batch_size and sent concurrently);
    the input is cast to the served dtype. ``fn.predictor`` is the underlying :class:`Predictor`
    (``fn.close()`` closes it).
    """
    pred = Predictor(model, url=url, protocol=protocol, timeout=timeout, batch_size=batch_size,
                     concurrency=concurrency)
    dtype = np.dtype(numpy_dtype_from_wire(pred.inputs[0]["datatype"]))

    def logits(batch: Any) -> np.ndarray:
        arr = batch.detach().cpu().numpy() if hasattr(batch, "detach") else np.asarray(batch)
        return pred.predict_many(arr.astype(dtype, copy=False))

    logits.predictor = pred  # type: ignore[attr-defined]
    logits.close = pred.close  # type: ignore[attr-defined]
    return logits
