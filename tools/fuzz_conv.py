"""Random conv2d / conv_transpose2d configurations against torch: every forced algorithm,
forward and the three gradients, the eval path (Conv2d -> BatchNorm2d -> ReLU folded, packed
weights, called twice) and conv_transpose2d. Prints each mismatch or exception.

    PYTHONPATH=. python tools/fuzz_conv.py SEED TRIALS          # e.g. 1 80
    PVE_ISA=scalar PYTHONPATH=. python tools/fuzz_conv.py 1 40

Under the sanitizer build, run it with tools/sanitize.sh's LD_PRELOAD and PYTHONPATH.
Needs torch (the reference). Exit status 1 when anything differed.
"""

import sys
from typing import List, NamedTuple, Tuple

import numpy as np
import torch

import pyvision_engine as pve
import pyvision_engine.nn.functional as F
from pyvision_engine import nn
from pyvision_engine.backends.conv import ALGORITHMS, force_algorithm

Pair = Tuple[int, int]
TOL = 2e-4  # relative to the reference's largest magnitude (float32 accumulation orders)


class Config(NamedTuple):
    n: int
    c: int
    k: int
    groups: int
    kernel: Pair
    stride: Pair
    padding: Pair
    dilation: Pair
    size: Pair


def random_config(rng: np.random.Generator) -> Config:
    """Shapes that exercise every family: depthwise and channel multipliers, grouped,
    1x1 and 3x3 (pointwise, Winograd), strided (phase), dilated, odd sizes."""
    c = int(rng.choice([1, 2, 3, 4, 8, 9, 16, 17, 32, 40]))
    if rng.random() < 0.25:
        groups, k = c, c * int(rng.integers(1, 3))
    else:
        groups = int(rng.choice([1, 1, 1, 2])) if c % 2 == 0 else 1
        k = groups * int(rng.choice([1, 3, 8, 16, 20]))
    kernel = (int(rng.integers(1, 8)), int(rng.integers(1, 8)))
    if rng.random() < 0.4:
        kernel = (int(rng.choice([1, 3])),) * 2
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4))) if rng.random() < 0.5 else (1, 1)
    if rng.random() < 0.3:
        stride = (2, 2)
    dilation = (int(rng.integers(1, 4)), int(rng.integers(1, 4))) if rng.random() < 0.2 else (1, 1)
    padding = (int(rng.integers(0, 4)), int(rng.integers(0, 4)))
    size = (int(rng.integers(1, 30)), int(rng.integers(1, 30)))
    return Config(int(rng.integers(1, 4)), c, k, groups, kernel, stride, padding, dilation, size)


def fits(cfg: Config) -> bool:
    return all(cfg.size[i] + 2 * cfg.padding[i] >= cfg.dilation[i] * (cfg.kernel[i] - 1) + 1
               for i in range(2))


def close(a: np.ndarray, ref: torch.Tensor) -> bool:
    b = ref.detach().numpy().astype(np.float64)
    a = np.asarray(a, np.float64)
    scale = float(np.abs(b).max(initial=0.0)) + 1e-3
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= TOL * (scale + np.abs(b))))


