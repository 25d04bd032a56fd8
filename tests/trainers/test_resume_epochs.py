"""Resuming a run with another length is refused in one line (its schedule is sized for the plan)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TRITONKIT = str(Path(sys.executable).parent / "tritonkit")


def test_resume_with_other_epoch_count_is_refused_in_one_line(tmp_path: Path) -> None:
    first = subprocess.run([TRITONKIT, "train", "--model", "smallcnn", "--data", "digits", "--epochs", "1",
                            "--out", "runs/a", "--quiet"], capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    last = tmp_path / "runs" / "a" / "checkpoints" / "last.pt"
    before = last.read_bytes()
    again = subprocess.run([TRITONKIT, "train", "--model", "smallcnn", "--data", "digits", "--epochs", "2",
                            "--out", "runs/a", "--resume", "last", "--quiet"], capture_output=True, text=True,
                           cwd=tmp_path)
    assert again.returncode != 0 and "Traceback" not in again.stderr
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and "planned for 1 epochs" in lines[0] and "--epochs 1" in lines[0]
    assert last.read_bytes() == before
