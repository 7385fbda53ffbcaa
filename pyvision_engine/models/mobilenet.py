"""MobileNetV2 in torchvision's layout (Sandler et al. 2018): same module names, state_dict keys
and shapes, and torchvision's initialization."""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple, Union

from pyvision_engine import nn
from pyvision_engine.models._builder import check_no_weights
from pyvision_engine.nn import blocked
from pyvision_engine.nn import init
from pyvision_engine.tensor import Tensor

__all__ = ["MobileNetV2", "InvertedResidual", "Conv2dNormActivation", "mobilenet_v2"]


def _make_divisible(v: float, divisor: int, min_value: Optional[int] = None) -> int:
    """Round channels to a multiple of ``divisor`` without going down by more than 10%."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def init_like_torchvision(model: nn.Module) -> None:
    """torchvision's MobileNet initialization: convolutions kaiming-normal (fan_out) with
    zero bias, norm layers weight 1 and bias 0, linear layers N(0, 0.01) with zero bias."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            init.ones_(m.weight)
            init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            init.normal_(m.weight, 0, 0.01)
            init.zeros_(m.bias)


class Conv2dNormActivation(nn.Sequential):
    """Conv2d -> norm -> activation, as torchvision.ops.misc.Conv2dNormActivation (same
    arguments, defaults and order): ``padding=None`` is ``(kernel_size - 1) // 2 * dilation``
    per dim; ``norm_layer=None`` / ``activation_layer=None`` leave that layer out; ``bias=None``
    gives the convolution a bias only when there is no norm layer."""

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_size: Union[int, Tuple[int, int]] = 3,
                 stride: Union[int, Tuple[int, int]] = 1,
                 padding: Optional[Union[int, Tuple[int, int], str]] = None, groups: int = 1,
                 norm_layer: Optional[Callable[..., nn.Module]] = nn.BatchNorm2d,
                 activation_layer: Optional[Callable[..., nn.Module]] = nn.ReLU,
                 dilation: Union[int, Tuple[int, int]] = 1, inplace: Optional[bool] = True,
                 bias: Optional[bool] = None) -> None:
        if padding is None:
            if isinstance(kernel_size, int) and isinstance(dilation, int):
                padding = (kernel_size - 1) // 2 * dilation
            else:
                k = (kernel_size,) * 2 if isinstance(kernel_size, int) else tuple(kernel_size)
                d = (dilation,) * 2 if isinstance(dilation, int) else tuple(dilation)
                padding = tuple((k[i] - 1) // 2 * d[i] for i in range(len(k)))
        if bias is None:
            bias = norm_layer is None
        layers: List[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                             dilation=dilation, groups=groups, bias=bias)]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer(**({} if inplace is None else {"inplace": inplace})))
        super().__init__(*layers)
        self.out_channels = out_channels


class InvertedResidual(nn.Module):
    """1x1 expand (unless expand_ratio == 1) -> 3x3 depthwise -> 1x1 linear projection,
    with a residual connection when the shape is kept."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int,
                 norm_layer: Optional[Callable[..., nn.Module]] = None) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual: stride should be 1 or 2 instead of {stride}")
        norm_layer = norm_layer or nn.BatchNorm2d
        self.stride = stride
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: List[nn.Module] = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden_dim, kernel_size=1, norm_layer=norm_layer,
                                               activation_layer=nn.ReLU6))
        layers.extend([
            Conv2dNormActivation(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim,
                                 norm_layer=norm_layer, activation_layer=nn.ReLU6),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            norm_layer(oup),
        ])
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup
        self._is_cn = stride > 1

    def forward(self, x: Any) -> Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)

    def _blocked_plan(self) -> Optional[blocked.Block]:
        """Inference in the channel-blocked layout (nn/blocked.py): the block's
        convolutions as blocked units, the residual added in the projection's
        epilogue. None when this block (or a subclass's forward) cannot."""
        if type(self).forward is not InvertedResidual.forward:
            return None
        units = blocked.blocked_units([self.conv])
        return None if units is None else blocked.Block(units, residual=self.use_res_connect)


class MobileNetV2(nn.Module):
    """torchvision.models.MobileNetV2 (3.5 M parameters at 1000 classes, width 1.0), with
    torchvision's arguments in torchvision's order. ``block`` builds each inverted residual
    (default :class:`InvertedResidual`), called as ``block(inp, oup, stride, expand_ratio=t,
    norm_layer=norm_layer)``."""

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0,
                 inverted_residual_setting: Optional[List[List[int]]] = None,
                 round_nearest: int = 8, block: Optional[Callable[..., nn.Module]] = None,
                 norm_layer: Optional[Callable[..., nn.Module]] = None,
                 dropout: float = 0.2) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"MobileNetV2: num_classes must be a positive int, got {num_classes!r}")
        if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or not width_mult > 0:
            raise ValueError(f"MobileNetV2: width_mult must be a positive number, got {width_mult!r}")
        if isinstance(round_nearest, bool) or not isinstance(round_nearest, int) or round_nearest < 1:
            raise ValueError(f"MobileNetV2: round_nearest must be a positive int, got {round_nearest!r}")
        block = block or InvertedResidual
        norm_layer = norm_layer or nn.BatchNorm2d
        input_channel, last_channel = 32, 1280
        if inverted_residual_setting is None:
            inverted_residual_setting = [
                # t (expansion), c (channels), n (repeats), s (stride of the first)
                [1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
                [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1],
            ]
        if len(inverted_residual_setting) == 0 or any(len(s) != 4 for s in inverted_residual_setting):
            raise ValueError("MobileNetV2: inverted_residual_setting should be a non-empty list of "
                             f"4-element lists, got {inverted_residual_setting}")
        input_channel = _make_divisible(input_channel * width_mult, round_nearest)
        self.last_channel = _make_divisible(last_channel * max(1.0, width_mult), round_nearest)
        features: List[nn.Module] = [Conv2dNormActivation(3, input_channel, stride=2,
                                                          norm_layer=norm_layer,
                                                          activation_layer=nn.ReLU6)]
        for t, c, n, s in inverted_residual_setting:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(block(input_channel, output_channel, s if i == 0 else 1,
                                      expand_ratio=t, norm_layer=norm_layer))
                input_channel = output_channel
        features.append(Conv2dNormActivation(input_channel, self.last_channel, kernel_size=1,
                                             norm_layer=norm_layer, activation_layer=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        init_like_torchvision(self)

    def forward(self, x: Any) -> Tensor:
        from pyvision_engine.nn import functional as F
        from pyvision_engine.tensor import as_tensor

        x = as_tensor(x)
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"MobileNetV2: expected input of shape (N, 3, H, W), got {x.shape}")
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)
        return self.classifier(x)


def mobilenet_v2(num_classes: int = 1000, *, weights: Any = None, progress: bool = True,
                 **kwargs: Any) -> MobileNetV2:
    """MobileNetV2 (torchvision layout). ``weights``/``progress``/``pretrained``: torchvision's
    builder arguments; only ``weights=None`` (see models/_builder.py). Other keywords
    (``width_mult``, ``dropout``, ``norm_layer``, ``block``, ...) go to :class:`MobileNetV2`."""
    check_no_weights("mobilenet_v2", weights, progress, kwargs)
    return MobileNetV2(num_classes=num_classes, **kwargs)
