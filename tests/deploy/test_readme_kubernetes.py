"""The README's Kubernetes example runs as written: its ``bash`` block that calls ``tritonkit deploy k8s``.

The block is taken from README.md at test time; it writes the manifests without reading a repository
(``--image`` and ``--gpus``), renders them with ``kubectl kustomize`` and checks the alert rules with
``promtool``, so it needs no cluster and no storage.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_readme import blocks


def test_readme_kubernetes_block_runs(tmp_path: Path) -> None:
    found = [b for b in blocks("bash") if "tritonkit deploy k8s" in b]
    if not found:
        pytest.skip("README.md has no bash block with `tritonkit deploy k8s` yet")
    for tool in ("kubectl", "promtool"):
        if any(line.strip().startswith(tool) for b in found for line in b.splitlines()) and not shutil.which(tool):
            pytest.skip(f"{tool} is not installed here; the README's Kubernetes block uses it")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for block in found:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{block}\n{done.stdout}\n{done.stderr}"
