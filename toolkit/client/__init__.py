"""Talking to a served model: the Predictor (sync and asyncio), image decoding, predictions.

``Predictor`` and ``AsyncPredictor`` are loaded on first use (they pull in tritonclient).
"""

from __future__ import annotations

from typing import Any

__all__ = ["AsyncPredictor", "Predictor"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from toolkit.client import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
