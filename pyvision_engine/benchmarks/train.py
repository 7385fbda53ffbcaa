"""Training-step throughput: pve vs torch on the same models, in one process, at 1 and 2 threads.

    python bench/bench_train.py [--threads 1 2] [--only lenet5 resnet20 resnet18] [--steps 10]

Cases (issue 6): LeNet-5 on 1x28x28 at batch 64, ResNet-20 on 3x32x32 at batch 128,
ResNet-18 on 3x224x224 at batch 16, each with SGD (momentum 0.9) and with Adam.
A step is zero_grad + forward + cross-entropy + backward + optimizer step on a
fixed random batch. Both engines start from the same weights (pve's, copied into
torch). The torch models are torchvision's when it is installed, else the same
architectures written with torch.nn (below). Reported: the median step time over
``--steps`` timed steps after 2 warm-up steps, pve and torch steps alternating (so load
from other processes hits both alike), as images/s, and pve/torch.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

import pyvision_engine as pve

CASES: List[Tuple[str, Tuple[int, int, int], int]] = [
    ("lenet5", (1, 28, 28), 64),
    ("resnet20", (3, 32, 32), 128),
    ("resnet18", (3, 224, 224), 16),
]
OPTIMIZERS = ("sgd", "adam")


# ------------------------------------------------------------- torch models
def torch_model(name: str, num_classes: int) -> Any:
    """The torch twin of ``pve.models.get_model(name)`` (same module names and shapes)."""
    import torch
    from torch import nn

    try:
        import torchvision  # noqa: F401

        if name in ("resnet18", "resnet34", "resnet50", "mobilenet_v2"):
            return getattr(torchvision.models, name)(num_classes=num_classes)
    except ImportError:
        pass

    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Any = None) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x: Any) -> Any:
            idt = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + idt)

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Any = None) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample

        def forward(self, x: Any) -> Any:
            idt = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            return self.relu(self.bn3(self.conv3(out)) + idt)

    class ResNet(nn.Module):
        def __init__(self, block: Any, layers: Sequence[int], cifar: bool) -> None:
            super().__init__()
            self.cifar = cifar
            self.inplanes = 16 if cifar else 64
            self.conv1 = nn.Conv2d(3, self.inplanes, 3 if cifar else 7, 1 if cifar else 2,
                                   1 if cifar else 3, bias=False)
            self.bn1 = nn.BatchNorm2d(self.inplanes)
            self.relu = nn.ReLU(inplace=True)
            if not cifar:
                self.maxpool = nn.MaxPool2d(3, 2, 1)
            widths = (16, 32, 64) if cifar else (64, 128, 256, 512)
            self.stages = len(widths)
            for i, (w, n) in enumerate(zip(widths, layers)):
                setattr(self, f"layer{i + 1}", self._make_layer(block, w, n, 1 if i == 0 else 2))
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(widths[-1] * block.expansion, num_classes)

        def _make_layer(self, block: Any, planes: int, blocks: int, stride: int) -> Any:
            down = None
            if stride != 1 or self.inplanes != planes * block.expansion:
                down = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                     nn.BatchNorm2d(planes * block.expansion))
            layers = [block(self.inplanes, planes, stride, down)]
            self.inplanes = planes * block.expansion
            layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
            return nn.Sequential(*layers)

        def forward(self, x: Any) -> Any:
            x = self.relu(self.bn1(self.conv1(x)))
            if not self.cifar:
                x = self.maxpool(x)
            for i in range(self.stages):
                x = getattr(self, f"layer{i + 1}")(x)
            return self.fc(torch.flatten(self.avgpool(x), 1))

    def make_divisible(v: float, d: int = 8) -> int:
        new_v = max(d, int(v + d / 2) // d * d)
        return new_v + d if new_v < 0.9 * v else new_v

    def conv_bn_act(i: int, o: int, k: int = 3, s: int = 1, g: int = 1) -> Any:
        return nn.Sequential(nn.Conv2d(i, o, k, s, (k - 1) // 2, groups=g, bias=False),
                             nn.BatchNorm2d(o), nn.ReLU6(inplace=True))

    class InvertedResidual(nn.Module):
        def __init__(self, inp: int, oup: int, stride: int, t: int) -> None:
            super().__init__()
            hidden = int(round(inp * t))
            self.use_res = stride == 1 and inp == oup
            layers = [conv_bn_act(inp, hidden, 1)] if t != 1 else []
            layers += [conv_bn_act(hidden, hidden, 3, stride, hidden),
                       nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
            self.conv = nn.Sequential(*layers)

        def forward(self, x: Any) -> Any:
            return x + self.conv(x) if self.use_res else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
                       [6, 160, 3, 2], [6, 320, 1, 1]]
            c_in = make_divisible(32)
            feats = [conv_bn_act(3, c_in, s=2)]
            for t, c, n, s in setting:
                for i in range(n):
                    feats.append(InvertedResidual(c_in, make_divisible(c), s if i == 0 else 1, t))
                    c_in = make_divisible(c)
            feats.append(conv_bn_act(c_in, 1280, 1))
            self.features = nn.Sequential(*feats)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

        def forward(self, x: Any) -> Any:
            x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
            return self.classifier(torch.flatten(x, 1))

    class LeNet5(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(inplace=True),
                                          nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True),
                                          nn.MaxPool2d(2))
            self.classifier = nn.Sequential(nn.Linear(400, 120), nn.ReLU(inplace=True), nn.Linear(120, 84),
                                            nn.ReLU(inplace=True), nn.Linear(84, num_classes))

        def forward(self, x: Any) -> Any:
            return self.classifier(torch.flatten(self.features(x), 1))

    builders: Dict[str, Callable[[], Any]] = {
        "lenet5": LeNet5,
        "resnet20": lambda: ResNet(BasicBlock, [3, 3, 3], cifar=True),
        "resnet18": lambda: ResNet(BasicBlock, [2, 2, 2, 2], cifar=False),
        "resnet34": lambda: ResNet(BasicBlock, [3, 4, 6, 3], cifar=False),
        "resnet50": lambda: ResNet(Bottleneck, [3, 4, 6, 3], cifar=False),
        "mobilenet_v2": MobileNetV2,
    }
    if name not in builders:
        raise ValueError(f"no torch twin for model '{name}'")
    return builders[name]()


def paired_models(name: str, num_classes: int = 10) -> Tuple[Any, Any]:
    """(pve model, torch model with the same weights), or (pve model, None) without torch."""
    pve.manual_seed(0)
    mine = pve.models.get_model(name, num_classes=num_classes)
    try:
        import torch
    except ImportError:
        return mine, None
    theirs = torch_model(name, num_classes)
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in mine.state_dict().items()})
    return mine, theirs


def median_time(fn: Callable[[], Any], steps: int, warmup: int = 2, budget_s: float = 60.0) -> float:
    for _ in range(warmup):
        fn()
    times: List[float] = []
    start = time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s and len(times) >= 3:
            break  # slow case on a busy machine: keep at least 3 samples
    return statistics.median(times)


def paired_medians(fns: Sequence[Optional[Callable[[], Any]]], steps: int, warmup: int = 2,
                   budget_s: float = 120.0) -> List[Optional[float]]:
    """Median time of each callable, timed in alternation (a, b, a, b, ...) so that load
    from other processes on a shared machine hits every engine alike. None entries
    are skipped (their median is None)."""
    live = [(i, f) for i, f in enumerate(fns) if f is not None]
    for _ in range(warmup):
        for _, f in live:
            f()
    times: List[List[float]] = [[] for _ in fns]
    start = time.perf_counter()
    for _ in range(steps):
        for i, f in live:
            t0 = time.perf_counter()
            f()
            times[i].append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s and len(times[live[0][0]]) >= 3:
            break  # a slow case on a busy machine: keep at least 3 samples each
    return [statistics.median(t) if t else None for t in times]


def _pve_step(model: Any, optimizer: Any, x: Any, y: Any) -> Callable[[], None]:
    loss_fn = pve.nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    return step


def _torch_step(model: Any, optimizer: Any, x: Any, y: Any) -> Callable[[], None]:
    import torch

    def step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return step


def run(threads: Sequence[int], only: Optional[Sequence[str]], steps: int,
        with_torch: bool = True) -> List[Dict[str, Any]]:
    rows = []
    for name, shape, batch in CASES:
        if only and name not in only:
            continue
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch,) + shape).astype(np.float32)
        y = rng.integers(0, 10, batch)
        for opt_name in OPTIMIZERS:
            mine, theirs = paired_models(name)
            if not with_torch:
                theirs = None
            mine.train()
            params = list(mine.parameters())
            opt = pve.optim.SGD(params, lr=0.01, momentum=0.9) if opt_name == "sgd" \
                else pve.optim.Adam(params, lr=1e-3)
            step_pve = _pve_step(mine, opt, pve.tensor(x), pve.tensor(y))
            step_torch = None
            if theirs is not None:
                import torch

                theirs.train()
                topt = torch.optim.SGD(theirs.parameters(), lr=0.01, momentum=0.9) if opt_name == "sgd" \
                    else torch.optim.Adam(theirs.parameters(), lr=1e-3)
                step_torch = _torch_step(theirs, topt, torch.from_numpy(x), torch.from_numpy(y))
            for n in threads:
                pve.set_num_threads(n)
                if step_torch is not None:
                    import torch

                    torch.set_num_threads(n)
                t_pve, t_torch = paired_medians([step_pve, step_torch], steps)
                rows.append({"model": name, "input": "x".join(map(str, shape)), "batch": batch,
                             "optimizer": "SGD-momentum" if opt_name == "sgd" else "Adam",
                             "threads": n, "pve": batch / t_pve,
                             "torch": batch / t_torch if t_torch else None})
    return rows


def format_table(rows: List[Dict[str, Any]]) -> str:
    lines = ["| model | input | batch | optimizer | threads | pve img/s | torch img/s | pve / torch |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        torch_s = f"{r['torch']:.1f}" if r["torch"] else "n/a"
        ratio = f"{r['pve'] / r['torch']:.2f}x" if r["torch"] else "n/a"
        lines.append(f"| {r['model']} | {r['input']} | {r['batch']} | {r['optimizer']} | {r['threads']} | "
                     f"{r['pve']:.1f} | {torch_s} | {ratio} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="+", default=None, help="model names to run")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per case (median)")
    parser.add_argument("--no-torch", action="store_true", help="skip torch even if installed")
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch is not installed: pve column only (pip install torch to compare)")
    rows = run(args.threads, args.only, args.steps, with_torch=not args.no_torch)
    print(f"training steps, ISA {pve.info()['isa']}, median of {args.steps} steps")
    print(format_table(rows))
    return 0
