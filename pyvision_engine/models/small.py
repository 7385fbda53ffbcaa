"""Small CNNs: LeNet-5 and the compact CNN that ``pyvision-engine train`` uses on the digits."""

from __future__ import annotations

from typing import Any

from pyvision_engine import nn
from pyvision_engine.models._builder import check_no_weights
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["LeNet5", "lenet5", "SmallCNN", "small_cnn"]


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling: conv 5x5 (6) -> pool -> conv 5x5
    (16) -> pool -> fc 120 -> fc 84 -> fc num_classes. ``input_size`` 32 is the original;
    28 (MNIST) pads the first convolution by 2 so the shapes are the same afterwards."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28) -> None:
        super().__init__()
        if input_size not in (28, 32):
            raise ValueError(f"LeNet5: input_size must be 28 or 32, got {input_size!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"LeNet5: num_classes must be a positive int, got {num_classes!r}")
        self.in_channels, self.input_size = in_channels, input_size
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2 if input_size == 28 else 0),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(inplace=True),
            nn.Linear(120, 84), nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: Any) -> Tensor:
        x = as_tensor(x)
        if x.ndim != 4 or x.shape[1:] != (self.in_channels, self.input_size, self.input_size):
            raise ValueError(f"LeNet5: expected input of shape (N, {self.in_channels}, "
                             f"{self.input_size}, {self.input_size}), got {x.shape}")
        return self.classifier(self.features(x).flatten(1))


def lenet5(num_classes: int = 10, in_channels: int = 1, input_size: int = 28, *,
           weights: Any = None, progress: bool = True) -> LeNet5:
    """LeNet-5 for 1x28x28 (default) or 1x32x32 input. ``weights=None`` only, as the
    torchvision-style builders."""
    check_no_weights("lenet5", weights, progress, {})
    return LeNet5(num_classes, in_channels, input_size)


class SmallCNN(nn.Module):
    """A compact CNN for small images (8x8 digits up to 32x32): two conv-BN-ReLU blocks at
    ``width`` channels, 2x2 max pool, a conv-BN-ReLU block at 2 * ``width``, adaptive 2x2
    average pool, dropout and a linear classifier. Any input of at least 4x4 pixels."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"SmallCNN: num_classes must be a positive int, got {num_classes!r}")
        w = int(width)
        self.in_channels = in_channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d((2, 2)),
        )
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * w * 4, num_classes))

    def forward(self, x: Any) -> Tensor:
        x = as_tensor(x)
        if x.ndim != 4 or x.shape[1] != self.in_channels or min(x.shape[2:]) < 4:
            raise ValueError(f"SmallCNN: expected input of shape (N, {self.in_channels}, H, W) with "
                             f"H, W >= 4, got {x.shape}")
        return self.classifier(self.features(x).flatten(1))


def small_cnn(num_classes: int = 10, in_channels: int = 1, width: int = 32,
              dropout: float = 0.1) -> SmallCNN:
    """The default model of ``pyvision-engine train`` (30,762 parameters at width 32, 10 classes)."""
    return SmallCNN(num_classes, in_channels, width, dropout)
