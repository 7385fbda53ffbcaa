"""ResNet-18/34/50/101/152, ResNeXt and Wide ResNet in torchvision's layout (same module names,
so the same state_dict keys and shapes, num_batches_tracked included, and torchvision's
initialization), and ResNet-20 for CIFAR (He et al. 2016, section 4.2: 3 stages of 3 basic
blocks with 16/32/64 channels)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Type, Union

from pyvision_engine import nn
from pyvision_engine.models._builder import check_no_weights
from pyvision_engine.nn import init
from pyvision_engine.nn.fusion import conv_bn_act, conv_bn_add_act  # inference fast paths
from pyvision_engine.tensor import Tensor

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "resnet18", "resnet34", "resnet50", "resnet101",
           "resnet152", "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
           "wide_resnet50_2", "wide_resnet101_2", "resnet20", "CifarResNet"]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1,
            dilation: int = 1) -> nn.Module:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation,
                     groups=groups, bias=False, dilation=dilation)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Module:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (expansion 1)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, groups: int = 1, base_width: int = 64,
                 dilation: int = 1, norm_layer: Optional[Callable[..., nn.Module]] = None) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        if dilation > 1:
            raise NotImplementedError("Dilation > 1 not supported in BasicBlock")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Any) -> Tensor:
        # Children straight from the registry: each self.<child> is a Module.__getattr__
        # (~0.4 us, as much as a batch-1 layer's whole Python elsewhere).
        m = self._modules
        identity = x
        out = conv_bn_act(m["conv1"], m["bn1"], m["relu"], x)
        if self.downsample is not None:  # (before conv2, whose epilogue adds it)
            identity = self.downsample(x)
        return conv_bn_add_act(m["conv2"], m["bn2"], out, identity, m["relu"])


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (stride here, as torchvision's "ResNet V1.5"), 1x1 expand (expansion 4)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, groups: int = 1, base_width: int = 64,
                 dilation: int = 1, norm_layer: Optional[Callable[..., nn.Module]] = None) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Any) -> Tensor:
        m = self._modules  # (children straight from the registry, as BasicBlock)
        identity = x
        out = conv_bn_act(m["conv1"], m["bn1"], m["relu"], x)
        out = conv_bn_act(m["conv2"], m["bn2"], m["relu"], out)
        if self.downsample is not None:  # (before conv3, whose epilogue adds it)
            identity = self.downsample(x)
        return conv_bn_add_act(m["conv3"], m["bn3"], out, identity, m["relu"])


def _init_like_torchvision(model: nn.Module, zero_init_residual: bool) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, getattr(nn, "GroupNorm", nn.BatchNorm2d))):
            init.constant_(m.weight, 1)
            init.constant_(m.bias, 0)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, Bottleneck) and m.bn3.weight is not None:
                init.constant_(m.bn3.weight, 0)
            elif isinstance(m, BasicBlock) and m.bn2.weight is not None:
                init.constant_(m.bn2.weight, 0)


class ResNet(nn.Module):
    """torchvision.models.ResNet: 7x7/2 stem, 3x3/2 max pool, four stages, average pool, fc.
    ``replace_stride_with_dilation``: for layer2..layer4, dilate instead of striding
    (Bottleneck only, as torchvision)."""

    def __init__(self, block: Type[Union[BasicBlock, Bottleneck]], layers: List[int],
                 num_classes: int = 1000, zero_init_residual: bool = False, groups: int = 1,
                 width_per_group: int = 64,
                 replace_stride_with_dilation: Optional[List[bool]] = None,
                 norm_layer: Optional[Callable[..., nn.Module]] = None) -> None:
        super().__init__()
        _check_classes(num_classes, "ResNet")
        if len(layers) != 4:
            raise ValueError(f"ResNet: layers should be 4 block counts (one per stage), got {layers}")
        if replace_stride_with_dilation is None:
            replace_stride_with_dilation = [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError("ResNet: replace_stride_with_dilation should be None or a 3-element "
                             f"tuple, got {replace_stride_with_dilation}")
        self._norm_layer = norm_layer or nn.BatchNorm2d
        self.inplanes = 64
        self.dilation = 1
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2,
                                       dilate=replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2,
                                       dilate=replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2,
                                       dilate=replace_stride_with_dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        _init_like_torchvision(self, zero_init_residual)

    def _make_layer(self, block: Type[Union[BasicBlock, Bottleneck]], planes: int, blocks: int,
                    stride: int = 1, dilate: bool = False) -> nn.Sequential:
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       self._norm_layer(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width,
                        previous_dilation, self._norm_layer)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups,
                                base_width=self.base_width, dilation=self.dilation,
                                norm_layer=self._norm_layer))
        return nn.Sequential(*layers)

    def forward(self, x: Any) -> Tensor:
        x = _check_input(x, 3, "ResNet")
        x = self.maxpool(conv_bn_act(self.conv1, self.bn1, self.relu, x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def _check_classes(num_classes: Any, name: str) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"{name}: num_classes must be a positive int, got {num_classes!r}")


def _check_input(x: Any, channels: int, name: str) -> Tensor:
    from pyvision_engine.tensor import as_tensor

    t = as_tensor(x)
    if t.ndim != 4 or t.shape[1] != channels:
        raise ValueError(f"{name}: expected input of shape (N, {channels}, H, W), got {t.shape}")
    return t


def resnet18(num_classes: int = 1000, *, weights: Any = None, progress: bool = True,
             **kwargs: Any) -> ResNet:
    """ResNet-18 (torchvision layout: 11.7 M parameters at 1000 classes).
    ``weights``/``progress``/``pretrained``: torchvision's builder arguments; only
    ``weights=None`` (see models/_builder.py). Other keywords go to :class:`ResNet`."""
    check_no_weights("resnet18", weights, progress, kwargs)
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, **kwargs)


def resnet34(num_classes: int = 1000, *, weights: Any = None, progress: bool = True,
             **kwargs: Any) -> ResNet:
    """ResNet-34 (torchvision layout: 21.8 M parameters at 1000 classes).
    ``weights``/``progress``/``pretrained``: torchvision's builder arguments; only
    ``weights=None`` (see models/_builder.py). Other keywords go to :class:`ResNet`."""
    check_no_weights("resnet34", weights, progress, kwargs)
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes=num_classes, **kwargs)


def resnet50(num_classes: int = 1000, *, weights: Any = None, progress: bool = True,
             **kwargs: Any) -> ResNet:
    """ResNet-50 (torchvision layout, V1.5: stride in the 3x3; 25.6 M parameters at 1000 classes).
    ``weights``/``progress``/``pretrained``: torchvision's builder arguments; only
    ``weights=None`` (see models/_builder.py). Other keywords go to :class:`ResNet`."""
    check_no_weights("resnet50", weights, progress, kwargs)
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, **kwargs)



def resnet101(num_classes: int = 1000, *, weights: Any = None, progress: bool = True,
              **kwargs: Any) -> ResNet:
    """ResNet-101 (torchvision layout: 44.5 M parameters at 1000 classes); arguments as
    :func:`resnet50`."""
    check_no_weights("resnet101", weights, progress, kwargs)
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes=num_classes, **kwargs)


def resnet152(num_classes: int = 1000, *, weights: Any = None, progress: bool = True,
              **kwargs: Any) -> ResNet:
    """ResNet-152 (torchvision layout: 60.2 M parameters at 1000 classes); arguments as
    :func:`resnet50`."""
    check_no_weights("resnet152", weights, progress, kwargs)
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes=num_classes, **kwargs)


def _fixed(kwargs: Dict[str, Any], **values: Any) -> Dict[str, Any]:
    """Set the builder's fixed ResNet arguments; passing one with another value is a
    ValueError, as torchvision's ``_ovewrite_named_param``."""
    for name, value in values.items():
        if name in kwargs and kwargs[name] != value:
            raise ValueError(f"The parameter '{name}' expected value {value} but got "
                             f"{kwargs[name]} instead.")
        kwargs[name] = value
    return kwargs


