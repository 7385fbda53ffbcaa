"""Channel-blocked inference: runs of pointwise and depthwise convolutions in nChw16c.

MobileNet-style networks are chains of 1x1 convolutions and depthwise 3x3
convolutions. On NCHW planes of 7-56 pixels a depthwise convolution wastes most
of each vector and handles every channel as its own stream; in the blocked
layout ``x[n][c // 16][h][w][c % 16]`` every tap of every stride is one aligned
vector per pixel, and a 1x1 convolution is a GEMM that reads its input in
place. onnxruntime and oneDNN use the same layout for the same reason.

In eval mode under ``no_grad``, ``Sequential`` (see ``nn.fusion.run_sequence``)
finds maximal runs of children that can run blocked:

* a plain Conv2d that is pointwise (1x1, stride 1, no padding, groups 1) or
  depthwise (groups == in_channels == out_channels, zero padding), or, as the
  run's first layer, dense with at most 4 input channels (an image stem, read
  straight from NCHW), with a following foldable BatchNorm2d and/or ReLU /
  ReLU6 fused as usual;
* a plain Sequential whose children all can;
* a module without hooks whose ``_blocked_plan()`` returns a ``Block`` (units
  with an optional residual connection; MobileNetV2's InvertedResidual does).

A run that contains a depthwise convolution (where blocking pays) becomes a
list of ops that one kernel call (``conv2d_blocked_sequence``) runs: it
converts the input once, runs every op in the blocked layout with its
intermediate activations in a per-thread pool of reused buffers, and converts
the result back; the API and every result stay NCHW. Shapes are checked by each
convolution's own geometry code, so errors read as in the NCHW path. Results
differ from the NCHW path only by float32 rounding (summation order).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from pyvision_engine import _C
from pyvision_engine.nn.conv import Conv2d, _fold_sources, _record_state, _same_state, _unchanged
from pyvision_engine.nn.fusion import _foldable, _plain, _relu_cap
from pyvision_engine.nn.module import Module
from pyvision_engine.tensor import Tensor

__all__ = ["Block", "blocked_units", "blocked_run", "worth_blocking", "run", "pack_pointwise",
           "pack_depthwise", "pack_dense"]

_BLOCK = 16
Shape = Tuple[int, ...]


def _aligned_zeros(shape: Tuple[int, ...]) -> np.ndarray:
    """float32 zeros starting on a 64-byte line (numpy only promises 16), so the
    kernels' vector loads of packed weights never split a cache line."""
    n = int(np.prod(shape))
    raw = np.zeros(n + 16, np.float32)
    start = (-raw.ctypes.data % 64) // 4
    return raw[start:start + n].reshape(shape)


