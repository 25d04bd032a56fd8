"""Triton 2.51 core rules for how requests are scheduled and batched."""

from __future__ import annotations

from typing import Any

from toolkit.repository.validate.problem import Context


def check_scheduling(ctx: Context, cfg: Any, kind: str | None) -> None:
    """batch_input/batch_output, sequence and dynamic batching, transaction policy, response cache,
    version policy."""
