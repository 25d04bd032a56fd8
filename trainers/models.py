"""The model registry: architectures by name, so a checkpoint can rebuild its model.

Register your own architecture with the decorator; the name and the constructor keyword
arguments are stored in every checkpoint::

    from trainers.models import register_model

    @register_model("mynet")
    class MyNet(torch.nn.Module):
        def __init__(self, num_classes: int = 10, in_channels: int = 3): ...

    model = create_model("mynet", num_classes=5)

Constructor arguments must be JSON-serializable (they are saved in the checkpoint).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from toolkit.errors import UsageError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
T = TypeVar("T", bound=Callable[..., nn.Module])


def register_model(name: str) -> Callable[[T], T]:
    """Decorator that adds an architecture to the registry under ``name``."""

    def deco(factory: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise UsageError(f"model name {name!r} is already registered; choose another name")
        _REGISTRY[name] = factory
        return factory

    return deco


def available_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build a registered architecture.

    Raises:
        UsageError: unknown name (the message lists the valid ones) or bad arguments.
    """
    if name not in _REGISTRY:
        raise UsageError(f"unknown model {name!r}; choose one of: {', '.join(available_models())}")
    try:
        model = _REGISTRY[name](**kwargs)
    except TypeError as exc:
        raise UsageError(f"model {name!r}: bad arguments ({exc})") from None
    # Remembered so a Trainer can record the architecture in its checkpoints without being told.
    model.__dict__["_tritonkit_architecture"] = {"name": name, "kwargs": dict(kwargs)}
    return model


def architecture_of(model: nn.Module) -> dict[str, object] | None:
    """``{"name", "kwargs"}`` of a model built by :func:`create_model`, else None."""
    arch = model.__dict__.get("_tritonkit_architecture")
    return {"name": arch["name"], "kwargs": dict(arch["kwargs"])} if arch else None


@register_model("smallcnn")
class SmallCNN(nn.Module):
    """A small CNN for 8x8 (or other small) single-channel images such as the digits set."""

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


@register_model("resnet_small")
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
