"""MobileNetV3-Large and -Small in torchvision's layout (Howard et al. 2019): same module names,
state_dict keys and shapes, arguments and initialization as torchvision.models.mobilenetv3, so
torchvision's weights load with strict=True."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, List, Optional, Sequence, Tuple

from pyvision_engine import nn
from pyvision_engine.models._builder import check_no_weights
from pyvision_engine.models.mobilenet import (Conv2dNormActivation, _make_divisible,
                                              init_like_torchvision)
from pyvision_engine.tensor import Tensor

__all__ = ["MobileNetV3", "InvertedResidualConfig", "InvertedResidual", "SqueezeExcitation",
           "mobilenet_v3_large", "mobilenet_v3_small"]


class SqueezeExcitation(nn.Module):
    """torchvision.ops.misc.SqueezeExcitation: global average pool -> 1x1 conv (fc1) ->
    ``activation`` -> 1x1 conv (fc2) -> ``scale_activation``, multiplied into the input."""

    def __init__(self, input_channels: int, squeeze_channels: int,
                 activation: Callable[..., nn.Module] = nn.ReLU,
                 scale_activation: Callable[..., nn.Module] = nn.Sigmoid) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def _scale(self, input: Tensor) -> Tensor:
        scale = self.fc2(self.activation(self.fc1(self.avgpool(input))))
        return self.scale_activation(scale)

    def forward(self, input: Any) -> Tensor:
        return self._scale(input) * input


class InvertedResidualConfig:
    """One bottleneck row of the paper's tables; channels scaled by ``width_mult`` and rounded
    to multiples of 8 (``adjust_channels``). ``activation``: "RE" (ReLU) or "HS" (Hardswish)."""

    def __init__(self, input_channels: int, kernel: int, expanded_channels: int,
                 out_channels: int, use_se: bool, activation: str, stride: int, dilation: int,
                 width_mult: float) -> None:
        self.input_channels = self.adjust_channels(input_channels, width_mult)
        self.kernel = kernel
        self.expanded_channels = self.adjust_channels(expanded_channels, width_mult)
        self.out_channels = self.adjust_channels(out_channels, width_mult)
        self.use_se = use_se
        self.use_hs = activation == "HS"
        self.stride = stride
        self.dilation = dilation

    @staticmethod
    def adjust_channels(channels: float, width_mult: float) -> int:
        return _make_divisible(channels * width_mult, 8)


class InvertedResidual(nn.Module):
    """1x1 expand (when the width changes) -> kxk depthwise -> squeeze-excitation (optional) ->
    1x1 linear projection, plus the input when the shape is kept."""

    def __init__(self, cnf: InvertedResidualConfig, norm_layer: Callable[..., nn.Module],
                 se_layer: Callable[..., nn.Module] = partial(SqueezeExcitation,
                                                              scale_activation=nn.Hardsigmoid)
                 ) -> None:
        super().__init__()
        if not 1 <= cnf.stride <= 2:
            raise ValueError("illegal stride value")
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        activation_layer = nn.Hardswish if cnf.use_hs else nn.ReLU
        layers: List[nn.Module] = []
        if cnf.expanded_channels != cnf.input_channels:
            layers.append(Conv2dNormActivation(cnf.input_channels, cnf.expanded_channels,
                                               kernel_size=1, norm_layer=norm_layer,
                                               activation_layer=activation_layer))
        stride = 1 if cnf.dilation > 1 else cnf.stride  # (dilated tail: no further striding)
        layers.append(Conv2dNormActivation(cnf.expanded_channels, cnf.expanded_channels,
                                           kernel_size=cnf.kernel, stride=stride,
                                           dilation=cnf.dilation, groups=cnf.expanded_channels,
                                           norm_layer=norm_layer,
                                           activation_layer=activation_layer))
        if cnf.use_se:
            squeeze_channels = _make_divisible(cnf.expanded_channels // 4, 8)
            layers.append(se_layer(cnf.expanded_channels, squeeze_channels))
        layers.append(Conv2dNormActivation(cnf.expanded_channels, cnf.out_channels, kernel_size=1,
                                           norm_layer=norm_layer, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.out_channels = cnf.out_channels
        self._is_cn = cnf.stride > 1

    def forward(self, input: Any) -> Tensor:
        result = self.block(input)
        if self.use_res_connect:
            result = result + input
        return result


class MobileNetV3(nn.Module):
    """torchvision.models.MobileNetV3: a 3x3/2 Hardswish stem, the inverted residual rows,
    a 1x1 conv to 6x the last width, global average pool and a two-layer classifier. The
    default norm layer is BatchNorm2d(eps=0.001, momentum=0.01), as torchvision's."""

    def __init__(self, inverted_residual_setting: Sequence[InvertedResidualConfig],
                 last_channel: int, num_classes: int = 1000,
                 block: Optional[Callable[..., nn.Module]] = None,
                 norm_layer: Optional[Callable[..., nn.Module]] = None,
                 dropout: float = 0.2, **kwargs: Any) -> None:
        super().__init__()
        if not inverted_residual_setting:
            raise ValueError("The inverted_residual_setting should not be empty")
        if not (isinstance(inverted_residual_setting, Sequence)
                and all(isinstance(s, InvertedResidualConfig) for s in inverted_residual_setting)):
            raise TypeError("The inverted_residual_setting should be List[InvertedResidualConfig]")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"MobileNetV3: num_classes must be a positive int, got {num_classes!r}")
        block = block or InvertedResidual
        norm_layer = norm_layer or partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        first = inverted_residual_setting[0].input_channels
        layers: List[nn.Module] = [Conv2dNormActivation(3, first, kernel_size=3, stride=2,
                                                        norm_layer=norm_layer,
                                                        activation_layer=nn.Hardswish)]
        layers.extend(block(cnf, norm_layer) for cnf in inverted_residual_setting)
        lastconv_input = inverted_residual_setting[-1].out_channels
        lastconv_output = 6 * lastconv_input
        layers.append(Conv2dNormActivation(lastconv_input, lastconv_output, kernel_size=1,
                                           norm_layer=norm_layer, activation_layer=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(lastconv_output, last_channel),
            nn.Hardswish(inplace=True),
            nn.Dropout(p=dropout, inplace=True),
            nn.Linear(last_channel, num_classes),
        )
        init_like_torchvision(self)

    def forward(self, x: Any) -> Tensor:
        from pyvision_engine.tensor import as_tensor

        x = as_tensor(x)
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"MobileNetV3: expected input of shape (N, 3, H, W), got {x.shape}")
        x = self.avgpool(self.features(x)).flatten(1)
        return self.classifier(x)


