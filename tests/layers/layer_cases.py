"""Cases shared by the torch golden file and the torch parity tests.

Each case is (name, builder): builder(lib, F, tensor) runs the op through a
torch-like library (torch or pve) and returns {key: array} with the output and
the gradients of every input. `tensor(array, requires_grad)` makes that
library's tensor; F is its functional module.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Tuple

import numpy as np


def _inputs(seed: int, *shapes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


def _run(fn, tensor, arrays, upstream_seed=99, int_args=()):
    ts = [tensor(a, True) for a in arrays]
    out = fn(*ts)
    if isinstance(out, tuple):
        out = out[0]
    up = np.random.default_rng(upstream_seed).standard_normal(tuple(out.shape)).astype(np.float32)
    out.backward(tensor(up, False))
    res = {"out": out.detach().numpy().copy()}
    for i, t in enumerate(ts):
        res[f"grad{i}"] = t.grad.detach().numpy().copy() if hasattr(t.grad, "detach") else t.grad.numpy().copy()
    return res


def cases() -> List[Tuple[str, Callable]]:
    out: List[Tuple[str, Callable]] = []
    x4 = _inputs(0, (2, 3, 9, 11))[0]
    distinct = (np.random.default_rng(1).permutation(2 * 3 * 9 * 11).reshape(2, 3, 9, 11) / 10).astype(np.float32)

    out.append(("max_pool2d_3_2_1_ceil", lambda lib, F, T: _run(
        lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True), T, [distinct])))
    out.append(("max_pool2d_dilated", lambda lib, F, T: _run(
        lambda t: F.max_pool2d(t, (2, 3), (1, 2), (1, 1), (2, 1)), T, [distinct])))
    out.append(("avg_pool2d_ceil_nopad", lambda lib, F, T: _run(
        lambda t: F.avg_pool2d(t, 3, 2, 1, ceil_mode=True, count_include_pad=False), T, [x4])))
    out.append(("avg_pool2d_divisor", lambda lib, F, T: _run(
        lambda t: F.avg_pool2d(t, 2, 2, 1, ceil_mode=True, divisor_override=3), T, [x4])))
    out.append(("adaptive_avg_pool2d_5x3", lambda lib, F, T: _run(
        lambda t: F.adaptive_avg_pool2d(t, (5, 3)), T, [x4])))
    out.append(("adaptive_max_pool2d_4x7", lambda lib, F, T: _run(
        lambda t: F.adaptive_max_pool2d(t, (4, 7)), T, [distinct])))
    out.append(("global_avg_pool", lambda lib, F, T: _run(
        lambda t: F.adaptive_avg_pool2d(t, 1), T, [x4])))

    v = (np.random.default_rng(2).uniform(-8, 8, (4, 50))).astype(np.float32)
    acts = {
        "relu": lambda F, t: F.relu(t), "relu6": lambda F, t: F.relu6(t),
        "leaky_relu": lambda F, t: F.leaky_relu(t, 0.2), "sigmoid": lambda F, t: F.sigmoid(t),
        "tanh": lambda F, t: F.tanh(t), "gelu": lambda F, t: F.gelu(t),
        "gelu_tanh": lambda F, t: F.gelu(t, approximate="tanh"), "silu": lambda F, t: F.silu(t),
        "hardswish": lambda F, t: F.hardswish(t), "hardsigmoid": lambda F, t: F.hardsigmoid(t),
        "softmax1": lambda F, t: F.softmax(t, 1), "log_softmax0": lambda F, t: F.log_softmax(t, 0),
    }
    for name, fn in acts.items():
        out.append((name, lambda lib, F, T, fn=fn: _run(lambda t: fn(F, t), T, [v])))
    out.append(("prelu", lambda lib, F, T: _run(
        lambda t, w: F.prelu(t, w), T, [x4, np.array([0.1, -0.2, 0.3], np.float32)])))

    w3, b3 = _inputs(3, (3,), (3,))
    out.append(("batch_norm_train", lambda lib, F, T: _run(
        lambda t, w, b: F.batch_norm(t, None, None, w, b, training=True), T, [x4, w3, b3])))
    w6, b6 = _inputs(4, (6,), (6,))
    x6 = _inputs(5, (2, 6, 4, 5))[0]
    out.append(("group_norm_3", lambda lib, F, T: _run(
        lambda t, w, b: F.group_norm(t, 3, w, b), T, [x6, w6, b6])))
    wl, bl = _inputs(6, (4, 5), (4, 5))
    out.append(("layer_norm_4x5", lambda lib, F, T: _run(
        lambda t, w, b: F.layer_norm(t, (4, 5), w, b), T, [x6, wl, bl])))

    logits = (np.random.default_rng(7).standard_normal((8, 10)) * 2).astype(np.float32)
    target = np.random.default_rng(8).integers(0, 10, 8)
    target[2] = -100
    cw = (np.random.default_rng(9).random(10) + 0.5).astype(np.float32)
    probs = np.random.default_rng(10).random((8, 10)).astype(np.float32)
    probs /= probs.sum(axis=1, keepdims=True)
    for red in ("mean", "sum", "none"):
        out.append((f"cross_entropy_{red}", lambda lib, F, T, red=red: _run(
            lambda t: F.cross_entropy(t, T(target, False), weight=T(cw, False), reduction=red,
                                      label_smoothing=0.1), T, [logits])))
    out.append(("cross_entropy_probs", lambda lib, F, T: _run(
        lambda t: F.cross_entropy(t, T(probs, False), label_smoothing=0.2), T, [logits])))
    out.append(("nll_loss", lambda lib, F, T: _run(
        lambda t: F.nll_loss(F.log_softmax(t, 1), T(target, False), weight=T(cw, False)), T, [logits])))
    y8 = _inputs(11, (8, 10))[0]
    out.append(("mse_loss", lambda lib, F, T: _run(lambda a, b: F.mse_loss(a, b), T, [logits, y8])))
    out.append(("l1_loss", lambda lib, F, T: _run(lambda a, b: F.l1_loss(a, b, reduction="sum"), T, [logits, y8])))
    out.append(("smooth_l1_loss", lambda lib, F, T: _run(
        lambda a, b: F.smooth_l1_loss(a, b, beta=0.5), T, [logits, y8])))
    tb = np.random.default_rng(12).random((8, 10)).astype(np.float32)
    pw = (np.random.default_rng(13).random(10) + 0.5).astype(np.float32)
    out.append(("bce_with_logits", lambda lib, F, T: _run(
        lambda a: F.binary_cross_entropy_with_logits(a, T(tb, False), pos_weight=T(pw, False)), T, [logits])))

    for ac in (False, True):
        out.append((f"bilinear_{ac}", lambda lib, F, T, ac=ac: _run(
            lambda t: F.interpolate(t, size=(13, 7), mode="bilinear", align_corners=ac), T, [x4])))
    out.append(("bilinear_scale", lambda lib, F, T: _run(
        lambda t: F.interpolate(t, scale_factor=1.5, mode="bilinear"), T, [x4])))
    out.append(("nearest_scale", lambda lib, F, T: _run(
        lambda t: F.interpolate(t, scale_factor=2.5), T, [x4])))
    out.append(("pad", lambda lib, F, T: _run(lambda t: F.pad(t, (1, 2, -1, 3)), T, [x4])))
    return out


def run_all(lib, F, tensor) -> Dict[str, np.ndarray]:
    flat: Dict[str, np.ndarray] = {}
    for name, build in cases():
        for key, value in build(lib, F, tensor).items():
            flat[f"{name}/{key}"] = value
    return flat


def batchnorm_running_stats(lib, make_bn, tensor, steps: int = 5, momentum=0.1):
    """Running statistics of a BatchNorm2d(3) after `steps` training steps."""
    bn = make_bn(momentum)
    rng = np.random.default_rng(20)
    for s in range(steps):
        x = (rng.standard_normal((4, 3, 5, 6)) * (s + 1) + s).astype(np.float32)
        y = bn(tensor(x, True))
        y.sum().backward()
    return (bn.running_mean.detach().numpy().copy(), bn.running_var.detach().numpy().copy(),
            int(bn.num_batches_tracked.detach().numpy()))
