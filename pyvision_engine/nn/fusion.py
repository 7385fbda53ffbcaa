"""Inference fusion: Conv2d -> BatchNorm2d (-> + residual) -> ReLU / ReLU6 as one convolution.

In eval mode under ``no_grad`` (the inference fast path), a convolution
followed by an eval-mode BatchNorm2d and/or a ReLU or ReLU6 runs as one
convolution: the BatchNorm folded into the weights and bias
(``W' = W * scale[k]``, ``b' = b * scale + shift``, cached on the Conv2d until
one of the tensors involved changes) and the activation applied by the kernel's
epilogue while the output tile is in registers. That saves a pass over the
output per BatchNorm and per activation, as onnxruntime and oneDNN do. The last
convolution of a residual block (``act(bn(conv(x)) + identity)``,
``conv_bn_add_act``) also adds the identity in that epilogue, so the block's
output is written once and the identity read while the tile is in registers.

``Sequential`` applies it to runs of its children automatically, and runs chains
of pointwise and depthwise convolutions in a channel-blocked layout inside one
kernel call (nn/blocked.py); hand-written forwards (the model zoo's ResNet
blocks) call ``conv_bn_act`` and ``conv_bn_add_act``. In training, or whenever autograd records, the
modules run as written. A module with hooks, or a subclass that overrides
``forward``, is never fused: fusing skips its call.
The folded result differs from the unfused one only by float32 rounding.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np

from pyvision_engine import _C
from pyvision_engine.autograd import Function, is_grad_enabled
from pyvision_engine.nn._f_activation import ACT_CODES
from pyvision_engine.nn.activation import ReLU, ReLU6
from pyvision_engine.nn.conv import Conv2d
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.normalization import BatchNorm2d
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["conv_bn_act", "conv_bn_add_act", "residual_add", "run_sequence"]


def _plain(module: Any, cls: type) -> bool:
    """``module`` is a ``cls`` whose call is exactly ``cls.forward``, with no hooks, and
    no tensor parametrized (nn.utils.parametrize: its weight is a property, not in the
    registries the folding and blocked packs read and watch; it runs as a module)."""
    return (isinstance(module, cls) and type(module).forward is cls.forward
            and not module._has_hooks() and "parametrizations" not in module._modules)


def _relu_cap(module: Any) -> Optional[float]:
    """The epilogue's upper clamp for a ReLU (inf) or ReLU6 (6) module, else None."""
    if _plain(module, ReLU):
        return math.inf
    if _plain(module, ReLU6):
        return 6.0
    return None


def bn_relu_cap(bn: Any, act: Any) -> Optional[float]:
    """The clamp (inf: ReLU, 6: ReLU6) when BatchNorm2d -> ``act`` can run as one
    kernel pass, forward and backward (``bn._normalize(x, cap)``): both plain
    modules (no hooks, no subclass forward); else (act None too) None."""
    return _relu_cap(act) if _plain(bn, BatchNorm2d) else None


def _foldable(conv: Any, bn: Any) -> bool:
    # (a Conv2d made by fuse_conv_bn_eval(..., relu) already ends in a ReLU)
    return (_plain(bn, BatchNorm2d) and not conv._fused_relu and not bn.training
            and bn._buffers.get("running_mean") is not None
            and bn._buffers.get("running_var") is not None
            and bn.num_features == conv.out_channels)


def _inference() -> bool:
    return not is_grad_enabled()


_UNFUSED = object()


def _fusion(conv: Any, bn: Optional[Module], act: Optional[Module]) -> Any:
    """What ``conv``, ``bn`` and ``act`` fuse to in eval mode: the epilogue's clamp
    (None: no activation, inf: ReLU, 6: ReLU6), or _UNFUSED. Decided once per
    (conv, bn, act) and kept on the Conv2d while no module changes through the
    Module API (``Module._structure_epoch``: attributes, train/eval, hooks, children;
    every input of the decision), since these checks cost as much as the kernel call
    of a small layer."""
    entry = conv.__dict__.get("_fusion") if isinstance(conv, Conv2d) else None
    if (entry is not None and entry[0] == Module._structure_epoch and entry[1] is bn
            and entry[2] is act):
        return entry[3]
    epoch = Module._structure_epoch
    cap = None if act is None else _relu_cap(act)
    fused = (_plain(conv, Conv2d) and not conv.training and (bn is None or _foldable(conv, bn))
             and (act is None or cap is not None))
    decision = cap if fused else _UNFUSED
    if isinstance(conv, Conv2d):
        object.__setattr__(conv, "_fusion", (epoch, bn, act, decision))
    return decision


