"""The model registry: architectures by name, so a checkpoint can rebuild its model.

Register your own architecture with the decorator; the name and the constructor keyword
arguments are stored in every checkpoint::

    from trainers.models import register_model

    @register_model("mynet")
    class MyNet(torch.nn.Module):
        def __init__(self, num_classes: int = 10, in_channels: int = 3): ...

    model = create_model("mynet", num_classes=5)

Constructor arguments must be JSON-serializable (they are saved in the checkpoint). A checkpoint
may come from anywhere, so :func:`create_model` checks them first: types from the constructor's
annotations, ranges from ``register_model(name, bounds={"width": (1, 1024)})``, and the parameter
count of a build on the meta device (nothing allocated) against :data:`MAX_PARAMETERS`.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import torch
from torch import nn

from contract.errors import UsageError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_BOUNDS: dict[str, dict[str, tuple[float, float]]] = {}
T = TypeVar("T", bound=Callable[..., nn.Module])

MAX_PARAMETERS = 1 << 30
"""Most parameters plus buffers (4 GiB of float32) a model rebuilt from arguments may have; the
count comes from a build on the meta device, which allocates nothing."""
MAX_SEQUENCE_ITEMS = 64
"""Longest list/tuple argument (e.g. ``widths``) accepted."""


def register_model(name: str, *, bounds: Mapping[str, tuple[float, float]] | None = None) -> Callable[[T], T]:
    """Decorator that adds an architecture to the registry under ``name``.

    Args:
        bounds: inclusive ``(low, high)`` per numeric constructor argument (for a list argument,
            per item). Checkpoints carry the arguments, so a hostile or damaged file could ask for
            ``width=-5`` or ``width=200000``; bounds refuse it in one line before anything is built.
    """

    def deco(factory: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise UsageError(f"model name {name!r} is already registered; choose another name")
        _REGISTRY[name] = factory
        _BOUNDS[name] = dict(bounds or {})
        return factory

    return deco


def available_models() -> list[str]:
    return sorted(_REGISTRY)


def _hints(factory: Callable[..., nn.Module]) -> tuple[inspect.Signature | None, dict[str, Any]]:
    """The constructor's signature and resolved type hints ({} where they cannot be resolved)."""
    target = factory.__init__ if inspect.isclass(factory) else factory  # type: ignore[misc]
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return None, {}
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - a user's unresolvable annotation: fall back to defaults' types
        hints = {}
    return sig, hints


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` (from a checkpoint) has the annotated type; unknown hints accept anything."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        item = args[0] if args and (origin is not tuple or len(args) == 2 and args[1] is Ellipsis) else Any
        return all(_matches(v, item) for v in value)
    return True


def _type_text(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def check_model_arguments(name: str, kwargs: Mapping[str, Any]) -> None:
    """Check constructor arguments against the registry before anything is built.

    Types come from the constructor's annotations (or its defaults' types), ranges from the
    bounds given to :func:`register_model`.

    Raises:
        UsageError: unknown model, unknown argument, wrong type or out of bounds (one line).
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        raise UsageError(f"unknown model {str(name)[:60]!r}; choose one of: {', '.join(available_models())}")
    sig, hints = _hints(_REGISTRY[name])
    params = dict(sig.parameters) if sig is not None else {}
    open_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    bounds = _BOUNDS.get(name, {})
    for key, value in kwargs.items():
        param = params.get(key)
        if param is None and sig is not None and not open_kwargs:
            valid = ", ".join(k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL)
            raise UsageError(f"model {name!r}: unknown argument {str(key)[:40]!r}; valid: {valid}")
        hint = hints.get(key, inspect.Parameter.empty)
        if hint is inspect.Parameter.empty and param is not None and param.default is not inspect.Parameter.empty:
            default = param.default
            hint = (list | tuple) if isinstance(default, (list, tuple)) else type(default)
            hint = float if hint is float else hint
        if not _matches(value, hint):
            raise UsageError(f"model {name!r}: argument {key}={repr(value)[:40]} is {type(value).__name__}, "
                             f"expected {_type_text(hint)}")
        items = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, (list, tuple)) and len(value) > MAX_SEQUENCE_ITEMS:
            raise UsageError(f"model {name!r}: argument {key} has {len(value)} items, more than {MAX_SEQUENCE_ITEMS}")
        if key in bounds:
            lo, hi = bounds[key]
            for item in items:
                if isinstance(item, (int, float)) and not isinstance(item, bool) and not lo <= item <= hi:
                    raise UsageError(f"model {name!r}: argument {key}={repr(value)[:40]} is out of range; "
                                     f"use {lo:g}..{hi:g}")


def _parameter_count(factory: Callable[..., nn.Module], kwargs: Mapping[str, Any]) -> int | None:
    """Parameters plus buffers of a build on the meta device (nothing allocated); None when the
    constructor cannot run there (the real build then reports its own error)."""
    try:
        with torch.device("meta"):
            model = factory(**kwargs)
    except Exception:  # noqa: BLE001 - any failure here is reported by the real build below
        return None
    return sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build a registered architecture.

    Arguments are checked first (:func:`check_model_arguments`), then the parameter count of a
    build on the meta device against :data:`MAX_PARAMETERS`, so nothing large is allocated for
    arguments a checkpoint should never carry.

    Raises:
        UsageError: unknown name (the message lists the valid ones) or bad arguments.
    """
    check_model_arguments(name, kwargs)
    factory = _REGISTRY[name]
    count = _parameter_count(factory, kwargs)
    if count is not None and count > MAX_PARAMETERS:
        shown = ", ".join(f"{k}={v}" for k, v in kwargs.items())[:80]
        raise UsageError(f"model {name!r} with {shown} would have {count:,} parameters ({count * 4 / 2**30:.0f} GiB), "
                         f"more than the {MAX_PARAMETERS:,} allowed; check the architecture arguments")
    try:
        model = factory(**kwargs)
    except Exception as exc:  # noqa: BLE001 - arguments from a file: any constructor failure is theirs
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise UsageError(f"model {name!r}: cannot be built with these arguments "
                         f"({type(exc).__name__}: {first})") from None
    # Remembered so a Trainer can record the architecture in its checkpoints without being told.
    model.__dict__["_tritonkit_architecture"] = {"name": name, "kwargs": dict(kwargs)}
    return model


def architecture_of(model: nn.Module) -> dict[str, object] | None:
    """``{"name", "kwargs"}`` of a model built by :func:`create_model`, else None."""
    arch = model.__dict__.get("_tritonkit_architecture")
    return {"name": arch["name"], "kwargs": dict(arch["kwargs"])} if arch else None


@register_model("smallcnn", bounds={"num_classes": (1, 100_000), "in_channels": (1, 64), "width": (1, 1024)})
class SmallCNN(nn.Module):
    """A small CNN for small single-channel images (8x8 and up): the default model of the recipes."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with BatchNorm and an identity (or 1x1) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


@register_model("resnet_small", bounds={"num_classes": (1, 100_000), "in_channels": (1, 64),
                                          "widths": (1, 2048), "blocks_per_stage": (1, 16)})
class ResNetSmall(nn.Module):
    """A small ResNet (BasicBlocks, BatchNorm) for larger images, e.g. 3x64x64."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        widths: tuple[int, ...] | list[int] = (32, 64, 128),
        blocks_per_stage: int = 2,
    ) -> None:
        super().__init__()
        widths = list(widths)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        cin = widths[0]
        for i, w in enumerate(widths):
            for j in range(blocks_per_stage):
                layers.append(BasicBlock(cin, w, stride=2 if (i > 0 and j == 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.layers(self.stem(x))), 1))
