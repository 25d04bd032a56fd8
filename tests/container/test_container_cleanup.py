"""Which containers tritonkit stops and removes: only its own, as the engine (not a file) says.

A container whose client crashed (``docker run`` killed) runs on with nobody to stop it; the next
start removes it once the engine confirms tritonkit's labels, this user and this machine, and no client of it
runs here.
A run-folder record naming some other container (edited, or stale) steers nothing.
"""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from toolkit.serve.container import remove_orphans, stop_recorded_container
from toolkit.serve.engine import LABEL, LABEL_HOST, LABEL_UID, Engine


def _run_detached(engine: Engine, image: str, name: str, labels: dict[str, str]) -> str:
    args = ["run", "-d", "--rm", "--name", name, "--network", "none"]
    for key, value in labels.items():
        args += ["--label", f"{key}={value}"]
    done = engine.run(*args, image, "sleep", "300", timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def podman(container_engine: str) -> Engine:
    return Engine("podman", container_engine)


def test_orphans_removed_only_when_labelled_for_this_user_and_no_client_runs(podman: Engine,
                                                                            triton_image: str) -> None:
    tag = uuid.uuid4().hex[:8]
    mine = {LABEL: "1", LABEL_UID: str(os.geteuid()), LABEL_HOST: socket.gethostname()}
    ours = _run_detached(podman, triton_image, f"tritonkit-orphan-{tag}", mine)
    unlabelled = _run_detached(podman, triton_image, f"tritonkit-unlabelled-{tag}", {})
    other_user = _run_detached(podman, triton_image, f"tritonkit-other-{tag}", {**mine, LABEL_UID: "4242"})
    other_host = _run_detached(podman, triton_image, f"tritonkit-elsewhere-{tag}", {**mine, LABEL_HOST: "elsewhere"})
    try:
        removed = remove_orphans(podman, timeout=2)
        assert f"tritonkit-orphan-{tag}" in removed
        assert podman.inspect(ours) is None
        for kept in (unlabelled, other_user, other_host):
            assert podman.inspect(kept) is not None
    finally:
        for cid in (ours, unlabelled, other_user, other_host):
            podman.run("rm", "-f", "-t", "0", cid, timeout=60)


def test_serve_stop_record_naming_a_container_not_labelled_ours_stops_nothing(podman: Engine,
                                                                              triton_image: str) -> None:
    tag = uuid.uuid4().hex[:8]
    foreign = _run_detached(podman, triton_image, f"someone-else-{tag}", {})
    try:
        record = {"engine": {"program": "podman", "docker_host": None}, "container_id": foreign}
        assert stop_recorded_container(record) is False
        assert (podman.inspect(foreign) or {}).get("State", {}).get("Running") is True
        # A record may not name the engine's program path either: only docker or podman, found on PATH.
        assert stop_recorded_container({"engine": {"program": "/bin/rm"}, "container_id": foreign}) is False
    finally:
        podman.run("rm", "-f", "-t", "0", foreign, timeout=60)
