"""The torch twins of pve.models, built with plain torch.nn (torchvision is not needed):
torchvision's ResNet and MobileNetV2 as its source defines them, plus ResNet-20, LeNet-5 and
SmallCNN as pve.models defines them (same module names and shapes). The benchmarks run them as
the torch peer; tests/models compares outputs and gradients with them, and
tests/models/make_golden_keys.py checks them against torchvision's documented parameter counts.
Imports torch: only for benchmarks and tests, never imported by the package itself."""

import torch
from torch import nn


def _conv3x3(i, o, stride=1, groups=1):
    return nn.Conv2d(i, o, 3, stride, 1, groups=groups, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + idt)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + idt)


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=1000, cifar=False, in_channels=3):
        super().__init__()
        self.cifar = cifar
        self.inplanes = 16 if cifar else 64
        if cifar:
            self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        if not cifar:
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = (16, 32, 64) if cifar else (64, 128, 256, 512)
        for i, (w, n) in enumerate(zip(widths, layers)):
            setattr(self, f"layer{i + 1}", self._make_layer(block, w, n, 1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1] * block.expansion, num_classes)
        self.n_stages = len(widths)

    def _make_layer(self, block, planes, blocks, stride):
        down = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                 nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, down)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if not self.cifar:
            x = self.maxpool(x)
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _make_divisible(v, divisor=8):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def conv_bn_act(i, o, k=3, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(i, o, k, stride, (k - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(o), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, t):
        super().__init__()
        hidden = int(round(inp * t))
        self.use_res = stride == 1 and inp == oup
        layers = [conv_bn_act(inp, hidden, 1)] if t != 1 else []
        layers += [conv_bn_act(hidden, hidden, 3, stride, hidden), nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
                   nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
                   [6, 160, 3, 2], [6, 320, 1, 1]]
        c_in = _make_divisible(32)
        feats = [conv_bn_act(3, c_in, stride=2)]
        for t, c, n, s in setting:
            for i in range(n):
                feats.append(InvertedResidual(c_in, _make_divisible(c), s if i == 0 else 1, t))
                c_in = _make_divisible(c)
        feats.append(conv_bn_act(c_in, 1280, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class LeNet5(nn.Module):
    def __init__(self, num_classes=10, in_channels=1, input_size=28):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, 6, 5, padding=2 if input_size == 28 else 0),
                                      nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                                      nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                                        nn.Linear(84, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class SmallCNN(nn.Module):
    def __init__(self, num_classes=10, in_channels=1, width=32, dropout=0.1):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.AdaptiveAvgPool2d((2, 2)))
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(8 * w, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def build(name, num_classes):
    if name == "resnet18":
        return ResNet(BasicBlock, [2, 2, 2, 2], num_classes)
    if name == "resnet34":
        return ResNet(BasicBlock, [3, 4, 6, 3], num_classes)
    if name == "resnet50":
        return ResNet(Bottleneck, [3, 4, 6, 3], num_classes)
    if name == "resnet20":
        return ResNet(BasicBlock, [3, 3, 3], num_classes, cifar=True)
    if name == "mobilenet_v2":
        return MobileNetV2(num_classes)
    if name == "lenet5":
        return LeNet5(num_classes)
    if name == "small_cnn":
        return SmallCNN(num_classes)
    raise ValueError(name)
