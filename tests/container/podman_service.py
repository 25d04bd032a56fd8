"""``podman system service`` on a private socket: the Docker-compatible engine the docker CLI drives in the
container tests and in benchmarks/bench_container.py. Started and stopped by its own PID."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from toolkit.serve.engine import Engine


class PodmanService:
    """One service process; ``engine`` is the docker CLI pointed at its socket."""

    def __init__(self, podman: str, docker: str, folder: Path) -> None:
        os.chmod(folder, 0o700)
        self.folder = folder
        self.url = f"unix://{folder}/podman.sock"
        self.log = open(folder / "service.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([podman, "system", "service", "--time=0", self.url], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.engine = Engine("docker", docker, self.url)

    def wait_answering(self, timeout: float = 30) -> str | None:
        """None once the docker CLI gets answers through the socket; else why not (the service's log tail)."""
        deadline = time.monotonic() + timeout
        while not self.engine.answers(timeout=5):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return f"podman system service did not answer: {(self.folder / 'service.log').read_text()[-500:]}"
            time.sleep(0.2)
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
