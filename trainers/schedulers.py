"""Learning-rate schedules not in ``torch.optim.lr_scheduler``, built on its ``LambdaLR``.

The lambda is a small class instance rather than a closure so the schedule is described by plain
numbers; ``LambdaLR.state_dict`` then stays a dict of plain values that a weights-only checkpoint
load accepts.
"""

from __future__ import annotations

import math

import torch

from contract.errors import UsageError


class WarmupCosine:
    """Multiplier for step ``s``: linear 0->1 over ``warmup`` steps, then cosine 1 -> ``min_ratio``."""

    def __init__(self, warmup: int, total: int, min_ratio: float = 0.0) -> None:
        if total <= 0 or warmup < 0 or warmup > total:
            raise UsageError(
                f"warm-up cosine needs 0 <= warmup ({warmup}) <= total steps ({total}) and total > 0"
            )
        if not 0.0 <= min_ratio <= 1.0:
            raise UsageError(f"min_lr_ratio {min_ratio} is out of range; use a value in [0, 1]")
        self.warmup, self.total, self.min_ratio = int(warmup), int(total), float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` with linear warm-up then cosine decay; step it once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupCosine(warmup_steps, total_steps, min_lr_ratio)
    )