def conv_bn_act(conv: Module, bn: Optional[Module], act: Optional[Module], x: Any) -> Tensor:
    """``act(bn(conv(x)))`` (``bn`` and ``act`` may be None), as one folded convolution
    in eval mode under no_grad, else module by module."""
    if not is_grad_enabled():
        cap = _fusion(conv, bn, act)
        if cap is not _UNFUSED:
            return conv._fused_forward(x if type(x) is Tensor else as_tensor(x), bn, cap)
    y = conv(x)
    if bn is not None:
        cap = bn_relu_cap(bn, act)
        if cap is not None:  # (training: ReLU / ReLU6 in BatchNorm's own passes)
            return bn._normalize(y, cap)
        y = bn(y)
    return act(y) if act is not None else y


def conv_bn_add_act(conv: Module, bn: Optional[Module], x: Any, identity: Any,
                    act: Optional[Module] = None) -> Tensor:
    """``act(bn(conv(x)) + identity)`` (``bn`` and ``act`` may be None), the end of a
    residual block. In eval mode under no_grad, with a plain Conv2d, a foldable
    BatchNorm2d, ReLU / ReLU6 / no activation, and a float32 4-D input and
    identity, it is one convolution that adds the identity and clamps in its
    epilogue; otherwise module by module, ``residual_add(bn(conv(x)), identity, act)``
    (autograd as written). ``identity`` must have the output's shape: a ValueError
    names the layer and both shapes otherwise."""
    if not is_grad_enabled():
        cap = _fusion(conv, bn, act)
        if cap is not _UNFUSED and not conv._fused_relu:  # (a fused ReLU comes before the sum)
            x = x if type(x) is Tensor else as_tensor(x)
            identity = identity if type(identity) is Tensor else as_tensor(identity)
            if x.ndim == 4 and x.dtype == np.float32 and identity.dtype == np.float32:
                return conv._fused_forward(x, bn, cap, identity)
    y = conv(x)
    if bn is not None:
        y = bn(y)
    identity = as_tensor(identity)
    if tuple(identity.shape) != tuple(y.shape):
        name = conv._layer_name() if isinstance(conv, Conv2d) else type(conv).__name__
        raise ValueError(f"{name}: the residual must have the output's shape "
                         f"{tuple(y.shape)}, got {tuple(identity.shape)}")
    return residual_add(y, identity, act)


def run_sequence(modules: Iterable[Module], x: Any, owner: Optional[Module] = None) -> Any:
    """Runs ``modules`` in order (Sequential's forward in eval mode under no_grad),
    fusing each Conv2d with a following foldable BatchNorm2d and/or ReLU/ReLU6, and
    running runs of pointwise/depthwise convolutions in the blocked layout
    (nn/blocked.py). ``owner``: the Sequential, which caches its runs."""
    mods = list(modules)
    runs, steps = _sequence_plans(owner, mods)
    i, n = 0, len(mods)
    plain_until = 0  # mods[:plain_until] were found unable to gain from the blocked layout
    while i < n:
        if (i >= plain_until and isinstance(x, Tensor) and x.ndim == 4 and x.dtype == np.float32
                and x._data.size > 0):  # (an empty batch takes the NCHW path's empty results)
            units, j, worth, ops_cache = _blocked_run(runs, mods, i)
            if worth:
                x = blocked.run(units, x, ops_cache)
                i = j
                continue
            plain_until = j
        step = steps.get(i)
        if step is None:
            step = steps[i] = _fusion_step(mods, i)
        j, bn, cap = step
        if j > i + 1:
            x = mods[i]._fused_forward(x if type(x) is Tensor else as_tensor(x), bn, cap)
            i = j
            continue
        x = mods[i](x)
        i += 1
    return x


