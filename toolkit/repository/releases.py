"""Triton container releases and the TensorRT / ONNX Runtime versions they ship.

Why: a TensorRT plan only loads on the TensorRT version that built it ("Version tag does not
match"), so the repository linter must know which TensorRT a target Triton container carries.

Sources (stated per column, because they differ in how well they were checked):
- ``onnxruntime``: triton-inference-server/server ``docs/introduction/compatibility.md``,
  section "ONNX Runtime Versions" (read for this table; 24.04 to 26.08 are listed there).
- ``tensorrt``: NVIDIA "Frameworks Support Matrix" / Triton release notes for the ``-py3``
  container (major.minor.patch only). 24.09 -> 10.4.0, 24.10 -> 10.5.0, 24.11 -> 10.6.0,
  24.12 -> 10.7.0, 25.01 -> 10.8.0 and 25.03 -> 10.9 were cross-checked against public text
  (the trtllm container table and TensorRT-LLM's release notes); the others are recalled from the
  support matrix and not re-checked here. The ``-trtllm-python-py3`` containers ship an older
  TensorRT than the ``-py3`` ones of the same month and are NOT what this table describes.
- ``server``: Triton server version in the container (23.01 = 2.30.0, one minor per month).
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.errors import UsageError


@dataclass(frozen=True)
class TritonRelease:
    """One ``nvcr.io/nvidia/tritonserver:<release>-py3`` container."""

    release: str
    server: str
    tensorrt: str
    onnxruntime: str | None = None


_ROWS: list[tuple[str, str, str | None]] = [
    # release, TensorRT (major.minor.patch), ONNX Runtime
    ("23.01", "8.5.2", None),
    ("23.02", "8.5.3", None),
    ("23.03", "8.5.3", None),
    ("23.04", "8.6.1", None),
    ("23.05", "8.6.1", None),
    ("23.06", "8.6.1", None),
    ("23.07", "8.6.1", None),
    ("23.08", "8.6.1", None),
    ("23.09", "8.6.1", None),
    ("23.10", "8.6.1", None),
    ("23.11", "8.6.1", None),
    ("23.12", "8.6.1", None),
    ("24.01", "8.6.1", None),
    ("24.02", "8.6.3", None),
    ("24.03", "8.6.3", None),
    ("24.04", "8.6.3", "1.17.3"),
    ("24.05", "10.0.1", "1.18.0"),
    ("24.06", "10.1.0", "1.18.0"),
    ("24.07", "10.2.0", "1.18.1"),
    ("24.08", "10.3.0", "1.18.1"),
    ("24.09", "10.4.0", "1.19.2"),
    ("24.10", "10.5.0", "1.19.2"),
    ("24.11", "10.6.0", "1.19.2"),
    ("24.12", "10.7.0", "1.20.1"),
    ("25.01", "10.8.0", "1.20.1"),
    ("25.02", "10.8.0", "1.20.1"),
    ("25.03", "10.9.0", "1.21.0"),
    ("25.04", "10.9.0", "1.21.0"),
    ("25.05", "10.10.0", "1.22.0"),
    ("25.06", "10.11.0", "1.22.0"),
]


def _server_version(release: str) -> str:
    year, month = (int(p) for p in release.split("."))
    return f"2.{30 + (year - 23) * 12 + (month - 1)}.0"


RELEASES: dict[str, TritonRelease] = {
    r: TritonRelease(r, _server_version(r), trt, ort) for r, trt, ort in _ROWS
}


def known_releases() -> list[str]:
    """Release names this table knows, oldest first."""
    return list(RELEASES)


def get_release(release: str) -> TritonRelease:
    """The row for ``release`` (``"24.09"``; a ``-py3`` suffix or ``v`` prefix is accepted)."""
    key = str(release).strip().lower().removeprefix("v").removesuffix("-py3")
    row = RELEASES.get(key)
    if row is None:
        raise UsageError(
            f"unknown Triton release {release!r}; use one of {known_releases()[0]}..{known_releases()[-1]} "
            f"(YY.MM, e.g. 24.09)"
        )
    return row


def tensorrt_for_release(release: str) -> str:
    """TensorRT version (major.minor.patch) in the ``<release>-py3`` container."""
    return get_release(release).tensorrt


def onnxruntime_for_release(release: str) -> str | None:
    """ONNX Runtime version in the container, or None where the table does not know it."""
    return get_release(release).onnxruntime


def release_for_server_version(server_version: str) -> str | None:
    """Container release for a server version (``2.51.0`` -> ``24.10``), if known."""
    want = ".".join(str(server_version).split(".")[:2])
    for row in RELEASES.values():
        if ".".join(row.server.split(".")[:2]) == want:
            return row.release
    return None


def releases_with_tensorrt(version: str) -> list[str]:
    """Releases whose TensorRT matches ``version`` on major.minor.patch."""
    return [r.release for r in RELEASES.values() if same_tensorrt(r.tensorrt, version)]


def tensorrt_key(version: str) -> tuple[int, ...] | None:
    """(major, minor, patch) of a version string, or None when it is not a version."""
    parts = str(version).strip().split(".")
    try:
        nums = tuple(int(p) for p in parts[:3])
    except ValueError:
        return None
    if not nums:
        return None
    return nums + (0,) * (3 - len(nums))


def same_tensorrt(a: str, b: str) -> bool:
    """Whether two TensorRT versions are the same engine-compatible release (major.minor.patch).

    Engines are tied to the exact TensorRT release; the fourth (build) number is ignored.
    """
    ka, kb = tensorrt_key(a), tensorrt_key(b)
    return ka is not None and ka == kb
