"""pve.models: LeNet-5; ResNet-18/34/50/101/152, ResNeXt, Wide ResNet, MobileNetV2 and
MobileNetV3 in torchvision's layout (torchvision weights load with strict=True); ResNet-20 for
CIFAR, and the small CNN of the CLI.

    model = pve.models.get_model("resnet18", num_classes=10)
    pve.models.list_models()
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List

from pyvision_engine.models.mobilenet import MobileNetV2, mobilenet_v2
from pyvision_engine.models.mobilenetv3 import MobileNetV3, mobilenet_v3_large, mobilenet_v3_small
from pyvision_engine.models.resnet import (ResNet, resnet18, resnet20, resnet34, resnet50, resnet101,
                                           resnet152, resnext50_32x4d, resnext101_32x8d,
                                           resnext101_64x4d, wide_resnet50_2, wide_resnet101_2)
from pyvision_engine.models.small import LeNet5, SmallCNN, lenet5, small_cnn

__all__ = ["get_model", "list_models", "MODELS", "lenet5", "resnet18", "resnet34", "resnet50",
           "resnet20", "mobilenet_v2", "small_cnn", "ResNet", "MobileNetV2", "LeNet5", "SmallCNN",
           "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
           "wide_resnet50_2", "wide_resnet101_2", "mobilenet_v3_large", "mobilenet_v3_small",
           "MobileNetV3"]

MODELS: Dict[str, Callable[..., Any]] = {
    "small_cnn": small_cnn,
    "lenet5": lenet5,
    "resnet20": resnet20,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "mobilenet_v2": mobilenet_v2,
    "resnet101": resnet101,
    "resnet152": resnet152,
    "resnext50_32x4d": resnext50_32x4d,
    "resnext101_32x8d": resnext101_32x8d,
    "resnext101_64x4d": resnext101_64x4d,
    "wide_resnet50_2": wide_resnet50_2,
    "wide_resnet101_2": wide_resnet101_2,
    "mobilenet_v3_large": mobilenet_v3_large,
    "mobilenet_v3_small": mobilenet_v3_small,
}

# Input each model is built for: (channels, height, width); None = any size.
INPUT_SHAPES = {
    "small_cnn": None, "lenet5": (1, 28, 28), "resnet20": (3, 32, 32), "resnet18": (3, 224, 224),
    "resnet34": (3, 224, 224), "resnet50": (3, 224, 224), "mobilenet_v2": (3, 224, 224),
    **{name: (3, 224, 224) for name in ("resnet101", "resnet152", "resnext50_32x4d",
                                        "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2",
                                        "wide_resnet101_2", "mobilenet_v3_large",
                                        "mobilenet_v3_small")},
}


def list_models() -> List[str]:
    """Names accepted by :func:`get_model`."""
    return list(MODELS)


def get_model(name: str, **kwargs: Any) -> Any:
    """Build a model by name (``num_classes=...`` and the model's other keyword arguments)."""
    if not isinstance(name, str):
        raise TypeError(f"get_model: name must be a str, got {type(name).__name__}")
    key = name.lower().replace("-", "_")
    if key not in MODELS:
        raise ValueError(f"unknown model '{name}'; choose from: {', '.join(MODELS)}")
    return MODELS[key](**kwargs)
