"""What went wrong in a call to Triton, classified (retried or not) and said in one line."""

from __future__ import annotations

import asyncio
from typing import Any

# What each call is, for messages.
CALLS = {
    "is_server_live": "the liveness check", "is_model_ready": "the readiness check",
    "get_model_repository_index": "the model index request", "get_model_metadata": "the model metadata request",
    "get_model_config": "the model config request", "infer": "an inference request",
    "register_system_shared_memory": "the shared-memory registration",
    "unregister_system_shared_memory": "the shared-memory unregistration",
}
START_HINT = "start one with 'tritonkit serve --repository model_repository' (or 'make serve')"

# gRPC's words for a peer that answered, but not in HTTP/2 (an HTTP/1 server, garbage bytes).
NOT_GRPC = ("failed parsing http/2", "http1.x server")


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
        if any(words in msg for words in NOT_GRPC):
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


def protocol_detail(exc: BaseException) -> str:
    """What was wrong with a peer's answer, in words (never a parser's raw tuple or codec jargon)."""
    import http.client
    import json

    if isinstance(exc, http.client.HTTPException):
        return f"its answer is not HTTP/1.1 ({first_line(exc)})"
    if isinstance(exc, UnicodeError):
        return "its answer is not UTF-8 text"
    if isinstance(exc, json.JSONDecodeError):
        return f"its answer is not JSON ({exc.msg} at byte {exc.pos})"
    return first_line(exc)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 300 characters), for one-line errors."""
    import http.client

    from tritonclient.utils import InferenceServerException

    if isinstance(exc, http.client.HTTPException) and len(exc.args) == 2 and isinstance(exc.args[1], int):
        return f"{exc.args[0]} at byte {exc.args[1]}"  # geventhttpclient: ('Expected HTTP/', 8)
    text = (exc.message() if isinstance(exc, InferenceServerException) else str(exc)) or type(exc).__name__
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def loaded_models(stats: Any) -> list[dict[str, Any]]:
    """Index-style entries (name, version, state READY) from a statistics answer (HTTP dict or gRPC JSON).

    The statistics API lists the loaded models and, unlike the model-repository index, is not one of
    the admin APIs that tritonkit's servers restrict.
    """
    entries = stats.get("model_stats", []) if isinstance(stats, dict) else []
    return [{"name": m["name"], "version": str(m.get("version", "")), "state": "READY"}
            for m in entries if isinstance(m, dict) and isinstance(m.get("name"), str)]