def _mobilenet_v3_conf(arch: str, width_mult: float = 1.0, reduced_tail: bool = False,
                       dilated: bool = False, **kwargs: Any
                       ) -> Tuple[List[InvertedResidualConfig], int]:
    """torchvision's rows: (input, kernel, expanded, output, SE, activation, stride, dilation).
    ``reduced_tail`` halves the last stage's widths, ``dilated`` dilates it instead of striding."""
    div = 2 if reduced_tail else 1
    dil = 2 if dilated else 1
    row = partial(InvertedResidualConfig, width_mult=width_mult)
    if arch == "mobilenet_v3_large":
        setting = [
            row(16, 3, 16, 16, False, "RE", 1, 1),
            row(16, 3, 64, 24, False, "RE", 2, 1),
            row(24, 3, 72, 24, False, "RE", 1, 1),
            row(24, 5, 72, 40, True, "RE", 2, 1),
            row(40, 5, 120, 40, True, "RE", 1, 1),
            row(40, 5, 120, 40, True, "RE", 1, 1),
            row(40, 3, 240, 80, False, "HS", 2, 1),
            row(80, 3, 200, 80, False, "HS", 1, 1),
            row(80, 3, 184, 80, False, "HS", 1, 1),
            row(80, 3, 184, 80, False, "HS", 1, 1),
            row(80, 3, 480, 112, True, "HS", 1, 1),
            row(112, 3, 672, 112, True, "HS", 1, 1),
            row(112, 5, 672, 160 // div, True, "HS", 2, dil),
            row(160 // div, 5, 960 // div, 160 // div, True, "HS", 1, dil),
            row(160 // div, 5, 960 // div, 160 // div, True, "HS", 1, dil),
        ]
        last_channel = InvertedResidualConfig.adjust_channels(1280 // div, width_mult)
    elif arch == "mobilenet_v3_small":
        setting = [
            row(16, 3, 16, 16, True, "RE", 2, 1),
            row(16, 3, 72, 24, False, "RE", 2, 1),
            row(24, 3, 88, 24, False, "RE", 1, 1),
            row(24, 5, 96, 40, True, "HS", 2, 1),
            row(40, 5, 240, 40, True, "HS", 1, 1),
            row(40, 5, 240, 40, True, "HS", 1, 1),
            row(40, 5, 120, 48, True, "HS", 1, 1),
            row(48, 5, 144, 48, True, "HS", 1, 1),
            row(48, 5, 288, 96 // div, True, "HS", 2, dil),
            row(96 // div, 5, 576 // div, 96 // div, True, "HS", 1, dil),
            row(96 // div, 5, 576 // div, 96 // div, True, "HS", 1, dil),
        ]
        last_channel = InvertedResidualConfig.adjust_channels(1024 // div, width_mult)
    else:
        raise ValueError(f"Unsupported model type {arch}")
    return setting, last_channel


def _mobilenet_v3(arch: str, num_classes: int, kwargs: dict) -> MobileNetV3:
    """The builders' common part: the configuration keywords (``width_mult``,
    ``reduced_tail``, ``dilated``) to the rows, the rest to the class."""
    conf = {k: kwargs.pop(k) for k in ("width_mult", "reduced_tail", "dilated") if k in kwargs}
    setting, last_channel = _mobilenet_v3_conf(arch, **conf)
    return MobileNetV3(setting, last_channel, num_classes=num_classes, **kwargs)


def mobilenet_v3_large(num_classes: int = 1000, *, weights: Any = None, progress: bool = True,
                       **kwargs: Any) -> MobileNetV3:
    """MobileNetV3-Large (torchvision layout: 5.5 M parameters at 1000 classes). Keywords:
    ``width_mult``, ``reduced_tail``, ``dilated`` (the rows), then :class:`MobileNetV3`'s
    (``dropout``, ``norm_layer``, ``block``)."""
    check_no_weights("mobilenet_v3_large", weights, progress, kwargs)  # (warns at the caller)
    return _mobilenet_v3("mobilenet_v3_large", num_classes, kwargs)


def mobilenet_v3_small(num_classes: int = 1000, *, weights: Any = None, progress: bool = True,
                       **kwargs: Any) -> MobileNetV3:
    """MobileNetV3-Small (torchvision layout: 2.5 M parameters at 1000 classes); keywords as
    :func:`mobilenet_v3_large`."""
    check_no_weights("mobilenet_v3_small", weights, progress, kwargs)  # (warns at the caller)
    return _mobilenet_v3("mobilenet_v3_small", num_classes, kwargs)