def _padded(n: int) -> int:
    return -(-n // _BLOCK) * _BLOCK


def pack_pointwise(weight: np.ndarray, bias: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """(K, C, 1, 1) weights as (K/16, C16, 16) blocks and the bias as (K16,), zero-padded."""
    k, c = weight.shape[:2]
    w = np.zeros((_padded(k), _padded(c)), np.float32)
    w[:k, :c] = weight.reshape(k, c)
    packed = _aligned_zeros((w.shape[0] // _BLOCK, w.shape[1], _BLOCK))
    packed[...] = w.reshape(-1, _BLOCK, w.shape[1]).transpose(0, 2, 1)
    return packed, _pack_bias(bias, k)


def pack_depthwise(weight: np.ndarray, bias: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """(C, 1, kh, kw) weights as (C/16, kh, kw, 16) blocks and the bias as (C16,), zero-padded."""
    c, _, kh, kw = weight.shape
    w = np.zeros((_padded(c), kh, kw), np.float32)
    w[:c] = weight[:, 0]
    packed = _aligned_zeros((w.shape[0] // _BLOCK, kh, kw, _BLOCK))
    packed[...] = w.reshape(-1, _BLOCK, kh, kw).transpose(0, 2, 3, 1)
    return packed, _pack_bias(bias, c)


def pack_dense(weight: np.ndarray, bias: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """(K, C, kh, kw) weights as (K/16, C, kh, kw, 16) blocks and the bias as (K16,),
    zero-padded (the NCHW-input first layer)."""
    k, c, kh, kw = weight.shape
    # (the stem family of the NCHW conv2d packs the same layout for the same kernel)
    packed = _C.conv2d_pack_weight(np.ascontiguousarray(weight, np.float32), algorithm="stem")
    return packed.reshape(_padded(k) // _BLOCK, c, kh, kw, _BLOCK), _pack_bias(bias, k)


def _pack_bias(bias: Optional[np.ndarray], n: int) -> np.ndarray:
    b = _aligned_zeros((_padded(n),))
    if bias is not None:
        b[:n] = bias
    return b


# ------------------------------------------------------------------ units
# A dense convolution starts a run from its NCHW input when its input has at most
# this many channels (an image: gray, RGB, RGBA), where im2col + GEMM is weakest.
_MAX_DENSE_INPUT_CHANNELS = 4


def _kind(conv: Conv2d, at_start: bool) -> Optional[str]:
    """'pointwise', 'depthwise', 'dense_nchw' (only as a run's first unit) or None
    (cannot run blocked)."""
    if conv.padding_mode != "zeros" or conv._fused_relu:
        return None
    if (conv.groups == 1 and conv.kernel_size == (1, 1) and conv.stride == (1, 1)
            and conv.padding in ((0, 0), "valid")):
        return "pointwise"
    if conv.groups == conv.in_channels == conv.out_channels:
        return "depthwise"
    if at_start and conv.groups == 1 and conv.in_channels <= _MAX_DENSE_INPUT_CHANNELS:
        return "dense_nchw"
    return None


class _ConvUnit:
    """Conv2d (+ folded BatchNorm2d) (+ ReLU / ReLU6) on a blocked activation."""

    __slots__ = ("conv", "bn", "relu_max", "kind")

    def __init__(self, conv: Conv2d, bn: Optional[Module], relu_max: Optional[float],
                 kind: str) -> None:
        self.conv, self.bn, self.relu_max, self.kind = conv, bn, relu_max, kind

    def ops(self, shape: Shape, ops: List[tuple], residual: bool = False) -> Shape:
        """Appends this unit's op for an input of logical ``shape``; returns the output's.
        ``residual``: add the innermost saved activation in the epilogue."""
        conv, bn = self.conv, self.bn
        pack = conv._blocked_pack  # one read: request threads may replace it concurrently
        if (pack is None or pack[0] is not bn or (bn is not None and pack[1] != bn.eps)
                or not _same_state(_fold_sources(conv, bn), pack[2])):
            pack = _repack(conv, bn, self.kind)
        _, _, _, wpack, bpack, plans = pack
        plan = plans.get(shape)
        if plan is None:
            # The NCHW path's geometry: the same checks and error messages.
            geo = conv._inference_plan(shape, conv._parameters["weight"], conv.padding)[0]
            out = (shape[0], conv.out_channels) + tuple(geo.out_size)
            plan = plans[shape] = (geo.stride, geo.top_left, geo.dilation, tuple(geo.out_size), out)
        relu = self.relu_max is not None
        cap = float(self.relu_max) if relu else _INF
        if self.kind == "pointwise":
            ops.append(("pointwise", wpack, bpack, conv.out_channels, relu, cap, residual))
        elif self.kind == "depthwise":
            ops.append(("depthwise", wpack, bpack) + plan[:4] + (relu, cap))
        else:
            ops.append(("dense_nchw", wpack, bpack, conv.out_channels) + plan[:4] + (relu, cap))
        return plan[4]


_INF = float("inf")


def _repack(conv: Conv2d, bn: Optional[Module], kind: str) -> Tuple[Any, ...]:
    """(bn, eps, state of the source tensors, blocked weights, blocked bias, plans per input
    shape), stored on the conv; the layout is the same at every ISA level."""
    weight, bias = (conv.weight, conv.bias) if bn is None else conv._folded_with(bn)
    packer = {"pointwise": pack_pointwise, "depthwise": pack_depthwise,
              "dense_nchw": pack_dense}[kind]
    wpack, bpack = packer(weight._data, None if bias is None else bias._data)
    pack = (bn, None if bn is None else bn.eps, _record_state(_fold_sources(conv, bn)), wpack,
            bpack, {})
    object.__setattr__(conv, "_blocked_pack", pack)
    return pack


class Block:
    """Units that a module runs as one block, with or without a residual connection
    around them (``x + units(x)``, the sum taken in the last convolution's epilogue when
    that is a pointwise one without activation). Expand -> depthwise -> project (an
    inverted residual) becomes one fused op."""

    __slots__ = ("units", "residual")

    def __init__(self, units: Sequence[Any], residual: bool) -> None:
        self.units, self.residual = list(units), residual

    def ops(self, shape: Shape, ops: List[tuple]) -> Shape:
        units = self.units
        kinds = [u.kind if isinstance(u, _ConvUnit) else None for u in units]
        if kinds in (["pointwise", "depthwise", "pointwise"], ["depthwise", "pointwise"]) and (
                not self.residual or units[-1].relu_max is None):
            # MobileNetV2's inverted residual: one fused op (the kernel may still
            # run it as three, see conv2d_blocked_sequence).
            parts: List[tuple] = []
            out = shape
            for unit in units:
                out = unit.ops(out, parts)
            if self.residual and out != shape:
                raise ValueError(f"residual add: the block's output shape {out} differs from its "
                                 f"input shape {shape}")
            expand = parts[0] if len(parts) == 3 else None
            ops.append(("inverted_residual", expand, parts[-2], parts[-1], self.residual))
            return out
        if not self.residual:
            return units_ops(units, shape, ops)
        ops.append(("save",))
        *body, last = units
        out = units_ops(body, shape, ops)
        if isinstance(last, _ConvUnit) and last.relu_max is None and last.kind == "pointwise":
            end = last.ops(out, ops, residual=True)
        else:
            end = last.ops(out, ops)
            ops.append(("add_saved",))
        if end != shape:
            raise ValueError(f"residual add: the block's output shape {end} differs from its "
                             f"input shape {shape}")
        return end


Unit = Union[_ConvUnit, Block]


_SEQUENTIAL: List[type] = []


def _sequential() -> type:
    """nn.Sequential (container.py imports fusion.py, which imports this module)."""
    if not _SEQUENTIAL:
        from pyvision_engine.nn.container import Sequential
        _SEQUENTIAL.append(Sequential)
    return _SEQUENTIAL[0]


def _no_hooks(m: Module) -> bool:
    return not m._has_hooks()


def _unit_at(mods: Sequence[Module], i: int,
             at_start: bool = False) -> Tuple[Optional[List[Unit]], int]:
    """The units that ``mods[i]`` (with the BatchNorm / ReLU it absorbs) runs as,
    and the index after them; (None, i) when it cannot run blocked. ``at_start``:
    these are a run's first units (whose input is still NCHW)."""
    m = mods[i]
    if _plain(m, Conv2d) and not m.training:
        kind = _kind(m, at_start)
        if kind is None:
            return None, i
        j = i + 1
        bn = mods[j] if j < len(mods) and _foldable(m, mods[j]) else None
        if bn is not None:
            j += 1
        cap = _relu_cap(mods[j]) if j < len(mods) else None
        if cap is not None:
            j += 1
        return [_ConvUnit(m, bn, cap, kind)], j
    if _plain(m, _sequential()) and not m.training:
        units = blocked_units(list(m._modules.values()), at_start)
        return (units, i + 1) if units is not None else (None, i)
    plan = getattr(m, "_blocked_plan", None)
    if plan is not None and not m.training and _no_hooks(m):
        block = plan()
        if block is not None:
            return [block], i + 1
    return None, i


def blocked_units(mods: Sequence[Module], at_start: bool = False) -> Optional[List[Unit]]:
    """All of ``mods`` as blocked units, or None when any of them cannot run blocked."""
    units: List[Unit] = []
    i = 0
    while i < len(mods):
        more, i2 = _unit_at(mods, i, at_start and not units)
        if more is None:
            return None
        units.extend(more)
        i = i2
    return units


def blocked_run(mods: Sequence[Module], i: int) -> Tuple[List[Unit], int]:
    """The longest run of units starting at ``mods[i]`` and the index after it."""
    units: List[Unit] = []
    while i < len(mods):
        more, i2 = _unit_at(mods, i, not units)
        if more is None:
            break
        units.extend(more)
        i = i2
    return units, i


# ISA levels where the blocked kernels lose to the NCHW ones: at the scalar level a
# 16-channel block is 16 scalar chains (MobileNetV2 batch 1: 90 vs 67 ms).
SLOW_ISAS = {"scalar"}


def worth_blocking(units: Sequence[Unit]) -> bool:
    """A run pays for its two reorders when it has a depthwise convolution (and the
    active ISA level has vectors)."""
    return _C.active_isa() not in SLOW_ISAS and _has_depthwise(units)


def _has_depthwise(units: Sequence[Unit]) -> bool:
    return any(_has_depthwise(u.units) if isinstance(u, Block) else u.kind == "depthwise"
               for u in units)


def units_ops(units: Sequence[Unit], shape: Shape, ops: List[tuple]) -> Shape:
    """Appends the ops of ``units`` in order; returns the output's logical shape."""
    for unit in units:
        shape = unit.ops(shape, ops)
    return shape


def run(units: Sequence[Unit], x: Tensor, cache: Optional[Dict[Shape, Any]] = None) -> Tensor:
    """``units`` applied to the NCHW float32 tensor ``x``, in the blocked layout inside
    one kernel call (conv2d_blocked_sequence); the result is NCHW.

    ``cache`` (per run, kept by its owner while the run's modules stay the same)
    holds the op list per input shape, with the state of every tensor the packed
    weights come from: one flat check of those instead of each unit's own (a
    MobileNetV2 has ~300 of them: the per-unit checks cost ~5% of its batch-1 time)."""
    shape = tuple(x.shape)
    entry = None if cache is None else cache.get(shape)
    if entry is None or not _unchanged(entry[1]):
        ops: List[tuple] = []
        units_ops(units, shape, ops)
        entry = (ops, _record_state(_all_sources(units)))
        if cache is not None:
            if len(cache) >= 8:  # a server seeing many shapes: keep the newest
                cache.clear()
            cache[shape] = entry
    return Tensor._wrap(_C.conv2d_blocked_sequence(x._data, entry[0]))


def _all_sources(units: Sequence[Unit]) -> List[Tensor]:
    found: List[Tensor] = []
    for u in units:
        if isinstance(u, Block):
            found.extend(_all_sources(u.units))
        else:
            found.extend(t for t in _fold_sources(u.conv, u.bn) if t is not None)
    return found