def check_training(cfg: Config, rng: np.random.Generator, bad: List[tuple]) -> None:
    """Forward and the input, weight and bias gradients, with every algorithm forced."""
    x = rng.standard_normal((cfg.n, cfg.c) + cfg.size).astype(np.float32)
    fan_in = cfg.c // cfg.groups * cfg.kernel[0] * cfg.kernel[1]
    w = (rng.standard_normal((cfg.k, cfg.c // cfg.groups) + cfg.kernel)
         / np.sqrt(fan_in)).astype(np.float32)
    b = rng.standard_normal(cfg.k).astype(np.float32)
    args = (cfg.stride, cfg.padding, cfg.dilation, cfg.groups)
    ref = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    ref_y = torch.nn.functional.conv2d(*ref, *args)
    gy = rng.standard_normal(tuple(ref_y.shape)).astype(np.float32)
    ref_y.backward(torch.tensor(gy))
    for algo in (None,) + ALGORITHMS:
        try:
            with force_algorithm(algo):
                ours = [pve.tensor(a, requires_grad=True) for a in (x, w, b)]
                y = F.conv2d(*ours, *args)
                y.backward(pve.tensor(gy))
        except Exception as e:  # noqa: BLE001 - every failure is a finding
            bad.append((cfg, algo, "raised", repr(e)[:200]))
            continue
        pairs = [("y", y.detach().numpy(), ref_y)]
        pairs += [(f"d{name}", t.grad.numpy(), r.grad)
                  for name, t, r in zip(("x", "w", "b"), ours, ref)]
        bad += [(cfg, algo, name) for name, a, r in pairs if not close(a, r)]


def check_eval(cfg: Config, rng: np.random.Generator, bad: List[tuple]) -> None:
    """Conv2d -> BatchNorm2d -> ReLU in eval mode (folded, packed weights), called twice."""
    conv_args = (cfg.c, cfg.k, cfg.kernel, cfg.stride, cfg.padding, cfg.dilation, cfg.groups)
    ours = nn.Sequential(nn.Conv2d(*conv_args), nn.BatchNorm2d(cfg.k), nn.ReLU())
    ref = torch.nn.Sequential(torch.nn.Conv2d(*conv_args), torch.nn.BatchNorm2d(cfg.k),
                              torch.nn.ReLU())
    state = {key: rng.standard_normal(v.shape).astype(np.float32) * 0.5
             for key, v in ref.state_dict().items() if v.dtype == torch.float32}
    state["1.running_var"] = np.abs(state["1.running_var"]) + 0.1
    ref.load_state_dict({key: torch.tensor(v) for key, v in state.items()}, strict=False)
    ours.load_state_dict(state, strict=False)
    ours.eval()
    ref.eval()
    x = rng.standard_normal((cfg.n, cfg.c) + cfg.size).astype(np.float32)
    with torch.no_grad():
        expected = ref(torch.tensor(x))
    for algo in (None,) + ALGORITHMS:
        try:
            with force_algorithm(algo), pve.no_grad():
                first = ours(x).numpy().copy()
                second = ours(x).numpy()  # from the packed-weight cache
        except Exception as e:  # noqa: BLE001
            bad.append((cfg, algo, "eval raised", repr(e)[:200]))
            continue
        if not (close(first, expected) and close(second, expected)):
            bad.append((cfg, algo, "eval"))


def check_transposed(cfg: Config, rng: np.random.Generator, bad: List[tuple]) -> None:
    output_padding = tuple(int(rng.integers(0, max(cfg.stride[i], cfg.dilation[i])))
                           for i in range(2))
    x = rng.standard_normal((cfg.n, cfg.c) + cfg.size).astype(np.float32)
    w = rng.standard_normal((cfg.c, cfg.k // cfg.groups) + cfg.kernel).astype(np.float32) * 0.3
    b = rng.standard_normal(cfg.k).astype(np.float32)
    args = (cfg.stride, cfg.padding, output_padding, cfg.groups, cfg.dilation)
    try:
        expected = torch.nn.functional.conv_transpose2d(*map(torch.tensor, (x, w, b)), *args)
    except RuntimeError:  # a configuration torch refuses
        return
    try:
        y = F.conv_transpose2d(*map(pve.tensor, (x, w, b)), *args).numpy()
    except Exception as e:  # noqa: BLE001
        bad.append((cfg, "transposed", output_padding, repr(e)[:200]))
        return
    if not close(y, expected):
        bad.append((cfg, "transposed", output_padding))


def main(seed: int, trials: int) -> int:
    rng = np.random.default_rng(seed)
    bad: List[tuple] = []
    for _ in range(trials):
        pve.set_num_threads(int(rng.integers(1, 3)))
        cfg = random_config(rng)
        if not fits(cfg):
            continue
        check_training(cfg, rng, bad)
        check_eval(cfg, rng, bad)
        if rng.random() < 0.5 and max(cfg.stride) <= 3:
            check_transposed(cfg, rng, bad)
    print(f"seed {seed}, isa {pve.info()['isa']}: {len(bad)} problems")
    for item in bad[:30]:
        print(item)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
