"""Preparing the embedded Triton: idempotent, concurrent-safe, backend refreshed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from toolkit.serve.install import prepare_triton

_PREPARE = "from toolkit.serve.install import prepare_triton; print(prepare_triton().root)"


def test_prepare_builds_one_complete_install_when_two_processes_prepare_at_once(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    env = {"TRITONKIT_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, "-c", _PREPARE], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    roots = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(roots) == 1
    root = Path(roots.pop())
    assert sorted(p.name for p in tmp_path.iterdir()) == [root.name], "no temporary folders left behind"
    assert (root / "bin" / "tritonserver").is_file()
    assert (root / "backends" / "python" / "triton_python_backend_stub").is_file()
    assert (root / "backends" / "onnxruntime" / "model.py").is_file()


def test_prepare_refreshes_backend_when_its_source_changed(tmp_path: Path) -> None:
    install = prepare_triton(home=tmp_path)
    backend = install.backend_dir / "onnxruntime" / "model.py"
    source = Path(__import__("toolkit.serve", fromlist=["x"]).__file__).parent / "backends/onnxruntime/model.py"
    backend.write_text("# stale\n")
    again = prepare_triton(home=tmp_path)
    assert again.root == install.root
    assert backend.read_bytes() == source.read_bytes()


def test_env_puts_running_python_first_when_preparing_stub_environment(tmp_path: Path) -> None:
    import sysconfig

    env = prepare_triton(home=tmp_path).env({"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/x"})
    assert env["LD_LIBRARY_PATH"].split(":")[0] == sysconfig.get_config_var("LIBDIR")
    assert env["LD_LIBRARY_PATH"].split(":")[1].endswith("nvidia_pytriton.libs")
    # First on PATH: the stub's venv shim, whose python3 is this interpreter; then its own folder.
    first, second = env["PATH"].split(":")[:2]
    assert os.readlink(Path(first) / "python3") == sys.executable
    assert second == str(Path(sys.executable).parent)
    pth = next((Path(first).parent / "lib").glob("python*/site-packages/_tritonkit_stub.pth")).read_text()
    assert "sys.dont_write_bytecode = True" in pth
