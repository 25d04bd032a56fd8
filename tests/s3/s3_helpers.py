"""Small models and S3 look-ups shared by the S3 tests and the publish-crash benchmark.

A model is ``y = x * w`` with a per-model weight vector: tiny (fast to upload and load) and every
weight gives a distinct file, so each ``repo add`` makes a new version whose outputs say which it is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

WIDTH = 4


def scale_model(path: Path, weight: float, payload_mb: float = 0) -> Path:
    """Write an ONNX model computing ``y = x * [weight, weight+1, ...]`` for x of shape [batch, 4].

    ``payload_mb`` adds that many MiB of weights that change nothing (``y + 0 * sum(pad)``), for transfer
    timings on a realistically sized file."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.arange(WIDTH, dtype=np.float32) + np.float32(weight)
    nodes = [helper.make_node("Mul", ["x", "w"], ["y" if not payload_mb else "y0"])]
    inits = [numpy_helper.from_array(w, "w")]
    if payload_mb:
        pad = np.random.default_rng(int(weight * 1000)).random(int(payload_mb * 262144), dtype=np.float32)
        inits += [numpy_helper.from_array(pad, "pad"), numpy_helper.from_array(np.float32(0), "zero")]
        nodes += [helper.make_node("ReduceSum", ["pad"], ["s"], keepdims=0),
                  helper.make_node("Mul", ["s", "zero"], ["z"]), helper.make_node("Add", ["y0", "z"], ["y"])]
    graph = helper.make_graph(
        nodes, "scale",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", WIDTH])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def tritonkit(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess (its own stderr, exit code)."""
    exe = Path(sys.executable).with_name("tritonkit")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=timeout)


def keys(client, bucket: str, prefix: str = "") -> list[str]:
    """Every object key under ``prefix``."""
    out: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return sorted(out)


def served_consistent(url: str, model: str) -> list[str]:
    """What breaks the rule "the live config names only complete versions recorded with it" in the bucket
    (empty = consistent): each named version's objects against its manifest, its recorded config
    against the live one."""
    import json as _json

    from toolkit.repository.config import parse_config
    from toolkit.repository.manifest import configs_agree
    from toolkit.repository.remote_publish import named_in, remote_config, verify_remote_version
    from toolkit.repository.s3 import S3Storage

    storage = S3Storage(url)
    text = remote_config(storage, model)
    if text is None:
        return []
    live = parse_config(text, "live config")
    problems = []
    for v in named_in(text, storage.version_numbers(model)):
        bad = verify_remote_version(storage, model, v)
        if bad:
            problems.append(f"{model}/{v}: {bad}")
            continue
        manifest = _json.loads(storage.get_bytes(f"{model}/{v}/manifest.json", "manifest"))
        if not configs_agree(parse_config(manifest["config"], "recorded"), live):
            problems.append(f"{model}/{v}: recorded config differs from the live one")
    return problems


def named(url: str, model: str) -> list[int]:
    """The versions the bucket's live config names."""
    from toolkit.repository.remote_publish import named_in, remote_config
    from toolkit.repository.s3 import S3Storage

    storage = S3Storage(url)
    return named_in(remote_config(storage, model), storage.version_numbers(model))