def _sequence_plans(owner: Optional[Module],
                    mods: List[Module]) -> Tuple[Dict[int, Any], Dict[int, Any]]:
    """(blocked runs, fusion steps) by start index, found once per owner and reused
    while no module changed (``Module._structure_epoch``) and the owner's children
    are the same objects; checked once per call."""
    entry = None if owner is None else owner.__dict__.get("_blocked_runs")
    if (entry is None or entry[0] != Module._structure_epoch or len(entry[1]) != len(mods)
            or any(a is not b for a, b in zip(entry[1], mods))):
        entry = (Module._structure_epoch, tuple(mods), {}, {})
        if owner is not None:
            object.__setattr__(owner, "_blocked_runs", entry)
    return entry[2], entry[3]


def _fusion_step(mods: List[Module], i: int) -> Tuple[int, Optional[Module], Optional[float]]:
    """(end, bn, clamp) of the fused convolution at ``mods[i]``: it takes mods[i:end],
    with ``bn`` (or None) folded and ReLU clamped to ``clamp`` (None: none); end
    i + 1 means mods[i] runs as a module."""
    conv, n = mods[i], len(mods)
    if not (_plain(conv, Conv2d) and not conv.training):
        return i + 1, None, None
    j = i + 1
    bn = mods[j] if j < n and _foldable(conv, mods[j]) else None
    if bn is not None:
        j += 1
    cap = _relu_cap(mods[j]) if j < n else None
    if cap is not None:
        j += 1
    return j, bn, cap


def _blocked_run(runs: Dict[int, Any], mods: List[Module],
                 i: int) -> Tuple[Any, int, bool, Dict[Any, Any]]:
    """(units, end, worth running blocked, op-list cache for blocked.run) of the run
    starting at ``mods[i]`` (``runs``: _sequence_plans' cache)."""
    run = runs.get(i)
    if run is None:
        units, j = blocked.blocked_run(mods, i)
        run = runs[i] = (units, j, blocked.worth_blocking(units), {})
    return run


def residual_add(out: Tensor, identity: Any, act: Optional[Module] = None) -> Tensor:
    """``act(out + identity)`` for a residual block whose branch output ``out`` is a
    tensor of the block's own, as torchvision's ResNet blocks do (``out += identity``).
    In inference the sum goes into ``out``'s own (still cache-warm) buffer and the
    activation runs in place, instead of a new array for the sum; with autograd
    recording it is the plain out-of-place expression."""
    identity = as_tensor(identity)
    if (_inference() and out.shape == identity.shape and out.dtype == identity.dtype
            and out._data.flags.writeable and not np.shares_memory(out._data, identity._data)):
        cap = None if act is None else _relu_cap(act)
        if out.dtype == np.float32 and cap is not None:
            # sum and ReLU/ReLU6 in one pass over memory instead of two
            _C.add_activation_forward(ACT_CODES["relu" if cap == math.inf else "relu6"],
                                      out._data, identity._data, out._data)
            out._bump_version()
            return out
        np.add(out._data, identity._data, out=out._data)
        out._bump_version()
        return act(out) if act is not None else out
    if (act is not None and _relu_cap(act) == math.inf and out.shape == identity.shape
            and out.dtype == identity.dtype == np.float32):
        return _AddReLU.apply(out, identity)
    y = out + identity
    return act(y) if act is not None else y


class _AddReLU(Function):
    """relu(a + b) for training: one pass forward (the kernel inference uses), and
    one pass backward through the saved output, whose gradient both inputs
    receive (as Add's backward hands them). Unfused, the sum was a single-threaded
    numpy pass and the ReLU another pass over the sum."""
    saved_inputs, saves_output = (), True

    @staticmethod
    def forward(ctx, a, b):
        out = np.empty(a.shape, np.float32)
        _C.add_activation_forward(ACT_CODES["relu"], np.ascontiguousarray(a),
                                  np.ascontiguousarray(b), out)
        ctx.saved = out
        return out

    @staticmethod
    def backward(ctx, g):
        g = np.ascontiguousarray(g, dtype=np.float32)
        gx = np.empty_like(g)
        _C.activation_backward(ACT_CODES["relu"], ctx.saved, g, gx)
        return (gx if ctx.needs_input_grad[0] else None,
                gx if ctx.needs_input_grad[1] else None)


# At the end: blocked.py uses the helpers above.
from pyvision_engine.nn import blocked  # noqa: E402
