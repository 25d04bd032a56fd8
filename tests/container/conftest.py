"""Fixtures for tests on a real container engine (podman, rootful, runc, cgroupfs).

``container_engine`` skips with the reason when no container can run here (not root, no podman,
podman fails a trivial run); ``triton_image`` builds tritonkit's CPU stand-in for NVIDIA's Triton
image once (cached in podman's store under a content-hash tag; the build holds an inter-process lock,
so parallel workers wait for one build instead of racing) and returns its tag.
"""

from __future__ import annotations

import sys

import pytest


@pytest.fixture(scope="session")
def container_engine() -> str:
    """Path of a podman that can run containers here; skips with the reason otherwise."""
    from contract.errors import MissingDependencyError
    from toolkit.serve.image import require_engine

    try:
        return require_engine()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def triton_image(container_engine: str) -> str:
    """Tag of the stand-in Triton image (``localhost/tritonkit/tritonserver-cpu:<version>-<hash>``), built once."""
    from contract.errors import MissingDependencyError
    from toolkit.serve.image import build_image

    try:
        result = build_image(progress=lambda line: print(f"triton_image: {line}", file=sys.stderr, flush=True))
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    return result.tag
