"""README's "Repositories in object storage" table, run as written against a real S3 server (moto).

Every command in the table runs in the order shown, in a fresh folder holding what `make repo` makes
(`model_repository/` and `build/digits_smallcnn.onnx`), with only the README's example endpoint
`127.0.0.1:9000` replaced by the test server's port; each must succeed, and its effect is checked
behind tritonkit's back with boto3 and the served model's metadata.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.objectstore import MotoServer

ROOT = Path(__file__).resolve().parents[2]
TRITONKIT = str(Path(sys.executable).parent / "tritonkit")
EXAMPLE_ENDPOINT = "127.0.0.1:9000"


def table_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Repositories in object storage", 1)[1].split("\n- ", 1)[0]
    return re.findall(r"`(tritonkit [^`]*)`", section)


def retrained(onnx_path: Path, out: Path) -> Path:
    """The same model with its last bias nudged: what a retrain gives (a new version, same tensors)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    init = model.graph.initializer[-1]
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + np.float32(0.01), init.name))
    onnx.save(model, str(out))
    return out


def test_readme_object_storage_commands_run_as_written_when_endpoint_is_moto(
        s3: MotoServer, digits_build: dict[str, Path], tmp_path: Path) -> None:
    commands = table_commands()
    verbs = [" ".join(shlex.split(c)[1:3]) for c in commands]
    assert verbs == ["repo push", "repo add", "repo list", "repo rollback", "repo prune", "repo validate",
                     "repo pull", "serve --repository", "serve status", "serve stop"], verbs
    s3.make_bucket("models")
    shutil.copytree(digits_build["repository"], tmp_path / "model_repository")
    (tmp_path / "build").mkdir()
    retrained(digits_build["onnx"], tmp_path / "build" / "digits_smallcnn.onnx")
    bucket = s3.client()
    served: list[str] = []
    try:
        for command in commands:
            argv = shlex.split(command.replace(EXAMPLE_ENDPOINT, f"127.0.0.1:{s3.port}"))
            if argv[1] == "serve" and argv[2] not in ("status", "stop"):
                served.append(command)
            run = subprocess.run([TRITONKIT, *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=600)
            assert run.returncode == 0, f"README: {command!r} failed: {run.stderr[-2000:]}"
            assert "Traceback" not in run.stderr
            if argv[1:3] == ["repo", "list"]:
                assert "digits" in run.stdout
            if argv[1:3] == ["serve", "status"]:
                assert "ready" in run.stdout and "not ready" not in run.stdout, run.stdout
    finally:
        if served:  # whatever happened above, the server this test started is stopped
            subprocess.run([TRITONKIT, "serve", "stop", "--repository", f"s3://127.0.0.1:{s3.port}/models/prod"],
                           cwd=tmp_path, capture_output=True, timeout=120)
    keys = {o["Key"] for o in bucket.list_objects_v2(Bucket="models", Prefix="prod/")["Contents"]}
    versions = sorted({int(k.split("/")[2]) for k in keys if re.fullmatch(r"prod/digits/[0-9]+/.+", k)})
    assert versions == [2, 3], keys  # add made 2, rollback to 1 made 3 (a copy of 1), prune kept the newest 2
    config = bucket.get_object(Bucket="models", Key="prod/digits/config.pbtxt")["Body"].read().decode()
    assert re.findall(r"versions:\s*([0-9]+)", config) == ["3"], config  # the rollback serves version 3 alone
    pulled = tmp_path / "pulled_repository" / "digits"
    assert sorted(p.name for p in pulled.iterdir() if p.name.isdigit()) == ["2", "3"]
    manifest = json.loads((pulled / "3" / "manifest.json").read_text())
    assert manifest, "pulled version 3 has an empty manifest"
