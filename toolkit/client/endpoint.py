"""Where a predictor talks: protocols, default URLs, the URL check, the tritonclient module."""

from __future__ import annotations

from typing import Any

from contract.errors import UsageError

DEFAULT_URLS = {"http": "127.0.0.1:8000", "grpc": "127.0.0.1:8001"}
PROTOCOLS = ("grpc", "http")
# Triton expects a restricted gRPC protocol's header key with this prefix (the HTTP form has none).
GRPC_HEADER_PREFIX = "triton-grpc-protocol-"


def check_protocol(protocol: str) -> str:
    """``protocol`` when tritonkit speaks it; UsageError listing the choices otherwise."""
    if protocol not in PROTOCOLS:
        raise UsageError(f"protocol {protocol!r} is not supported; use one of {', '.join(PROTOCOLS)}")
    return protocol


def client_module(protocol: str, aio: bool = False) -> Any:
    """``tritonclient.{http,grpc}[.aio]``, imported on first use (it is heavy)."""
    check_protocol(protocol)
    if protocol == "http":
        if aio:
            import tritonclient.http.aio as mod
        else:
            import tritonclient.http as mod
    elif aio:
        import tritonclient.grpc.aio as mod
    else:
        import tritonclient.grpc as mod
    return mod


def check_url(url: str) -> str:
    """``host:port`` (``[v6]:port``) with a port in 1..65535; anything else is refused before any call,
    since gRPC would otherwise wrap an out-of-range port silently onto another one."""
    host, sep, port = url.rpartition(":")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not bare or not port.isdigit() or not 0 < int(port) < 65536 or any(
            c.isspace() or c in "/?#@" for c in url) or (":" in bare and bare == host):
        raise UsageError(f"URL {url!r} is not host:port (e.g. 127.0.0.1:8001, [::1]:8000) with a port in "
                         "1..65535; give --url as host:port")
    return url


def protocol_headers(protocol: str, headers: dict[str, str]) -> dict[str, str] | None:
    """An admin header (HTTP form) in ``protocol``'s form: gRPC keys carry Triton's prefix."""
    if not headers:
        return None
    if protocol == "grpc":
        return {k if k.startswith(GRPC_HEADER_PREFIX) else GRPC_HEADER_PREFIX + k: v for k, v in headers.items()}
    return dict(headers)
