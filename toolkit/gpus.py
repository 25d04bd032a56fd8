"""Whether this machine has an NVIDIA GPU a server could use (driver's view, no CUDA import).

Why one place: ``serve`` picks the container runtime by it, and the validator notes that a
``KIND_GPU`` model cannot be served here; both must ask the same question the same way.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def gpu_visible() -> bool:
    """True when an NVIDIA GPU is visible here (device node or ``nvidia-smi -L``)."""
    if Path("/dev/nvidia0").exists():
        return True
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout
