"""The README's serving targets run as written: `make serve` (foreground, Ctrl-C stops it), `make predict
PORT=N`, and `make bench` dialling the server `make serve` recorded (no URL, no PORT) with the serving
efficiency found from the local repository. Variables only point them at a test repository and a report
folder and narrow the sweep; the recipes are the Makefile's own."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from toolkit.serve.ports import free_port

pytestmark = pytest.mark.server
ROOT = Path(__file__).resolve().parent.parent
# `-o .venv/.installed`: the set-up `make repo` did is taken as done (the tests run inside that .venv).
MAKE = ["make", "--no-print-directory", "-o", ".venv/.installed"]


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1) as r:  # noqa: S310
            return r.status == 200
    except OSError:
        return False


def test_make_serve_predict_bench_then_ctrl_c_when_run_as_the_readme_shows(digits_build: dict[str, Path],
                                                                          tmp_path: Path) -> None:
    repo = tmp_path / "model_repository"
    shutil.copytree(digits_build["repository"], repo)
    port = free_port()
    while not all(_free(p) for p in (port + 1, port + 2)):
        port = free_port()
    serve = subprocess.Popen([*MAKE, "serve", f"REPO={repo}", f"PORT={port}"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _ready(port):
            assert serve.poll() is None, serve.stdout.read() if serve.stdout else ""
            assert time.monotonic() < deadline, "make serve: not ready after 120 s"
            time.sleep(0.3)

        predict = subprocess.run([*MAKE, "predict", f"PORT={port}"], cwd=ROOT, capture_output=True, text=True,
                                 timeout=240)
        assert predict.returncode == 0, predict.stderr
        rows = [ln for ln in predict.stdout.splitlines() if ln.startswith("digit #")]
        assert len(rows) == 20, predict.stdout
        assert f"via grpc://127.0.0.1:{port + 1} " in predict.stdout  # PORT=N dials gRPC N+1

        reports = tmp_path / "reports"
        bench = subprocess.run([*MAKE, "bench", f"REPO={repo}", f"REPORTS={reports}",
                                "BENCH_ARGS=--concurrency 1,2 --batch 1 --measurement-ms 300 --stability-pct 100"],
                               cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert bench.returncode == 0, bench.stderr
        [folder] = list(reports.iterdir())
        text = (folder / "report.md").read_text()
        assert f"127.0.0.1:{port + 1}" in text, text[:3000]  # the server make serve recorded, not 8001
        assert "efficiency" in text.lower(), text[:3000]
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGINT)  # Ctrl-C to the process group this test started
        out, _ = serve.communicate(timeout=60)
    # make itself dies of the SIGINT (as on a terminal); tritonkit serve stops the server it started first.
    assert serve.returncode in (0, -signal.SIGINT) and "stopping" in out, out
    pid = int(re.search(r"\(embedded, pid (\d+)\)", out).group(1))
    assert not _ready(port) and not Path(f"/proc/{pid}").exists(), out


def _free(port: int) -> bool:
    from toolkit.serve.ports import port_in_use

    return 0 < port < 65536 and not port_in_use("127.0.0.1", port)