def resnext50_32x4d(num_classes: int = 1000, *, weights: Any = None, progress: bool = True,
                    **kwargs: Any) -> ResNet:
    """ResNeXt-50 32x4d (torchvision layout: 32 groups of width 4 in the 3x3s; 25.0 M
    parameters at 1000 classes)."""
    check_no_weights("resnext50_32x4d", weights, progress, kwargs)
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes,
                  **_fixed(kwargs, groups=32, width_per_group=4))


def resnext101_32x8d(num_classes: int = 1000, *, weights: Any = None, progress: bool = True,
                     **kwargs: Any) -> ResNet:
    """ResNeXt-101 32x8d (torchvision layout: 88.8 M parameters at 1000 classes)."""
    check_no_weights("resnext101_32x8d", weights, progress, kwargs)
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes=num_classes,
                  **_fixed(kwargs, groups=32, width_per_group=8))


def resnext101_64x4d(num_classes: int = 1000, *, weights: Any = None, progress: bool = True,
                     **kwargs: Any) -> ResNet:
    """ResNeXt-101 64x4d (torchvision layout: 83.5 M parameters at 1000 classes)."""
    check_no_weights("resnext101_64x4d", weights, progress, kwargs)
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes=num_classes,
                  **_fixed(kwargs, groups=64, width_per_group=4))


def wide_resnet50_2(num_classes: int = 1000, *, weights: Any = None, progress: bool = True,
                    **kwargs: Any) -> ResNet:
    """Wide ResNet-50-2 (torchvision layout: bottlenecks twice as wide; 68.9 M parameters at
    1000 classes)."""
    check_no_weights("wide_resnet50_2", weights, progress, kwargs)
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes,
                  **_fixed(kwargs, width_per_group=128))


def wide_resnet101_2(num_classes: int = 1000, *, weights: Any = None, progress: bool = True,
                     **kwargs: Any) -> ResNet:
    """Wide ResNet-101-2 (torchvision layout: 126.9 M parameters at 1000 classes)."""
    check_no_weights("wide_resnet101_2", weights, progress, kwargs)
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes=num_classes,
                  **_fixed(kwargs, width_per_group=128))

class CifarResNet(nn.Module):
    """ResNet-6n+2 for 32x32 images: 3x3 stem with 16 channels, three stages of n basic
    blocks (16, 32, 64 channels; stride 2 at stages 2 and 3), global average pool, fc.
    Shortcuts that change shape are 1x1 conv + BatchNorm projections (option B of the
    paper); initialization as torchvision's ResNet."""

    def __init__(self, depth: int = 20, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        _check_classes(num_classes, "CifarResNet")
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"CifarResNet: depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        self.in_channels = in_channels
        self.inplanes = 16
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(16, n, 1)
        self.layer2 = self._make_layer(32, n, 2)
        self.layer3 = self._make_layer(64, n, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)
        _init_like_torchvision(self, False)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Any) -> Tensor:
        x = _check_input(x, self.in_channels, "CifarResNet")
        x = conv_bn_act(self.conv1, self.bn1, self.relu, x)
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


def resnet20(num_classes: int = 10, in_channels: int = 3, *, weights: Any = None,
             progress: bool = True) -> CifarResNet:
    """ResNet-20 for CIFAR (3x32x32 input; 0.27 M parameters). ``weights=None`` only, as the
    torchvision-style builders."""
    check_no_weights("resnet20", weights, progress, {})
    return CifarResNet(20, num_classes=num_classes, in_channels=in_channels)
